"""Engines and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode so readers never wait for the one writer, and write
transactions start with ``BEGIN IMMEDIATE`` (never a reader that later fails
to become a writer). Our writers first queue on a :class:`WriteLock`, shared
by the threads and the processes of the database, so they wait their turn in
the kernel rather than in SQLite's sleeping busy handler; ``busy_timeout``
still covers any other writer. The event loop never waits for either: it
writes only when both are free that moment (:meth:`Database.write_at_once`;
on PostgreSQL, its statements there wait at most a millisecond for a lock).
``synchronous=NORMAL`` keeps every committed transaction across a killed
process (only a power cut may lose the last few).
Checkpoints (copying the WAL back into the database file) are not left to
the writer whose commit fills the WAL: see :meth:`Database.checkpoint`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, PoolProxiedConnection, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from opengroup.storage.driversql import driver_connection
from opengroup.storage.writelock import WriteLock

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How often a server process checkpoints the SQLite WAL (see Database.checkpoint).
SQLITE_CHECKPOINT_SECONDS = 1.0
# Rows of each index SQLite's ANALYZE reads at most (see Database.analyze); SQLite's own
# documentation suggests a few hundred to a thousand.
ANALYSIS_ROWS = 1000
# Connections kept open unless the owner says how many (a server: one per request
# thread, see the setting request_threads); a pool smaller than the number of threads
# that use it closes and reopens connections all the time.
POOL_SIZE = 16
# Connections a thread may hold at once: a shared read (see Database.shared_reads)
# and a write. The pool may grow to twice the thread count, so no thread ever waits
# for a connection that another thread waiting for one holds.
CONNECTIONS_PER_THREAD = 2
# Connections others may hold besides: the event loop (a read, and a write: on SQLite
# one made at once, see Database.write_at_once; on PostgreSQL the admissions', see
# Database.one_statement_write), the admissions' thread, the post writer's and the
# checkpoints'.
OTHER_CONNECTIONS = 5
# PostgreSQL: how long a statement of a write on the event loop may wait for a lock
# before the write gives way to a thread (Database.write_at_once); the loop does
# nothing else meanwhile.
LOOP_LOCK_WAIT_MS = 1
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout
_UNCHANGED: AbstractContextManager[None] = nullcontext()


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a database connection failing (PostgreSQL restarted, its
    backend killed, the network gone) rather than a fault of the statement, or was
    raised because of one (a post's group whose transaction failed so). The pool
    reconnects by itself; the request that met it may be made again."""
    cause: BaseException | None = exc
    while cause is not None:
        if _is_lost_connection(cause):
            return True
        cause = cause.__cause__
    return False


