"""Membership: auth token challenges and claims, and who is behind a token.

A token is per room and device; only its hash is stored. The token check
has two ways in: :meth:`Membership.authenticate` for handlers in worker
threads, :meth:`Membership.authenticate_async` for those on the event loop
(through the process's poll reader, which it shares with polling).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain import limits
from opengroup.domain.errors import (
    Banned,
    ChallengeRateLimited,
    InvalidInput,
    NoSuchRoom,
    RateLimited,
    TokenRejected,
)
from opengroup.domain.parts import (
    ActivityRecords,
    Member,
    OnDemandPollReader,
    find_room,
    member_of,
    parse_token,
)
from opengroup.domain.users import Users
from opengroup.domain.values import could_be_room_id
from opengroup.storage import people
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.roomhead import TokenHolder
from opengroup.threads import Threads


@dataclass(frozen=True)
class Challenge:
    ciphertext: bytes
    ephemeral_public_key: bytes


class Membership:
    """Getting a token, and checking one."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], float],
        poll_reader: OnDemandPollReader,
        activity: ActivityRecords,
        threads: Threads,
        users: Users,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.poll_reader = poll_reader
        self.activity = activity
        self.threads = threads
        self.users = users

    def challenge(self, room_id: str, public_key: str) -> Challenge:
        """Make a token, keep its hash as pending, and encrypt it to the requester."""
        token = crypto.new_token()
        now = self.clock()
        with self.db.write() as conn:
            find_room(conn, room_id)
            if q.is_banned(conn, room_id, public_key, now):
                raise Banned("banned from this room")
            self._check_challenge_limits(conn, room_id, public_key, now)
            q.insert_pending_token(
                conn,
                room_id,
                public_key,
                crypto.token_hash(token),
                now + self.settings.pending_token_ttl_seconds,
            )
        ephemeral, blob = crypto.seal_for(bytes.fromhex(public_key[2:]), token)
        return Challenge(ciphertext=blob, ephemeral_public_key=ephemeral)

    def _check_challenge_limits(
        self, conn: Connection, room_id: str, public_key: str, now: float
    ) -> None:
        """429 over the key's challenge rate (all rooms) or its pending challenges (this
        room); otherwise count this challenge. Anyone may ask for a challenge for any
        key, so both limits bound storage and work, not who is asking. The room's
        moderators are exempt from the rate (never from the pending limit): they must
        be able to sign in while someone floods challenges for their key."""
        bucket = f"challenge:{public_key}"
        q.lock_name(conn, bucket)
        window = limits.Window(
            self.settings.challenge_rate_limit_count,
            self.settings.challenge_rate_limit_seconds,
            "challenges per public key",
            ChallengeRateLimited,
        )
        if window.enabled:
            try:
                window.check(q.rate_event_times(conn, bucket, window.since(now)), now)
            except RateLimited:
                if not q.is_moderator(conn, room_id, public_key):
                    raise
        most = self.settings.max_pending_challenges_per_key
        if most > 0:
            pending = q.pending_token_expiries(conn, room_id, public_key, now)
            if len(pending) >= most:
                raise ChallengeRateLimited(
                    f"at most {most} unclaimed challenges per public key per room",
                    retry_after_seconds=max(pending[len(pending) - most] - now, 0.0),
                )
        if window.enabled:
            q.add_rate_event(conn, bucket, now)

    def claim(self, room_id: str, token: str | None, public_key: str) -> None:
        """Turn a pending token into a live one; a repeated claim of it is fine."""
        token_hash = crypto.token_hash(parse_token(token))
        now = self.clock()
        with self.db.write() as conn:
            find_room(conn, room_id)
            if q.take_pending_token(conn, room_id, public_key, token_hash, now):
                if q.is_banned(conn, room_id, public_key, now):
                    raise Banned("banned from this room")
                q.lock_name(conn, f"tokens:{room_id}:{public_key}")
                q.insert_token(
                    conn, room_id, public_key, token_hash, now + self.settings.token_ttl_seconds
                )
                if self.settings.max_tokens_per_key > 0:
                    # The oldest token of the key in the room gives way (documented in
                    # docs/SECURITY.md): a device re-authenticating never gets locked out.
                    q.evict_oldest_tokens(
                        conn, room_id, public_key, self.settings.max_tokens_per_key, now
                    )
                q.touch_activity(conn, room_id, public_key, now)
                # A v2 key is seen on this server from its first token on (spam rules),
                # and linked to its blinded id: a ban under that id bans its tokens too.
                people.insert_user(conn, public_key, now)
                with contextlib.suppress(ValueError):  # (no point: no blinded id)
                    self.users.link(conn, public_key)
                return
            head = q.room_head(conn, room_id, token_hash, now)
            holder = head.holder if head is not None else None
        if holder is None or holder.public_key != public_key:
            raise TokenRejected("no such pending token for this public key in this room")
        if holder.is_banned:
            raise Banned("banned from this room")

    def authenticate(self, room_id: str | None, token: str | None) -> Member:
        """The caller behind a token, or 401 (no/unknown/expired token) or 403 (banned)."""
        if not room_id:
            raise InvalidInput("missing Room header")
        now = self.clock()
        token_hash = crypto.token_hash(parse_token(token))
        with self.db.read() as conn:
            holder = self._token_holder(conn, room_id, token_hash, now)
        member = member_of(room_id, holder)
        self.activity.note(member, holder, now)
        return member

    async def authenticate_async(self, room_id: str | None, token: str | None) -> Member:
        """:meth:`authenticate` for handlers on the event loop (posting): the poll
        reader looks the token up (SQLite inline, PostgreSQL on its async pool), and
        only a stale activity record is written, in a worker thread."""
        if not room_id:
            raise InvalidInput("missing Room header")
        now = self.clock()
        token_hash = crypto.token_hash(parse_token(token))
        room_exists, holder = False, None
        if could_be_room_id(room_id):
            room_exists, holder = await self.poll_reader.get().token_holder(
                room_id, token_hash, now
            )
        if not room_exists:
            raise NoSuchRoom(room_id)
        member = member_of(room_id, holder)
        if self.activity.stale([(member, holder)], now):
            await self.threads.run(self.activity.note, member, holder, now)
        return member

    @staticmethod
    def _token_holder(
        conn: Connection, room_id: str, token_hash: bytes, now: float
    ) -> TokenHolder | None:
        """The token's holder (None: not a live token there); 404 if there is no room."""
        head = q.room_head(conn, room_id, token_hash, now) if could_be_room_id(room_id) else None
        if head is None:
            raise NoSuchRoom(room_id)
        return head.holder

    def revoke(self, room_id: str | None, token: str | None) -> None:
        member = self.authenticate(room_id, token)
        with self.db.write() as conn:
            q.delete_token(conn, member.room_id, crypto.token_hash(parse_token(token)))

    def member_count(self, member: Member) -> int:
        with self.db.read() as conn:
            return q.member_count(conn, member.room_id, self.clock())
