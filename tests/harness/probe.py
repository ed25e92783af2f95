"""A look at a server's database from outside, on either backend: every row of every
table, to show that something (a refused import, a dry run) wrote nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

Tables = dict[str, list[tuple[Any, ...]]]


def dump_tables(data_dir: Path, database_url: str | None) -> Tables:
    """Every row of every table of the database (``database_url``, or the SQLite file
    in ``data_dir`` when None), sorted; empty if there is no database."""
    if database_url is None:
        return _sqlite_tables(data_dir / "opengroup.db")
    rows: Tables = {}
    with psycopg.connect(database_url) as pg:
        names = [
            r[0]
            for r in pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for name in names:
            rows[name] = sorted(pg.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
    return rows


def _sqlite_tables(path: Path) -> Tables:
    rows: Tables = {}
    if not path.exists():
        return rows
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            rows[name] = sorted(conn.execute(f'SELECT * FROM "{name}"'), key=repr)
    finally:
        conn.close()
    return rows
