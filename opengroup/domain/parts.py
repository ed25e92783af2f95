"""What every capability of :class:`~opengroup.domain.community.Community` shares.

Community is assembled from one class per capability, each in its own module
(rooms, membership, messages, moderation, files, polling). They work on the
same database, settings and clock, set once by ``Community.__init__``, and
share the few rules more than one of them needs: what a member is, which
room a request names, who is a moderator, and when activity is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from opengroup.config import Settings
from opengroup.domain.errors import Banned, NoSuchRoom, NotPermitted, TokenRejected
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.pollreader import PollReader, open_poll_reader
from opengroup.storage.queries import Room
from opengroup.storage.roomhead import TokenHolder

log = logging.getLogger(__name__)

# The most messages or deletions one request returns.
MAX_PAGE = 256


@dataclass(frozen=True)
class Member:
    """An authenticated caller in one room."""

    room_id: str
    public_key: str
    is_moderator: bool


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


class CommunityPart:
    """The state and shared rules of every capability (see the module docstring)."""

    db: Database
    settings: Settings
    clock: Callable[[], float]
    _poll_reader: PollReader | None

    @staticmethod
    def _room(conn: Connection, room_id: str) -> Room:
        # A NUL is in no room id, and PostgreSQL text cannot even hold one: no such room.
        room = None if "\x00" in room_id else q.get_room(conn, room_id)
        if room is None:
            raise NoSuchRoom(room_id)
        return room

    @staticmethod
    def _member(room_id: str, holder: TokenHolder | None) -> Member:
        if holder is None:
            raise TokenRejected("unknown or expired auth token")
        if holder.is_banned:
            raise Banned("banned from this room")
        return Member(room_id, holder.public_key, holder.is_moderator)

    @staticmethod
    def _require_moderator(member: Member, room_id: str | None = None) -> None:
        if not member.is_moderator or (room_id is not None and room_id != member.room_id):
            raise NotPermitted("moderators only")

    def poll_reader(self) -> PollReader:
        """This process's :class:`PollReader`, opened on first use."""
        if self._poll_reader is None:
            self._poll_reader = open_poll_reader(self.db)
        return self._poll_reader

    def _note_activity(self, member: Member, holder: TokenHolder | None, now: float) -> None:
        """Refresh the member's last activity in the room, only once it is stale.

        ``holder.last_active`` came with the token check, so most requests write
        nothing; one every ``activity_interval_seconds`` per member and room does a
        small upsert. Statistics are not worth failing the request for.
        """
        self._note_activities([(member, holder)], now)

    def _note_activities(
        self, seen: Sequence[tuple[Member, TokenHolder | None]], now: float
    ) -> None:
        """:meth:`_note_activity` for several members, in one write transaction if any
        (rows in a fixed order: two such transactions never wait for each other in a circle)."""
        stale = self._stale_activities(seen, now)
        if not stale:
            return
        try:
            with self.db.write() as conn:
                for room_id, public_key in stale:
                    q.touch_activity(conn, room_id, public_key, now)
        except SQLAlchemyError:
            rooms = ", ".join(sorted({room_id for room_id, _key in stale}))
            log.warning("could not record activity in room %s", rooms, exc_info=True)

    def _stale_activities(
        self, seen: Sequence[tuple[Member, TokenHolder | None]], now: float
    ) -> list[tuple[str, str]]:
        """(room, key) of the members whose activity record is due, sorted."""
        interval = self.settings.activity_interval_seconds
        return sorted(
            {
                (member.room_id, member.public_key)
                for member, holder in seen
                if holder is None
                or holder.last_active is None
                or now - holder.last_active >= interval
            }
        )
