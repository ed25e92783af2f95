"""The open group itself: rooms, members, messages, moderation and files.

Every operation a client or the operator can perform is one method here. A
method checks the rules (who may, which limits), opens exactly one
transaction, and raises an :mod:`opengroup.domain.errors` exception when the
answer is no. Nothing but open connections is kept in the process between
calls, so any number of processes can serve the same database. The hot paths
are ``async``: ``poll`` (see :mod:`opengroup.storage.pollreader`) and ``post``
(see :mod:`opengroup.storage.postwriter`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain import limits, values
from opengroup.domain.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from opengroup.keys import ServerKeys
from opengroup.storage import queries as q
from opengroup.storage import stats as storage_stats
from opengroup.storage.database import Database
from opengroup.storage.pollreader import PollLookup, PollReader, open_poll_reader
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.queries import Message, Room, TokenHolder

log = logging.getLogger(__name__)

MAX_PAGE = 256
FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53


@dataclass(frozen=True)
class Member:
    """An authenticated caller in one room."""

    room_id: str
    public_key: str
    is_moderator: bool


@dataclass(frozen=True)
class Challenge:
    ciphertext: bytes
    ephemeral_public_key: bytes


@dataclass(frozen=True)
class PollRequest:
    """One ``compact_poll`` entry: a room, the caller's token there, and their cursors."""

    room_id: str
    token: str | None
    messages_after: int | None
    deletions_after: int | None


@dataclass(frozen=True)
class RoomPoll:
    """What one ``compact_poll`` entry answers for a room."""

    messages: list[Message]
    deletions: list[tuple[int, int]]
    moderators: list[str]


def _parse_token(token: str | None) -> bytes:
    if not token:
        raise Unauthorized("missing auth token")
    try:
        raw = bytes.fromhex(token)
    except ValueError:
        raise Unauthorized("auth token is not hex") from None
    if not raw:
        raise Unauthorized("missing auth token")
    return raw


