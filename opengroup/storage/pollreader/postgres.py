"""The PostgreSQL poll reader: the polls that arrive together read together, in
two round trips per batch at most.

Where the database is on this machine (``reads_on_event_loop``), a batch is read
on the event loop itself, on one connection: its round trips are shorter than
the turns of the loop that waiting for them would cost. Elsewhere, on a few
async connections (``psycopg_pool``), the loop serving other requests while
they travel. Both run the same steps (:func:`_batch_steps`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import Any

from opengroup.storage import paging, posts
from opengroup.storage.batching import Batcher
from opengroup.storage.driversql import Statement, compile_statements, postgresql_dialect
from opengroup.storage.pollreader.plan import (
    Pages,
    PollLookup,
    PollPlan,
    Query,
    RoomRows,
    compile_poll_statements,
)
from opengroup.storage.recentchanges import RecentChanges
from opengroup.storage.roomhead import POSTGRES_HEADS_SQL, TokenHolder

# Batches of polls read at once by one process over async connections (each on its
# own connection); the polls that arrive meanwhile wait for the next. On the event
# loop, one batch at a time.
POSTGRES_BATCHES = 4

# A round trip: statements (SQL text, parameters) sent together (a pipeline), and
# the rows of each, in order.
RoundTrip = list[tuple[str, Any]]
Steps = Generator[RoundTrip, list[list[Any]], list[list[RoomRows]]]


class PostgresPollReader:
    """Polls batched into round trips, on the event loop or on async connections.

    A round trip costs far more than a row, in the server's CPU and PostgreSQL's,
    so the polls that arrive while earlier ones are being read wait for the next
    batch: one statement reads the heads of every room of every poll in it, and
    only if some room has news past its cursor, one more round trip reads those
    (the pages of messages after a cursor in one statement, in a pipeline with the
    rest). A poll is answered from reads that started after it arrived. The two
    round trips of a batch may see two snapshots, which only means the second may
    find a little more than the counters promised.

    ``on_loop``: each batch is read at once on the event loop, on one connection
    kept for it (one batch at a time: the polls that arrive during a turn of the
    loop are the next), and the pages of messages after a cursor come from the
    rooms' latest changes kept in memory (``recent``) where those are as new as
    the heads and hold them. Else on up to ``POSTGRES_BATCHES`` async connections.
    """

    def __init__(self, conninfo: str, *, on_loop: bool, recent: RecentChanges) -> None:
        self._conninfo = conninfo
        self._recent = recent
        self._sql = compile_poll_statements(postgresql_dialect())
        [self._many_after] = compile_statements(
            {"pages": paging.MANY_MESSAGES_AFTER}, postgresql_dialect()
        ).values()
        self._connection: Any = None  # on the loop: psycopg.Connection, once opened
        self._pool: Any = None  # else: psycopg_pool.AsyncConnectionPool, once opened
        self._opening = asyncio.Lock()
        if on_loop:
            self._batches = Batcher(self._read_on_loop, 1)
        else:
            self._batches = Batcher(self._read_async, POSTGRES_BATCHES)

    async def read(self, lookups: Sequence[PollLookup], now: float, pages: Pages) -> list[RoomRows]:
        return await self._batches.submit(PollPlan(self._sql, lookups, now, pages))

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        """The room's head, read in the next batch with the polls."""
        lookup = PollLookup(room_id, token_hash, None, None)
        plan = PollPlan(self._sql, [lookup], now, Pages(0, False), heads_only=True)
        [rows] = await self._batches.submit(plan)
        return rows.room_exists, rows.holder

    async def _read_on_loop(self, batch: list[PollPlan]) -> list[list[RoomRows]]:
        """The batch read here and now. A read may be made again: if the connection
        fails (PostgreSQL restarted, the connection cut), once more on a new one."""
        import psycopg

        try:
            return self._read_now(batch)
        except psycopg.OperationalError:
            return self._read_now(batch)

    def _read_now(self, batch: list[PollPlan]) -> list[list[RoomRows]]:
        """The batch read on the connection kept for it (opened if there is none; closed
        after a failure, in case the failure was the connection's)."""
        import psycopg

        conn = self._connection
        if conn is None or conn.closed:
            conn = self._connection = psycopg.connect(self._conninfo, autocommit=True)

        def hold(
            plan: PollPlan, heads: list[Sequence[Any] | None], queries: list[Query | None]
        ) -> tuple[list[Query | None], list[list[Any] | None]]:
            read = partial(posts.every_change_since_on, conn, "postgresql")
            return plan.take_held(heads, queries, self._recent, read)

        steps = _batch_steps(batch, self._sql["messages_after"], self._many_after, hold)
        try:
            trip = next(steps)
            while True:
                if len(trip) == 1:
                    [(sql, params)] = trip
                    trip = steps.send([conn.execute(sql, params).fetchall()])
                    continue
                with conn.pipeline():
                    cursors = [conn.execute(sql, params) for sql, params in trip]
                trip = steps.send([cursor.fetchall() for cursor in cursors])
        except StopIteration as done:
            answers: list[list[RoomRows]] = done.value
            return answers
        except BaseException:
            conn.close()
            raise

    async def _read_async(self, batch: list[PollPlan]) -> list[list[RoomRows]]:
        """The batch read on one of the pool's async connections."""
        async with self._opening:
            if self._pool is None:
                from psycopg_pool import AsyncConnectionPool

                pool = AsyncConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=POSTGRES_BATCHES,
                    kwargs={"autocommit": True},
                    open=False,
                )
                await pool.open(wait=True)
                self._pool = pool
        steps = _batch_steps(batch, self._sql["messages_after"], self._many_after)
        async with self._pool.connection() as conn:
            try:
                trip = next(steps)
                while True:
                    if len(trip) == 1:
                        [(sql, params)] = trip
                        trip = steps.send([await (await conn.execute(sql, params)).fetchall()])
                        continue
                    async with conn.pipeline():
                        cursors = [await conn.execute(sql, params) for sql, params in trip]
                    trip = steps.send([await cursor.fetchall() for cursor in cursors])
            except StopIteration as done:
                answers: list[list[RoomRows]] = done.value
                return answers

    async def close(self) -> None:
        await self._batches.close()
        if self._connection is not None:
            self._connection.close()
        if self._pool is not None:
            await self._pool.close()


