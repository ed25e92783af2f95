"""Posts written together (group commit, opengroup/storage/postwriter.py).

The posts waiting at one moment share one transaction. A post refused by its
rate limit writes nothing: it is answered alone and the others are stored,
with no gap in their ids. The limit counts the key's posts already stored and
those accepted earlier in the same group. If the transaction fails, no post
of the group is stored and none takes an id. These run the writer on the real
database of the run's backend.

A post is written at once, on the event loop, when nothing else is in its
way, and fewer writes than the rate allows were made so in this second
(``Database.write_at_once``): on SQLite, when the write lock (ours, and
SQLite's own, which another program may hold) is free this moment; on
PostgreSQL, when no statement of it waits for a lock longer than
``LOOP_LOCK_WAIT_MS``. It is then answered within the turn of the loop that
handles it. When a lock is held, nothing is written there: the post waits for
the writer's thread and the loop goes on meanwhile.

A request whose handler reads, then makes one write transaction (a reaction) is
answered on the loop the same way (``Database.one_write_at_once``): its write is
made at once if it can be; if not, nothing is written and the request runs again
from a thread. A second write there is a fault of the code, never made.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness.flows import turns_until_done

from opengroup.storage import migrate
from opengroup.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database, WriteOnEventLoop
from opengroup.storage.driversql import driver_connection
from opengroup.storage.postwriter import GroupWriteFailed, NewPost, PostWriter, RoomRules
from opengroup.storage.writelock import WriteLock

ROOM = "main"  # made by the first migration
ALICE, BOB = "05" + "aa" * 32, "05" + "bb" * 32


class Refused(Exception):
    pass


def at_most(count: int):
    """A rate check allowing ``count`` posts in the window."""

    def check(recent: Sequence[float]) -> None:
        if len(recent) >= count:
            raise Refused(len(recent))

    return check


@dataclass(frozen=True)
class WindowJudge:
    """A post's rules as the writer sees them: ``check`` is handed the key's posts
    after ``since``."""

    since: float
    check: Callable[[Sequence[float]], None]

    def posts_since(self, room: RoomRules) -> float | None:
        return self.since

    def needs_first_seen(self, room: RoomRules) -> bool:
        return False

    def judge(self, room: RoomRules, recent: Sequence[float], first_seen: float | None) -> None:
        self.check(recent)


def new_post(
    data: str,
    key: str = ALICE,
    room: str = ROOM,
    check: Callable[[Sequence[float]], None] | None = None,
    posted_at: float = 100.0,
    limit_since: float = 0.0,
) -> NewPost:
    judge = WindowJudge(limit_since, check) if check is not None else None
    return NewPost(room, key, 1, data, "sig", posted_at, judge=judge)


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    url = fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}"
    database = Database(url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def stored(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT server_id, data FROM messages ORDER BY server_id"))
        return [(row[0], row[1]) for row in rows]


def write_together(writer: PostWriter, *posts: NewPost) -> list[object]:
    """Queued in one go, so the writer takes them as one group."""

    async def run() -> list[object]:
        return await asyncio.gather(*(writer.write(p) for p in posts), return_exceptions=True)

    return asyncio.run(run())


def server_ids(results: list[object]) -> list[object]:
    return [getattr(r, "server_id", r) for r in results]


def test_posts_of_a_group_get_consecutive_ids_in_the_order_they_came(db: Database) -> None:
    writer = PostWriter(db)
    results = write_together(writer, new_post("one"), new_post("two", BOB), new_post("three"))

    assert server_ids(results) == [1, 2, 3]
    assert stored(db) == [(1, "one"), (2, "two"), (3, "three")]


def test_a_refused_post_is_answered_alone_and_takes_no_id(db: Database) -> None:
    writer = PostWriter(db)
    results = write_together(
        writer, new_post("one"), new_post("no", BOB, check=at_most(0)), new_post("two")
    )

    assert server_ids(results)[0::2] == [1, 2]
    assert isinstance(results[1], Refused)
    assert stored(db) == [(1, "one"), (2, "two")]


def test_the_limit_counts_stored_posts_and_those_earlier_in_the_group(db: Database) -> None:
    writer = PostWriter(db)
    first = write_together(writer, new_post("one", check=at_most(2)))
    group = write_together(
        writer,
        new_post("two", check=at_most(2)),
        new_post("three", check=at_most(2)),  # the window holds "one" and "two"
        new_post("bob's", BOB, check=at_most(2)),  # another key: its own window
    )

    assert server_ids(first) == [1]
    assert server_ids(group)[0::2] == [2, 3]
    assert isinstance(group[1], Refused) and group[1].args == (2,)
    assert stored(db) == [(1, "one"), (2, "two"), (3, "bob's")]


def test_posts_before_the_window_do_not_count(db: Database) -> None:
    """Stored or earlier in the group, a post at or before ``limit_since`` is outside."""
    writer = PostWriter(db)
    one_allowed = at_most(1)
    stored_early = write_together(writer, new_post("at 10", posted_at=10.0, check=one_allowed))
    group = write_together(
        writer,
        new_post("at 60", posted_at=60.0, limit_since=10.0, check=one_allowed),
        new_post("at 100", posted_at=100.0, limit_since=60.0, check=one_allowed),
        new_post("at 101", posted_at=101.0, limit_since=61.0, check=one_allowed),
    )

    assert server_ids(stored_early) == [1]
    assert server_ids(group)[:2] == [2, 3]  # "at 10" left the first's window, "at 60" the second's
    assert isinstance(group[2], Refused)  # "at 100" is in its window
    assert stored(db) == [(1, "at 10"), (2, "at 60"), (3, "at 100")]


def test_each_key_counts_its_own_posts_after_its_own_start(db: Database) -> None:
    """The keys' stored posts are read in one statement, from the earliest start of the
    group's: each key still counts only its own, and only those after its start."""
    writer = PostWriter(db)
    write_together(writer, new_post("alice at 50", posted_at=50.0))
    write_together(writer, new_post("bob at 50", BOB, posted_at=50.0))
    group = write_together(
        writer,
        # alice's window starts after her post at 50, and bob's is not hers
        new_post("alice at 100", posted_at=100.0, limit_since=60.0, check=at_most(1)),
        # bob's starts before his own post at 50, which counts, and alice's does not
        new_post("bob at 100", BOB, posted_at=100.0, limit_since=10.0, check=at_most(2)),
        new_post("bob at 101", BOB, posted_at=101.0, limit_since=10.0, check=at_most(2)),
    )

    assert server_ids(group)[:2] == [3, 4]
    assert isinstance(group[2], Refused) and group[2].args == (2,)


