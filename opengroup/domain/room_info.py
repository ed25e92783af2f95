"""A room's details as the community API shows them to one caller, and the changes
an admin makes to them (name, description, image, default permissions, pins).

``info_updates`` counts changes of name, description, image, pins and staff;
clients refetch the details when it moves. Every such change moves it in the
same transaction, so a process keeps a room's staff lists and pins for as long
as the room's ``info_updates`` (and creation time) read the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import values
from opengroup.domain.access import RoomAccess, RoomView, room_access
from opengroup.domain.errors import InvalidInput, NoSuchMessage
from opengroup.domain.parts import record_activity
from opengroup.domain.users import User, Users
from opengroup.storage import people, queries, roomdetails
from opengroup.storage.database import Database
from opengroup.storage.roomdetails import Pin, RoomDetails

# Activity records this process remembers having seen fresh (beyond it, the stale
# ones are dropped; a burst of more fresh ones than this costs a read each).
MAX_NOTED = 100_000


# An activity record: (room id, session id, whether it is new to the room's count).
ActivityRecord = tuple[str, str, bool]


class _HeldBack(threading.local):
    """A thread's activity records held back until the end of its batch (None: none is
    under way)."""

    records: list[ActivityRecord] | None = None


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
        # room id -> ((created_at, info_updates), staff, pins) as read at that version
        self._kept: dict[str, tuple[tuple[float, int], StaffLists, list[Pin]]] = {}
        # (room id, session id) -> when this process last recorded that activity
        self._noted: dict[tuple[str, str], float] = {}
        self._held_back = _HeldBack()
        # room id -> (when counted, the count): see active_users_recount_seconds
        self._counted: dict[str, tuple[float, int]] = {}

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

    def note_activity(self, room_id: str, session_id: str) -> None:
        """Record that a community API user was active in a room, when the record is
        older than ``activity_interval_seconds`` (at most once per interval per
        process without reading it); inside :meth:`activity_together`, at its end."""
        now = self.clock()
        interval = self.settings.activity_interval_seconds
        noted = self._noted.get((room_id, session_id))
        if noted is not None and now - noted < interval:
            return
        if len(self._noted) >= MAX_NOTED:
            self._noted = {k: t for k, t in self._noted.items() if now - t < interval}
        with self.db.read() as conn:
            last = queries.last_activity(conn, room_id, session_id)
        if last is not None and now - last < interval:
            self._noted[(room_id, session_id)] = last
            return
        is_new = last is None or last <= now - self.settings.active_users_cutoff_seconds
        held_back = self._held_back.records
        if held_back is not None:
            held_back.append((room_id, session_id, is_new))
        else:
            self.write_activity([(room_id, session_id, is_new)])

    @contextmanager
    def activity_together(self) -> Iterator[None]:
        """Hold back the activity records this thread makes due, and write them at the
        end in one write transaction (a client polls all its rooms in one batch)."""
        with self.activity_held_back() as held_back:
            try:
                yield
            finally:
                self.write_activity(held_back)

    @contextmanager
    def activity_held_back(self) -> Iterator[list[ActivityRecord]]:
        """Hold back the activity records this thread makes due, into the list given,
        for the caller to :meth:`write_activity` (a request answered on the event loop
        writes them in a request thread). Within another such scope, that one holds
        them, and the list stays empty."""
        held_back: list[ActivityRecord] = []
        if self._held_back.records is not None:
            yield held_back
            return
        self._held_back.records = held_back
        try:
            yield held_back
        finally:
            self._held_back.records = None

    def write_activity(self, records: list[ActivityRecord]) -> None:
        """Write activity records (nothing if there are none) in one transaction
        (:func:`record_activity`); a user new to a room's active users is counted in
        this process's count of them at once."""
        now = self.clock()
        if not records or not record_activity(self.db, [(r, who) for r, who, _ in records], now):
            return
        for room_id, session_id, is_new in records:
            self._noted[(room_id, session_id)] = now
            counted = self._counted.get(room_id)
            if is_new and counted is not None:
                self._counted[room_id] = (counted[0], counted[1] + 1)

    def _snapshot(self, conn: Connection, room: RoomDetails, access: RoomAccess) -> RoomSnapshot:
        staff, pins = self._staff_and_pins(conn, room)
        return RoomSnapshot(room, access, self._active_users(conn, room.id), staff, pins)

    def _active_users(self, conn: Connection, room_id: str) -> int:
        """Those seen in the room within ``active_users_cutoff_seconds``, counted again
        at most every ``active_users_recount_seconds`` in this process (each poll shows
        the count, and counting reads a row per active user)."""
        now = self.clock()
        counted = self._counted.get(room_id)
        if counted is not None and now - counted[0] < self.settings.active_users_recount_seconds:
            return counted[1]
        since = now - self.settings.active_users_cutoff_seconds
        count = roomdetails.active_users(conn, room_id, since)
        self._counted[room_id] = (now, count)
        return count

    def _staff_and_pins(self, conn: Connection, room: RoomDetails) -> tuple[StaffLists, list[Pin]]:
        version = (room.created_at, room.info_updates)
        kept = self._kept.get(room.id)
        if kept is not None and kept[0] == version:
            return kept[1], kept[2]
        staff, pins = self._staff(conn, room.id), roomdetails.room_pins(conn, room.id)
        self._kept[room.id] = (version, staff, pins)
        return staff, pins

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
                columns["name"] = values.room_name(value)
            elif key == "description":
                columns["description"] = values.room_description(value)
            elif key == "image":
                image = values.integer(value, "image")
            elif key in ("default_read", "default_accessible", "default_write", "default_upload"):
                if not isinstance(value, bool):
                    raise InvalidInput(f"{key} must be true or false")
                columns[key] = value
        if not columns and image is None:
            raise InvalidInput("nothing to change: give name, description, image or default_*")
        with self.db.write() as conn:
            if image is not None:
                if not roomdetails.file_in_room(conn, view.id, image, self.clock()):
                    raise InvalidInput(f"no such file in this room: {image}")
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
