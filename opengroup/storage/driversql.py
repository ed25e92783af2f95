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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    ClauseElement,
    Column,
    Connection,
    PoolProxiedConnection,
    Subquery,
    bindparam,
    column,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable

T = TypeVar("T")


class DriverCursor(Protocol):
    def executemany(self, sql: str, params: Sequence[Any], /) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...


class DriverConnection(Protocol):
    """What the hot paths use of a ``sqlite3`` or ``psycopg`` connection."""

    def execute(self, sql: str, params: Any = ..., /) -> DriverCursor: ...

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
    the constants SQLAlchemy bound in it (e.g. SQLite's ``OFFSET 0``); for
    PostgreSQL with ``$1``, ``$2``, ... instead, ``order`` names the parameters in that
    order (see :class:`HotStatement`)."""

    sql: str
    constants: dict[str, Any]
    order: tuple[str, ...] | None = None
    # The list parameters bound as one array each (see rows_with_key_in), not expanded.
    arrays: frozenset[str] = frozenset()

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


def _run_numbered(conn: DriverConnection, sql: str, values: list[Any]) -> DriverCursor:
    """Run ``$1``-style SQL as it is, on a psycopg connection."""
    import psycopg  # (only PostgreSQL's statements come here)

    cursor = psycopg.RawCursor(cast(psycopg.Connection[Any], conn))
    return cast(DriverCursor, cursor.execute(sql, values))


def postgresql_dialect() -> Dialect:
    # SQLAlchemy's dialect classes are not annotated; this one is psycopg 3's.
    dialect: Dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    return dialect


# HotStatement's dialect for PostgreSQL: parameters numbered ($1, $2, ...), each name once.
_POSTGRESQL_NUMBERED: Dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


class HotStatement:
    """A Core statement that runs on the driver of the SQLAlchemy connection it is given,
    inside that connection's transaction: the hot reads and writes of the community
    API's requests, each of which SQLAlchemy's execution layer would cost more than
    the database's own work.

    Compiled on first use for the connection's dialect and for each number of values
    of its ``expanding`` parameters (``IN`` lists: a person's keys), then kept; a list
    is padded to a power of two by repeating its last value (which changes nothing
    in an ``IN``), so a statement is compiled for a handful of lengths. A list
    parameter that the statement takes as an array (:func:`rows_with_key_in` on
    PostgreSQL) is bound whole, each value once. The
    rows come back as the driver gives them (SQLite's booleans as 0 and 1): the
    callers turn them into values, as they would SQLAlchemy's. A test runs each
    against its Core statement on both backends (tests/test_hot_statements.py).

    For PostgreSQL a statement is compiled with ``$1``, ``$2``, ... and run on a
    ``psycopg.RawCursor`` with its values in that order. Given named parameters,
    psycopg would parse the SQL text on every run once a statement has more than 50
    of them or 4 kB of text, as a room's view and rights (with the newest DMs) has:
    some 100 us a poll, 140 for ten rooms.
    """

    # Every one made, by name (the test that holds each equal to its Core statement
    # checks that none is left out).
    made: ClassVar[dict[str, HotStatement]] = {}

    def __init__(
        self,
        name: str,
        statement: ClauseElement | Callable[[str], ClauseElement],
        *,
        expanding: Sequence[str] = (),
    ) -> None:
        """``statement``: the statement, or a function of the dialect's name giving the
        statement for it (an ``INSERT ... ON CONFLICT`` is written per dialect)."""
        self.name = name
        HotStatement.made[name] = self
        self._statement = statement
        self.expanding = tuple(expanding)
        # (dialect name, each expanding parameter's length) -> the statement for them
        self._compiled: dict[tuple[str, tuple[int, ...]], Statement] = {}

    def run(self, conn: Connection, params: dict[str, Any], **lists: Sequence[Any]) -> DriverCursor:
        """Execute with ``params`` and, by name, the values of the expanding parameters;
        the driver's cursor (``fetchall``, ``fetchone``, ``rowcount``)."""
        return self.run_on(driver_connection(conn.connection), conn.dialect.name, params, **lists)

    def run_on(
        self,
        conn: DriverConnection,
        dialect_name: str,
        params: dict[str, Any],
        **lists: Sequence[Any],
    ) -> DriverCursor:
        """:meth:`run` on a driver connection of the dialect ``dialect_name`` (a writer
        that holds one, as the post writer does)."""
        sql, values = self.bound(dialect_name, params, **lists)
        if isinstance(values, dict):
            return conn.execute(sql, values)
        return _run_numbered(conn, sql, values)

    def bound(
        self, dialect_name: str, params: dict[str, Any], **lists: Sequence[Any]
    ) -> tuple[str, dict[str, Any] | list[Any]]:
        """The SQL text to run and its values: by name, or for PostgreSQL in the order
        of its ``$1``, ``$2``, ..."""
        lists = {name: padded(lists[name]) for name in self.expanding}
        shape = (dialect_name, tuple(len(lists[name]) for name in self.expanding))
        compiled = self._compiled.get(shape)
        if compiled is None:
            compiled = self._compiled[shape] = self._compile(dialect_name, params, lists)
        values = {**compiled.constants, **params} if compiled.constants else dict(params)
        for name in self.expanding:
            if name in compiled.arrays:  # (a value twice would find its rows twice)
                values[name] = list(dict.fromkeys(lists[name]))
                continue
            for n, value in enumerate(lists[name], 1):
                values[f"{name}_{n}"] = value
        if compiled.order is None:
            return compiled.sql, values
        return compiled.sql, [values[name] for name in compiled.order]

    def rows(self, conn: Connection, params: dict[str, Any], **lists: Sequence[Any]) -> list[Any]:
        rows: list[Any] = self.run(conn, params, **lists).fetchall()
        return rows

    def rows_of_each(
        self, conn: Connection, runs: Sequence[tuple[dict[str, Any], dict[str, Sequence[Any]]]]
    ) -> list[list[Any]]:
        """The rows of each run (its parameters, and its expanding ones by name), in
        order. On PostgreSQL they are sent together, in one pipeline: one round trip
        for them all, instead of one each."""
        dialect_name = conn.dialect.name
        driver = driver_connection(conn.connection)
        if dialect_name != "postgresql" or len(runs) == 1:
            return [self.run_on(driver, dialect_name, p, **lists).fetchall() for p, lists in runs]
        import psycopg

        bound = [self.bound(dialect_name, params, **lists) for params, lists in runs]
        with cast(psycopg.Connection[Any], driver).pipeline():
            cursors = [_run_numbered(driver, sql, cast(list[Any], v)) for sql, v in bound]
        return [cursor.fetchall() for cursor in cursors]

    def core_rows(
        self, conn: Connection, params: dict[str, Any], **lists: Sequence[Any]
    ) -> list[Any]:
        """The same rows through SQLAlchemy's execution layer (for the tests that hold
        the two equal)."""
        values = {**params, **{name: list(value) for name, value in lists.items()}}
        return list(conn.execute(cast(Executable, self.statement(conn.dialect.name)), values))

    def statement(self, dialect_name: str) -> ClauseElement:
        if isinstance(self._statement, ClauseElement):
            return self._statement
        return self._statement(dialect_name)

    def _compile(
        self, dialect_name: str, params: dict[str, Any], lists: dict[str, Sequence[Any]]
    ) -> Statement:
        statement = self.statement(dialect_name)
        numbered = dialect_name == "postgresql"
        dialect = _POSTGRESQL_NUMBERED if numbered else driver_dialect(dialect_name)
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        expanded = compiled.construct_expanded_state({**params, **lists})
        ours = set(params) | {
            f"{name}_{n}" for name in self.expanding for n in range(1, len(lists[name]) + 1)
        }
        arrays = frozenset(name for name in self.expanding if name in expanded.parameters)
        constants = {
            k: v for k, v in expanded.parameters.items() if k not in ours and k not in arrays
        }
        order = tuple(expanded.positiontup or ()) if numbered else None
        return Statement(expanded.statement, constants, order, arrays)


def padded(values: Sequence[T]) -> Sequence[T]:
    """``values`` padded to a power of two with copies of its last value (none if empty):
    an ``IN`` list means the same so, a row list of an ``INSERT ... ON CONFLICT DO
    NOTHING`` inserts the same, and a statement is compiled for a handful of lengths."""
    size = 1 << (len(values) - 1).bit_length() if values else 0
    return values if size == len(values) else [*values, *([values[-1]] * (size - len(values)))]


def rows_with_key_in(key: Column[Any], keys: str, dialect_name: str) -> Subquery:
    """The rows of ``key``'s table whose ``key`` is one of the values of the list
    parameter ``keys`` (one of a :class:`HotStatement`'s ``expanding``, or a list given
    to SQLAlchemy's ``execute`` by that name), as a subquery with the table's columns.

    On SQLite an ``IN`` list, each value looked up in the key's index. On PostgreSQL
    one lookup in the index for each value: the values as an array, unnested, each
    joined (``LATERAL``) to its rows. Given a long ``IN`` list, PostgreSQL's planner
    estimates a scan of a table of a few thousand rows as cheaper, and the scan compares
    every row with every value: 3 ms of PostgreSQL's time for 32 signers' ids among
    1,000 users, against 0.15 ms looked up one by one (bench/RESULTS.md)."""
    table = key.table
    if dialect_name != "postgresql":
        return (
            select(table).where(key.in_(bindparam(keys, expanding=True, type_=key.type))).subquery()
        )
    wanted = (
        func.unnest(bindparam(keys, type_=ARRAY(key.type)))
        .table_valued(column("value", key.type))
        .render_derived(name=f"{keys}_wanted")
    )
    # (OFFSET 0 keeps the planner from merging the lookup into a join of the two)
    found = (
        select(table)
        .where(key == wanted.c.value)
        .offset(literal_column("0"))
        .lateral(f"{keys}_found")
    )
    return select(*found.c).select_from(wanted.join(found, true())).subquery()
