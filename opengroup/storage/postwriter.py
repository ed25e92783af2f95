"""Posting's write transactions: on the driver itself, at once or in groups.

Posting is the write clients make most. Its statements are SQLAlchemy Core,
compiled once (:mod:`opengroup.storage.driversql`) and run on a pooled
connection's own ``sqlite3`` or ``psycopg`` object. Posts are written one
after another (one writer on SQLite; on PostgreSQL a room's posts wait on its
row until commit), and most of a write's cost comes once per transaction. So
the posts waiting at the same moment share one transaction (group commit),
unless a post can be written without waiting:

- :meth:`PostWriter.write` first asks the database for a write transaction on
  the event loop (:meth:`Database.write_at_once`: under the rate of such
  writes; on SQLite, the write lock free this moment; on PostgreSQL, no group
  being written, and given way at once if a statement waits for a lock). If
  it gets one, the post is written there, in a transaction of its own, by the
  same rules as a group of one; a busy event loop takes tens of milliseconds
  to come back from a thread.
- Otherwise :meth:`PostWriter.write` queues the post and waits (a
  :class:`~opengroup.storage.batching.Batcher` of one batch at a time). If no
  group of this process is being written, a group starts at once; otherwise
  the post waits for the group in progress to end.
- A group is every post queued since the previous group started. One worker
  thread writes it in one transaction (on SQLite under the database's write
  lock, :meth:`Database.writing`), room by room, rooms in the order of their
  ids: the groups of two processes then lock rooms in the same order and never
  wait for each other in a circle.
- A room's posts are judged first, in the order they came, by the rules the
  domain hands with each post (:class:`PostJudge`: rate limit, slow mode, how
  long the poster must have been seen). The room's row is locked and its own
  rules read in one statement; then, only as the rules need them, the keys'
  posts in their windows (those stored, one statement for every key, and those
  accepted earlier in the group) and when the keys were first seen (one
  statement). The lock comes first, so two processes
  cannot both count the same window. (So a group of posts by many keys makes
  three reads however many keys it holds.) Then the accepted ones take
  their ids with one ``UPDATE ... RETURNING`` and are stored with one
  ``executemany`` (one pipeline on PostgreSQL). A refusal writes nothing, so
  it needs no savepoint and disturbs nobody.
- After the commit each post gets its result. If the transaction itself
  failed, nothing of the group was stored and each post fails with
  :class:`GroupWriteFailed`.

The measurements behind this shape are in bench/RESULTS.md ("Design notes
moved from the code").
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ClauseElement,
    Float,
    String,
    bindparam,
    false,
    insert,
    select,
    update,
)

from opengroup.storage.batching import Batcher
from opengroup.storage.database import Database, WriteGaveWay, is_broken
from opengroup.storage.driversql import (
    DriverConnection,
    HotStatement,
    Statement,
    compile_statements,
    driver_connection,
    driver_dialect,
    rows_with_key_in,
)
from opengroup.storage.posts import keep_files_on
from opengroup.storage.queries import Message
from opengroup.storage.schema import messages, rooms, users
from opengroup.threads import Threads


@dataclass(frozen=True)
class RoomRules:
    """A room's own posting rules as stored (None: the server's default applies)."""

    slow_mode_seconds: int | None = None
    new_poster_wait_seconds: int | None = None


class PostJudge(Protocol):
    """The domain's rules for one post, applied in the writer's transaction once the
    room's row is locked (see :mod:`opengroup.domain.spam`)."""

    def posts_since(self, room: RoomRules) -> float | None:
        """The poster's posts in the room after this time are to be judged (None: no
        rule needs them)."""

    def needs_first_seen(self, room: RoomRules) -> bool:
        """Whether the rules need the time the poster was first seen."""

    def judge(self, room: RoomRules, recent: Sequence[float], first_seen: float | None) -> None:
        """Return to accept the post, raise to refuse it. ``recent``: the times of the
        key's posts after :meth:`posts_since` (stored, then accepted earlier in the
        group); ``first_seen``: when the key was first seen (None: never recorded, or
        not asked for)."""


