"""Rooms: listing them for clients and the home page, and the operator's add,
delete and counts.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from opengroup.domain.access import room_access
from opengroup.domain.errors import NoSuchRoom
from opengroup.domain.parts import find_room
from opengroup.storage import queries as q
from opengroup.storage import roomdetails
from opengroup.storage import stats as storage_stats
from opengroup.storage.database import Database
from opengroup.storage.queries import Room
from opengroup.storage.roomdetails import RoomDetails


class Rooms:
    """The rooms themselves."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock

    def all(self) -> list[Room]:
        with self.db.read() as conn:
            return q.list_rooms(conn)

    def public(self) -> list[Room]:
        """Every room anyone may see, as the community API decides for an anonymous
        caller (the v2 API's list: it has no caller)."""
        now = self.clock()
        with self.db.read() as conn:
            seen = {room.id for room in roomdetails.all_rooms(conn) if _public(conn, room, now)}
            return [room for room in q.list_rooms(conn) if room.id in seen]

    def get_public(self, room_id: str) -> Room:
        """A room of :meth:`public`; 404 for any other, as for a room that is not there."""
        with self.db.read() as conn:
            room = find_room(conn, room_id)
            details = roomdetails.find_room(conn, room.id)
            if details is None or not _public(conn, details, self.clock()):
                raise NoSuchRoom(room_id)
            return room

    def overview(self) -> list[tuple[RoomDetails, int]]:
        """Every room anyone may see (by its default permissions, as the community API
        decides for an anonymous caller) with its details (name, description, image) and
        member count, for the home page, in one snapshot."""
        now = self.clock()
        with self.db.read() as conn:
            return [
                (room, q.member_count(conn, room.id, now))
                for room in roomdetails.all_rooms(conn)
                if _public(conn, room, now)
            ]

    def stats(self) -> storage_stats.ServerStats:
        """Counts for the operator (``opengroup stats``)."""
        with self.db.read() as conn:
            return storage_stats.server_stats(conn, self.clock())

    def delete(self, room_id: str) -> bool:
        with self.db.write() as conn:
            return q.delete_room(conn, room_id)


def _public(conn: Connection, room: RoomDetails, now: float) -> bool:
    """Whether anyone, signed or not, may see that the room exists."""
    return room_access(conn, room, (), now).may_see_room
