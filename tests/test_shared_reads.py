"""A thread's shared read (Database.shared_reads), on the run's backend: one
connection for every read inside it (on SQLite one snapshot; on PostgreSQL each
statement sees every commit before it, with no BEGIN and COMMIT, which is also how a
request's own reads run there), writes on their own connection beside it, a failed
statement ending it without spoiling the reads after it, a thread's next shared read
on the connection its last one ended on, and a pool in which every thread may hold a
shared read and a write at once. And a write of one statement (Database.one_statement_write),
which on PostgreSQL commits by itself on a connection kept the same way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from opengroup.storage import migrate
from opengroup.storage.database import Database

COUNT_ROOMS = sa.text("SELECT count(*) FROM rooms")


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    database = Database(fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def add_room(db: Database, token: str) -> None:
    with db.write() as conn:
        insert_room(conn, token)


def insert_room(conn: sa.Connection, token: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at)"
            " VALUES (:token, :name, 0, 0, 0)"
        ),
        {"token": token, "name": token.title()},
    )


def rooms(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(COUNT_ROOMS).scalar_one())


def test_reads_inside_share_one_connection_and_on_sqlite_its_snapshot(db: Database) -> None:
    with db.shared_reads():
        with db.read() as first:
            before = int(first.execute(COUNT_ROOMS).scalar_one())
        add_room(db, "lobby")  # committed on another connection
        with db.read() as second:
            assert second is first
            seen = int(second.execute(COUNT_ROOMS).scalar_one())
            assert seen == (before if db.is_sqlite else before + 1)
            if not db.is_sqlite:  # no transaction held open: nothing to end
                driver = second.connection.driver_connection
                assert driver is not None
                assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with db.own_reads():
            assert rooms(db) == before + 1
        assert rooms(db) == before + 1  # the shared read ended, the next one is new
    assert rooms(db) == before + 1


def test_own_reads_each_see_the_writes_committed_before_them(db: Database) -> None:
    """What a request that may write reads with: each read sees every write committed
    before it. On PostgreSQL they share one connection with no transaction held open
    (no BEGIN and COMMIT round trips), as shared reads do; on SQLite each read has a
    transaction of its own."""
    before = rooms(db)
    with db.own_reads():
        with db.read() as first:
            assert int(first.execute(COUNT_ROOMS).scalar_one()) == before
        add_room(db, "lobby")
        with db.read() as second:
            assert int(second.execute(COUNT_ROOMS).scalar_one()) == before + 1
            assert (second is first) is not db.is_sqlite
            if not db.is_sqlite:
                driver = second.connection.driver_connection
                assert driver is not None
                assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_one_statement_write_commits_with_its_statement_on_postgresql(db: Database) -> None:
    """Database.one_statement_write: on PostgreSQL the statement commits by itself (no
    BEGIN and COMMIT), on a connection the thread keeps for the next such write; on
    SQLite it is a write transaction, undone if the block raises."""
    before = rooms(db)
    with pytest.raises(LookupError), db.one_statement_write() as conn:
        insert_room(conn, "lobby")
        raise LookupError
    kept = 0 if db.is_sqlite else 1
    assert rooms(db) == before + kept
    with db.one_statement_write() as first:
        insert_room(first, "hall")
        assert rooms(db) == before + kept + (0 if db.is_sqlite else 1)  # (seen from another)
        if not db.is_sqlite:
            driver = first.connection.driver_connection
            assert driver is not None
            assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with db.one_statement_write() as second:
        insert_room(second, "porch")
        assert (second is first) is not db.is_sqlite
    assert rooms(db) == before + kept + 2


def test_reads_outside_each_have_their_own_transaction(db: Database) -> None:
    with db.read() as first:
        first.execute(COUNT_ROOMS).scalar_one()
    with db.read() as second:
        assert second is not first


def test_a_failed_statement_ends_the_shared_read_and_the_next_read_works(db: Database) -> None:
    before = rooms(db)
    with db.shared_reads():
        with pytest.raises(sa.exc.DBAPIError), db.read() as conn:
            conn.execute(sa.text("SELECT nothing FROM no_such_table"))
        assert rooms(db) == before  # on PostgreSQL, an aborted transaction would refuse this


def test_an_exception_in_a_read_ends_the_shared_read(db: Database) -> None:
    with db.shared_reads():
        with pytest.raises(LookupError), db.read() as first:
            first.execute(COUNT_ROOMS).scalar_one()
            raise LookupError
        with db.read() as second:
            assert second is not first


def test_the_next_shared_read_is_on_the_same_connection_and_sees_what_came_between(
    db: Database,
) -> None:
    with db.shared_reads(), db.read() as first:
        before = int(first.execute(COUNT_ROOMS).scalar_one())
    add_room(db, "lobby")
    with db.shared_reads(), db.read() as second:
        assert second is first  # kept, not checked out of the pool again
        assert int(second.execute(COUNT_ROOMS).scalar_one()) == before + 1  # a new snapshot


def test_a_failed_shared_read_gives_its_connection_back(db: Database) -> None:
    with db.shared_reads(), pytest.raises(LookupError), db.read() as failed:
        raise LookupError
    with db.shared_reads(), db.read() as after:
        assert after is not failed
        after.execute(COUNT_ROOMS).scalar_one()
    assert failed.closed


def test_dispose_closes_the_connections_threads_keep(db: Database) -> None:
    def shared_read() -> None:
        with db.shared_reads():
            rooms(db)

    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(shared_read) for _ in range(3)]:
            future.result()
    shared_read()
    assert db.engine.pool.checkedout() >= 2  # type: ignore[attr-defined]  # (QueuePool)
    db.dispose()
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_every_thread_may_hold_a_shared_read_and_write(tmp_path: Path, db: Database) -> None:
    """As many threads as pooled connections each hold a shared read and another
    connection (as a write takes) at once: none waits for a connection."""
    threads = 10
    before = rooms(db)
    small = Database(db.url, pool_size=threads)
    holding = threading.Barrier(threads, timeout=10)

    def read_then_write(n: int) -> int:
        with small.shared_reads():
            rooms(small)
            with small.engine.connect():
                holding.wait()  # every thread holds two connections now
            add_room(small, f"room{n}")
            with small.own_reads():
                return rooms(small)

    try:
        with ThreadPoolExecutor(threads) as pool:
            counts = list(pool.map(read_then_write, range(threads)))
    finally:
        small.dispose()
    assert all(before < count <= before + threads for count in counts)
    assert rooms(db) == before + threads
