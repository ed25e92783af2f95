"""The reads of ``compact_poll`` (and posting's token check), run on the database driver itself.

Every Session client polls every few seconds, so this is the server's hottest
path. The statements, still SQLAlchemy Core built from
:mod:`opengroup.storage.schema`, are compiled once to SQL text and handed
straight to the driver (:mod:`opengroup.storage.driversql`; the measurements
are in bench/RESULTS.md, "Design notes moved from the code"):

- SQLite: one query-only connection per process, used on the event loop
  thread. In WAL mode a reader never waits for the writer, and a poll's reads
  cost less than handing them to a thread would.
- PostgreSQL: a few async connections (``psycopg_pool``). A round trip costs
  more than the rows it brings, so polls that arrive together are read together:
  see :class:`PostgresPollReader`.

Both read a room's *head* first (:mod:`opengroup.storage.roomhead`): its message
and deletion counters, the token's holder and the moderators, in one statement.
Messages and deletions are read only when the counters are past the poll's
cursors, so a client that is up to date (nearly every poll) costs one indexed
lookup per room.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ClauseElement
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect, make_url

from opengroup.storage import paging
from opengroup.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database
from opengroup.storage.driversql import Statement, compile_statements, postgresql_dialect
from opengroup.storage.queries import Message
from opengroup.storage.roomhead import (
    POSTGRES_HEADS_SQL,
    SQLITE_HEADS_SQL,
    RoomHead,
    TokenHolder,
    head_statement,
)

# Batches of polls read at once by one process (each on its own connection); the
# polls that arrive meanwhile wait for the next. See PostgresPollReader.
POSTGRES_BATCHES = 4


@dataclass(frozen=True)
class PollLookup:
    """What one poll entry asks of one room."""

    room_id: str
    token_hash: bytes
    messages_after: int | None
    deletions_after: int | None


@dataclass(frozen=True)
class RoomRows:
    """What the database holds for one :class:`PollLookup`.

    ``room_exists`` False: no such room (the rest is empty). ``holder`` None: no
    live token with that hash in the room. Messages and deletions are read only
    for a holder who may see them (not banned).
    """

    room_exists: bool
    holder: TokenHolder | None
    messages: list[Message]
    deletions: list[tuple[int, int]]
    moderators: list[str]


def _statements(dialect: Dialect) -> dict[str, ClauseElement]:
    """The poll's statements (bind parameters by name)."""
    statements: dict[str, ClauseElement] = {
        "head": head_statement(dialect),
        "messages_after": paging.MESSAGES_AFTER,
        "messages_newest": paging.MESSAGES_NEWEST,
    }
    for name, by_number in (("by_number", True), ("by_message", False)):
        after, newest = paging.DELETIONS[by_number]
        statements[f"deletions_after_{name}"] = after
        statements[f"deletions_newest_{name}"] = newest
    return statements


def compile_poll_statements(dialect: Dialect) -> dict[str, Statement]:
    """Every poll statement, compiled for ``dialect``."""
    return compile_statements(_statements(dialect), dialect)


Query = tuple[Statement, dict[str, Any]]


