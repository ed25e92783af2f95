"""A room's details as the community API shows them to one caller, and the changes
an admin makes to them (name, description, image, default permissions, pins).

``info_updates`` counts changes of name, description, image, pins and staff;
clients refetch the details when it moves.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import values
from opengroup.domain.access import RoomAccess, RoomView, room_access
from opengroup.domain.errors import BadRequest, NoSuchMessage
from opengroup.domain.users import User, Users
from opengroup.storage import people, queries, roomdetails
from opengroup.storage.database import Database
from opengroup.storage.roomdetails import Pin, RoomDetails


@dataclass(frozen=True)
class StaffLists:
    admins: list[str]
    moderators: list[str]
    hidden_admins: list[str]
    hidden_moderators: list[str]


@dataclass(frozen=True)
class RoomSnapshot:
    room: RoomDetails
    access: RoomAccess
    active_users: int
    staff: StaffLists
    pins: list[Pin]


class RoomInfo:
    """Room details for clients, and an admin's changes to them."""

    def __init__(
        self, db: Database, settings: Settings, users: Users, clock: Callable[[], float]
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.clock = clock

    def snapshot(self, view: RoomView) -> RoomSnapshot:
        with self.db.read() as conn:
            return self._snapshot(conn, view.room, view.access)

    def visible_rooms(self, user: User | None) -> list[RoomSnapshot]:
        """Every room the caller may see, by id."""
        keys = user.keys if user else ()
        now = self.clock()
        with self.db.read() as conn:
            found = []
            for room in roomdetails.all_rooms(conn):
                access = room_access(conn, room, keys, now)
                if access.may_see_room:
                    found.append(self._snapshot(conn, room, access))
            return found

    def _snapshot(self, conn: Connection, room: RoomDetails, access: RoomAccess) -> RoomSnapshot:
        since = self.clock() - self.settings.active_users_cutoff_seconds
        return RoomSnapshot(
            room,
            access,
            roomdetails.active_users(conn, room.id, since),
            self._staff(conn, room.id),
            roomdetails.room_pins(conn, room.id),
        )

    def _staff(self, conn: Connection, room_id: str) -> StaffLists:
        """Room and global staff; an admin is listed as admin only; a ``05`` id shows as
        the blinded id it was seen under once it was."""
        entries = people.room_staff(conn, room_id)
        display = self.users.display_ids(conn, [e.public_key for e in entries])
        lists: dict[tuple[bool, bool], set[str]] = {
            (admin, visible): set() for admin in (True, False) for visible in (True, False)
        }
        admins = {display[e.public_key] for e in entries if e.admin}
        for entry in entries:
            shown = display[entry.public_key]
            if entry.admin or shown not in admins:
                lists[(entry.admin, entry.visible)].add(shown)
        visible_people = lists[(True, True)] | lists[(False, True)]
        return StaffLists(
            admins=sorted(lists[(True, True)]),
            moderators=sorted(lists[(False, True)] - lists[(True, True)]),
            hidden_admins=sorted(lists[(True, False)] - visible_people),
            hidden_moderators=sorted(lists[(False, False)] - visible_people - admins),
        )

    def update(self, view: RoomView, changes: dict[str, object]) -> int:
        """Change some of name, description, image and default permissions; the new
        ``info_updates``. 400 on an unknown image or a value of the wrong type."""
        columns: dict[str, object] = {}
        image: int | None = None
        for key, value in changes.items():
            if key == "name":
                if not isinstance(value, str) or not _clean(value):
                    raise BadRequest("name must be a non-empty string")
                columns["name"] = _clean(value)
            elif key == "description":
                if value is not None and not isinstance(value, str):
                    raise BadRequest("description must be a string or null")
                columns["description"] = (
                    _clean(value, "\n\t") or None if value is not None else None
                )
            elif key == "image":
                image = values.integer(value, "image")
            elif key in ("default_read", "default_accessible", "default_write", "default_upload"):
                if not isinstance(value, bool):
                    raise BadRequest(f"{key} must be true or false")
                columns[key] = value
        if not columns and image is None:
            raise BadRequest("nothing to change: give name, description, image or default_*")
        with self.db.write() as conn:
            if image is not None:
                if not roomdetails.file_in_room(conn, view.id, image, self.clock()):
                    raise BadRequest(f"no such file in this room: {image}")
                roomdetails.set_image(conn, view.id, image)
            if columns:
                roomdetails.update_room(conn, view.id, columns)
            return roomdetails.bump_info_updates(conn, view.id)

    def pin(self, view: RoomView, user: User, message_id: int) -> int:
        with self.db.write() as conn:
            queries.lock_room(conn, view.id)
            if not roomdetails.message_exists(conn, view.id, message_id):
                raise NoSuchMessage(message_id)
            roomdetails.pin(conn, view.id, message_id, user.session_id, self.clock())
            return roomdetails.bump_info_updates(conn, view.id)

    def unpin(self, view: RoomView, message_id: int | None) -> tuple[int, int]:
        """Unpin one message or all (None): (how many were pinned, ``info_updates``)."""
        with self.db.write() as conn:
            unpinned = roomdetails.unpin(conn, view.id, message_id)
            info_updates = (
                roomdetails.bump_info_updates(conn, view.id) if unpinned else view.room.info_updates
            )
            return unpinned, info_updates


def _clean(text: str, keep: str = "") -> str:
    """Without control characters but those in ``keep`` (a description keeps its line
    breaks and tabs, as pysogs); everything else stays (emoji joiners, other spaces)."""
    return "".join(c for c in text if c in keep or unicodedata.category(c) != "Cc").strip()
