"""Reading a reference server's data dir, read only: the import never writes there.

The reference server is oxen-io/session-open-group-server. Facts below come
from its ``src/storage.rs`` (the tables) and ``src/handlers.rs`` (what goes
into them), cross-checked against the importer of its Python successor,
oxen-io/session-pysogs ``sogs/migrate01x.py``. Its working directory holds:

- ``database.db``: one table ``main (id TEXT PRIMARY KEY, name TEXT, image_id
  TEXT)``, the room list. ``image_id`` was never used. Deleting a room removed
  its row but left its database file behind, so only listed rooms count.
- ``rooms/<room id>.db``, one SQLite file per room, with:
  - ``messages (id INTEGER PRIMARY KEY, public_key TEXT, timestamp INTEGER,
    data TEXT, signature TEXT, is_deleted INTEGER)``: ``id`` is the server_id
    clients know, ``timestamp`` milliseconds, ``data`` and ``signature`` the
    base64 text exactly as served. A deletion kept the row with
    ``is_deleted = 1``; newer versions overwrote it with ``public_key =
    'deleted'``, ``timestamp = 0``, ``data = signature = 'deleted'``, older
    ones left the content in place.
  - ``deleted_messages (id INTEGER PRIMARY KEY, deleted_message_id INTEGER)``:
    ``id`` is the deletion number clients page by. It may hold the same
    message twice (a known bug of the reference).
  - ``moderators (public_key TEXT)`` and ``block_list (public_key TEXT)``.
  - ``pending_tokens (public_key TEXT, timestamp INTEGER, token BLOB)``: raw
    48-byte challenge tokens, valid 10 minutes from ``timestamp`` (seconds).
  - ``tokens (public_key TEXT PRIMARY KEY, timestamp INTEGER, token TEXT)``:
    claimed tokens in plain hex, exactly what clients send as
    ``Authorization``; pruned 7 days after ``timestamp`` (seconds).
  - ``files (id TEXT PRIMARY KEY, timestamp INTEGER)``: uploads, ``id`` a
    random integer below 2^53 written as text, ``timestamp`` the upload time
    in seconds (pysogs saw a few in milliseconds); pruned after 15 days.
  - ``user_activity (public_key TEXT PRIMARY KEY, last_active INTEGER)``:
    statistics only; not imported (refreshed by the next poll).
- ``files/<room id>_files/<file id>``: the raw bytes of each upload;
  ``files/<room id>``: the raw bytes of the room image (no database row;
  never expires).
- ``x25519_private_key.pem`` / ``x25519_public_key.pem``: the key pair, as
  made by ``openssl genpkey -algorithm x25519`` (PKCS#8 / SPKI PEM).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opengroup import crypto
from opengroup.domain import values
from opengroup.keys import KeyFileError
from opengroup.legacy_import.errors import LegacyImportError

PRIVATE_KEY_NAME = "x25519_private_key.pem"
PUBLIC_KEY_NAME = "x25519_public_key.pem"


def int_or_none(value: Any) -> int | None:
    """An integer column value, or None if it is missing or not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def as_seconds(value: int) -> float:
    """A reference time in seconds; a few were stored in milliseconds."""
    return value / 1000 if value > 100_000_000_000 else float(value)


def session_id_or_none(value: Any) -> str | None:
    """A Session id in lower case, or None if the value is not one."""
    if isinstance(value, str) and values.SESSION_ID_RE.fullmatch(value.lower()):
        return value.lower()
    return None


def _open_sqlite_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


class LegacyRoomDb:
    """One ``rooms/<id>.db``, read only; a missing table reads as empty."""

    def __init__(self, path: Path) -> None:
        self.conn = _open_sqlite_readonly(path)
        self.tables = {
            row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def rows(self, table: str, sql: str) -> Iterator[tuple[Any, ...]]:
        if table not in self.tables:
            return iter(())
        return iter(self.conn.execute(sql))

    def count(self, table: str) -> int:
        if table not in self.tables:
            return 0
        return int(self.conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class LegacyRoom:
    id: str
    name: str
    db_path: Path


class LegacyDataDir:
    """The reference server's working directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.main_db = self.path / "database.db"
        if not self.main_db.is_file():
            raise LegacyImportError(
                f"{self.path} is not a data directory of session-open-group-server: "
                "no database.db in it"
            )
        self.private_key_path = self.path / PRIVATE_KEY_NAME
        self.public_key_path = self.path / PUBLIC_KEY_NAME
        if not self.private_key_path.is_file():
            raise LegacyImportError(
                f"no {PRIVATE_KEY_NAME} in {self.path}: without the reference server's "
                "private key the join URLs cannot be kept"
            )

    def rooms(self) -> list[LegacyRoom]:
        """The rooms of the ``main`` table, in id order."""
        conn = _open_sqlite_readonly(self.main_db)
        try:
            rows = conn.execute("SELECT id, name FROM main ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            raise LegacyImportError(f"cannot read the room list in {self.main_db}: {exc}") from None
        finally:
            conn.close()
        return [
            LegacyRoom(
                str(room_id), str(name) if name else str(room_id), self.room_db(str(room_id))
            )
            for room_id, name in rows
            if room_id is not None
        ]

    def room_db(self, room_id: str) -> Path:
        return self.path / "rooms" / f"{room_id}.db"

    def upload_path(self, room_id: str, file_id: str) -> Path:
        return self.path / "files" / f"{room_id}_files" / file_id

    def image_path(self, room_id: str) -> Path:
        return self.path / "files" / room_id

    def private_key(self) -> X25519PrivateKey:
        """The reference key, checked against its public key file if there is one.

        Not refused when others may read it (``openssl genpkey`` of OpenSSL 1.1
        made it 0644): our copy is 0600 whatever the original's mode.
        """
        try:
            key = serialization.load_pem_private_key(
                self.private_key_path.read_bytes(), password=None
            )
        except (OSError, ValueError, TypeError) as exc:
            raise KeyFileError(
                f"{self.private_key_path} is not a readable PEM private key: {exc}"
            ) from None
        if not isinstance(key, X25519PrivateKey):
            raise KeyFileError(f"{self.private_key_path} is not an X25519 private key")
        if self.public_key_path.exists():
            try:
                stored = serialization.load_pem_public_key(self.public_key_path.read_bytes())
                raw = stored.public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
            except (ValueError, TypeError) as exc:
                raise KeyFileError(
                    f"{self.public_key_path} is not a PEM public key: {exc}"
                ) from None
            if raw != crypto.public_bytes(key):
                raise KeyFileError(
                    f"{self.public_key_path} does not belong to {self.private_key_path}"
                )
        return key


@contextmanager
def reading(room: LegacyRoom) -> Iterator[LegacyRoomDb]:
    """The room's reference database; a broken one stops the import with its name."""
    src = None
    try:
        src = LegacyRoomDb(room.db_path)
        yield src
    except sqlite3.Error as exc:
        raise LegacyImportError(
            f"room {room.id}: cannot read {room.db_path}: {exc} (rooms before it are imported; "
            "a new run picks up where this one stopped)"
        ) from None
    finally:
        if src is not None:
            src.close()
