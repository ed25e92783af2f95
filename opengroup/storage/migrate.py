"""Versioned schema migrations (Alembic), run on start and by ``opengroup db upgrade``;
back to an older revision by ``opengroup db downgrade``.

Several processes may start at once on an empty database, so the upgrade
runs under a lock every process shares: a PostgreSQL advisory lock, or for
SQLite an exclusive ``flock`` on a file beside the database.

A database whose revision this version does not know was upgraded by a newer
version: it is refused (:class:`NewerSchema`) before anything touches it. To
run an older version again, the newer one first takes the schema back to the
older one's newest revision (:func:`downgrade`).
"""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from opengroup.storage.database import Database
from opengroup.storage.driversql import driver_connection

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
PG_LOCK_ID = 0x0_6F70_656E  # "open": any constant all our processes agree on


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


class MigrationRefused(Exception):
    """A migration that cannot be made; the message says why."""


class NewerSchema(MigrationRefused):
    """The database's schema revision is one this version does not know: a newer
    version of the server upgraded it."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"its schema is at revision {revision}, which this version of opengroup does "
            f"not know (its newest is {head_revision()}): a newer version upgraded it. "
            f"Run that version, or go back first with its `opengroup db downgrade "
            f"{head_revision()}`"
        )


def head_revision() -> str:
    return revisions()[-1][0]


@functools.cache
def revisions() -> tuple[tuple[str, str], ...]:
    """Every revision this version knows, oldest first, each with the first sentence
    of its description (read once per process)."""
    scripts = ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()
    found = [
        (script.revision, " ".join((script.doc or "").split()).split(". ")[0].rstrip("."))
        for script in scripts
    ]
    return tuple(found[::-1])


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.is_sqlite:
        database_file = db.engine.url.database
        if not database_file or database_file == ":memory:":
            yield
            return
        lock_path = Path(database_file + ".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
                conn.commit()


@contextmanager
def _migrating(db: Database) -> Iterator[Connection]:
    """A connection for one migration, under the lock, committed at the end of the block
    (rolled back if it raises).

    On SQLite, without enforcing foreign keys meanwhile: Alembic changes a table there
    by copying it into a new one and dropping the old, and the rows of a dropped table
    would take those that refer to them along (``ON DELETE CASCADE``: going back
    before 0003 emptied ``messages``). Before the commit, the references are checked:
    the migration may leave none broken that was not before."""
    with _migration_lock(db), db.engine.connect() as conn:
        if not db.is_sqlite:
            yield conn
            conn.commit()
            return
        driver = driver_connection(conn.connection)
        driver.execute("PRAGMA foreign_keys = OFF")  # (outside a transaction, or ignored)
        try:
            broken_before = len(driver.execute("PRAGMA foreign_key_check").fetchall())
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if len(broken) > broken_before:
                raise MigrationRefused(f"the migration would break references: {broken[:5]}")
            conn.commit()
        finally:
            conn.rollback()  # (nothing left after a commit; else, before the PRAGMA)
            driver.execute("PRAGMA foreign_keys = ON")


def _known(revision: str | None) -> str | None:
    """``revision`` (None: an empty database), if this version knows it; else
    :class:`NewerSchema`."""
    if revision is not None and revision not in dict(revisions()):
        raise NewerSchema(revision)
    return revision


def upgrade(db: Database, target: str = "head") -> None:
    """Bring the schema to ``target`` (the newest revision); a no-op when it is there."""
    if _known(current_revision(db)) == (head_revision() if target == "head" else target):
        return
    with _migrating(db) as conn:
        _known(MigrationContext.configure(conn).get_current_revision())  # (under the lock)
        command.upgrade(_alembic_config(conn), target)


def downgrade(db: Database, target: str) -> tuple[tuple[str, str], ...]:
    """Take the schema back to ``target``, an older revision this version knows, so
    that an older version of the server can run on the database: what the revisions
    after it added (tables, columns, and the rows in them) is dropped. The revisions
    undone, newest first. No server may run on the database meanwhile."""
    known = revisions()
    names = [revision for revision, _ in known]
    if target not in names:
        raise MigrationRefused(
            f"no schema revision {target!r} here: this version knows {', '.join(names)}"
        )
    with _migrating(db) as conn:
        current = _known(MigrationContext.configure(conn).get_current_revision())
        if current is None or names.index(current) < names.index(target):
            raise MigrationRefused(
                f"the database is at revision {current}, older than {target}: "
                "`opengroup db upgrade` brings it forward"
            )
        undone = known[names.index(target) + 1 : names.index(current) + 1][::-1]
        command.downgrade(_alembic_config(conn), target)
    return undone