def _statements() -> dict[str, ClauseElement]:
    room_id: BindParameter[str] = bindparam("room_id")
    return {
        # The room's row lock (as queries.LOCK_ROOM) and, in the same statement, its rules.
        "lock_room_rules": select(rooms.c.slow_mode_seconds, rooms.c.new_poster_wait_seconds)
        .where(rooms.c.id == room_id)
        .with_for_update(key_share=True),
        # The room's next `count` ids and seqnos (the last of each returned); locks the row.
        "take_ids": update(rooms)
        .where(rooms.c.id == room_id)
        .values(
            message_seq=rooms.c.message_seq + bindparam("count"),
            seqno=rooms.c.seqno + bindparam("count"),
        )
        .returning(rooms.c.message_seq, rooms.c.seqno),
        "insert_message": insert(messages).values(
            room_id=room_id,
            server_id=bindparam("server_id"),
            public_key=bindparam("public_key"),
            timestamp=bindparam("timestamp"),
            data=bindparam("data"),
            signature=bindparam("signature"),
            posted_at=bindparam("posted_at"),
            deleted=false(),
            seqno=bindparam("seqno"),
            seqno_data=bindparam("seqno"),
            seqno_created=bindparam("seqno"),
            whisper_to=bindparam("whisper_to"),
            whisper_mods=bindparam("whisper_mods"),
        ),
    }


# The rules' reads, one statement for every key of a room's posts in the group
# (HotStatements, not _statements(): their lists of keys are expanded per length).
_POSTS_OF_KEYS = HotStatement(
    "postwriter.posts_of_keys",
    select(messages.c.public_key, messages.c.posted_at).where(
        messages.c.room_id == bindparam("room_id", type_=String),
        messages.c.public_key.in_(bindparam("keys", expanding=True, type_=String)),
        messages.c.posted_at > bindparam("since", type_=Float),
    ),
    expanding=["keys"],
)


def _first_seen_statement(dialect_name: str) -> Any:
    seen = rows_with_key_in(users.c.session_id, "keys", dialect_name)
    return select(seen.c.session_id, seen.c.first_seen)


_FIRST_SEEN = HotStatement("postwriter.first_seen", _first_seen_statement, expanding=["keys"])


@dataclass
class NewPost:
    """A message to store, and the rules it is held to (None: exempt)."""

    room_id: str
    public_key: str
    timestamp: int
    data: str
    signature: str
    posted_at: float
    whisper_to: str | None = None
    whisper_mods: bool = False
    judge: PostJudge | None = None
    # Uploads the post names, kept until ``files_until`` if the poster uploaded them
    # to the room under one of ``uploader_keys`` (in the post's transaction).
    file_ids: tuple[int, ...] = ()
    uploader_keys: tuple[str, ...] = ()
    files_until: float = 0.0


# What a post of a group came to: its message (None: no such room), or why it was refused.
Outcome = Message | None | Exception


class GroupWriteFailed(RuntimeError):
    """The transaction of a post's group failed: the post was not stored."""


