"""Posting's write transactions: on the driver itself, and in groups.

Posting is the write clients make most, and two things made it slow.

Through SQLAlchemy's execution layer its transaction cost about 0.8 ms of
CPU, mostly building and cache-keying statements, against about 50 us that
SQLite spends on it. So its statements, still SQLAlchemy Core, are compiled
once (:mod:`opengroup.storage.driversql`) and run on a pooled connection's own
``sqlite3`` or ``psycopg`` object.

And posts are written one after another: SQLite has one writer at a time,
and on PostgreSQL the posts of a room wait for each other on the room's row
(which hands out their ids) until commit. What bounds posting is then how
long each write holds its lock, and little of that is the database's work: on
SQLite it is taking the lock, ``BEGIN`` and ``COMMIT``, handing the work to a
thread and back, and waiting between statements for Python's GIL, which the
worker's event loop holds for up to milliseconds at a time; on PostgreSQL it
is the commit's flush to disk. So the posts waiting at the same moment share
one transaction (group commit) and pay those costs once:

- :meth:`PostWriter.write` queues the post and waits. If no group of this
  process is being written, a group starts at once; otherwise the post waits
  for the group in progress to end.
- A group is every post queued since the previous group started. One worker
  thread writes it in one transaction (on SQLite under the database's write
  lock, :meth:`Database.writing`). A post is refused (a rate limit, no such
  room) before it writes anything, and its write is its last step, on
  PostgreSQL one statement that takes the room's next id and stores the
  message (one round trip per post). So a refusal leaves no trace and does not
  disturb the others, without a savepoint per post; a post that fails *after*
  it started writing fails its whole group.
- The posts of a group are written room by room, rooms in the order of their
  ids (and each room's posts in the order they came): the groups of two
  processes then lock rooms in the same order and never wait for each other
  in a circle.
- After the commit each post gets its result. If the transaction itself
  failed, nothing of the group was stored and each post fails with
  :class:`GroupWriteFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import ClauseElement, bindparam, false, insert, select, update
from sqlalchemy.engine import Dialect

from opengroup.storage.database import Database
from opengroup.storage.driversql import Statement, compile_statements, driver_dialect
from opengroup.storage.schema import messages, rooms

T = TypeVar("T")


def _statements(dialect: Dialect) -> dict[str, ClauseElement]:
    room_id = bindparam("room_id", type_=rooms.c.id.type)
    next_message_id = (
        update(rooms)
        .where(rooms.c.id == room_id)
        .values(message_seq=rooms.c.message_seq + 1)
        .returning(rooms.c.message_seq)
    )
    columns = ["public_key", "timestamp", "data", "signature", "posted_at"]
    values = {name: bindparam(name, type_=messages.c[name].type) for name in columns}
    statements: dict[str, ClauseElement] = {
        # FOR UPDATE (PostgreSQL; SQLite's writer holds the whole database anyway).
        "lock_room": select(rooms.c.message_seq).where(rooms.c.id == room_id).with_for_update(),
        "recent_post_times": select(messages.c.posted_at)
        .where(
            messages.c.room_id == room_id,
            messages.c.public_key == bindparam("public_key"),
            messages.c.posted_at > bindparam("since"),
        )
        .order_by(messages.c.posted_at),
    }
    if dialect.name == "postgresql":
        # The room's next id and the message in one statement: one round trip.
        next_id = next_message_id.cte("next_id")
        stored = select(room_id, next_id.c.message_seq, *values.values(), false())
        statements["insert_next_message"] = (
            insert(messages)
            .from_select(["room_id", "server_id", *columns, "deleted"], stored)
            .returning(messages.c.server_id)
            .add_cte(next_id)
        )
    else:  # SQLite has no UPDATE in a WITH: two statements, in the process itself
        statements["next_message_id"] = next_message_id
        statements["insert_message"] = insert(messages).values(
            room_id=room_id, server_id=bindparam("server_id"), deleted=false(), **values
        )
    return statements


class PostTransaction:
    """The statements a post may run in its group's transaction.

    A post reads first (:meth:`lock_room`, :meth:`recent_post_times`) and writes
    last, once (:meth:`insert_next_message`): :attr:`wrote` tells the group
    whether a post that failed had started writing.
    """

    def __init__(self, conn: Any, sql: dict[str, Statement]) -> None:
        self._conn = conn  # the driver's connection: sqlite3 or psycopg
        self._sql = sql
        self.wrote = False

    def _execute(self, name: str, params: dict[str, Any]) -> Any:
        statement = self._sql[name]
        return self._conn.execute(statement.sql, statement.params(params))

    def lock_room(self, room_id: str) -> bool:
        """Whether the room exists; on PostgreSQL its row stays locked until commit, so
        the room's posters take turns from here on."""
        return self._execute("lock_room", {"room_id": room_id}).fetchone() is not None

    def recent_post_times(self, room_id: str, public_key: str, since: float) -> list[float]:
        """When the key posted in the room after ``since``, ascending."""
        params = {"room_id": room_id, "public_key": public_key, "since": since}
        return [row[0] for row in self._execute("recent_post_times", params).fetchall()]

    def insert_next_message(
        self, room_id: str, public_key: str, timestamp: int, data: str, signature: str, now: float
    ) -> int | None:
        """Store a message under the room's next server_id: that id, or None (and nothing
        stored) if there is no such room. On PostgreSQL this locks the room row until
        commit."""
        self.wrote = True
        params = {
            "room_id": room_id,
            "public_key": public_key,
            "timestamp": timestamp,
            "data": data,
            "signature": signature,
            "posted_at": now,
        }
        if "insert_next_message" in self._sql:
            row = self._execute("insert_next_message", params).fetchone()
            return None if row is None else int(row[0])
        row = self._execute("next_message_id", {"room_id": room_id}).fetchone()
        if row is None:
            return None
        self._execute("insert_message", {**params, "server_id": row[0]})
        return int(row[0])


