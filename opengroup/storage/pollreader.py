"""The reads of ``compact_poll``, run on the database driver itself.

Every Session client polls every few seconds, so this is the server's hottest
path. Run through SQLAlchemy's execution layer (pool checkout, parameter and
result processing) the reads of one room cost over ten times what SQLite
itself spends answering them, so here the statements, still SQLAlchemy Core
built from :mod:`opengroup.storage.schema`, are compiled once to SQL text and
handed straight to the driver:

- SQLite: one query-only connection per process, used on the event loop
  thread. In WAL mode a reader never waits for the writer, and the reads of a
  poll take tens of microseconds: less than handing them to a thread would.
- PostgreSQL: a small pool of async connections (``psycopg_pool``); all the
  statements of one poll go out in one pipeline, so a poll of any number of
  rooms is one round trip.

Either way the reads of one poll share one snapshot (one transaction).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ClauseElement, and_, bindparam, exists, false, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url

from opengroup.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database
from opengroup.storage.queries import Message, TokenHolder
from opengroup.storage.schema import (
    bans,
    deletions,
    messages,
    moderators,
    room_activity,
    rooms,
    tokens,
)

# Connections of the PostgreSQL reader's pool, per process. A poll holds one for
# a single round trip, so a few serve many polls in flight.
POSTGRES_POOL_MIN = 2
POSTGRES_POOL_MAX = 8


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
    live token with that hash in the room. The lists are read whatever the
    holder, and the caller drops them when the holder may not see them.
    """

    room_exists: bool
    holder: TokenHolder | None
    messages: list[Message]
    deletions: list[tuple[int, int]]
    moderators: list[str]


def _statements() -> dict[str, ClauseElement]:
    """The poll's statements (bind parameters by name), for both dialects."""
    room_id = bindparam("room_id")
    live_token = and_(
        tokens.c.room_id == rooms.c.id,
        tokens.c.token_hash == bindparam("token_hash"),
        tokens.c.expires_at > bindparam("now"),
    )
    activity = and_(
        room_activity.c.room_id == rooms.c.id,
        room_activity.c.public_key == tokens.c.public_key,
    )
    is_mod = exists().where(
        moderators.c.room_id == rooms.c.id, moderators.c.public_key == tokens.c.public_key
    )
    is_banned = exists().where(
        bans.c.room_id == rooms.c.id, bans.c.public_key == tokens.c.public_key
    )
    # One row if the room exists; its token columns are NULL if the token is not live there.
    holder = (
        select(tokens.c.public_key, is_mod, is_banned, room_activity.c.last_active)
        .select_from(rooms.outerjoin(tokens, live_token).outerjoin(room_activity, activity))
        .where(rooms.c.id == room_id)
    )
    live = select(
        messages.c.server_id,
        messages.c.public_key,
        messages.c.timestamp,
        messages.c.data,
        messages.c.signature,
    ).where(messages.c.room_id == room_id, messages.c.deleted == false())
    limit = bindparam("limit")
    statements: dict[str, ClauseElement] = {
        "holder": holder,
        "messages_after": live.where(messages.c.server_id > bindparam("after"))
        .order_by(messages.c.server_id)
        .limit(limit),
        "messages_newest": live.order_by(messages.c.server_id.desc()).limit(limit),
        "moderators": select(moderators.c.public_key)
        .where(moderators.c.room_id == room_id)
        .order_by(moderators.c.public_key),
    }
    for name, key in (("by_number", deletions.c.id), ("by_message", deletions.c.message_id)):
        query = select(deletions.c.id, deletions.c.message_id).where(deletions.c.room_id == room_id)
        statements[f"deletions_after_{name}"] = (
            query.where(key > bindparam("after")).order_by(key).limit(limit)
        )
        statements[f"deletions_newest_{name}"] = query.order_by(key.desc()).limit(limit)
    return statements


@dataclass(frozen=True)
class Statement:
    """A poll statement compiled for one dialect: its SQL text (named parameters),
    and the constants SQLAlchemy bound in it (e.g. SQLite's ``OFFSET 0``)."""

    sql: str
    constants: dict[str, Any]

    def params(self, ours: dict[str, Any]) -> dict[str, Any]:
        return {**self.constants, **ours} if self.constants else ours


def compile_statements(dialect: Dialect) -> dict[str, Statement]:
    """Every poll statement, compiled for ``dialect``."""
    texts = {}
    for name, stmt in _statements().items():
        compiled = stmt.compile(dialect=dialect)
        constants = {key: value for key, value in compiled.params.items() if value is not None}
        texts[name] = Statement(str(compiled), constants)
    return texts


