"""The open group itself: rooms, members, messages, moderation and files.

:class:`Community` is what handlers and the CLI talk to: a small object that
builds one object per capability, each given what it uses, and holds them.
The v2 API's: ``rooms``, ``membership`` (tokens), ``messages``, ``moderation``,
``files`` and ``polling``, each in the module of that name, with what they share
in :mod:`~opengroup.domain.parts`; the community API's: ``users``, ``posts``,
``room_info``, ``staff``, ``uploads`` and ``inbox``. A method checks the rules
(who may, which limits), reads and writes through :mod:`opengroup.storage`, and
raises an :mod:`opengroup.domain.errors` exception when the answer is no.

A v2 method mostly opens one transaction. The exceptions:

- ``membership.authenticate`` and ``membership.authenticate_async``: a read,
  then a write only when the member's activity record is stale;
- ``membership.revoke``: ``authenticate``, then the write that deletes the token;
- ``polling.poll``: the rooms' heads, then messages and deletions only when
  something is past a cursor, then one write for the stale activity records;
- ``messages.post``: one transaction shared with the other posts waiting at that
  moment (group commit).

A v2 handler usually calls two methods: ``membership.authenticate``
(``authenticate_async`` on the event loop), then the operation. Nothing but
open connections is kept in the process between calls, so any number of
processes can serve the same database. The hot paths are ``async``:
``polling.poll`` (see :mod:`opengroup.storage.pollreader`) and
``messages.post`` (see :mod:`opengroup.storage.postwriter`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opengroup.config import Settings
from opengroup.domain import spam
from opengroup.domain.access import RoomViewsTogether
from opengroup.domain.direct_messages import DirectMessages
from opengroup.domain.files import Files
from opengroup.domain.membership import Challenge, Membership
from opengroup.domain.messages import Messages
from opengroup.domain.moderation import Moderation
from opengroup.domain.parts import MAX_PAGE, ActivityRecords, Member, OnDemandPollReader
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
from opengroup.storage.recentchanges import RecentChanges
from opengroup.threads import Threads

__all__ = ["MAX_PAGE", "Challenge", "Community", "Member", "PollRequest", "RoomPoll"]

# A pruning pass deletes expired nonces in writes of at most this many, pausing this
# long (seconds) between two.
NONCES_PRUNED_PER_WRITE = 1000
PAUSE_BETWEEN_NONCE_WRITES = 0.01


class Community:
    """All rooms of one server, over one database: one object per capability."""

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
        self.server_public_key = server_public_key
        # The threads requests run on (the routers hand them over), which the parts
        # below also use for their own blocking work.
        self.threads = Threads(settings.effective_request_threads, "request")
        post_writer = self._post_writer = PostWriter(db)
        # The latest changes of the rooms polled, for the many who ask for the same
        # (both APIs' polls).
        recent = RecentChanges()
        # The community API's parts.
        self.users = Users(db, settings, server_public_key, clock)
        self.posts = Posts(db, settings, post_writer, self.users, clock, recent)
        self.room_info = RoomInfo(db, settings, self.users, clock)
        self.staff = Staff(db, settings, self.users, self.posts, clock)
        self.uploads = Uploads(db, settings, clock)
        self.inbox = DirectMessages(db, settings, self.users, clock)
        self.room_views = RoomViewsTogether(db, clock)
        # The v2 API's parts; posting's token check and polling share the poll reader.
        self._poll_reader = OnDemandPollReader(
            db, on_loop=settings.effective_reads_on_event_loop, recent=recent
        )
        activity = ActivityRecords(db, settings)
        self.rooms = Rooms(db, clock)
        self.membership = Membership(
            db, settings, clock, self._poll_reader, activity, self.threads, self.users
        )
        self.messages = Messages(db, settings, clock, post_writer, self.threads)
        self.moderation = Moderation(db, clock, self.staff)
        self.files = Files(db, settings, clock)
        self.polling = Polling(settings, clock, self._poll_reader, activity, self.threads)

    async def close(self) -> None:
        """Close what polling opened and stop admitting (the database itself is the
        caller's)."""
        await self.users.close()
        await self.room_views.close()
        await self._poll_reader.close()
        await self._post_writer.close()
        self.threads.close()

    async def prune_nonces(self) -> int:
        """Delete every expired request nonce, in writes of at most
        ``NONCES_PRUNED_PER_WRITE`` (a few milliseconds each) with a pause between, so
        that the admissions waiting for the write lock meanwhile take it in between;
        how many. (Admissions delete expired nonces too, two for each request.)"""
        pruned, signed_from = 0, 0
        while True:
            count, signed_from = await self.threads.run(
                self.users.prune_nonces, NONCES_PRUNED_PER_WRITE, signed_from
            )
            pruned += count
            if count < NONCES_PRUNED_PER_WRITE:
                return pruned
            await asyncio.sleep(PAUSE_BETWEEN_NONCE_WRITES)

    def prune(self) -> dict[str, int]:
        """Delete what has expired (but request nonces: :meth:`prune_nonces`), and apply
        the scheduled permission changes that are due, in one write; how many rows of
        each kind."""
        with self.db.write() as conn:
            now = self.clock()
            counts = q.prune_expired(
                conn, now, rate_events_kept=spam.rate_events_kept(self.settings)
            )
            counts["direct_messages"] = self.inbox.prune(conn, now)
            counts.update(self.staff.apply_due_in(conn))
            return counts