class Community:
    """All rooms of one server, over one database."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        keys: ServerKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self._poll_reader: PollReader | None = None
        self._posts = PostWriter(db)

    # -- rooms ----------------------------------------------------------------

    def rooms(self) -> list[Room]:
        with self.db.read() as conn:
            return q.list_rooms(conn)

    def room(self, room_id: str) -> Room:
        with self.db.read() as conn:
            return self._room(conn, room_id)

    @staticmethod
    def _room(conn: Connection, room_id: str) -> Room:
        # A NUL is in no room id, and PostgreSQL text cannot even hold one: no such room.
        room = None if "\x00" in room_id else q.get_room(conn, room_id)
        if room is None:
            raise NotFound(f"no such room: {room_id}")
        return room

    def room_overview(self) -> list[tuple[Room, int]]:
        """Every room with its member count (for the home page), in one snapshot."""
        now = self.clock()
        with self.db.read() as conn:
            return [(room, q.member_count(conn, room.id, now)) for room in q.list_rooms(conn)]

    def stats(self) -> storage_stats.ServerStats:
        """Counts for the operator (``opengroup stats``)."""
        with self.db.read() as conn:
            return storage_stats.server_stats(conn, self.clock())

    def add_room(self, room_id: str, name: str) -> bool:
        with self.db.write() as conn:
            return q.insert_room(conn, room_id, name, self.clock())

    def delete_room(self, room_id: str) -> bool:
        with self.db.write() as conn:
            return q.delete_room(conn, room_id)

    def room_image(self, room_id: str) -> bytes:
        with self.db.read() as conn:
            room = self._room(conn, room_id)
            data = None
            if room.image_file_id is not None:
                data = q.file_data(conn, room_id, room.image_file_id, self.clock())
        if data is None:
            raise NotFound(f"room {room_id} has no image")
        return data

    def set_room_image(self, member: Member, room_id: str, data: bytes) -> int:
        if member.room_id != room_id or not member.is_moderator:
            raise Forbidden("only moderators of this room may set its image")
        self._check_upload_size(data)
        with self.db.write() as conn:
            self._room(conn, room_id)
            file_id = self._store_file(conn, room_id, member.public_key, data, expires_at=None)
            q.set_room_image(conn, room_id, file_id)
        return file_id

    # -- authentication -------------------------------------------------------

    def challenge(self, room_id: str, public_key: str) -> Challenge:
        """Make a token, keep its hash as pending, and encrypt it to the requester."""
        token = crypto.new_token()
        now = self.clock()
        with self.db.write() as conn:
            self._room(conn, room_id)
            if q.is_banned(conn, room_id, public_key):
                raise Forbidden("banned from this room")
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
                raise RateLimited(
                    f"at most {most} unclaimed challenges per public key per room",
                    retry_after_seconds=max(pending[len(pending) - most] - now, 0.0),
                )
        if window.enabled:
            q.add_rate_event(conn, bucket, now)

    def claim(self, room_id: str, token: str | None, public_key: str) -> None:
        """Turn a pending token into a live one; a repeated claim of it is fine."""
        token_hash = crypto.token_hash(_parse_token(token))
        now = self.clock()
        with self.db.write() as conn:
            self._room(conn, room_id)
            if q.take_pending_token(conn, room_id, public_key, token_hash, now):
                if q.is_banned(conn, room_id, public_key):
                    raise Forbidden("banned from this room")
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
                return
            holder = q.token_holder(conn, room_id, token_hash, now)
        if holder is None or holder.public_key != public_key:
            raise Unauthorized("no such pending token for this public key in this room")
        if holder.is_banned:
            raise Forbidden("banned from this room")

    def authenticate(self, room_id: str | None, token: str | None) -> Member:
        """The caller behind a token, or 401 (no/unknown/expired token) or 403 (banned)."""
        if not room_id:
            raise BadRequest("missing Room header")
        now = self.clock()
        token_hash = crypto.token_hash(_parse_token(token))
        with self.db.read() as conn:
            holder = self._token_holder(conn, room_id, token_hash, now)
        member = self._member(room_id, holder)
        self._note_activity(member, holder, now)
        return member

    async def authenticate_async(self, room_id: str | None, token: str | None) -> Member:
        """:meth:`authenticate` for handlers on the event loop (posting): the poll
        reader looks the token up (SQLite inline, PostgreSQL on its async pool), and
        only a stale activity record is written, in a worker thread."""
        if not room_id:
            raise BadRequest("missing Room header")
        now = self.clock()
        token_hash = crypto.token_hash(_parse_token(token))
        room_exists, holder = False, None
        if "\x00" not in room_id:  # in no room id; PostgreSQL text cannot even hold one
            room_exists, holder = await self.poll_reader().token_holder(room_id, token_hash, now)
        if not room_exists:
            raise NotFound(f"no such room: {room_id}")
        member = self._member(room_id, holder)
        if self._stale_activities([(member, holder)], now):
            await anyio.to_thread.run_sync(self._note_activity, member, holder, now)
        return member

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

    def _token_holder(
        self, conn: Connection, room_id: str, token_hash: bytes, now: float
    ) -> TokenHolder | None:
        """The token's holder; a token found proves the room exists, so the room
        itself is looked up (for a 404) only when the token is not found."""
        holder = None if "\x00" in room_id else q.token_holder(conn, room_id, token_hash, now)
        if holder is None:
            self._room(conn, room_id)
        return holder

    @staticmethod
    def _member(room_id: str, holder: TokenHolder | None) -> Member:
        if holder is None:
            raise Unauthorized("unknown or expired auth token")
        if holder.is_banned:
            raise Forbidden("banned from this room")
        return Member(room_id, holder.public_key, holder.is_moderator)

    def revoke(self, room_id: str | None, token: str | None) -> None:
        member = self.authenticate(room_id, token)
        with self.db.write() as conn:
            q.delete_token(conn, member.room_id, crypto.token_hash(_parse_token(token)))

    def member_count(self, member: Member) -> int:
        with self.db.read() as conn:
            return q.member_count(conn, member.room_id, self.clock())

    # -- messages -------------------------------------------------------------

    async def post(self, member: Member, timestamp: int, data: str, signature: str) -> Message:
        """Store a signed message; ``data`` and ``signature`` are base64 as the client sent.

        The checks run on the event loop; the write runs in a worker thread, in one
        transaction with the other posts waiting at that moment
        (:mod:`opengroup.storage.postwriter`).
        """
        raw = values.base64_bytes(data, "data")
        raw_signature = values.base64_bytes(signature, "signature")
        if not raw:
            raise BadRequest("data is empty")
        if len(raw_signature) != crypto.SIGNATURE_SIZE:
            raise BadRequest("signature must be 64 bytes")
        if len(raw) > self.settings.max_message_bytes:
            raise PayloadTooLarge(
                f"message data is {len(raw)} bytes; the limit is {self.settings.max_message_bytes}"
            )
        if self.settings.verify_signatures and not crypto.verify_signature(
            bytes.fromhex(member.public_key[2:]), raw, raw_signature
        ):
            raise BadRequest("signature does not match the data and the sender's key")
        now = self.clock()
        window = limits.Window(
            self.settings.post_rate_limit_count, self.settings.post_rate_limit_seconds, "posts"
        )
        limited = window.enabled and not member.is_moderator
        message = await self._posts.write(
            NewPost(
                member.room_id,
                member.public_key,
                timestamp,
                data,
                signature,
                posted_at=now,
                limit_since=window.since(now),
                check=(lambda recent: window.check(recent, now)) if limited else None,
            )
        )
        if message is None:
            raise NotFound(f"no such room: {member.room_id}")
        return message

    def messages(self, member: Member, after: int | None, limit: int = MAX_PAGE) -> list[Message]:
        with self.db.read() as conn:
            return self._messages(conn, member.room_id, after, limit)

    @staticmethod
    def _messages(conn: Connection, room_id: str, after: int | None, limit: int) -> list[Message]:
        limit = min(limit, MAX_PAGE)
        if after is None:
            return q.newest_messages(conn, room_id, limit)
        return q.messages_after(conn, room_id, after, limit)

    def deletions(
        self, member: Member, after: int | None, limit: int = MAX_PAGE
    ) -> list[tuple[int, int]]:
        with self.db.read() as conn:
            return self._deletions(conn, member.room_id, after, limit)

    def _deletions(
        self, conn: Connection, room_id: str, after: int | None, limit: int
    ) -> list[tuple[int, int]]:
        by_number = self.settings.deletions_format == "objects"
        return q.deletions_after(conn, room_id, after, min(limit, MAX_PAGE), by_number=by_number)

    def delete_messages(self, member: Member, server_ids: Sequence[int]) -> None:
        """Delete all of them or none: the sender's own, or any for a moderator."""
        wanted = list(dict.fromkeys(server_ids))
        with self.db.write() as conn:
            q.lock_room(conn, member.room_id)  # concurrent deleters: one deletion entry each
            found = q.message_senders(conn, member.room_id, wanted)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise NotFound(f"no such message: {missing[0]}")
            if not member.is_moderator:
                for server_id in wanted:
                    if found[server_id][0] != member.public_key:
                        raise Forbidden(f"message {server_id} is not yours to delete")
            for server_id in wanted:
                if not found[server_id][1]:
                    q.mark_deleted(conn, member.room_id, server_id)

    # -- moderation -----------------------------------------------------------

    def moderators(self, room_id: str) -> list[str]:
        with self.db.read() as conn:
            self._room(conn, room_id)
            return q.list_moderators(conn, room_id)

    @staticmethod
    def _require_moderator(member: Member, room_id: str | None = None) -> None:
        if not member.is_moderator or (room_id is not None and room_id != member.room_id):
            raise Forbidden("moderators only")

    def add_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        """Make someone a moderator; ``by`` is None for the operator's CLI."""
        if by is not None:
            self._require_moderator(by, room_id)
        with self.db.write() as conn:
            q.lock_room(conn, room_id)
            self._room(conn, room_id)
            q.remove_ban(conn, room_id, public_key)
            return q.add_moderator(conn, room_id, public_key, self.clock())

    def remove_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        if by is not None:
            self._require_moderator(by, room_id)
        with self.db.write() as conn:
            self._room(conn, room_id)
            return q.remove_moderator(conn, room_id, public_key)

    def bans(self, member: Member) -> list[str]:
        with self.db.read() as conn:
            return q.list_bans(conn, member.room_id)

    def ban(self, member: Member, public_key: str, *, delete_all: bool = False) -> None:
        self._require_moderator(member)
        with self.db.write() as conn:
            q.lock_room(conn, member.room_id)  # concurrent bans: one ban, one deletion each
            if q.is_moderator(conn, member.room_id, public_key):
                raise BadRequest("a moderator cannot be banned; remove them as moderator first")
            q.add_ban(conn, member.room_id, public_key, self.clock())
            if delete_all:
                for server_id in q.live_message_ids_by(conn, member.room_id, public_key):
                    q.mark_deleted(conn, member.room_id, server_id)

    def unban(self, member: Member, public_key: str) -> None:
        self._require_moderator(member)
        with self.db.write() as conn:
            q.remove_ban(conn, member.room_id, public_key)

    # -- files ----------------------------------------------------------------

    def _check_upload_size(self, data: bytes) -> None:
        if not data:
            raise BadRequest("file is empty")
        if len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"file is {len(data)} bytes; the limit is {self.settings.max_upload_bytes}"
            )

    def _store_file(
        self,
        conn: Connection,
        room_id: str,
        uploader: str,
        data: bytes,
        expires_at: float | None,
    ) -> int:
        now = self.clock()
        while True:
            file_id = FILE_ID_MIN + secrets.randbelow(FILE_ID_MAX - FILE_ID_MIN)
            if q.insert_file(conn, file_id, room_id, uploader, data, now, expires_at):
                return file_id

    def upload(self, member: Member, data: bytes) -> int:
        self._check_upload_size(data)
        now = self.clock()
        expires_at = now + self.settings.file_ttl_seconds
        with self.db.write() as conn:
            if not member.is_moderator:
                self._check_upload_rate(conn, member, now)
            return self._store_file(conn, member.room_id, member.public_key, data, expires_at)

    def _check_upload_rate(self, conn: Connection, member: Member, now: float) -> None:
        """Counted from the files table by uploader; moderators are exempt (as for posts)."""
        window = limits.Window(
            self.settings.upload_rate_limit_count,
            self.settings.upload_rate_limit_seconds,
            "uploads",
        )
        if window.enabled:
            q.lock_name(conn, f"upload:{member.room_id}:{member.public_key}")
            since = window.since(now)
            window.check(q.upload_times(conn, member.room_id, member.public_key, since), now)

    def download(self, member: Member, file_id: int) -> bytes:
        with self.db.read() as conn:
            data = q.file_data(conn, member.room_id, file_id, self.clock())
        if data is None:
            raise NotFound(f"no such file: {file_id}")
        return data

    # -- polling --------------------------------------------------------------

    async def poll(self, requests: Sequence[PollRequest]) -> list[RoomPoll | ApiError]:
        """The entries of one ``compact_poll``, in order, read together (see the
        readers for what shares a snapshot). An entry that is refused gets its error;
        the others still get their answer.

        The hot path: it runs on the event loop and reads through
        :mod:`opengroup.storage.pollreader`, not SQLAlchemy. Only a stale activity
        record (at most once per ``activity_interval_seconds`` per member and room)
        is written, in a worker thread.
        """
        now = self.clock()
        lookups: list[PollLookup] = []
        refused: dict[int, ApiError] = {}
        for index, request in enumerate(requests):
            try:
                if "\x00" in request.room_id:  # in no room id; PostgreSQL text cannot hold it
                    raise NotFound(f"no such room: {request.room_id}")
                token_hash = crypto.token_hash(_parse_token(request.token))
            except ApiError as exc:
                refused[index] = exc
                continue
            lookups.append(
                PollLookup(
                    request.room_id, token_hash, request.messages_after, request.deletions_after
                )
            )
        by_number = self.settings.deletions_format == "objects"
        found = iter(
            await self.poll_reader().read(lookups, now, MAX_PAGE, by_number) if lookups else []
        )
        results: list[RoomPoll | ApiError] = []
        seen: list[tuple[Member, TokenHolder | None]] = []
        for index, request in enumerate(requests):
            if index in refused:
                results.append(refused[index])
                continue
            rows = next(found)
            try:
                if not rows.room_exists:
                    raise NotFound(f"no such room: {request.room_id}")
                member = self._member(request.room_id, rows.holder)
            except ApiError as exc:
                results.append(exc)
                continue
            seen.append((member, rows.holder))
            results.append(RoomPoll(rows.messages, rows.deletions, rows.moderators))
        if self._stale_activities(seen, now):
            await anyio.to_thread.run_sync(self._note_activities, seen, now)
        return results

    def poll_reader(self) -> PollReader:
        """This process's :class:`PollReader`, opened on first use."""
        if self._poll_reader is None:
            self._poll_reader = open_poll_reader(self.db)
        return self._poll_reader

    async def close(self) -> None:
        """Close what :meth:`poll` opened (the database itself is the caller's)."""
        if self._poll_reader is not None:
            await self._poll_reader.close()
            self._poll_reader = None

    # -- housekeeping ---------------------------------------------------------

    def prune(self) -> dict[str, int]:
        with self.db.write() as conn:
            # rate_events holds only the challenge limit's events so far.
            keep = self.settings.challenge_rate_limit_seconds
            return q.prune_expired(conn, self.clock(), rate_events_seconds=keep)
