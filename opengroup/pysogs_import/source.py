"""Reading a pysogs server (oxen-io/session-pysogs): its database, key file and uploads.

pysogs keeps everything in one database (SQLite ``sogs.db`` in its data
directory, or PostgreSQL), its X25519 key as 32 raw bytes in ``key_x25519``
and uploads as files under ``uploads/<room token>/<id>_<name>`` (the path is in
``files.path``, relative to the data directory). Its schema carries no version
number: the current one is recognised by its tables and columns (``REQUIRED``);
an older one is refused, since pysogs upgrades its own database when it starts.

Everything here only reads; the database is opened read-only where the driver
allows it (SQLite).
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from opengroup.pysogs_import.errors import PysogsImportError
from opengroup.storage.database import failure_reason, normalise_url, shown_url

KEY_FILE = "key_x25519"
DB_FILE = "sogs.db"
UPLOADS_DIR = "uploads"
INI_FILE = "sogs.ini"

# The tables and columns of pysogs' current schema (sogs/schema.sqlite and schema.pgsql
# of its last release) that the import reads. Each older shape lacks one of them (the
# columns and tables its migrations in sogs/migrations/ add).
REQUIRED: dict[str, tuple[str, ...]] = {
    "rooms": (
        "id", "token", "name", "description", "image", "created", "message_sequence",
        "info_updates", "read", "accessible", "write", "upload",
    ),
    "messages": (
        "id", "room", "user", "posted", "edited", "seqno", "seqno_data", "seqno_reactions",
        "seqno_creation", "data", "data_size", "signature", "filtered", "whisper",
        "whisper_mods",
    ),
    "pinned_messages": ("room", "message", "pinned_by", "pinned_at"),
    "files": (
        "id", "room", "uploader", "message", "size", "uploaded", "expiry", "filename", "path",
    ),
    "users": (
        "id", "session_id", "created", "last_active", "banned", "moderator", "admin",
        "visible_mod",
    ),
    "needs_blinding": ("blinded_abs", "user"),
    "reactions": ("id", "message", "reaction"),
    "user_reactions": ("reaction", "user", "at"),
    "room_users": ("room", "user", "last_active"),
    "user_permission_overrides": (
        "room", "user", "banned", "read", "accessible", "write", "upload", "moderator",
        "admin", "visible_mod",
    ),
    "user_permission_futures": ("room", "user", "at", "read", "write", "upload"),
    "user_ban_futures": ("room", "user", "at", "banned"),
    "user_request_nonces": ("user", "nonce", "expiry"),
    "inbox": ("id", "recipient", "sender", "body", "posted_at", "expiry"),
}  # fmt: skip

# Tables whose presence says the database is pysogs' at all (any version since 0.2).
PYSOGS_MARKERS = ("rooms", "messages", "users")


def check_schema(tables: dict[str, set[str]]) -> list[str]:
    """What of the current schema is missing from ``tables`` (name -> columns); raises
    if the database is not pysogs' at all."""
    if not all(name in tables for name in PYSOGS_MARKERS) or "token" not in tables["rooms"]:
        raise PysogsImportError(
            "this database is not one of pysogs (no rooms, messages and users tables of its "
            "shape); for the Rust session-open-group-server use `opengroup import-legacy`"
        )
    missing = []
    for table, columns in REQUIRED.items():
        if table not in tables:
            missing.append(f"table {table}")
            continue
        missing += [f"column {table}.{c}" for c in columns if c not in tables[table]]
    return missing


@dataclass(frozen=True)
class SourcePaths:
    """Where the pysogs server keeps its things."""

    database_url: str
    key_file: Path
    uploads: Path
    base: Path  # what relative file paths in the database are relative to
    ini: Path | None

    @classmethod
    def of_data_dir(cls, path: Path) -> SourcePaths:
        """The data directory's own layout, or what its ``sogs.ini`` names instead."""
        path = Path(path)
        ini = path / INI_FILE
        parser = read_ini(ini) if ini.is_file() else None
        url = f"sqlite:///{(path / DB_FILE).resolve()}"
        key, uploads = path / KEY_FILE, path / UPLOADS_DIR
        if parser is not None:
            named = parser.get("db", "url", fallback="").strip()
            if named.startswith("sqlite:///"):
                url = f"sqlite:///{_under(path, named.removeprefix('sqlite:///')).resolve()}"
            elif named.startswith("postgresql"):
                url = named
            if parser.get("crypto", "key_file", fallback="").strip():
                key = _under(path, parser.get("crypto", "key_file").strip())
            if parser.get("files", "uploads_dir", fallback="").strip():
                uploads = _under(path, parser.get("files", "uploads_dir").strip())
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise PysogsImportError(
                f"{path} is not a pysogs data directory: no {DB_FILE} in it (for a PostgreSQL "
                "database give --db URL with --key and --uploads)"
            )
        return cls(url, key, uploads, path, ini if parser is not None else None)


def _under(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise PysogsImportError(f"cannot read {path}: {exc}") from None
    return parser


def read_key(path: Path) -> X25519PrivateKey:
    """pysogs' server key: the 32 raw bytes of an X25519 private key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PysogsImportError(
            f"cannot read the pysogs key {path}: {exc.strerror}; without it the join URLs "
            "and everyone's blinded ids would change"
        ) from None
    if len(raw) != 32:
        raise PysogsImportError(
            f"{path} is {len(raw)} bytes; a pysogs key file is 32 raw bytes (X25519)"
        )
    return X25519PrivateKey.from_private_bytes(raw)


def _readonly_url(url: str) -> tuple[str, dict[str, Any]]:
    if url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///")).resolve()
        return f"sqlite:///file:{file}?mode=ro&uri=true", {}
    return normalise_url(url), {}


class PysogsDb:
    """The pysogs database, read through SQLAlchemy Core (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        address, options = _readonly_url(url)
        try:
            self.engine: Engine = create_engine(address, **options)
            with self.engine.connect() as conn:
                inspector = inspect(conn)
                self.tables = {
                    name: {c["name"] for c in inspector.get_columns(name)}
                    for name in inspector.get_table_names()
                }
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
            raise PysogsImportError(
                f"cannot read the pysogs database {shown_url(url)}: {failure_reason(exc)}"
            ) from None

    def rows(self, sql: str, **params: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        except SQLAlchemyError as exc:
            raise PysogsImportError(
                f"cannot read the pysogs database: {failure_reason(exc)}"
            ) from None

    def stream(self, sql: str, **params: Any) -> Iterator[Any]:
        """Rows one by one (a room's messages may not fit in memory at once)."""
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=500).execute(
                    text(sql), params
                )
                yield from result
        except SQLAlchemyError as exc:
            raise PysogsImportError(
                f"cannot read the pysogs database: {failure_reason(exc)}"
            ) from None

    def scalar(self, sql: str, **params: Any) -> Any:
        rows = self.rows(sql, **params)
        return rows[0][0] if rows else None

    def dispose(self) -> None:
        self.engine.dispose()