def test_no_such_room_stores_nothing_and_takes_no_id(db: Database) -> None:
    writer = PostWriter(db)
    results = write_together(
        writer,
        new_post("lost", room="nowhere"),
        new_post("lost too", room="nowhere", check=at_most(5)),
        new_post("one"),
    )

    assert server_ids(results) == [None, None, 1]
    assert stored(db) == [(1, "one")]


def test_a_failed_transaction_fails_every_post_of_its_group(db: Database) -> None:
    writer = PostWriter(db)
    broken = new_post("broken")
    broken.data = None  # type: ignore[assignment]  # NOT NULL: the insert fails
    group = write_together(writer, new_post("one"), broken, new_post("two", BOB))
    after = write_together(writer, new_post("three"))

    assert all(isinstance(result, GroupWriteFailed) for result in group), group
    assert server_ids(after) == [1]  # the failed group took no ids
    assert stored(db) == [(1, "three")]


@contextmanager
def loop_writes(
    db: Database, per_second: int, clock: Callable[[], float] = time.monotonic
) -> Iterator[Database]:
    """The database as a server worker opens it: it may write on the event loop."""
    server = Database(db.url, loop_writes_per_second=per_second, clock=clock)
    try:
        yield server
    finally:
        server.dispose()


def turns_of_posts(db: Database, *data: str) -> list[int | None]:
    """Each post written in turn: how many turns of the loop it took (see above)."""
    writer = PostWriter(db)

    async def run() -> list[int | None]:
        taken = []
        for text in data:
            task = asyncio.ensure_future(writer.write(new_post(text)))
            taken.append(await turns_until_done(task))
            await task
        return taken

    return asyncio.run(run())


def test_a_lone_post_is_written_within_its_turn_of_the_loop(db: Database) -> None:
    with loop_writes(db, 10) as server:
        turns = turns_of_posts(server, "one")

    assert stored(db) == [(1, "one")]
    assert turns == [1]


