"""A look at a server's database from outside, on either backend: the rows a statement
reads (or a write a test arranges), and every row of every table (to show that
something, a refused import or a dry run, wrote nothing).

A database is named by what the server is given: its data dir (SQLite's file is
``opengroup.db`` in it) and its database URL (PostgreSQL; None for SQLite). Any
object with those two attributes will do: a ``ServerProcess``, or a ``DatabaseAt``
for a store no server runs on. Statements use ``%s`` placeholders on both backends.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

SQLITE_FILE = "opengroup.db"

Row = tuple[Any, ...]
Tables = dict[str, list[Row]]


class Database(Protocol):
    """Where a server keeps its data."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def database_url(self) -> str | None: ...


@dataclass(frozen=True)
class DatabaseAt:
    """A server's store by its two settings, with no server running on it."""

    data_dir: Path
    database_url: str | None


def sqlite_path(db: Database) -> Path:
    """SQLite's file of a server that runs on SQLite."""
    assert db.database_url is None, db.database_url
    return db.data_dir / SQLITE_FILE


@contextlib.contextmanager
def connect(db: Database, *, autocommit: bool = True) -> Iterator[Any]:
    """A connection to the database (a ``sqlite3`` or ``psycopg`` one): each statement
    its own transaction, or with ``autocommit=False`` one transaction, rolled back at
    the end unless committed. SQLite waits up to 30 s for the server's write lock."""
    conn: Any
    if db.database_url is not None:
        conn = psycopg.connect(db.database_url, autocommit=autocommit)
    elif autocommit:
        conn = sqlite3.connect(sqlite_path(db), timeout=30, isolation_level=None)
    else:
        conn = sqlite3.connect(sqlite_path(db), timeout=30)
    try:
        yield conn
    finally:
        if not autocommit:
            conn.rollback()
        conn.close()


def _placeholders(db: Database, statement: str) -> str:
    return statement.replace("%s", "?") if db.database_url is None else statement


def run(db: Database, statement: str, *params: Any) -> list[Row]:
    """Run one statement (``%s`` placeholders); the rows it reads (none for a write)."""
    with connect(db) as conn:
        cursor = conn.execute(_placeholders(db, statement), params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def value(db: Database, statement: str, *params: Any) -> Any:
    """The one value a statement reads (its first row's first column)."""
    found = run(db, statement, *params)
    assert found, f"no row: {statement} {params}"
    return found[0][0]


def dump_tables(db: Database) -> Tables:
    """Every row of every table of the database, sorted; empty if there is no database."""
    if db.database_url is None and not sqlite_path(db).exists():
        return {}
    listing = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if db.database_url is None
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    with connect(db) as conn:
        names = [name for (name,) in conn.execute(listing).fetchall()]
        return {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in names
        }