# PollPlan.take_held on the reader's own connection: a poll's follow-ups left for the
# database, and the rows held in memory.
Hold = Callable[
    [PollPlan, list[Sequence[Any] | None], list[Query | None]],
    tuple[list[Query | None], list[list[Any] | None]],
]


def _batch_steps(
    batch: list[PollPlan], after: Statement, many_after: Statement, hold: Hold | None = None
) -> Steps:
    """The answers of every poll of the batch, as round trips: it yields the statements
    of each and is sent their rows. First the heads of all their rooms in one
    statement; then, if any room has news past a cursor, the messages and deletions
    due that ``hold`` does not hold, the pages of messages after a cursor in one
    statement for them all (``paging.MANY_MESSAGES_AFTER``)."""
    lookups = [(plan, lookup) for plan in batch for lookup in plan.lookups]
    params = {
        "room_ids": [lookup.room_id for _, lookup in lookups],
        "token_hashes": [lookup.token_hash for _, lookup in lookups],
        "nows": [plan.now for plan, _ in lookups],
    }
    [rows] = yield [(POSTGRES_HEADS_SQL, params)]
    by_position: dict[int, Sequence[Any]] = {row[0]: row[1:] for row in rows}
    heads, start = [], 0
    for plan in batch:
        count = len(plan.lookups)
        heads.append([by_position.get(start + i + 1) for i in range(count)])
        start += count
    follow_ups: list[list[Query | None]] = []
    held: list[list[list[Any] | None] | None] = []
    for plan, h in zip(batch, heads, strict=True):
        queries = plan.follow_ups(h)
        kept: list[list[Any] | None] | None = None
        if hold is not None:
            queries, kept = hold(plan, h, queries)
        follow_ups.append(queries)
        held.append(kept)
    wanted = [q for queries in follow_ups for q in queries if q is not None]
    found = iter((yield from _follow_ups(wanted, after, many_after)) if wanted else [])
    answers = []
    for plan, h, queries, kept in zip(batch, heads, follow_ups, held, strict=True):
        rows_of = [[] if q is None else next(found) for q in queries]
        answers.append(plan.answers(h, rows_of, kept))
    return answers


def _follow_ups(
    queries: Sequence[Query], after: Statement, many_after: Statement
) -> Generator[RoundTrip, list[list[Any]], list[list[Any]]]:
    """Every query's rows, in one round trip: two pages of messages after a cursor or
    more in one statement, in a pipeline with the others."""
    pages = [params for stmt, params in queries if stmt is after]
    if len(pages) < 2:
        return (yield [(stmt.sql, stmt.params(params)) for stmt, params in queries])
    together = {
        "room_ids": [params["room_id"] for params in pages],
        "afters": [params["after"] for params in pages],
        "limits": [params["limit"] for params in pages],
    }
    others = [query for query in queries if query[0] is not after]
    rows, *rest = yield [
        (stmt.sql, stmt.params(params)) for stmt, params in [(many_after, together), *others]
    ]
    by_page: list[list[Any]] = [[] for _ in pages]
    for row in rows:
        by_page[row[0] - 1].append(row[1:])
    page_rows, other_rows = iter(by_page), iter(rest)
    return [next(page_rows if stmt is after else other_rows) for stmt, _ in queries]
