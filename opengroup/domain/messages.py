"""Messages: posting (the hot write, see :mod:`opengroup.storage.postwriter`),
reading and deleting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain import spam, values
from opengroup.domain.access import check_may_delete
from opengroup.domain.errors import (
    InvalidInput,
    MessageTooLarge,
    NoSuchMessage,
    NoSuchRoom,
)
from opengroup.domain.parts import MAX_PAGE, Member
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.queries import Message
from opengroup.threads import Threads


class Messages:
    """Posting, reading and deleting messages."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], float],
        post_writer: PostWriter,
        threads: Threads,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.post_writer = post_writer
        self.threads = threads

    async def post(self, member: Member, timestamp: int, data: str, signature: str) -> Message:
        """Store a signed message; ``data`` and ``signature`` are base64 as the client sent.

        The checks run on the event loop; the write runs in a worker thread, in one
        transaction with the other posts waiting at that moment
        (:mod:`opengroup.storage.postwriter`).
        """
        member.check_may_write()
        raw = values.base64_bytes(data, "data")
        raw_signature = values.base64_bytes(signature, "signature")
        if not raw:
            raise InvalidInput("data is empty")
        if len(raw_signature) != crypto.SIGNATURE_SIZE:
            raise InvalidInput("signature must be 64 bytes")
        if len(raw) > self.settings.max_message_bytes:
            raise MessageTooLarge(
                f"message data is {len(raw)} bytes; the limit is {self.settings.max_message_bytes}"
            )
        if self.settings.verify_signatures and not crypto.verify_signature(
            bytes.fromhex(member.public_key[2:]), raw, raw_signature
        ):
            raise InvalidInput("signature does not match the data and the sender's key")
        now = self.clock()
        if not member.is_moderator and self.settings.new_identities_per_minute > 0:
            await self.threads.run(
                spam.admit_poster, self.db, self.settings, member.public_key, now
            )
        # The room's own rules are read in the writer's transaction (the token check
        # does not read them): a room is judged unless the poster is a moderator.
        message = await self.post_writer.write(
            NewPost(
                member.room_id,
                member.public_key,
                timestamp,
                data,
                signature,
                posted_at=now,
                judge=spam.post_rules(self.settings, now, member.is_moderator),
            )
        )
        if message is None:
            raise NoSuchRoom(member.room_id)
        return message

    def page(self, member: Member, after: int | None, limit: int = MAX_PAGE) -> list[Message]:
        """The room's live messages after ``after`` (the newest without it), oldest first."""
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
        by_number = self.settings.deletions_format.by_number
        return q.deletions_after(conn, room_id, after, min(limit, MAX_PAGE), by_number=by_number)

    def delete(self, member: Member, server_ids: Sequence[int]) -> None:
        """Delete all of them or none: the sender's own, or any for a moderator."""
        wanted = list(dict.fromkeys(server_ids))
        with self.db.write() as conn:
            q.lock_room(conn, member.room_id)  # concurrent deleters: one deletion entry each
            found = q.message_senders(conn, member.room_id, wanted)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise NoSuchMessage(missing[0])
            for server_id in wanted:
                check_may_delete(
                    found[server_id][0], [member.public_key], member.is_moderator, server_id
                )
            for server_id in wanted:
                if not found[server_id][1]:
                    q.mark_deleted(conn, member.room_id, server_id)
