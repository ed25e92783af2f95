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
  lock, :meth:`Database.writing`), each post inside a savepoint: a post
  refused (a rate limit, no such room) is rolled back alone, leaves no trace
  and does not disturb the others.
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

from opengroup.storage.database import Database
from opengroup.storage.driversql import Statement, compile_statements, driver_dialect
from opengroup.storage.queries import Message
from opengroup.storage.schema import messages, rooms

T = TypeVar("T")


def _statements() -> dict[str, ClauseElement]:
    return {
        "next_message_id": update(rooms)
        .where(rooms.c.id == bindparam("room_id"))
        .values(message_seq=rooms.c.message_seq + 1)
        .returning(rooms.c.message_seq),
        "recent_post_times": select(messages.c.posted_at)
        .where(
            messages.c.room_id == bindparam("room_id"),
            messages.c.public_key == bindparam("public_key"),
            messages.c.posted_at > bindparam("since"),
        )
        .order_by(messages.c.posted_at),
        "insert_message": insert(messages).values(
            room_id=bindparam("room_id"),
            server_id=bindparam("server_id"),
            public_key=bindparam("public_key"),
            timestamp=bindparam("timestamp"),
            data=bindparam("data"),
            signature=bindparam("signature"),
            posted_at=bindparam("posted_at"),
            deleted=false(),
        ),
    }


class PostTransaction:
    """The statements a post may run in its transaction."""

    def __init__(self, conn: Any, sql: dict[str, Statement]) -> None:
        self._conn = conn  # the driver's connection: sqlite3 or psycopg
        self._sql = sql

    def _execute(self, name: str, params: dict[str, Any]) -> Any:
        statement = self._sql[name]
        return self._conn.execute(statement.sql, statement.params(params))

    def next_message_id(self, room_id: str) -> int | None:
        """Hand out the room's next message server_id (None: no such room). On
        PostgreSQL this locks the room row until commit: its posters take turns."""
        row = self._execute("next_message_id", {"room_id": room_id}).fetchone()
        return None if row is None else int(row[0])

    def recent_post_times(self, room_id: str, public_key: str, since: float) -> list[float]:
        """When the key posted in the room after ``since``, ascending."""
        params = {"room_id": room_id, "public_key": public_key, "since": since}
        return [row[0] for row in self._execute("recent_post_times", params).fetchall()]

    def insert_message(self, room_id: str, message: Message, now: float) -> None:
        params = {
            "room_id": room_id,
            "server_id": message.server_id,
            "public_key": message.public_key,
            "timestamp": message.timestamp,
            "data": message.data,
            "signature": message.signature,
            "posted_at": now,
        }
        self._execute("insert_message", params)

    # Each post of a group runs inside a savepoint (see PostWriter._write_group).
    def savepoint(self) -> None:
        self._conn.execute("SAVEPOINT post")

    def release_savepoint(self) -> None:
        self._conn.execute("RELEASE post")

    def rollback_to_savepoint(self) -> None:
        self._conn.execute("ROLLBACK TO post")
        self._conn.execute("RELEASE post")


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
        self._sql = compile_statements(_statements(), driver_dialect(db.dialect))
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
        """Every work in one transaction, each in a savepoint: (result, error) each."""
        outcomes: list[tuple[Any, Exception | None]] = []
        with self._transaction() as tx:
            for work in works:
                tx.savepoint()
                try:
                    result = work(tx)
                except Exception as exc:
                    # If this fails too the transaction is broken: the whole group fails.
                    tx.rollback_to_savepoint()
                    outcomes.append((None, exc))
                else:
                    tx.release_savepoint()
                    outcomes.append((result, None))
        return outcomes


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled while its post was being written
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
