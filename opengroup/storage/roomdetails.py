"""Statements about a room's details as the community API shows them: name,
description, image, counters, default permissions, pins and active users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, String, bindparam, delete, func, insert, select, update

from opengroup.storage.driversql import HotStatement
from opengroup.storage.queries import bump_room_counter
from opengroup.storage.schema import files, messages, pins, room_activity, rooms

DEFAULT_PERMISSIONS = ("default_read", "default_accessible", "default_write", "default_upload")


@dataclass(frozen=True)
class RoomDetails:
    id: str
    name: str
    description: str | None
    image_file_id: int | None
    created_at: float
    seqno: int
    info_updates: int
    default_read: bool
    default_accessible: bool
    default_write: bool
    default_upload: bool
    # The room's own spam rules (None: the server's default setting).
    slow_mode_seconds: int | None = None
    new_poster_wait_seconds: int | None = None


@dataclass(frozen=True)
class Pin:
    message_id: int
    pinned_at: float
    pinned_by: str


# A room's columns besides its id and its four defaults, in the order of its fields.
ROOM_TAIL = (
    rooms.c.name,
    rooms.c.description,
    rooms.c.image_file_id,
    rooms.c.created_at,
    rooms.c.seqno,
    rooms.c.info_updates,
    rooms.c.slow_mode_seconds,
    rooms.c.new_poster_wait_seconds,
)
# A room as read: its id, its four defaults, the rest (see details_of).
_COLUMNS = (rooms.c.id, *(rooms.c[name] for name in DEFAULT_PERMISSIONS), *ROOM_TAIL)


def details_of(room_id: str, columns: Sequence[Any]) -> RoomDetails:
    """The room ``room_id`` from its four defaults, then :data:`ROOM_TAIL`'s columns."""
    defaults = (bool(flag) for flag in columns[:4])
    return RoomDetails(room_id, *columns[4:10], *defaults, *columns[10:12])


def _details(row: Any) -> RoomDetails:
    return details_of(row[0], row[1:])


_TOKEN = bindparam("token", type_=String)
_BY_ID = HotStatement("rooms.by_id", select(*_COLUMNS).where(rooms.c.id == _TOKEN))
_BY_FOLDED_ID = HotStatement(
    "rooms.by_folded_id", select(*_COLUMNS).where(func.lower(rooms.c.id) == _TOKEN)
)


def find_room(conn: Connection, token: str) -> RoomDetails | None:
    """The room whose id is ``token`` without regard to case (ids never differ only in
    case); exact matches are found by the primary key."""
    row = _BY_ID.run(conn, {"token": token}).fetchone()
    if row is None:
        row = _BY_FOLDED_ID.run(conn, {"token": token.lower()}).fetchone()
    return _details(row) if row is not None else None


def all_rooms(conn: Connection) -> list[RoomDetails]:
    return [_details(row) for row in conn.execute(select(*_COLUMNS).order_by(rooms.c.id))]


def bump_info_updates(conn: Connection, room_id: str) -> int:
    return bump_room_counter(conn, room_id, "info_updates")


def update_room(conn: Connection, room_id: str, values: dict[str, Any]) -> None:
    """Set some of name, description, the default permissions and the spam rules."""
    conn.execute(update(rooms).where(rooms.c.id == room_id).values(**values))


_ACTIVE_USERS = HotStatement(
    "rooms.active_users",
    select(func.count()).where(
        room_activity.c.room_id == bindparam("room_id", type_=String),
        room_activity.c.last_active > bindparam("since", type_=Float),
    ),
)


def active_users(conn: Connection, room_id: str, since: float) -> int:
    count: int = _ACTIVE_USERS.run(conn, {"room_id": room_id, "since": since}).fetchone()[0]
    return count


def room_pins(conn: Connection, room_id: str) -> list[Pin]:
    rows = conn.execute(
        select(pins.c.message_id, pins.c.pinned_at, pins.c.pinned_by)
        .where(pins.c.room_id == room_id)
        .order_by(pins.c.pinned_at, pins.c.message_id)
    )
    return [Pin(*row) for row in rows]


def pin(conn: Connection, room_id: str, message_id: int, by: str, now: float) -> None:
    """Pin a message (again: it moves to the end of the pins)."""
    conn.execute(delete(pins).where(pins.c.room_id == room_id, pins.c.message_id == message_id))
    conn.execute(
        insert(pins).values(room_id=room_id, message_id=message_id, pinned_at=now, pinned_by=by)
    )


def unpin(conn: Connection, room_id: str, message_id: int | None) -> int:
    """Unpin one message, or all (None); how many were pinned."""
    condition = pins.c.room_id == room_id
    if message_id is not None:
        condition = condition & (pins.c.message_id == message_id)
    return conn.execute(delete(pins).where(condition)).rowcount


def file_in_room(conn: Connection, room_id: str, file_id: int, now: float) -> bool:
    row = conn.execute(
        select(files.c.id).where(
            files.c.id == file_id,
            files.c.room_id == room_id,
            files.c.expires_at.is_(None) | (files.c.expires_at > now),
        )
    ).first()
    return row is not None


def message_exists(conn: Connection, room_id: str, message_id: int) -> bool:
    """A live message everyone may see (not a whisper): what may be pinned."""
    row = conn.execute(
        select(messages.c.server_id).where(
            messages.c.room_id == room_id,
            messages.c.server_id == message_id,
            ~messages.c.deleted,
            messages.c.whisper_to.is_(None),
            ~messages.c.whisper_mods,
        )
    ).first()
    return row is not None


def set_image(conn: Connection, room_id: str, file_id: int) -> None:
    """Make an uploaded file the room's image: it never expires; the one it replaces
    is dropped."""
    old = conn.execute(select(rooms.c.image_file_id).where(rooms.c.id == room_id)).scalar()
    conn.execute(update(files).where(files.c.id == file_id).values(expires_at=None))
    conn.execute(update(rooms).where(rooms.c.id == room_id).values(image_file_id=file_id))
    if old is not None and old != file_id:
        conn.execute(delete(files).where(files.c.id == old))
