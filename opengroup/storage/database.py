"""Engines and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode so readers never wait for the one writer, and write
transactions start with ``BEGIN IMMEDIATE`` (never a reader that later fails
to become a writer). Our writers first queue on a :class:`WriteLock`, shared
by the threads and the processes of the database, so they wait their turn in
the kernel rather than in SQLite's sleeping busy handler; ``busy_timeout``
still covers any other writer. ``synchronous=NORMAL`` keeps every committed
transaction across a killed process (only a power cut may lose the last few).
Checkpoints (copying the WAL back into the database file) are not left to
the writer whose commit fills the WAL: see :meth:`Database.checkpoint`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from opengroup.storage.driversql import driver_connection
from opengroup.storage.writelock import WriteLock

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How often a server process checkpoints the SQLite WAL (see Database.checkpoint).
SQLITE_CHECKPOINT_SECONDS = 1.0
# Threads that run requests in one worker, and so connections kept open: a pool
# smaller than the thread count closes and reopens connections all the time.
THREADS = 16


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
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


class Database:
    """One engine (a connection pool) and the two kinds of transaction we use."""

    def __init__(
        self, url: str, *, pool_size: int = THREADS, background_checkpoints: bool = False
    ) -> None:
        """``background_checkpoints``: the owner calls :meth:`checkpoint` now and then
        (a server does), so SQLite's writers never checkpoint."""
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 8
        elif self.dialect == "postgresql":
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 8
            kwargs["pool_recycle"] = 3600
        # hide_parameters: a database error in the log never shows message data or token hashes.
        self.engine = create_engine(self.url, hide_parameters=True, **kwargs)
        # SQLite: our write transactions queue here rather than in SQLite's busy handler.
        self._write_lock: WriteLock | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, autocheckpoint=not background_checkpoints)
            if parsed.database and parsed.database != ":memory:":
                self._write_lock = WriteLock(parsed.database)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot, never blocks writers.

        SQLite's deferred transactions and PostgreSQL's REPEATABLE READ both
        give every statement of the transaction the same view; read-only
        transactions never fail with serialisation errors at that level.
        """
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: all of it commits, or none of it does.

        On SQLite it runs under the :class:`WriteLock`, from ``BEGIN IMMEDIATE``
        to the commit or rollback.
        """
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with self.writing(), conn.begin():
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

    def dispose(self) -> None:
        self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()
