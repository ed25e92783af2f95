"""Blinded direct messages ("message requests"): one user's encrypted bytes for another,
addressed by blinded id, kept until they expire or the recipient clears their inbox.

The server cannot read them (clients encrypt them for the recipient's blinded key);
it checks only who may send to whom, and the size:

- the recipient is a blinded ("15") id that has signed a request here before, and
  is not banned from the server; otherwise 404, the same answer for both, so a
  sender cannot tell a banned user from an unknown one;
- a sender banned from the server never gets this far (the router refuses their
  signature, 403);
- a message is 1 to ``max_dm_bytes`` bytes once decoded (400, 413) and lives
  ``dm_ttl_seconds``;
- a sender sends at most ``dm_rate_limit_count`` messages per
  ``dm_rate_limit_seconds`` (429), and a new identity is held to the cap on new
  identities (:mod:`opengroup.domain.spam`).

Clearing an inbox deletes the messages themselves, so they leave their senders'
outboxes too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import spam, values
from opengroup.domain.errors import InvalidInput, MessageTooLarge, NoSuchUser
from opengroup.domain.users import User, Users
from opengroup.storage import inbox, people
from opengroup.storage.database import Database
from opengroup.storage.inbox import StoredDirectMessage

DEFAULT_PAGE = 100
MAX_PAGE = 256
NO_SUCH_USER = "no such user"


def blinded_recipient(value: str) -> str:
    """A recipient id: ``15`` and 64 hex digits (folded to lower case); 404 otherwise,
    as for an id never seen here (no one can be addressed by anything else)."""
    text = value.lower()
    if len(text) == 66 and text.startswith("15"):
        try:
            bytes.fromhex(text[2:])
        except ValueError:
            pass
        else:
            return text
    raise NoSuchUser(NO_SUCH_USER)


class DirectMessages:
    """Sending, reading and clearing direct messages."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: Users,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.clock = clock

    def send(self, sender: User, recipient: str, body: dict[str, Any]) -> StoredDirectMessage:
        """Deliver ``body["message"]`` (base64) from ``sender`` to the blinded id
        ``recipient``: 404 for an unknown or banned recipient, 400 for a missing or
        malformed message, 413 for one over ``max_dm_bytes``, 429 over the sender's
        rate or the cap on new identities."""
        recipient_id = blinded_recipient(recipient)
        data = self._message(body)
        now = self.clock()
        with self.db.write() as conn:
            if not self._reachable(conn, recipient_id, now):
                raise NoSuchUser(NO_SUCH_USER)
            spam.check_direct_message_rate(conn, self.settings, sender.session_id, now)
            spam.admit_speaker(conn, self.settings, sender.session_id, now)
            return inbox.insert_message(
                conn,
                sender.session_id,
                recipient_id,
                data,
                posted_at=now,
                expires_at=now + self.settings.dm_ttl_seconds,
            )

    def _message(self, body: dict[str, Any]) -> bytes:
        if body.get("message") is None:
            raise InvalidInput("message is required")
        data = values.base64_bytes(body["message"], "message")
        if not data:
            raise InvalidInput("message is empty")
        most = self.settings.max_dm_bytes
        if len(data) > most:
            raise MessageTooLarge(f"message is {len(data)} bytes; the limit is {most}")
        return data

    def _reachable(self, conn: Connection, recipient_id: str, now: float) -> bool:
        """Seen here before, and not banned from the server (under any of their keys)."""
        if people.user_last_seen(conn, recipient_id) is None:
            return False
        keys = self.users.user(conn, recipient_id).keys
        return not people.is_globally_banned(conn, keys, now)

    def received(self, user: User, limit: int, after_id: int = 0) -> list[StoredDirectMessage]:
        """``user``'s unexpired messages with an id above ``after_id``, oldest first."""
        with self.db.read() as conn:
            return inbox.messages_to(
                conn, user.session_id, self.clock(), after_id=after_id, limit=limit
            )

    def both_boxes(
        self,
        user: User,
        inbox_page: tuple[int, int],
        outbox_page: tuple[int, int],
        newest: people.NewestDirectMessages | None = None,
    ) -> tuple[list[StoredDirectMessage], list[StoredDirectMessage]]:
        """:meth:`received` and :meth:`sent` in one statement, each page given as
        (after_id, limit): a client polls both in each batch. ``newest``: the ids of the
        newest messages to and from ``user``, read already; if neither is past its
        page's ``after_id`` (as in most polls), both pages are empty, and nothing is
        read."""
        if newest is not None and not (
            _past(newest.to, inbox_page[0]) or _past(newest.sent, outbox_page[0])
        ):
            return [], []
        with self.db.read() as conn:
            return inbox.both_pages(conn, user.session_id, self.clock(), inbox_page, outbox_page)

    def sent(self, user: User, limit: int, after_id: int = 0) -> list[StoredDirectMessage]:
        """The unexpired messages ``user`` sent with an id above ``after_id``, oldest
        first."""
        with self.db.read() as conn:
            return inbox.messages_from(
                conn, user.session_id, self.clock(), after_id=after_id, limit=limit
            )

    def clear(self, user: User) -> int:
        """Delete every message to ``user`` (from their senders' outboxes too); how many
        there were."""
        with self.db.write() as conn:
            return inbox.delete_messages_to(conn, user.session_id, self.clock())

    @staticmethod
    def prune(conn: Connection, now: float) -> int:
        """Delete expired messages (called by the community's periodic pruning)."""
        return inbox.prune_expired(conn, now)


def _past(newest_id: int | None, after_id: int) -> bool:
    return newest_id is not None and newest_id > after_id