def _is_lost_connection(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    import psycopg  # (only here, after a failure: SQLite's processes never need it)

    if not isinstance(driver_error, psycopg.OperationalError):
        return False
    # No SQLSTATE: the connection itself failed; 08: connection exception; 57P: the
    # server shut the session down (admin or crash shutdown, not ready for connections).
    state = driver_error.sqlstate
    return state is None or state.startswith(("08", "57P"))


def shown_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(the URL given)"


def failure_reason(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's statement and links."""
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _drop_if_broken(conn: Connection) -> None:
    """Invalidate a connection whose link to PostgreSQL failed (a statement the driver
    ran itself does not tell SQLAlchemy), so that the pool drops it rather than reset
    it, which would fail and log a traceback."""
    if conn.invalidated or conn.closed:
        return
    if is_broken(conn.connection):
        conn.invalidate()


def is_broken(pooled: PoolProxiedConnection) -> bool:
    """Whether a pooled connection's link to PostgreSQL failed (then the holder
    invalidates it, rather than roll back or give it back: see :func:`_drop_if_broken`)."""
    return bool(getattr(driver_connection(pooled), "broken", False))


def normalise_url(url: str) -> str:
    """Pick our drivers: ``postgresql://`` means psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite(engine: Engine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we send BEGIN ourselves, see below
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint = 0")  # see Database.checkpoint
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver: SQLAlchemy's execution layer would cost more than the BEGIN.
        begin = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        driver_connection(conn.connection).execute(begin)


class _Writes(Enum):
    """What a thread may write now."""

    ANY = "any"
    NONE = "none"  # within Database.reads_only
    ONE_AT_ONCE = "one at once"  # within Database.one_write_at_once, before its write
    WROTE_ONCE = "wrote once"  # ... and after it


class _SharedRead(threading.local):
    """A thread's shared read: whether :meth:`Database.read` shares one now, and the
    connection that holds it (``None`` until a read needs it); the connection the
    thread's last shared read ended on, kept for its next (``idle``); on PostgreSQL,
    the connection the thread keeps for its one-statement writes (``autocommit``, see
    :meth:`Database.one_statement_write`; the event loop's writes at once too); and
    whether the thread may write now (see
    :meth:`Database.reads_only` and :meth:`Database.one_write_at_once`)."""

    sharing = False
    conn: Connection | None = None
    idle: Connection | None = None
    autocommit: Connection | None = None
    writes = _Writes.ANY


class _PerSecond:
    """A count of events in the current second of a clock, held to a cap (used on one
    thread: the event loop's)."""

    def __init__(self, cap: int, clock: Callable[[], float]) -> None:
        self.cap = cap
        self._clock = clock
        self._second = 0
        self._count = 0

    def allow(self) -> bool:
        """Whether one more event this second stays within the cap."""
        second = int(self._clock())
        if second != self._second:
            self._second, self._count = second, 0
        return self._count < self.cap

    def count(self) -> None:
        self._count += 1


@contextmanager
def _not_busy_waiting(conn: Connection) -> Iterator[None]:
    """SQLite's busy timeout at 0 on ``conn`` for the block, then as configured."""
    driver = driver_connection(conn.connection)
    driver.execute("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


class WriteOnEventLoop(RuntimeError):
    """A write transaction began where only reads may run (:meth:`Database.reads_only`):
    a fault of the code, which must hand the write to a thread."""


class WriteGaveWay(WriteOnEventLoop):
    """A write on the event loop met a lock held by another transaction and was rolled
    back, having waited at most ``LOOP_LOCK_WAIT_MS`` (PostgreSQL, see
    :meth:`Database.write_at_once`): nothing of it was written, and it is to be made
    again from a thread."""


def _lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL's ``lock_timeout`` ending a statement, raised by
    the driver or wrapped by SQLAlchemy."""
    driver_error = getattr(exc, "orig", exc)
    return getattr(driver_error, "sqlstate", None) == LOCK_NOT_AVAILABLE


class Database:
    """One engine (a connection pool) and the two kinds of transaction we use."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = POOL_SIZE,
        background_checkpoints: bool = False,
        loop_writes_per_second: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``background_checkpoints``: the owner calls :meth:`checkpoint` now and then
        (a server does), so SQLite's writers never checkpoint. ``loop_writes_per_second``:
        how many write transactions a second (of ``clock``) :meth:`write_at_once` may
        begin on the event loop."""
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        # Up to a read and a write per request thread, and the others' (OTHER_CONNECTIONS);
        # connections past pool_size are closed when returned.
        overflow = pool_size * (CONNECTIONS_PER_THREAD - 1) + OTHER_CONNECTIONS
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = overflow
        elif self.dialect == "postgresql":
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = overflow
            kwargs["pool_recycle"] = 3600
        # hide_parameters: a database error in the log never shows message data or token hashes.
        self.engine = create_engine(self.url, hide_parameters=True, **kwargs)
        # SQLite: our write transactions queue here rather than in SQLite's busy handler.
        self._write_lock: WriteLock | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, autocheckpoint=not background_checkpoints)
            if parsed.database and parsed.database != ":memory:":
                self._write_lock = WriteLock(parsed.database)
        self._shared = _SharedRead()
        # The connections the threads keep for their shared reads (see _end_shared_read).
        self._kept: set[Connection] = set()
        self._kept_lock = threading.Lock()
        self._loop_writes = _PerSecond(loop_writes_per_second, clock)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot, never blocks writers.

        SQLite's deferred transactions and PostgreSQL's REPEATABLE READ both
        give every statement of the transaction the same view; read-only
        transactions never fail with serialisation errors at that level.

        Inside :meth:`shared_reads`, every read of this thread shares one connection
        until the end: on SQLite, one such transaction, begun by the first of them; on
        PostgreSQL, no transaction (autocommit), so that each statement sees everything
        committed before it began, and the ``BEGIN`` and ``COMMIT`` round trips, a third
        of a batch poll's, are saved.
        """
        shared = self._shared
        if not shared.sharing:
            with self._connection() as conn:
                if not self.is_sqlite:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
            return
        if shared.conn is None:
            kept, shared.idle = self._usable(shared.idle), None
            kept.begin()
            shared.conn = kept
        try:
            yield shared.conn
        except BaseException:
            # A failed statement ends a PostgreSQL transaction: the next read begins anew.
            self._end_shared_read(failed=True)
            raise

    def _autocommit_connection(self) -> Connection:
        """A connection that a thread keeps for its shared reads or its one-statement
        writes (on PostgreSQL, in autocommit); :meth:`dispose` closes it."""
        conn = self.engine.connect()
        if not self.is_sqlite:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        with self._kept_lock:
            self._kept.add(conn)
        return conn

    def _usable(self, kept: Connection | None) -> Connection:
        """The connection a thread kept, or a new one if it kept none or it was closed
        (by :meth:`dispose`)."""
        return kept if kept is not None and not kept.closed else self._autocommit_connection()

    def _give_back(self, conn: Connection) -> None:
        """Close a connection of :meth:`_autocommit_connection` (back to the pool)."""
        with self._kept_lock:
            self._kept.discard(conn)
        _drop_if_broken(conn)
        conn.close()

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection from the pool, back to it at the end (see :func:`_drop_if_broken`)."""
        with self.engine.connect() as conn:
            try:
                yield conn
            except BaseException:
                _drop_if_broken(conn)
                raise

    def shared_reads(self) -> AbstractContextManager[None]:
        """Let this thread's reads share one pooled connection until the end, or until
        :meth:`own_reads` (``/batch`` runs its ``GET`` items so). On SQLite they share
        its one read transaction (one snapshot, one ``BEGIN`` and ``COMMIT`` for them
        all); on PostgreSQL each statement reads what was committed before it (see
        :meth:`read`).

        The thread may still write meanwhile, on another connection; on SQLite its
        reads see what it wrote only once the shared read has ended (see
        :meth:`own_reads`).
        """
        return self._sharing(True)

    def own_reads(self) -> AbstractContextManager[None]:
        """Within it, each read of this thread sees every write committed before it (a
        request that may write runs so, and reads back what it wrote). On SQLite, the
        thread's shared read ends, and each read runs in a transaction of its own. On
        PostgreSQL, the same as :meth:`shared_reads`: there a shared read's statements
        each see what was committed before they began, and a read needs no ``BEGIN``
        and ``COMMIT`` of its own (two round trips of three, on the event loop while a
        post is checked)."""
        return self._sharing(not self.is_sqlite)

    def _sharing(self, sharing: bool) -> AbstractContextManager[None]:
        if self._shared.sharing == sharing:  # within a scope of the same kind, which ends it
            return _UNCHANGED
        return self._change_sharing(sharing)

    @contextmanager
    def _change_sharing(self, sharing: bool) -> Iterator[None]:
        shared = self._shared
        before = shared.sharing
        self._end_shared_read()
        shared.sharing = sharing
        try:
            yield
        finally:
            self._end_shared_read()
            shared.sharing = before

    def _end_shared_read(self, *, failed: bool = False) -> None:
        """End the shared read's transaction, if any. It wrote nothing, so a commit ends
        it as a rollback would (and on PostgreSQL, in autocommit, neither sends
        anything). Its connection is kept for the thread's next shared read: a checkout
        from the pool and back (and on PostgreSQL, setting autocommit and resetting it)
        cost a poll more than its reads' own statements did. After a failure the
        connection is given back (rolled back), in case the failure was its own."""
        shared = self._shared
        conn, shared.conn = shared.conn, None
        if conn is None:
            return
        if failed:
            self._give_back(conn)
            return
        try:
            conn.commit()
        except BaseException:
            self._give_back(conn)
            raise
        shared.idle = conn

    @contextmanager
    def reads_only(self) -> Iterator[None]:
        """Within it, this thread may read but not write: :meth:`write` raises
        :class:`WriteOnEventLoop`. The event loop answers requests that only read so
        (SQLite reads never wait; a write may wait for the write lock, and the loop
        must never wait)."""
        with self._writes(_Writes.NONE):
            yield

    @contextmanager
    def one_write_at_once(self) -> Iterator[None]:
        """Within it, this thread may read, and make one write transaction if
        :meth:`write_at_once` gives one now; if not, :meth:`write` raises
        :class:`WriteOnEventLoop` before anything is written, for the caller to do it
        all again from a thread. The event loop answers so a request whose handler
        reads, then writes once (a reaction): at once, if no lock is in its way.
        A second write transaction raises a plain :class:`RuntimeError` (it would be
        made twice if it all ran again): such a handler must not run so."""
        with self._writes(_Writes.ONE_AT_ONCE):
            yield

    @contextmanager
    def _writes(self, allowed: _Writes) -> Iterator[None]:
        shared = self._shared
        before, shared.writes = shared.writes, allowed
        try:
            yield
        finally:
            shared.writes = before

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: all of it commits, or none of it does.

        On SQLite it runs under the :class:`WriteLock`, from ``BEGIN IMMEDIATE``
        to the commit or rollback.
        """
        writes = self._shared.writes
        if writes is not _Writes.ANY:
            with self._the_write_on_loop(writes) as conn:
                yield conn
            return
        with self._connection() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with self.writing(), conn.begin():
                yield conn

    @contextmanager
    def one_statement_write(self) -> Iterator[Connection]:
        """:meth:`write` for a block that writes with one statement (reads may follow
        it). On PostgreSQL the statement commits by itself, on a connection in
        autocommit that the thread keeps: no ``BEGIN`` and ``COMMIT``, two round trips
        of three (the admissions of signed requests are written so). On SQLite, and
        where this thread may not write at will, the same as :meth:`write`.

        A block that raises after its statement leaves the write committed on
        PostgreSQL and undone on SQLite: it must be one that may end either way."""
        shared = self._shared
        if self.is_sqlite or shared.writes is not _Writes.ANY:
            with self.write() as conn:
                yield conn
            return
        conn, shared.autocommit = self._usable(shared.autocommit), None
        try:
            yield conn
        except BaseException:
            self._give_back(conn)  # (in case the failure was the connection's)
            raise
        shared.autocommit = conn

    @contextmanager
    def _the_write_on_loop(self, writes: _Writes) -> Iterator[Connection]:
        """:meth:`write` within :meth:`reads_only` or :meth:`one_write_at_once`."""
        if writes is _Writes.NONE:
            raise WriteOnEventLoop("a write transaction where only reads may run")
        if writes is _Writes.WROTE_ONCE:
            raise RuntimeError("a second write transaction where only one may run")
        with self.write_at_once() as conn:
            if conn is None:
                raise WriteOnEventLoop("no write transaction to be had at once")
            self._shared.writes = _Writes.WROTE_ONCE
            yield conn

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold it from the start of a write transaction to its end: the SQLite file's
        :class:`WriteLock` (PostgreSQL needs none: its writers wait on row locks)."""
        if self._write_lock is None:
            yield
            return
        with self._write_lock.held():
            yield

    @property
    def writes_on_loop(self) -> bool:
        """Whether :meth:`write_at_once` may ever give a write (a server's database, with
        a rate above 0; on SQLite, a file)."""
        return self._loop_writes.cap > 0 and (self._write_lock is not None or not self.is_sqlite)

    @contextmanager
    def write_at_once(self) -> Iterator[Connection | None]:
        """:meth:`write` for the event loop, if the write can be made now: a connection
        in a write transaction that commits at the end of the block (or rolls back, if
        it raises), else None.

        The event loop must never wait, and only up to ``loop_writes_per_second`` writes
        a second are made so: a burst is better written in the groups of the writers'
        threads, where one transaction serves many and their statements run beside the
        loop.

        - SQLite: only if the :class:`WriteLock` is free this moment, and SQLite's own
          lock too (another program may hold it: the busy timeout is 0 meanwhile).
        - PostgreSQL (a server opens it so only on this machine): its writers wait on
          row locks, which cannot be asked for beforehand. So each statement waits at
          most ``LOOP_LOCK_WAIT_MS`` for a lock (``lock_timeout``); past it the
          transaction is rolled back and the block ends with :class:`WriteGaveWay`.
        """
        if not self.writes_on_loop or not self._loop_writes.allow():
            yield None
            return
        if not self.is_sqlite:
            with self._postgresql_write_at_once() as conn:
                yield conn
            return
        assert self._write_lock is not None
        with self._write_lock.held_at_once() as held:
            if not held:
                yield None
                return
            with self.engine.connect() as conn, _not_busy_waiting(conn):
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                try:
                    transaction = conn.begin()
                except sqlite3.OperationalError:  # another program holds SQLite's lock
                    yield None
                    return
                with transaction:
                    self._loop_writes.count()
                    yield conn

    @contextmanager
    def _postgresql_write_at_once(self) -> Iterator[Connection]:
        """:meth:`write_at_once` on PostgreSQL, on the connection the thread keeps in
        autocommit (:meth:`one_statement_write`'s): its ``BEGIN`` goes with ``SET LOCAL
        lock_timeout`` in one round trip (psycopg's own ``BEGIN`` takes one of its own,
        in a pipeline too), the block's statements run in that transaction, and the
        commit or rollback ends it."""
        shared = self._shared
        conn, shared.autocommit = self._usable(shared.autocommit), None
        driver = cast("psycopg.Connection[Any]", driver_connection(conn.connection))
        try:
            driver.execute(f"BEGIN; SET LOCAL lock_timeout = {LOOP_LOCK_WAIT_MS}", prepare=False)
            self._loop_writes.count()
            try:
                yield conn
            except Exception as exc:
                if _lock_not_available(exc):
                    raise WriteGaveWay("a lock was held: the write gave way") from exc
                raise
            conn.commit()  # (SQLAlchemy's, if its statements began one: a COMMIT)
            driver.commit()  # (psycopg's: a COMMIT, unless the one above ended it)
        except BaseException:
            self._give_back(conn)  # (rolled back on its way to the pool)
            raise
        shared.autocommit = conn

    def checkpoint(self) -> None:
        """SQLite: copy the pages the WAL holds into the database file, waiting for
        nobody (``PASSIVE``); nothing on PostgreSQL.

        A server opens its database with ``background_checkpoints`` and calls this
        every ``SQLITE_CHECKPOINT_SECONDS``, off the request path. Left to SQLite, the
        writer whose commit fills the WAL checkpoints, fsync included, before its
        commit returns, so while it still holds the :class:`WriteLock`: every other
        writer waited some 10 ms every few hundred posts (more on a busy disk).
        """
        if not self.is_sqlite:
            return
        with closing(self.engine.raw_connection()) as pooled:
            driver_connection(pooled).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def analyze(self) -> None:
        """SQLite: refresh the query planner's statistics (``sqlite_stat1``) from a
        sample of at most ``ANALYSIS_ROWS`` rows of each index, so it takes milliseconds
        however large the database; nothing on PostgreSQL, whose autovacuum does it.
        Without statistics SQLite plans by rules of thumb: in the benchmark, (g) posted
        about a tenth fewer a second. Every connection takes the new statistics up
        before its next statement (``ANALYZE`` changes the schema's version)."""
        if not self.is_sqlite:
            return
        with self.write() as conn:
            conn.exec_driver_sql(f"PRAGMA analysis_limit = {ANALYSIS_ROWS}")
            conn.exec_driver_sql("ANALYZE")

    def autovacuum_off(self) -> bool:
        """Whether this is PostgreSQL with autovacuum turned off: then the rows we delete
        (expired nonces, tokens, files) are never reclaimed and the tables only grow.
        (SQLite reuses the pages of deleted rows by itself.)"""
        if self.is_sqlite:
            return False
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW autovacuum").scalar_one()) != "on"

    def dispose(self) -> None:
        """Close every connection, those the threads keep for their shared reads too."""
        with self._kept_lock:
            kept, self._kept = self._kept, set()
        for conn in kept:
            conn.close()
        self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()
