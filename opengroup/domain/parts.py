"""What the v2 API's capabilities share (``rooms``, ``membership``, ``messages``,
``moderation``, ``files`` and ``polling`` of :class:`~opengroup.domain.community.Community`).

The rules more than one of them needs are plain functions: what a member is
(:func:`member_of`), which room a request names (:func:`find_room`), who is a
moderator (:func:`require_moderator`), and the token's form (:func:`parse_token`).
What keeps state is two small objects, made once by ``Community`` and handed to
the capabilities that use them: the process's poll reader (:class:`OnDemandPollReader`)
and the members' activity records (:class:`ActivityRecords`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from opengroup.config import Settings
from opengroup.domain.errors import Banned, NoSuchRoom, NotPermitted, TokenRejected
from opengroup.domain.values import could_be_room_id
from opengroup.storage import queries as q
from opengroup.storage.database import Database, connection_lost, failure_reason
from opengroup.storage.pollreader import PollReader, open_poll_reader
from opengroup.storage.queries import Room
from opengroup.storage.recentchanges import RecentChanges
from opengroup.storage.roomhead import TokenHolder

log = logging.getLogger(__name__)

# The most messages or deletions one request returns.
MAX_PAGE = 256


@dataclass(frozen=True)
class Member:
    """An authenticated caller in one room, who may read it."""

    room_id: str
    public_key: str
    is_moderator: bool
    may_write: bool
    may_upload: bool

    def check_may_write(self) -> None:
        if not self.may_write:
            raise NotPermitted("you may not post in this room")

    def check_may_upload(self) -> None:
        if not self.may_upload:
            raise NotPermitted("you may not upload to this room")


def parse_token(token: str | None) -> bytes:
    if not token:
        raise TokenRejected("missing auth token")
    try:
        raw = bytes.fromhex(token)
    except ValueError:
        raise TokenRejected("auth token is not hex") from None
    if not raw:
        raise TokenRejected("missing auth token")
    return raw


def find_room(conn: Connection, room_id: str) -> Room:
    room = q.get_room(conn, room_id) if could_be_room_id(room_id) else None
    if room is None:
        raise NoSuchRoom(room_id)
    return room


def member_of(room_id: str, holder: TokenHolder | None) -> Member:
    """The member behind a token checked in ``room_id``: 401 without a live token, 403
    when banned or when the room's permissions (or the holder's overrides) do not let
    them read it: a token is good for nothing there then."""
    if holder is None:
        raise TokenRejected("unknown or expired auth token")
    if holder.is_banned:
        raise Banned("banned from this room")
    if not holder.may_read:
        raise NotPermitted("you may not read this room")
    return Member(
        room_id, holder.public_key, holder.is_moderator, holder.may_write, holder.may_upload
    )


def require_moderator(member: Member, room_id: str | None = None) -> None:
    if not member.is_moderator or (room_id is not None and room_id != member.room_id):
        raise NotPermitted("moderators only")


class OnDemandPollReader:
    """This process's :class:`PollReader`, opened on first use (commands that never poll
    open none), shared by polling and posting's token check; ``on_loop`` and
    ``recent``: see :func:`open_poll_reader`."""

    def __init__(self, db: Database, *, on_loop: bool, recent: RecentChanges) -> None:
        self._db = db
        self._on_loop = on_loop
        self._recent = recent
        self._reader: PollReader | None = None

    def get(self) -> PollReader:
        if self._reader is None:
            self._reader = open_poll_reader(self._db, on_loop=self._on_loop, recent=self._recent)
        return self._reader

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None


def record_activity(db: Database, records: Sequence[tuple[str, str]], now: float) -> bool:
    """Record that each (room id, key) of ``records`` was active now, in one write
    transaction, rows in a fixed order (two such never wait for each other in a
    circle). Statistics are not worth failing a request for: a database error is
    logged, and the answer is False."""
    try:
        with db.write() as conn:
            for room_id, public_key in sorted(records):
                q.touch_activity(conn, room_id, public_key, now)
    except SQLAlchemyError as exc:
        rooms = ", ".join(sorted({room_id for room_id, _key in records}))
        if connection_lost(exc):  # (a restart of PostgreSQL: one line, as requests log it)
            log.warning("could not record activity in room %s: %s", rooms, failure_reason(exc))
        else:
            log.warning("could not record activity in room %s", rooms, exc_info=True)
        return False
    return True


class ActivityRecords:
    """Each member's last activity in a room, refreshed only once it is stale.

    ``holder.last_active`` came with the token check, so most requests write
    nothing; one every ``activity_interval_seconds`` per member and room does a
    small upsert. Statistics are not worth failing the request for.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    def note(self, member: Member, holder: TokenHolder | None, now: float) -> None:
        self.note_all([(member, holder)], now)

    def note_all(self, seen: Sequence[tuple[Member, TokenHolder | None]], now: float) -> None:
        """:meth:`note` for several members, in one write transaction if any (rows in a
        fixed order: two such transactions never wait for each other in a circle)."""
        stale = self.stale(seen, now)
        if stale:
            record_activity(self._db, stale, now)

    def stale(
        self, seen: Sequence[tuple[Member, TokenHolder | None]], now: float
    ) -> list[tuple[str, str]]:
        """(room, key) of the members whose activity record is due (:func:`record_activity`
        puts them in order)."""
        interval = self._settings.activity_interval_seconds
        return list(
            {
                (member.room_id, member.public_key)
                for member, holder in seen
                if holder is None
                or holder.last_active is None
                or now - holder.last_active >= interval
            }
        )
