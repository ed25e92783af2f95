"""The open group itself: rooms, members, messages, moderation and files.

Every operation a client or the operator can perform is one method of
:class:`Community`, written in the module of its capability: ``rooms``,
``membership``, ``messages``, ``moderation``, ``files`` and ``polling``, with
what they share in ``parts``. A method checks the rules (who may, which
limits), reads and writes through :mod:`opengroup.storage`, and raises an
:mod:`opengroup.domain.errors` exception when the answer is no.

Most methods open one transaction. The exceptions:

- ``authenticate`` and ``authenticate_async``: a read, then a write only when
  the member's activity record is stale;
- ``revoke``: ``authenticate``, then the write that deletes the token;
- ``poll``: the rooms' heads, then messages and deletions only when something
  is past a cursor, then one write for the stale activity records;
- ``post``: one transaction shared with the other posts waiting at that moment
  (group commit).

A handler usually calls two methods: ``authenticate`` (``authenticate_async``
on the event loop), then the operation. Nothing but open connections is kept
in the process between calls, so any number of processes can serve the same
database. The hot paths are ``async``: ``poll`` (see
:mod:`opengroup.storage.pollreader`) and ``post`` (see
:mod:`opengroup.storage.postwriter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opengroup.config import Settings
from opengroup.domain import spam
from opengroup.domain.direct_messages import DirectMessages
from opengroup.domain.files import Files
from opengroup.domain.membership import Challenge, Membership
from opengroup.domain.messages import Messages
from opengroup.domain.moderation import Moderation
from opengroup.domain.parts import MAX_PAGE, Member
from opengroup.domain.polling import Polling, PollRequest, RoomPoll
from opengroup.domain.posts import Posts
from opengroup.domain.room_info import RoomInfo
from opengroup.domain.rooms import Rooms
from opengroup.domain.staff import Staff
from opengroup.domain.uploads import Uploads
from opengroup.domain.users import Users
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.postwriter import PostWriter

__all__ = ["MAX_PAGE", "Challenge", "Community", "Member", "PollRequest", "RoomPoll"]


class Community(Rooms, Membership, Messages, Moderation, Files, Polling):
    """All rooms of one server, over one database: every capability's methods."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        server_public_key: bytes = b"",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``server_public_key``: the X25519 key of join URLs, which blinded ids are
        derived from (empty where no key is loaded, for commands that need none)."""
        self.db = db
        self.settings = settings
        self.clock = clock
        self._poll_reader = None
        self._posts = PostWriter(db)
        # The community API's parts: composed, each given what it uses.
        self.server_public_key = server_public_key
        self.users = Users(db, settings, self.server_public_key, clock)
        self.posts = Posts(db, settings, self._posts, self.users, clock)
        self.room_info = RoomInfo(db, settings, self.users, clock)
        self.staff = Staff(db, settings, self.users, self.posts, clock)
        self.uploads = Uploads(db, settings, clock)
        self.inbox = DirectMessages(db, settings, self.users, clock)

    async def close(self) -> None:
        """Close what :meth:`poll` opened and stop admitting (the database itself is the
        caller's)."""
        await self.users.close()
        if self._poll_reader is not None:
            await self._poll_reader.close()
            self._poll_reader = None

    def prune(self) -> dict[str, int]:
        with self.db.write() as conn:
            now = self.clock()
            counts = q.prune_expired(
                conn, now, rate_events_kept=spam.rate_events_kept(self.settings)
            )
            counts["direct_messages"] = self.inbox.prune(conn, now)
            counts.update(self.staff.apply_due_in(conn))
            return counts