class PostWriter:
    """Stores posts for code on the event loop, in groups."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = compile_statements(_statements(), driver_dialect(db.dialect))
        # One group at a time: the posts that wait meanwhile are the next group.
        self._groups: Batcher[NewPost, Message | None] = Batcher(self._write_group, 1)
        # The writer's own thread: community API posts wait for the writer from request
        # threads, so were it to queue for one of those, a full pool of waiting posts
        # would never be written.
        self._thread = Threads(1, "post-writer")

    async def write(self, post: NewPost) -> Message | None:
        """Store ``post`` in a committed transaction: its message with its server id,
        None if there is no such room, or the exception its ``judge`` raised.

        If the database can take the write here and now, on the event loop
        (:meth:`Database.write_at_once`: under the rate, with no lock in its way; on
        PostgreSQL, with no group being written), the post is written so, in a
        transaction of its own; else it joins the next
        group of the writer's thread. Posts waiting for a group do not hold it back:
        were they to, a busy server would stay in groups once one formed, as a group
        takes several turns of the loop while posts keep coming.
        """
        outcomes = None if self._in_groups() else self._write_at_once([post])
        if outcomes is None:
            return await self._groups.submit(post)
        outcome = outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _in_groups(self) -> bool:
        """PostgreSQL: while a group is being written, posts join the next. A write on
        the loop commits alone, its flush to disk with the loop waiting, where a
        group's commit serves many beside the loop: under a burst of posts the loop
        sat idle a third of the time, and scenario (g) lost half its rate. (On
        SQLite the group holds the write lock, and the same post is written at once
        the moment the group is done: see :meth:`write`.)"""
        return not self._db.is_sqlite and self._groups.busy

    def _write_at_once(self, group: list[NewPost]) -> list[Outcome] | None:
        """The group written here and now (on the event loop) if the database can
        take a write without waiting, else None."""
        try:
            with self._db.write_at_once() as conn:
                if conn is None:
                    return None
                return self._write_rooms(driver_connection(conn.connection), group)
        except WriteGaveWay:  # (PostgreSQL: a lock was held; nothing was written)
            return None
        except Exception as exc:
            return _all_failed(group, exc)

    async def close(self) -> None:
        """Stop writing: the groups under way are cancelled, then the thread ends."""
        await self._groups.close()
        self._thread.close()

    async def _write_group(self, group: list[NewPost]) -> list[Message | Exception | None]:
        """A group in one transaction, in a thread of the writer's own: an outcome per
        post, in the group's order (every post fails if the transaction does)."""
        # Stable: each room's posts stay in the order they came.
        order = sorted(range(len(group)), key=lambda n: group[n].room_id)
        by_room = [group[n] for n in order]
        try:
            outcomes = await self._thread.run(self._write_in_thread, by_room)
        except Exception as exc:
            return _all_failed(group, exc)
        results: list[Message | Exception | None] = [None] * len(group)
        for n, outcome in zip(order, outcomes, strict=True):
            results[n] = outcome
        return results

    def _write_in_thread(self, group: list[NewPost]) -> list[Outcome]:
        """The group (sorted by room) in one transaction: an outcome per post."""
        with closing(self._db.engine.raw_connection()) as pooled, self._db.writing():
            conn = driver_connection(pooled)
            if self._db.is_sqlite:
                conn.execute("BEGIN IMMEDIATE")  # PostgreSQL: the first statement begins
            try:
                outcomes = self._write_rooms(conn, group)
                conn.commit()
            except BaseException:
                if is_broken(pooled):
                    pooled.invalidate()  # (a lost connection cannot roll back)
                else:
                    conn.rollback()
                raise
        return outcomes

    def _write_rooms(self, conn: DriverConnection, group: list[NewPost]) -> list[Outcome]:
        """The group (sorted by room) in the transaction ``conn`` is in: an outcome per
        post (the caller commits)."""
        outcomes: list[Outcome] = []
        for room_id, posts in groupby(group, key=lambda post: post.room_id):
            batch = _RoomBatch(conn, self._db.dialect, self._sql, room_id, list(posts))
            outcomes += batch.write()
        return outcomes


def _all_failed(group: list[NewPost], exc: Exception) -> list[Outcome]:
    """Each post's outcome when the group's transaction failed: nothing was stored."""
    failures: list[Outcome] = []
    for _ in group:
        failed = GroupWriteFailed("the transaction of this post failed")
        failed.__cause__ = exc
        failures.append(failed)
    return failures