def test_writes_past_the_rate_in_a_second_go_to_the_writer(db: Database) -> None:
    now = [1000.2]
    with loop_writes(db, 2, clock=lambda: now[0]) as server:
        in_a_second = turns_of_posts(server, "one", "two", "three")
        now[0] = 1001.0  # the next second
        next_second = turns_of_posts(server, "four")

    assert in_a_second + next_second == [1, 1, None, 1]
    assert stored(db) == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]


def test_with_a_rate_of_0_a_post_goes_to_the_writer(db: Database) -> None:
    assert turns_of_posts(db, "one") == [None]
    assert stored(db) == [(1, "one")]


def wait_while_held(
    db: Database, server: Database, hold: Callable[[], object], release: Callable[[], object]
) -> None:
    """Write a post through ``server`` while ``hold()`` keeps others from writing: it
    must not be written at once, nor block the loop, and must be stored once
    ``release()`` is called."""

    async def run(writer: PostWriter) -> object:
        task = asyncio.ensure_future(writer.write(new_post("waited")))
        start = time.monotonic()
        await asyncio.sleep(0.3)  # the loop turns meanwhile: nothing blocks it
        assert time.monotonic() - start < 1.0
        assert not task.done()
        release()
        return await asyncio.wait_for(task, 10)

    hold()
    result = asyncio.run(run(PostWriter(server)))
    assert server_ids([result]) == [1]
    assert stored(db) == [(1, "waited")]


class AnotherThreadWriting:
    """A thread that holds a write transaction of ``db`` from :meth:`hold` until
    :meth:`release` (through another Database on the file than the loop's: to it, a
    thread of its own process, or another process; either way it must wait). On
    PostgreSQL the transaction holds the row of the room ``ROOM``, as a post's does."""

    def __init__(self, db: Database) -> None:
        self.holding, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._write, args=(db,))

    def _write(self, db: Database) -> None:
        with db.write() as conn:
            if not db.is_sqlite:  # (SQLite: its write lock is held from the start)
                conn.execute(sa.text("SELECT 1 FROM rooms WHERE id = :id FOR UPDATE"), {"id": ROOM})
            self.holding.set()
            self.done.wait(10)

    def hold(self) -> None:
        self.thread.start()
        self.holding.wait(10)

    def release(self) -> None:
        self.done.set()
        self.thread.join()


def test_a_post_waits_for_the_writer_while_another_thread_writes(db: Database) -> None:
    other = AnotherThreadWriting(db)
    with loop_writes(db, 10) as server:
        wait_while_held(db, server, other.hold, other.release)


def test_while_a_group_is_being_written_a_post_waits_for_the_next(db: Database) -> None:
    """Even to a room no one holds. On SQLite the group holds the write lock; on
    PostgreSQL a write on the loop would commit alone, its flush to disk with the
    loop waiting, where the next group's commit serves every post queued by then."""
    with db.write() as conn:
        add_room(conn, "lobby")
    other = AnotherThreadWriting(db)

    async def run(writer: PostWriter) -> list[object]:
        held = asyncio.ensure_future(writer.write(new_post("held")))  # its group waits
        await asyncio.sleep(0.2)
        free = asyncio.ensure_future(writer.write(new_post("free", room="lobby")))
        await asyncio.sleep(0.2)
        assert not held.done() and not free.done()
        other.release()
        return list(await asyncio.wait_for(asyncio.gather(held, free), 10))

    other.hold()
    try:
        with loop_writes(db, 10) as server:
            results = asyncio.run(run(PostWriter(server)))
    finally:
        other.release()
    assert server_ids(results) == [1, 1]  # (each room's first)
    assert sorted(stored(db)) == [(1, "free"), (1, "held")]


def test_a_post_that_gave_way_on_postgresql_leaves_its_connection_as_it_was(
    db: Database,
) -> None:
    """The write waited ``LOOP_LOCK_WAIT_MS`` for the room's row, was rolled back, and
    its connection went back to the pool with the server's own lock timeout."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's lock timeout")
    other = AnotherThreadWriting(db)
    with loop_writes(db, 10) as server:
        wait_while_held(db, server, other.hold, other.release)
        with server.engine.connect() as conn:
            timeout = conn.exec_driver_sql("SHOW lock_timeout").scalar()
    assert timeout == "0"


def test_a_post_waits_while_another_process_writes(db: Database) -> None:
    """Another server process holds the lock file (a lock of its own, on a descriptor
    of its own); SQLite's lock is not taken yet."""
    if not db.is_sqlite:
        pytest.skip("SQLite's write lock")
    other_process = WriteLock(db.engine.url.database or "")
    holding = other_process.held()
    with loop_writes(db, 10) as server:
        wait_while_held(db, server, holding.__enter__, lambda: holding.__exit__(None, None, None))
    other_process.close()