Work = Callable[[PostTransaction], Any]


@dataclass
class _Post:
    """A post waiting for its group: its room, what to write, where the answer goes."""

    room_id: str
    work: Work
    answer: asyncio.Future[Any]


class GroupWriteFailed(RuntimeError):
    """The transaction of a post's group failed: the post was not stored."""


class PostWriter:
    """Runs posting's write transactions for code on the event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = driver_dialect(db.dialect)
        self._sql = compile_statements(_statements(dialect), dialect)
        self._queue: list[_Post] = []
        self._writer: asyncio.Task[None] | None = None  # writing groups, while any wait

    async def write(self, room_id: str, work: Callable[[PostTransaction], T]) -> T:
        """``work(tx)``, a post to ``room_id``, in a committed transaction: its result, or
        its exception (then nothing it did is stored). ``work`` runs in a worker thread."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Post(room_id, work, answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups())
        return await answer

    @contextmanager
    def _transaction(self) -> Iterator[PostTransaction]:
        """A write transaction on the driver: all of it commits, or none of it does."""
        with closing(self._db.engine.raw_connection()) as pooled, self._db.writing():
            conn = pooled.driver_connection
            if self._db.is_sqlite:
                conn.execute("BEGIN IMMEDIATE")  # PostgreSQL: the first statement begins
            try:
                yield PostTransaction(conn, self._sql)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    async def _write_groups(self) -> None:
        """Write groups until none is waiting (the one task of this process doing so)."""
        group: list[_Post] = []
        try:
            while self._queue:
                group, self._queue = self._queue, []
                group.sort(key=lambda post: post.room_id)  # stable: each room's posts in order
                works = [post.work for post in group]
                try:
                    outcomes = await anyio.to_thread.run_sync(self._write_group, works)
                except Exception as exc:
                    for post in group:
                        failed = GroupWriteFailed("the transaction of this post failed")
                        failed.__cause__ = exc
                        _settle(post.answer, None, failed)
                    continue
                for post, (result, error) in zip(group, outcomes, strict=True):
                    _settle(post.answer, result, error)
        finally:
            self._writer = None
            for post in group + self._queue:  # left unanswered only if cancelled (stopping)
                post.answer.cancel()
            self._queue = []

    def _write_group(self, works: list[Work]) -> list[tuple[Any, Exception | None]]:
        """Every work in one transaction: (result, error) each. A work that fails
        before it writes is refused alone; one that fails after fails the group."""
        outcomes: list[tuple[Any, Exception | None]] = []
        with self._transaction() as tx:
            for work in works:
                tx.wrote = False
                try:
                    result = work(tx)
                except Exception as exc:
                    if tx.wrote:
                        raise  # a half-written post: the transaction rolls back, all fail
                    outcomes.append((None, exc))
                else:
                    outcomes.append((result, None))
        return outcomes


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled while its post was being written
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