class _RoomBatch:
    """The posts of one group to one room, written on the group's connection."""

    def __init__(
        self,
        conn: DriverConnection,
        dialect_name: str,
        sql: dict[str, Statement],
        room_id: str,
        posts: list[NewPost],
    ) -> None:
        self.conn = conn
        self.dialect_name = dialect_name
        self.sql = sql
        self.room_id = room_id
        self.posts = posts

    def _execute(self, name: str, params: dict[str, Any]) -> Any:
        statement = self.sql[name]
        return self.conn.execute(statement.sql, statement.params(params))

    def write(self) -> list[Outcome]:
        no_room: list[Outcome] = [None] * len(self.posts)  # and nothing written
        refusals = self._judge()
        if refusals is None:
            return no_room
        accepted = [
            post for post, refused in zip(self.posts, refusals, strict=True) if refused is None
        ]
        first = first_seqno = 0
        if accepted:
            taken = self._take_ids(len(accepted))
            if taken is None:
                return no_room
            first, first_seqno = taken
            self._insert(accepted, first, first_seqno)
            self._keep_files(accepted)
        ids = iter(range(len(accepted)))
        outcomes: list[Outcome] = []
        for post, refused in zip(self.posts, refusals, strict=True):
            if refused is None:
                n = next(ids)
                outcomes.append(_message(post, first + n, first_seqno + n))
            else:
                outcomes.append(refused)
        return outcomes

    def _judge(self) -> list[Exception | None] | None:
        """Each post's refusal (None: accepted), in order; None if there is no such room."""
        judged = [post for post in self.posts if post.judge is not None]
        if not judged:
            return [None] * len(self.posts)
        row = self._execute("lock_room_rules", {"room_id": self.room_id}).fetchone()
        if row is None:
            return None
        room = RoomRules(row[0], row[1])
        # Each key's posts in its earliest window of the batch: stored, then accepted here.
        since: dict[str, float] = {}
        first_seen_of: set[str] = set()
        for post in judged:
            assert post.judge is not None
            start = post.judge.posts_since(room)
            if start is not None:
                since[post.public_key] = min(start, since.get(post.public_key, start))
            if post.judge.needs_first_seen(room):
                first_seen_of.add(post.public_key)
        recent = self._recent_times(since)
        first_seen = self._first_seen(first_seen_of)
        refusals: list[Exception | None] = []
        for post in self.posts:
            if post.judge is None:
                refusals.append(None)
                continue
            start = post.judge.posts_since(room)
            times = recent.get(post.public_key, [])
            window = [t for t in times if t > start] if start is not None else []
            try:
                post.judge.judge(room, window, first_seen.get(post.public_key))
            except Exception as refusal:
                refusals.append(refusal)
                continue
            if post.public_key in recent:
                times.append(post.posted_at)
            refusals.append(None)
        return refusals

    def _recent_times(self, since: dict[str, float]) -> dict[str, list[float]]:
        """When each key posted in the room after its time in ``since`` (one statement
        for them all)."""
        if not since:
            return {}
        params = {"room_id": self.room_id, "since": min(since.values())}
        rows = _POSTS_OF_KEYS.run_on(self.conn, self.dialect_name, params, keys=list(since))
        times: dict[str, list[float]] = {key: [] for key in since}
        for key, posted_at in rows.fetchall():
            times[key].append(posted_at)  # (each post counts those after its own start)
        return times

    def _first_seen(self, keys: set[str]) -> dict[str, float]:
        """When each of ``keys`` was first seen, where that was recorded (one statement)."""
        if not keys:
            return {}
        rows = _FIRST_SEEN.run_on(self.conn, self.dialect_name, {}, keys=sorted(keys))
        return {key: float(first_seen) for key, first_seen in rows.fetchall()}

    def _take_ids(self, count: int) -> tuple[int, int] | None:
        """The first of ``count`` new server ids and seqnos of the room (locking its
        row until commit), or None if there is no such room."""
        row = self._execute("take_ids", {"room_id": self.room_id, "count": count}).fetchone()
        return None if row is None else (int(row[0]) - count + 1, int(row[1]) - count + 1)

    def _insert(self, accepted: list[NewPost], first: int, first_seqno: int) -> None:
        """The accepted posts under ids ``first``, ``first + 1``, ... and seqnos
        ``first_seqno``, ...: one pipeline on PostgreSQL."""
        if not accepted:
            return
        statement = self.sql["insert_message"]
        rows = [
            statement.params(
                {
                    "room_id": self.room_id,
                    "server_id": first + n,
                    "public_key": post.public_key,
                    "timestamp": post.timestamp,
                    "data": post.data,
                    "signature": post.signature,
                    "posted_at": post.posted_at,
                    "seqno": first_seqno + n,
                    "whisper_to": post.whisper_to,
                    "whisper_mods": post.whisper_mods,
                }
            )
            for n, post in enumerate(accepted)
        ]
        self.conn.cursor().executemany(statement.sql, rows)

    def _keep_files(self, accepted: list[NewPost]) -> None:
        for post in accepted:
            if post.file_ids:
                keep_files_on(
                    self.conn, self.dialect_name, self.room_id, post.uploader_keys,
                    post.file_ids, post.files_until,
                )  # fmt: skip


def _message(post: NewPost, server_id: int, seqno: int) -> Message:
    return Message(
        server_id, post.public_key, post.timestamp, post.data, post.signature, seqno, post.posted_at
    )
