"""SQLAlchemy Core statements compiled once, then run on the database driver itself.

The hottest paths (``compact_poll``'s reads, posting a message) skip
SQLAlchemy's execution layer, which costs more than the database's own work
there. Their statements are still written in SQLAlchemy Core against
:mod:`opengroup.storage.schema`, one definition for both backends, but are
compiled to SQL text once per process and handed straight to ``sqlite3`` or
``psycopg``. The measurements: bench/RESULTS.md ("Design notes moved from the
code").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import ClauseElement, PoolProxiedConnection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


class DriverCursor(Protocol):
    def executemany(self, sql: str, params: Sequence[Any], /) -> Any: ...


class DriverConnection(Protocol):
    """What the hot paths use of a ``sqlite3`` or ``psycopg`` connection."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def cursor(self) -> DriverCursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


def driver_connection(pooled: PoolProxiedConnection) -> DriverConnection:
    """The driver's own connection inside a pooled SQLAlchemy one."""
    conn = pooled.driver_connection
    if conn is None:
        raise RuntimeError("the pooled connection is closed")
    return cast(DriverConnection, conn)


@dataclass(frozen=True)
class Statement:
    """A statement compiled for one dialect: its SQL text (named parameters), and
    the constants SQLAlchemy bound in it (e.g. SQLite's ``OFFSET 0``)."""

    sql: str
    constants: dict[str, Any]

    def params(self, ours: dict[str, Any]) -> dict[str, Any]:
        return {**self.constants, **ours} if self.constants else ours


def compile_statements(
    statements: dict[str, ClauseElement], dialect: Dialect
) -> dict[str, Statement]:
    """Every statement of ``statements``, compiled for ``dialect``."""
    texts = {}
    for name, stmt in statements.items():
        compiled = stmt.compile(dialect=dialect)
        constants = {key: value for key, value in compiled.params.items() if value is not None}
        texts[name] = Statement(str(compiled), constants)
    return texts


def driver_dialect(backend: str) -> Dialect:
    """The dialect to compile for, for ``backend``'s driver: named parameters either way."""
    if backend == "sqlite":
        return sqlite.dialect(paramstyle="named")
    return postgresql_dialect()


def postgresql_dialect() -> Dialect:
    # SQLAlchemy's dialect classes are not annotated; this one is psycopg 3's.
    dialect: Dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    return dialect
