"""The once-per-start work every command shares: the data dir, the key pair and a
database upgraded to the newest schema.

``prepare`` is safe to run in several processes at once (the key pair is made
atomically, migrations run under a lock). It imports nothing of the web stack, so
the admin commands start without it; ``app.py`` builds the ASGI app on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from opengroup.config import Settings
from opengroup.domain.community import Community
from opengroup.keys import ServerKeys, load_or_create_keys
from opengroup.storage import migrate
from opengroup.storage.database import Database, failure_reason, shown_url


class DatabaseUnavailable(Exception):
    """The settings' database could not be opened; the message says which and why (the
    URL without its password, the driver's first line)."""


@dataclass
class Prepared:
    settings: Settings
    db: Database
    keys: ServerKeys | None

    def community(self) -> Community:
        public_key = self.keys.public_key if self.keys is not None else b""
        return Community(self.db, self.settings, public_key)


def open_database(settings: Settings, *, serving: bool = False) -> Database:
    """Open (creating the data dir for SQLite) and upgrade the database. ``serving``:
    for a server process, which checkpoints SQLite's WAL in the background."""
    if not settings.database_url:
        try:
            settings.data_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the data dir {settings.data_path}: {exc.strerror}"
            ) from None
    db = Database(
        settings.effective_database_url,
        pool_size=settings.effective_request_threads,
        background_checkpoints=serving,
        loop_writes_per_second=(
            settings.effective_writes_on_event_loop_per_second if serving else 0
        ),
    )
    with _unavailable_reported(settings, db):
        migrate.upgrade(db)
    return db


@contextmanager
def _unavailable_reported(settings: Settings, db: Database) -> Iterator[None]:
    """A failure to reach the database, or a schema this version cannot upgrade, in the
    block, as DatabaseUnavailable."""
    try:
        yield
        return
    except OperationalError as exc:
        failed, reason = "open", failure_reason(exc)
    except migrate.MigrationRefused as exc:
        failed, reason = "use", str(exc)
    db.dispose()
    shown = shown_url(settings.effective_database_url)
    raise DatabaseUnavailable(f"cannot {failed} the database {shown}: {reason}") from None


def import_target(settings: Settings, *, dry_run: bool) -> Database | None:
    """The database an import writes into: opened and upgraded; for a dry run, only
    :func:`existing_database`."""
    if not dry_run:
        return open_database(settings)
    return existing_database(settings)


def existing_database(settings: Settings) -> Database | None:
    """The settings' database as it is, if there is one (None: there is none; nothing
    is created), neither upgraded nor checked for its revision."""
    sqlite_file = settings.data_path / "opengroup.db"
    if not settings.database_url and not sqlite_file.exists():
        return None
    db = Database(settings.effective_database_url)
    with _unavailable_reported(settings, db):
        revision = migrate.current_revision(db)
    if revision is None:
        db.dispose()
        return None
    return db


def prepare(settings: Settings, *, with_keys: bool = True, serving: bool = False) -> Prepared:
    keys = None
    if with_keys:
        keys = load_or_create_keys(settings.private_key_path, settings.public_key_path)
    return Prepared(settings, open_database(settings, serving=serving), keys)