class _Plan:
    """One poll, statement by statement: first every room's head, then, for the
    rooms whose holder may read and whose counters are past a cursor, the messages
    and deletions. Both readers follow it; only how they execute differs."""

    def __init__(
        self,
        sql: dict[str, Statement],
        lookups: Sequence[PollLookup],
        now: float,
        limit: int,
        by_number: bool,
        heads_only: bool = False,
    ) -> None:
        self.sql = sql
        self.lookups = lookups
        self.limit = limit
        self.by_number = by_number
        self.now = now
        self.heads_only = heads_only  # a token check: the heads, never messages

    def heads(self) -> list[Query]:
        """One head statement per room (the SQLite reader's; PostgreSQL batches them)."""
        return [
            (
                self.sql["head"],
                {"room_id": lookup.room_id, "token_hash": lookup.token_hash, "now": self.now},
            )
            for lookup in self.lookups
        ]

    def follow_ups(self, head_rows: list[Sequence[Any] | None]) -> list[Query | None]:
        """Two per room: its messages and its deletions statement, None where not needed."""
        queries: list[Query | None] = []
        for lookup, row in zip(self.lookups, head_rows, strict=True):
            head = None if row is None else RoomHead.of(row)
            holder = None if head is None else head.holder
            if self.heads_only or head is None or holder is None or holder.is_banned:
                queries += [None, None]  # a token check, no room, no holder, or banned
                continue
            message_seq, deletion_seq = head.message_seq, head.deletion_seq
            queries.append(self._messages(lookup, message_seq))
            queries.append(self._deletions(lookup, deletion_seq, message_seq))
        return queries

    def _messages(self, lookup: PollLookup, message_seq: int) -> Query | None:
        room = lookup.room_id
        if lookup.messages_after is None:
            return self.sql["messages_newest"], {"room_id": room, "limit": self.limit}
        if lookup.messages_after >= message_seq:
            return None
        params = {"room_id": room, "after": lookup.messages_after, "limit": self.limit}
        return self.sql["messages_after"], params

    def _deletions(self, lookup: PollLookup, deletion_seq: int, message_seq: int) -> Query | None:
        if deletion_seq == 0:  # the room has never had a deletion
            return None
        # Deletions are numbered by deletion_seq, and each names a message id up to message_seq.
        top = deletion_seq if self.by_number else message_seq
        kind = "by_number" if self.by_number else "by_message"
        room = lookup.room_id
        if lookup.deletions_after is None:
            return self.sql[f"deletions_newest_{kind}"], {"room_id": room, "limit": self.limit}
        if lookup.deletions_after >= top:
            return None
        params = {"room_id": room, "after": lookup.deletions_after, "limit": self.limit}
        return self.sql[f"deletions_after_{kind}"], params

    def answers(
        self, head_rows: list[Sequence[Any] | None], follow_up_rows: list[list[Any]]
    ) -> list[RoomRows]:
        """Rows (the heads', then two lists per room as :meth:`follow_ups`) to answers."""
        answers = []
        for index, (lookup, row) in enumerate(zip(self.lookups, head_rows, strict=True)):
            if row is None:
                answers.append(RoomRows(False, None, [], [], []))
                continue
            head = RoomHead.of(row)
            msg_rows, del_rows = follow_up_rows[2 * index], follow_up_rows[2 * index + 1]
            if lookup.messages_after is None:
                msg_rows = msg_rows[::-1]  # read newest first
            if lookup.deletions_after is None:
                del_rows = del_rows[::-1]
            answers.append(
                RoomRows(
                    room_exists=True,
                    holder=head.holder,
                    messages=[Message(*r) for r in msg_rows],
                    deletions=[(r[0], r[1]) for r in del_rows],
                    moderators=head.moderators,
                )
            )
        return answers


class PollReader(Protocol):
    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        """The rows of every lookup, in order. The heads of all of them come from one
        snapshot; messages and deletions, when any are due, from one that may be later."""
        ...

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        """Whether the room exists, and the holder of the live token there: a token
        check for handlers on the event loop (the room's head statement alone)."""
        ...

    async def close(self) -> None: ...


class SqlitePollReader:
    """Reads on one query-only connection, on the calling (event loop) thread."""

    def __init__(self, path: str) -> None:
        self._sql = compile_poll_statements(sqlite.dialect(paramstyle="named"))
        # Used by one thread at a time (the event loop's); created wherever the app is built.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn
        self._many_heads: dict[int, str] = {}  # SQLITE_HEADS_SQL for n rooms

    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        plan = _Plan(self._sql, lookups, now, limit, by_number)
        heads = self._heads(plan)  # one statement: one snapshot of every room's head
        queries = plan.follow_ups(heads)
        if not any(queries):  # nearly every poll: nothing past the cursors
            return plan.answers(heads, [[]] * len(queries))
        # The follow-ups share a later snapshot, which may hold a little more than the
        # heads promised: a message past the counter, a deletion the next poll would bring.
        execute = self._conn.execute
        execute("BEGIN")
        try:
            follow_ups = [
                [] if query is None else execute(query[0].sql, query[0].params(query[1])).fetchall()
                for query in queries
            ]
        finally:
            execute("COMMIT")
        return plan.answers(heads, follow_ups)

    def _heads(self, plan: _Plan) -> list[Sequence[Any] | None]:
        """The head row of every room of the poll (None: no such room): one statement
        for one room, and one for all of them when there are several."""
        if len(plan.lookups) == 1:
            stmt, params = plan.heads()[0]
            return [self._conn.execute(stmt.sql, stmt.params(params)).fetchone()]
        count = len(plan.lookups)
        sql = self._many_heads.get(count)
        if sql is None:
            sql = self._many_heads[count] = SQLITE_HEADS_SQL.format(
                entries=", ".join(["(?, ?, ?, ?)"] * count)
            )
        values = [
            value
            for n, lookup in enumerate(plan.lookups)
            for value in (n, lookup.room_id, lookup.token_hash, plan.now)
        ]
        by_position = {row[0]: row[1:] for row in self._conn.execute(sql, values)}
        return [by_position.get(n) for n in range(count)]

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        head = self._sql["head"]
        params = {"room_id": room_id, "token_hash": token_hash, "now": now}
        row = self._conn.execute(head.sql, head.params(params)).fetchone()
        return (False, None) if row is None else (True, RoomHead.of(row).holder)

    async def close(self) -> None:
        self._conn.close()


