"""Read-only counts for operators: ``opengroup stats`` and the ``/metrics`` gauges.

Active users come from ``room_activity`` (a key's last use of a token in a
room, refreshed at most every ``activity_interval_seconds``), so a window is
accurate to within that interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from opengroup.storage.schema import files, messages, room_activity, rooms

DAY = 24 * 3600
# The "active users" windows reported everywhere, as (label, seconds).
ACTIVITY_WINDOWS: tuple[tuple[str, int], ...] = (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))


@dataclass
class Counts:
    """What is counted per room and for the whole server."""

    messages: int = 0
    deleted_messages: int = 0
    active_users: dict[str, int] = field(
        default_factory=lambda: {label: 0 for label, _ in ACTIVITY_WINDOWS}
    )
    uploads: int = 0
    upload_bytes: int = 0
    room_images: int = 0
    room_image_bytes: int = 0


@dataclass
class RoomCounts(Counts):
    room_id: str = ""
    name: str = ""


@dataclass
class ServerStats:
    """Per-room counts and server totals (active users: distinct keys over all rooms)."""

    rooms: list[RoomCounts]
    total: Counts

    def as_json(self) -> dict[str, object]:
        """Plain JSON-able form, for ``opengroup stats --json``."""
        return {
            "rooms": [vars(room) for room in self.rooms],
            "total": {"rooms": len(self.rooms), **vars(self.total)},
        }


def _active_columns(now: float) -> list[ColumnElement[int]]:
    """count(DISTINCT public_key) among rows active within each window."""
    return [
        func.count(
            func.distinct(
                case((room_activity.c.last_active > now - seconds, room_activity.c.public_key))
            )
        )
        for _, seconds in ACTIVITY_WINDOWS
    ]


def message_counts(conn: Connection) -> tuple[int, int]:
    """(live, deleted) messages over all rooms."""
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((messages.c.deleted, 1), else_=0)), 0))
    ).one()
    return int(row[0]) - int(row[1]), int(row[1])


def active_users(conn: Connection, now: float) -> dict[str, int]:
    """Distinct keys active in any room within each window."""
    return _windows(conn.execute(select(*_active_columns(now))).one())


def room_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(rooms)).scalar_one())


def server_stats(conn: Connection, now: float) -> ServerStats:
    """Every count of every room, plus totals, in one snapshot."""
    by_room: dict[str, RoomCounts] = {
        room_id: RoomCounts(room_id=room_id, name=name)
        for room_id, name in conn.execute(select(rooms.c.id, rooms.c.name).order_by(rooms.c.id))
    }
    for room_id, total, deleted in conn.execute(
        select(
            messages.c.room_id,
            func.count(),
            func.coalesce(func.sum(case((messages.c.deleted, 1), else_=0)), 0),
        ).group_by(messages.c.room_id)
    ):
        if room_id in by_room:
            by_room[room_id].messages = int(total) - int(deleted)
            by_room[room_id].deleted_messages = int(deleted)
    for room_id, *active in conn.execute(
        select(room_activity.c.room_id, *_active_columns(now)).group_by(room_activity.c.room_id)
    ):
        if room_id in by_room:
            by_room[room_id].active_users = _windows(active)
    images = select(rooms.c.image_file_id).where(rooms.c.image_file_id.is_not(None))
    is_image = files.c.id.in_(images)
    live = or_(files.c.expires_at.is_(None), files.c.expires_at > now)
    for room_id, image, count, size in conn.execute(
        select(files.c.room_id, is_image, func.count(), func.coalesce(func.sum(files.c.size), 0))
        .where(or_(is_image, and_(files.c.expires_at.is_not(None), live)))
        .group_by(files.c.room_id, is_image)
    ):
        counts = by_room.get(room_id)
        if counts is None:
            continue
        if image:
            counts.room_images, counts.room_image_bytes = int(count), int(size)
        else:
            counts.uploads, counts.upload_bytes = int(count), int(size)
    room_list = list(by_room.values())
    total = Counts(
        messages=sum(r.messages for r in room_list),
        deleted_messages=sum(r.deleted_messages for r in room_list),
        active_users=active_users(conn, now),
        uploads=sum(r.uploads for r in room_list),
        upload_bytes=sum(r.upload_bytes for r in room_list),
        room_images=sum(r.room_images for r in room_list),
        room_image_bytes=sum(r.room_image_bytes for r in room_list),
    )
    return ServerStats(room_list, total)


def _windows(values: Sequence[int]) -> dict[str, int]:
    return {label: int(n) for (label, _), n in zip(ACTIVITY_WINDOWS, values, strict=True)}
