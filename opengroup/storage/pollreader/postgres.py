"""The PostgreSQL poll reader: polls batched into round trips on a few async
connections (``psycopg_pool``, autocommit)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opengroup.storage import paging
from opengroup.storage.batching import Batcher
from opengroup.storage.driversql import compile_statements, postgresql_dialect
from opengroup.storage.pollreader.plan import (
    PollLookup,
    PollPlan,
    Query,
    RoomRows,
    compile_poll_statements,
)
from opengroup.storage.roomhead import POSTGRES_HEADS_SQL, TokenHolder

# Batches of polls read at once by one process (each on its own connection); the
# polls that arrive meanwhile wait for the next. See PostgresPollReader.
POSTGRES_BATCHES = 4


class PostgresPollReader:
    """Polls batched into round trips on a few async connections.

    A round trip costs far more than a row, in the server's CPU and PostgreSQL's,
    so the polls that arrive while earlier ones are being read wait for the next
    batch: one statement reads the heads of every room of every poll in it, and
    only if some room has news past its cursor, one more round trip reads those
    (the pages of messages after a cursor in one statement, in a pipeline with the
    rest). At most ``POSTGRES_BATCHES`` batches are in flight per process. Nothing is cached: a
    poll is answered from reads that started after it arrived. The two round trips
    of a batch may see two snapshots, which only means the second may find a little
    more than the counters promised.
    """

    def __init__(self, conninfo: str) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._sql = compile_poll_statements(postgresql_dialect())
        [self._many_after] = compile_statements(
            {"pages": paging.MANY_MESSAGES_AFTER}, postgresql_dialect()
        ).values()
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=POSTGRES_BATCHES,
            kwargs={"autocommit": True},
            open=False,
        )
        self._opened = False
        self._opening = asyncio.Lock()
        self._batches: Batcher[PollPlan, list[RoomRows]] = Batcher(
            self._read_batch, POSTGRES_BATCHES
        )

    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        return await self._batches.submit(PollPlan(self._sql, lookups, now, limit, by_number))

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self._pool.open(wait=True)
                self._opened = True

    async def _read_batch(self, batch: list[PollPlan]) -> list[list[RoomRows]]:
        """The answers of every poll of the batch: the heads of all their rooms in one
        statement, then the messages and deletions due in one pipeline."""
        await self._open()
        lookups = [(plan, lookup) for plan in batch for lookup in plan.lookups]
        params = {
            "room_ids": [lookup.room_id for _, lookup in lookups],
            "token_hashes": [lookup.token_hash for _, lookup in lookups],
            "nows": [plan.now for plan, _ in lookups],
        }
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(POSTGRES_HEADS_SQL, params)).fetchall()
            by_position: dict[int, Sequence[Any]] = {row[0]: row[1:] for row in rows}
            heads, start = [], 0
            for plan in batch:
                count = len(plan.lookups)
                heads.append([by_position.get(start + i + 1) for i in range(count)])
                start += count
            follow_ups = [plan.follow_ups(h) for plan, h in zip(batch, heads, strict=True)]
            wanted = [q for queries in follow_ups for q in queries if q is not None]
            found = iter(await self._run(conn, wanted) if wanted else [])
        answers = []
        for plan, h, queries in zip(batch, heads, follow_ups, strict=True):
            rows_of = [[] if q is None else next(found) for q in queries]
            answers.append(plan.answers(h, rows_of))
        return answers

    async def _run(self, conn: Any, queries: Sequence[Query]) -> list[list[Any]]:
        """Every query's rows, in one round trip: the pages of messages after a cursor
        (nearly all a poll with news reads) in one statement for them all
        (``paging.MANY_MESSAGES_AFTER``), in a pipeline with the others if any."""
        after = self._sql["messages_after"]
        pages = [params for stmt, params in queries if stmt is after]
        if len(pages) < 2:
            return await _run_each(conn, queries)
        together = {
            "room_ids": [params["room_id"] for params in pages],
            "afters": [params["after"] for params in pages],
            "limits": [params["limit"] for params in pages],
        }
        others = [query for query in queries if query[0] is not after]
        rows, *rest = await _run_each(conn, [(self._many_after, together), *others])
        by_page: list[list[Any]] = [[] for _ in pages]
        for row in rows:
            by_page[row[0] - 1].append(row[1:])
        page_rows, other_rows = iter(by_page), iter(rest)
        return [next(page_rows if stmt is after else other_rows) for stmt, _ in queries]

    async def token_holder(
        self, room_id: str, token_hash: bytes, now: float
    ) -> tuple[bool, TokenHolder | None]:
        """The room's head, read in the next batch with the polls."""
        lookup = PollLookup(room_id, token_hash, None, None)
        plan = PollPlan(self._sql, [lookup], now, 0, False, heads_only=True)
        [rows] = await self._batches.submit(plan)
        return rows.room_exists, rows.holder

    async def close(self) -> None:
        await self._batches.close()
        if self._opened:
            await self._pool.close()


async def _run_each(conn: Any, queries: Sequence[Query]) -> list[list[Any]]:
    """Every query's rows; several go in one pipeline (one round trip)."""
    if len(queries) == 1:
        stmt, params = queries[0]
        return [await (await conn.execute(stmt.sql, stmt.params(params))).fetchall()]
    async with conn.pipeline():
        cursors = [await conn.execute(stmt.sql, stmt.params(params)) for stmt, params in queries]
    return [await cursor.fetchall() for cursor in cursors]