def test_a_post_waits_while_another_program_holds_sqlites_lock(db: Database) -> None:
    """Another program takes no write lock of ours; SQLite's own lock must not make
    the event loop wait (its busy timeout) either, and the connection's timeout is as
    before afterwards."""
    if not db.is_sqlite:
        pytest.skip("SQLite's own lock")
    other = sqlite3.connect(db.engine.url.database or "", isolation_level=None)
    with loop_writes(db, 10) as server:
        wait_while_held(
            db, server, lambda: other.execute("BEGIN IMMEDIATE"), lambda: other.execute("COMMIT")
        )
        # Every idle connection of the pool, the one the loop tried among them, has it back.
        idle = server.engine.pool.checkedin()  # type: ignore[attr-defined]
        pooled = [server.engine.raw_connection() for _ in range(idle)]
        timeouts = {driver_connection(p).execute("PRAGMA busy_timeout").fetchone() for p in pooled}
        for p in pooled:
            p.close()
    other.close()
    assert timeouts == {(SQLITE_BUSY_TIMEOUT_MS,)}


# --------------------------------------------------------------------------- one write


def add_room(conn: sa.Connection, token: str) -> None:
    conn.execute(
        sa.text("INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at)"
                " VALUES (:token, :name, 0, 0, 0)"),
        {"token": token, "name": token},
    )  # fmt: skip


def room_ids(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT id FROM rooms ORDER BY id"))]


def rename_main(conn: sa.Connection, name: str) -> None:
    conn.execute(
        sa.text("UPDATE rooms SET name = :name WHERE id = :id"), {"name": name, "id": ROOM}
    )


def room_names(db: Database) -> list[tuple[str, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, name FROM rooms ORDER BY id"))
        return [(row[0], row[1]) for row in rows]


def test_one_write_on_the_loop_is_made_at_once_when_nothing_else_writes(db: Database) -> None:
    with loop_writes(db, 10) as server, server.one_write_at_once(), server.write() as conn:
        add_room(conn, "lobby")
    assert room_ids(db) == ["lobby", ROOM]


def test_one_write_on_the_loop_writes_nothing_while_another_thread_writes(
    db: Database,
) -> None:
    """On SQLite any write finds the lock held; on PostgreSQL, one that touches the
    row the other transaction holds (its first statement, made before, is undone)."""
    names = room_names(db)
    other = AnotherThreadWriting(db)
    other.hold()
    try:
        with loop_writes(db, 10) as server, server.one_write_at_once():
            start = time.monotonic()
            with pytest.raises(WriteOnEventLoop), server.write() as conn:
                add_room(conn, "lobby")
                rename_main(conn, "renamed")
            assert time.monotonic() - start < 1.0  # it did not wait for the lock
    finally:
        other.release()
    assert room_names(db) == names


def test_a_failure_other_than_a_lock_is_the_writes_own(db: Database) -> None:
    """Only a lock makes a write on the loop give way (to be made again from a
    thread): any other failure is raised as it is, and nothing is written."""
    with (
        loop_writes(db, 10) as server,
        server.one_write_at_once(),
        pytest.raises(sa.exc.IntegrityError),
        server.write() as conn,
    ):
        add_room(conn, "lobby")
        add_room(conn, "lobby")
    assert room_ids(db) == [ROOM]


def test_a_second_write_on_the_loop_is_a_fault_and_not_made(db: Database) -> None:
    with loop_writes(db, 10) as server, server.one_write_at_once():
        with server.write() as conn:
            add_room(conn, "lobby")
        with pytest.raises(RuntimeError, match="second write") as raised, server.write() as conn:
            add_room(conn, "other")
        assert not isinstance(raised.value, WriteOnEventLoop)  # (never run again from a thread)
    assert room_ids(db) == ["lobby", ROOM]
