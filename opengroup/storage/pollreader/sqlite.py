"""The SQLite poll reader: one query-only connection per process, used on the event
loop thread. In WAL mode a reader never waits for the writer, and a poll's reads
cost less than handing them to a thread would. Pages of messages after a cursor
come from the rooms' latest changes kept in memory where they hold them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import sqlite

from opengroup.storage import posts
from opengroup.storage.database import SQLITE_BUSY_TIMEOUT_MS
from opengroup.storage.pollreader.plan import (
    Pages,
    PollLookup,
    PollPlan,
    RoomRows,
    compile_poll_statements,
)
from opengroup.storage.recentchanges import RecentChanges
from opengroup.storage.roomhead import SQLITE_HEADS_SQL, RoomHead, TokenHolder


class SqlitePollReader:
    """Reads on one query-only connection, on the calling (event loop) thread."""

    def __init__(self, path: str, recent: RecentChanges) -> None:
        self._recent = recent
        self._sql = compile_poll_statements(sqlite.dialect(paramstyle="named"))
        # Used by one thread at a time (the event loop's); created wherever the app is built.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn
        self._many_heads: dict[int, str] = {}  # SQLITE_HEADS_SQL for n rooms

    async def read(self, lookups: Sequence[PollLookup], now: float, pages: Pages) -> list[RoomRows]:
        plan = PollPlan(self._sql, lookups, now, pages)
        heads = self._heads(plan)  # one statement: one snapshot of every room's head
        queries = plan.follow_ups(heads)
        if not any(queries):  # nearly every poll: nothing past the cursors
            return plan.answers(heads, [[]] * len(queries))
        # The follow-ups share a later snapshot, which may hold a little more than the
        # heads promised: a message past the counter, a deletion the next poll would bring.
        execute = self._conn.execute
        execute("BEGIN")
        try:
            queries, held = plan.take_held(heads, queries, self._recent, self._read_changes)
            follow_ups = [
                [] if query is None else execute(query[0].sql, query[0].params(query[1])).fetchall()
                for query in queries
            ]
        finally:
            execute("COMMIT")
        return plan.answers(heads, follow_ups, held)

    def _read_changes(self, room_id: str, seqno: int, limit: int) -> list[posts.StoredMessage]:
        return posts.every_change_since_on(self._conn, "sqlite", room_id, seqno, limit)

    def _heads(self, plan: PollPlan) -> list[Sequence[Any] | None]:
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
