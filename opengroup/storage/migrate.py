"""Versioned schema migrations (Alembic), run on start and by ``opengroup db upgrade``.

Several processes may start at once on an empty database, so the upgrade
runs under a lock every process shares: a PostgreSQL advisory lock, or for
SQLite an exclusive ``flock`` on a file beside the database.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from opengroup.storage.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
PG_LOCK_ID = 0x0_6F70_656E  # "open": any constant all our processes agree on


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


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


def upgrade(db: Database, target: str = "head") -> None:
    """Bring the schema to ``target`` (the newest revision); a no-op when it is there."""
    if current_revision(db) == (head_revision() if target == "head" else target):
        return
    with _migration_lock(db), db.engine.connect() as conn:
        command.upgrade(_alembic_config(conn), target)
        conn.commit()
