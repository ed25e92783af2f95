"""Rooms: listing them for clients and the home page, and the operator's add,
delete and counts.
"""

from __future__ import annotations

from collections.abc import Callable

from opengroup.domain.access import room_access
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

    def get(self, room_id: str) -> Room:
        with self.db.read() as conn:
            return find_room(conn, room_id)

    def overview(self) -> list[tuple[RoomDetails, int]]:
        """Every room anyone may see (by its default permissions, as the community API
        decides for an anonymous caller) with its details (name, description, image) and
        member count, for the home page, in one snapshot."""
        now = self.clock()
        with self.db.read() as conn:
            return [
                (room, q.member_count(conn, room.id, now))
                for room in roomdetails.all_rooms(conn)
                if room_access(conn, room, (), now).may_see_room
            ]

    def stats(self) -> storage_stats.ServerStats:
        """Counts for the operator (``opengroup stats``)."""
        with self.db.read() as conn:
            return storage_stats.server_stats(conn, self.clock())

    def add(self, room_id: str, name: str) -> bool:
        with self.db.write() as conn:
            return q.insert_room(conn, room_id, name, self.clock())

    def delete(self, room_id: str) -> bool:
        with self.db.write() as conn:
            return q.delete_room(conn, room_id)
