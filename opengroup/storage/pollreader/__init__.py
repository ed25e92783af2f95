"""The reads of ``compact_poll`` (and posting's token check), run on the database
driver itself.

Every Session client polls every few seconds, so this is the server's hottest
path. The statements, still SQLAlchemy Core built from
:mod:`opengroup.storage.schema`, are compiled once to SQL text and handed
straight to the driver (:mod:`opengroup.storage.driversql`; the measurements
are in bench/RESULTS.md, "Design notes moved from the code"):

- SQLite: one query-only connection per process, used on the event loop
  thread. In WAL mode a reader never waits for the writer, and a poll's reads
  cost less than handing them to a thread would.
- PostgreSQL: a round trip costs more than the rows it brings, so polls that
  arrive together are read together
  (:class:`~opengroup.storage.batching.Batcher`): on the event loop, on one
  connection, where the database is on this machine (``reads_on_event_loop``);
  else on a few async connections (``psycopg_pool``).

Both read a room's *head* first (:mod:`opengroup.storage.roomhead`): its message
and deletion counters, the token's holder and the moderators, in one statement.
Messages and deletions are read only when the counters are past the poll's
cursors, so a client that is up to date (nearly every poll) costs one indexed
lookup per room. Where the reads are made on the event loop, pages of messages
after a cursor come from the rooms' latest changes kept in memory
(:mod:`opengroup.storage.recentchanges`) when those hold them: in a busy room,
the many pollers of a room ask for the same few dozen messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.engine import make_url

from opengroup.storage.database import Database
from opengroup.storage.pollreader.plan import Pages, PollLookup, RoomRows
from opengroup.storage.pollreader.postgres import PostgresPollReader
from opengroup.storage.pollreader.sqlite import SqlitePollReader
from opengroup.storage.recentchanges import RecentChanges
from opengroup.storage.roomhead import TokenHolder

__all__ = ["Pages", "PollLookup", "PollReader", "RoomRows", "open_poll_reader"]


class PollReader(Protocol):
    async def read(self, lookups: Sequence[PollLookup], now: float, pages: Pages) -> list[RoomRows]:
        """The rows of every lookup, in order. The heads of all of them come from one
        snapshot; messages and deletions, when any are due, from one that may be later,
        as much as ``pages`` allows."""
        ...

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        """Whether the room exists, and the holder of the live token there: a token
        check for handlers on the event loop (the room's head statement alone)."""
        ...

    async def close(self) -> None: ...


def open_poll_reader(db: Database, *, on_loop: bool, recent: RecentChanges) -> PollReader:
    """The reader for ``db``'s backend; ``on_loop``: PostgreSQL's reads may be made on
    the event loop itself (the database is on this machine); ``recent``: the process's
    rooms' latest changes, shared with the community API's polls."""
    url = make_url(db.url)
    if db.is_sqlite:
        assert url.database, "the poll reader needs an SQLite file"
        return SqlitePollReader(url.database, recent)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresPollReader(conninfo, on_loop=on_loop, recent=recent)