@dataclass
class _Waiting:
    """A poll waiting for the next batch."""

    plan: _Plan
    answer: asyncio.Future[list[RoomRows]]


class PostgresPollReader:
    """Polls batched into round trips on a few async connections.

    A round trip costs far more than a row, in the server's CPU and PostgreSQL's,
    so the polls that arrive while earlier ones are being read wait for the next
    batch: one statement reads the heads of every room of every poll in it, and
    only if some room has news past its cursor, one pipeline reads those. At most
    ``POSTGRES_BATCHES`` batches are in flight per process. Nothing is cached: a
    poll is answered from reads that started after it arrived. The two round trips
    of a batch may see two snapshots, which only means the second may find a little
    more than the counters promised.
    """

    def __init__(self, conninfo: str) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._sql = compile_poll_statements(postgresql_dialect())
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=POSTGRES_BATCHES,
            kwargs={"autocommit": True},
            open=False,
        )
        self._opened = False
        self._opening = asyncio.Lock()
        self._waiting: list[_Waiting] = []
        self._batches = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        return await self._read(_Plan(self._sql, lookups, now, limit, by_number))

    async def _read(self, plan: _Plan) -> list[RoomRows]:
        """The plan's answers, from the next batch."""
        answer: asyncio.Future[list[RoomRows]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(plan, answer))
        if self._batches < POSTGRES_BATCHES:
            self._batches += 1
            # The loop holds tasks weakly: keep each until it is done.
            task = asyncio.create_task(self._run_batches())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await answer

    async def _run_batches(self) -> None:
        """Read batches until no poll is waiting."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._open()
                    answers = await self._read_batch(batch)
                except Exception as exc:  # every poll of the batch fails with it
                    for waiting in batch:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                else:
                    for waiting, rows in zip(batch, answers, strict=True):
                        if not waiting.answer.done():  # not given up on
                            waiting.answer.set_result(rows)
        finally:
            self._batches -= 1

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self._pool.open(wait=True)
                self._opened = True

    async def _read_batch(self, batch: list[_Waiting]) -> list[list[RoomRows]]:
        lookups = [(w, lookup) for w in batch for lookup in w.plan.lookups]
        params = {
            "room_ids": [lookup.room_id for _, lookup in lookups],
            "token_hashes": [lookup.token_hash for _, lookup in lookups],
            "nows": [w.plan.now for w, _ in lookups],
        }
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(POSTGRES_HEADS_SQL, params)).fetchall()
            by_position: dict[int, Sequence[Any]] = {row[0]: row[1:] for row in rows}
            heads, start = [], 0
            for w in batch:
                count = len(w.plan.lookups)
                heads.append([by_position.get(start + i + 1) for i in range(count)])
                start += count
            follow_ups = [w.plan.follow_ups(h) for w, h in zip(batch, heads, strict=True)]
            wanted = [q for queries in follow_ups for q in queries if q is not None]
            found = iter(await _run(conn, wanted) if wanted else [])
        answers = []
        for w, h, queries in zip(batch, heads, follow_ups, strict=True):
            rows_of = [[] if q is None else next(found) for q in queries]
            answers.append(w.plan.answers(h, rows_of))
        return answers

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        """The room's head, read in the next batch with the polls."""
        lookup = PollLookup(room_id, token_hash, None, None)
        [rows] = await self._read(_Plan(self._sql, [lookup], now, 0, False, heads_only=True))
        return rows.room_exists, rows.holder

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()


async def _run(conn: Any, queries: Sequence[Query]) -> list[list[Any]]:
    """Every query's rows; several go in one pipeline (one round trip)."""
    if len(queries) == 1:
        stmt, params = queries[0]
        return [await (await conn.execute(stmt.sql, stmt.params(params))).fetchall()]
    async with conn.pipeline():
        cursors = [await conn.execute(stmt.sql, stmt.params(params)) for stmt, params in queries]
    return [await cursor.fetchall() for cursor in cursors]


def open_poll_reader(db: Database) -> PollReader:
    """The reader for ``db``'s backend."""
    url = make_url(db.url)
    if db.is_sqlite:
        assert url.database, "the poll reader needs an SQLite file"
        return SqlitePollReader(url.database)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresPollReader(conninfo)