@dataclass(frozen=True)
class _Query:
    """One statement of a poll: its SQL name, parameters, and whether its rows come
    newest first (to be turned ascending)."""

    name: str
    params: dict[str, Any]
    reverse: bool = False


def _queries(lookup: PollLookup, now: float, limit: int, by_number: bool) -> list[_Query]:
    """The four statements of one room, in the order :func:`_room_rows` reads them."""
    room = {"room_id": lookup.room_id}
    kind = "by_number" if by_number else "by_message"
    if lookup.messages_after is None:
        msgs = _Query("messages_newest", {**room, "limit": limit}, reverse=True)
    else:
        msgs = _Query("messages_after", {**room, "after": lookup.messages_after, "limit": limit})
    if lookup.deletions_after is None:
        dels = _Query(f"deletions_newest_{kind}", {**room, "limit": limit}, reverse=True)
    else:
        params = {**room, "after": lookup.deletions_after, "limit": limit}
        dels = _Query(f"deletions_after_{kind}", params)
    holder = _Query("holder", {**room, "token_hash": lookup.token_hash, "now": now})
    return [holder, msgs, dels, _Query("moderators", room)]


def _room_rows(queries: list[_Query], results: list[list[Sequence[Any]]]) -> RoomRows:
    """Rows of the four statements of :func:`_queries` to a :class:`RoomRows`."""
    holder_rows, msg_rows, del_rows, mod_rows = (
        rows[::-1] if query.reverse else rows for query, rows in zip(queries, results, strict=True)
    )
    if not holder_rows:
        return RoomRows(False, None, [], [], [])
    public_key, is_mod, is_banned, last_active = holder_rows[0]
    holder = (
        None
        if public_key is None
        else TokenHolder(public_key, bool(is_mod), bool(is_banned), last_active)
    )
    return RoomRows(
        room_exists=True,
        holder=holder,
        messages=[Message(*row) for row in msg_rows],
        deletions=[(row[0], row[1]) for row in del_rows],
        moderators=[row[0] for row in mod_rows],
    )


class PollReader(Protocol):
    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        """The rows of every lookup, in order, from one snapshot."""
        ...

    async def close(self) -> None: ...


class SqlitePollReader:
    """Reads on one query-only connection, on the calling (event loop) thread."""

    def __init__(self, path: str) -> None:
        self._sql = compile_statements(sqlite.dialect(paramstyle="named"))
        # Used by one thread at a time (the event loop's); created wherever the app is built.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn

    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        execute = self._conn.execute
        answers = []
        execute("BEGIN")
        try:
            for lookup in lookups:
                queries = _queries(lookup, now, limit, by_number)
                results = [
                    execute(self._sql[q.name].sql, self._sql[q.name].params(q.params)).fetchall()
                    for q in queries
                ]
                answers.append(_room_rows(queries, results))
        finally:
            execute("COMMIT")
        return answers

    async def close(self) -> None:
        self._conn.close()


class PostgresPollReader:
    """Reads on a small async pool; one pipeline (one round trip) per poll."""

    def __init__(self, conninfo: str) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._sql = compile_statements(postgresql.psycopg.dialect())
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=POSTGRES_POOL_MIN,
            max_size=POSTGRES_POOL_MAX,
            kwargs={"autocommit": True},
            open=False,
        )
        self._opened = False
        self._opening = asyncio.Lock()

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self._pool.open(wait=True)
                self._opened = True

    async def read(
        self, lookups: Sequence[PollLookup], now: float, limit: int, by_number: bool
    ) -> list[RoomRows]:
        if not self._opened:
            await self._open()
        plan = [_queries(lookup, now, limit, by_number) for lookup in lookups]
        async with self._pool.connection() as conn:
            async with conn.pipeline():
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cursors = [
                    [
                        await conn.execute(
                            self._sql[q.name].sql, self._sql[q.name].params(q.params)
                        )
                        for q in queries
                    ]
                    for queries in plan
                ]
                await conn.execute("COMMIT")
            results = [[await cur.fetchall() for cur in room] for room in cursors]
        return [_room_rows(queries, rows) for queries, rows in zip(plan, results, strict=True)]

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()


def open_poll_reader(db: Database) -> PollReader:
    """The reader for ``db``'s backend."""
    url = make_url(db.url)
    if db.is_sqlite:
        assert url.database, "the poll reader needs an SQLite file"
        return SqlitePollReader(url.database)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresPollReader(conninfo)
