"""``opengroup import-legacy``: take over a data directory of the Rust reference server.

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

What the import does, and its decisions:

- The key pair is copied to our key paths (unchanged bytes, private key mode
  0600). If we already have a *different* key pair, nothing at all is done:
  the join URLs would change. The same pair is fine.
- Room ids are kept. Ours are ``[a-z0-9_]{2,64}`` (what desktop clients
  accept); the reference accepted more (upper case, ``-``). A room whose id is
  not valid here is skipped with a warning: a renamed room would break its join
  URL anyway. A listed room without its database file is skipped too. An
  existing room (e.g. the default ``main``) takes the reference's name.
- Messages keep server_id, sender, timestamp, data and signature. Deleted
  ones (``is_deleted`` or named in ``deleted_messages``) are stored deleted
  (blank); deletions keep their numbers (a duplicate deletion of one message
  keeps the first). The room's counters are raised to
  the largest imported server_id / deletion number, so new posts and new
  deletions continue after them. A room that already holds *different*
  messages under the same server_ids is left alone (reported).
- Moderators and bans are copied (a key both moderator and banned stays both:
  the ban wins, as it did in the reference).
- Claimed tokens that are still live are stored as SHA-256 hashes of their
  bytes, expiring 7 days after they were claimed (the reference's rule), so
  logged-in clients stay logged in; live pending tokens likewise (10 minutes).
- Files keep their ids and expire ``file_ttl_seconds`` after their upload
  time (15 days by default, as in the reference); expired or missing ones
  are skipped. The room image becomes the room's image (never expires) if
  the room has none yet.
- Idempotent: whatever exists already is skipped, so a second run changes
  nothing, and a run stopped half-way is finished by the next one. Each room
  is imported in one transaction (on SQLite it holds the write lock meanwhile:
  stop the servers for a big import). A dry run reads only and creates
  nothing, not even the data dir.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Connection

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain import values
from opengroup.keys import KeyFileError, load_private_key
from opengroup.storage import bulk, migrate
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.queries import Message

LEGACY_TOKEN_TTL = 7 * 24 * 3600
LEGACY_PENDING_TOKEN_TTL = 10 * 60
LEGACY_FILE_ID_LIMIT = 2**53
PRIVATE_KEY_NAME = "x25519_private_key.pem"
PUBLIC_KEY_NAME = "x25519_public_key.pem"
IMAGE_ID_MIN = 2**31
IMAGE_ID_MAX = 2**53
MESSAGE_BATCH = 500

Advance = Callable[[int], None]
Warn = Callable[[str], None]


class LegacyImportError(RuntimeError):
    """The import cannot go ahead; the message says why."""


# -- reading the reference data directory -----------------------------------


def _int(value: Any) -> int | None:
    """An integer column value, or None if it is missing or not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _seconds(value: int) -> float:
    """A reference time in seconds; a few were stored in milliseconds."""
    return value / 1000 if value > 100_000_000_000 else float(value)


def _session_id(value: Any) -> str | None:
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


# -- the key pair -------------------------------------------------------------


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` atomically; never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".import-", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _public_pem(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_keys(legacy: LegacyDataDir, settings: Settings) -> tuple[str, bool]:
    """(reference public key hex, whether our key files need writing).

    Refuses if our key paths hold a different key pair.
    """
    key = legacy.private_key()
    public = crypto.public_bytes(key)
    ours_private, ours_public = settings.private_key_path, settings.public_key_path
    if ours_private.exists() and crypto.public_bytes(load_private_key(ours_private)) != public:
        raise LegacyImportError(
            f"{ours_private} holds a different key pair than {legacy.private_key_path}; "
            "importing would change every join URL. Move our key files away first "
            "(or import into another data dir)."
        )
    if ours_public.exists():
        try:
            stored = serialization.load_pem_public_key(ours_public.read_bytes())
            raw = stored.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except (ValueError, TypeError):
            raw = b""
        if raw != public:
            raise LegacyImportError(
                f"{ours_public} is not the reference server's public key; move it away first"
            )
    return public.hex(), not (ours_private.exists() and ours_public.exists())


def install_keys(legacy: LegacyDataDir, settings: Settings) -> None:
    """Copy the reference key files to our key paths (those missing)."""
    key = legacy.private_key()
    if not settings.private_key_path.exists():
        _write_exclusive(settings.private_key_path, legacy.private_key_path.read_bytes(), 0o600)
    if not settings.public_key_path.exists():
        pem = (
            legacy.public_key_path.read_bytes()
            if legacy.public_key_path.exists()
            else _public_pem(key)
        )
        _write_exclusive(settings.public_key_path, pem, 0o644)


# -- planning one room --------------------------------------------------------


@dataclass
class Counts:
    """New items of one room (or of all of them)."""

    messages: int = 0
    deletions: int = 0
    moderators: int = 0
    bans: int = 0
    tokens: int = 0
    pending_tokens: int = 0
    files: int = 0
    room_image: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass
class RoomPlan:
    """What importing one room adds; built from the source and our current state."""

    room: LegacyRoom
    new_room: bool = True
    rename: bool = False
    skip_reason: str | None = None
    messages: dict[int, bool] = field(default_factory=dict)  # server_id -> deleted
    blank: list[int] = field(default_factory=list)
    deletions: list[tuple[int, int]] = field(default_factory=list)
    message_seq: int = 0
    deletion_seq: int = 0
    raise_counters: bool = False
    moderators: list[str] = field(default_factory=list)
    bans: list[str] = field(default_factory=list)
    tokens: list[tuple[bytes, str, float]] = field(default_factory=list)
    pending_tokens: list[tuple[bytes, str, float]] = field(default_factory=list)
    files: list[tuple[int, Path, float, float]] = field(default_factory=list)
    image: Path | None = None

    @property
    def counts(self) -> Counts:
        return Counts(
            messages=len(self.messages),
            deletions=len(self.deletions),
            moderators=len(self.moderators),
            bans=len(self.bans),
            tokens=len(self.tokens),
            pending_tokens=len(self.pending_tokens),
            files=len(self.files),
            room_image=1 if self.image else 0,
        )


def plan_room(
    conn: Connection | None,
    legacy: LegacyDataDir,
    room: LegacyRoom,
    src: LegacyRoomDb,
    settings: Settings,
    now: float,
    warn: Warn,
) -> RoomPlan:
    """Compare the reference room with ours (``conn`` None: we have no database yet)."""
    plan = RoomPlan(room)
    existing = q.get_room(conn, room.id) if conn is not None else None
    if existing is not None:
        plan.new_room = False
        plan.rename = existing.name != room.name
    ours_messages = bulk.message_fingerprints(conn, room.id) if existing and conn else {}
    ours_deletions = bulk.room_deletions(conn, room.id) if existing and conn else {}
    message_seq, deletion_seq = bulk.room_counters(conn, room.id) if existing and conn else (0, 0)

    # Deletions first: they also say which messages are deleted.
    source_deletions: list[tuple[int, int]] = []
    for number, message_id in src.rows(
        "deleted_messages", "SELECT id, deleted_message_id FROM deleted_messages ORDER BY id"
    ):
        number, message_id = _int(number), _int(message_id)
        if number is None or message_id is None or number <= 0:
            warn(f"room {room.id}: unreadable deleted_messages row skipped")
            continue
        source_deletions.append((number, message_id))
    deleted_ids = {message_id for _, message_id in source_deletions}

    conflicts = 0
    top_message = 0
    for server_id, public_key, timestamp, is_deleted, has_content in src.rows(
        "messages",
        "SELECT id, public_key, timestamp, is_deleted, "
        "data IS NOT NULL AND signature IS NOT NULL FROM messages ORDER BY id",
    ):
        top_message = max(top_message, server_id)
        deleted = bool(_int(is_deleted)) or server_id in deleted_ids
        sender, stamp = _session_id(public_key), _int(timestamp)
        if not deleted and (sender is None or stamp is None or not has_content):
            warn(f"room {room.id}: message {server_id} has no usable sender/content; skipped")
            continue
        ours = ours_messages.get(server_id)
        if ours is None:
            plan.messages[server_id] = deleted
        elif deleted:
            if not ours[2]:
                plan.blank.append(server_id)
        elif (ours[0], ours[1]) != (sender, stamp):
            conflicts += 1
    if conflicts:
        plan.skip_reason = (
            f"{conflicts} message(s) already in our room {room.id} differ from the reference's "
            "under the same server_id; room left alone"
        )
        return plan

    seen_messages = set(ours_deletions.values())
    top_deletion = 0
    for number, message_id in source_deletions:
        top_deletion = max(top_deletion, number)
        if number in ours_deletions or message_id in seen_messages:
            continue  # imported before, or a duplicate deletion of the same message
        seen_messages.add(message_id)
        plan.deletions.append((number, message_id))
    plan.message_seq = max(message_seq, top_message)
    plan.deletion_seq = max(deletion_seq, top_deletion)
    plan.raise_counters = (plan.message_seq, plan.deletion_seq) != (message_seq, deletion_seq)

    for table, ours_keys, target in (
        ("moderators", q.list_moderators, plan.moderators),
        ("block_list", q.list_bans, plan.bans),
    ):
        have = set(ours_keys(conn, room.id)) if existing and conn else set()
        for (public_key,) in src.rows(table, f"SELECT public_key FROM {table}"):
            key = _session_id(public_key)
            if key is None:
                warn(f"room {room.id}: {table} entry {public_key!r} is not a Session id; skipped")
            elif key not in have:
                have.add(key)
                target.append(key)

    _plan_tokens(conn, room, src, now, plan)
    _plan_files(conn, legacy, room, src, settings, now, plan, warn)
    image = legacy.image_path(room.id)
    has_image = existing is not None and existing.image_file_id is not None
    if not has_image and image.is_file() and image.stat().st_size > 0:
        plan.image = image
    return plan


def _plan_tokens(
    conn: Connection | None, room: LegacyRoom, src: LegacyRoomDb, now: float, plan: RoomPlan
) -> None:
    """Live claimed and pending tokens, as (hash, public key, expiry), not stored yet."""
    for table, ttl, target, pending in (
        ("tokens", LEGACY_TOKEN_TTL, plan.tokens, False),
        ("pending_tokens", LEGACY_PENDING_TOKEN_TTL, plan.pending_tokens, True),
    ):
        found: dict[bytes, tuple[str, float]] = {}
        for public_key, timestamp, token in src.rows(
            table, f"SELECT public_key, timestamp, token FROM {table}"
        ):
            key, stamp = _session_id(public_key), _int(timestamp)
            raw = _token_bytes(token)
            if key is None or stamp is None or not raw:
                continue
            expires_at = _seconds(stamp) + ttl
            if expires_at <= now:
                continue
            token_hash = crypto.token_hash(raw)
            if token_hash not in found or found[token_hash][1] < expires_at:
                found[token_hash] = (key, expires_at)
        known = bulk.known_token_hashes(conn, list(found), pending=pending) if conn else set()
        target.extend(
            (token_hash, key, expires_at)
            for token_hash, (key, expires_at) in found.items()
            if token_hash not in known
        )


def _token_bytes(token: Any) -> bytes | None:
    """Claimed tokens are hex text, pending ones raw bytes."""
    if isinstance(token, bytes | bytearray | memoryview):
        return bytes(token)
    if isinstance(token, str):
        try:
            return bytes.fromhex(token.strip())
        except ValueError:
            return None
    return None


def _plan_files(
    conn: Connection | None,
    legacy: LegacyDataDir,
    room: LegacyRoom,
    src: LegacyRoomDb,
    settings: Settings,
    now: float,
    plan: RoomPlan,
    warn: Warn,
) -> None:
    """Unexpired uploads present on disk, as (id, path, uploaded at, expires at)."""
    candidates: list[tuple[int, Path, float, float]] = []
    for raw_id, timestamp in src.rows("files", "SELECT id, timestamp FROM files"):
        file_id, stamp = _int(raw_id), _int(timestamp)
        if file_id is None or not 0 <= file_id < LEGACY_FILE_ID_LIMIT or stamp is None:
            warn(f"room {room.id}: file row {raw_id!r} is unreadable; skipped")
            continue
        uploaded = _seconds(stamp)
        expires_at = uploaded + settings.file_ttl_seconds
        if expires_at <= now:
            continue
        path = legacy.upload_path(room.id, str(raw_id).strip())
        if not path.is_file():
            warn(f"room {room.id}: file {file_id} is missing from {path.parent}; skipped")
            continue
        candidates.append((file_id, path, uploaded, expires_at))
    owners = bulk.file_rooms(conn, [c[0] for c in candidates]) if conn else {}
    for candidate in candidates:
        owner = owners.get(candidate[0])
        if owner is None:
            plan.files.append(candidate)
        elif owner != room.id:
            warn(f"room {room.id}: file id {candidate[0]} is taken by room {owner}; skipped")


# -- applying a plan ----------------------------------------------------------


def apply_plan(
    conn: Connection, plan: RoomPlan, src: LegacyRoomDb, now: float, advance: Advance
) -> None:
    """Write the plan inside the caller's transaction."""
    room_id = plan.room.id
    if plan.new_room:
        q.insert_room(conn, room_id, plan.room.name, now)
    elif plan.rename:
        bulk.rename_room(conn, room_id, plan.room.name)
    q.lock_room(conn, room_id)

    batch: list[tuple[Message, float, bool]] = []
    for server_id, public_key, timestamp, data, signature in src.rows(
        "messages", "SELECT id, public_key, timestamp, data, signature FROM messages ORDER BY id"
    ):
        if server_id not in plan.messages:
            continue
        stamp = _int(timestamp) or 0
        if plan.messages[server_id]:
            message = Message(server_id, _session_id(public_key) or "deleted", stamp, "", "")
        else:
            message = Message(server_id, _session_id(public_key) or "", stamp, data, signature)
        batch.append((message, stamp / 1000, plan.messages[server_id]))
        if len(batch) >= MESSAGE_BATCH:
            bulk.insert_messages(conn, room_id, batch)
            advance(len(batch))
            batch = []
    bulk.insert_messages(conn, room_id, batch)
    advance(len(batch))
    for server_id in plan.blank:
        bulk.blank_message(conn, room_id, server_id)
    for number, message_id in plan.deletions:
        bulk.insert_deletion(conn, room_id, number, message_id)
    if plan.raise_counters:
        bulk.set_room_counters(conn, room_id, plan.message_seq, plan.deletion_seq)

    for key in plan.moderators:
        q.add_moderator(conn, room_id, key, now)
    for key in plan.bans:
        q.add_ban(conn, room_id, key, now)
    for token_hash, key, expires_at in plan.tokens:
        q.insert_token(conn, room_id, key, token_hash, expires_at)
    for token_hash, key, expires_at in plan.pending_tokens:
        q.insert_pending_token(conn, room_id, key, token_hash, expires_at)

    for file_id, path, uploaded, expires_at in plan.files:
        if not q.insert_file(conn, file_id, room_id, None, path.read_bytes(), uploaded, expires_at):
            raise LegacyImportError(f"file id {file_id} was taken while importing room {room_id}")
        advance(1)
    if plan.image is not None:
        data, uploaded = plan.image.read_bytes(), plan.image.stat().st_mtime
        while True:
            image_id = IMAGE_ID_MIN + secrets.randbelow(IMAGE_ID_MAX - IMAGE_ID_MIN)
            if q.insert_file(conn, image_id, room_id, None, data, uploaded, None):
                break
        q.set_room_image(conn, room_id, image_id)


# -- the whole import ---------------------------------------------------------


@dataclass
class RoomReport:
    room_id: str
    name: str
    counts: Counts
    state: str  # new room, existing room, renamed, or no database yet (dry run)
    skip_reason: str | None = None


@dataclass
class ImportReport:
    public_key: str
    keys_copied: bool
    rooms: list[RoomReport]
    total: Counts


class LegacyImport:
    """One import run: ``work()`` sizes the progress bar, ``run()`` does it."""

    def __init__(self, path: Path, settings: Settings, *, dry_run: bool, warn: Warn) -> None:
        self.legacy = LegacyDataDir(path)
        self.settings = settings
        self.dry_run = dry_run
        self.warn = warn
        self.public_key, self.keys_needed = check_keys(self.legacy, settings)
        mode = self.legacy.private_key_path.stat().st_mode & 0o777
        if mode & 0o077:
            warn(
                f"{self.legacy.private_key_path} is mode {mode:04o} (others may read it); "
                "our copy is kept 0600"
            )
        self.rooms: list[LegacyRoom] = []
        for room in self.legacy.rooms():
            if not values.is_room_id(room.id):
                warn(
                    f"room {room.id!r} skipped: room ids here are 2 to 64 of a-z, 0-9 and _ "
                    "(what Session desktop accepts)"
                )
            elif not room.db_path.is_file():
                warn(f"room {room.id} skipped: its database {room.db_path} does not exist")
            else:
                self.rooms.append(room)

    def work(self) -> int:
        """Progress units: source messages and files, plus one per room."""
        units = 0
        for room in self.rooms:
            with _reading(room) as src:
                units += src.count("messages") + src.count("files") + 1
        return units

    def _target(self) -> Database | None:
        """Our database: opened and migrated, or for a dry run only if it exists."""
        if not self.dry_run:
            from opengroup.app import open_database  # the app module pulls in the web stack

            return open_database(self.settings)
        sqlite_file = self.settings.data_path / "opengroup.db"
        if not self.settings.database_url and not sqlite_file.exists():
            return None
        db = Database(self.settings.effective_database_url)
        if migrate.current_revision(db) is None:
            db.dispose()
            return None
        return db

    def run(self, advance: Advance) -> ImportReport:
        if self.keys_needed and not self.dry_run:
            install_keys(self.legacy, self.settings)
        db = self._target()
        reports: list[RoomReport] = []
        total = Counts()
        try:
            for room in self.rooms:
                plan = self._import_room(db, room, advance)
                if plan.skip_reason:
                    self.warn(plan.skip_reason)
                else:
                    total.add(plan.counts)
                state = (
                    "no database yet"
                    if db is None
                    else "new room"
                    if plan.new_room
                    else "renamed"
                    if plan.rename
                    else "existing room"
                )
                counts = plan.counts if not plan.skip_reason else Counts()
                reports.append(RoomReport(room.id, room.name, counts, state, plan.skip_reason))
        finally:
            if db is not None:
                db.dispose()
        return ImportReport(self.public_key, self.keys_needed, reports, total)

    def _import_room(self, db: Database | None, room: LegacyRoom, advance: Advance) -> RoomPlan:
        now = time.time()
        with _reading(room) as src:
            if db is None:
                plan = plan_room(None, self.legacy, room, src, self.settings, now, self.warn)
            elif self.dry_run:
                with db.read() as conn:
                    plan = plan_room(conn, self.legacy, room, src, self.settings, now, self.warn)
            else:
                with db.write() as conn:
                    plan = plan_room(conn, self.legacy, room, src, self.settings, now, self.warn)
                    if not plan.skip_reason:
                        apply_plan(conn, plan, src, now, advance)
            advance(src.count("messages") + src.count("files") + 1 - _applied_units(plan, self))
        return plan


@contextmanager
def _reading(room: LegacyRoom) -> Iterator[LegacyRoomDb]:
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


def _applied_units(plan: RoomPlan, run: LegacyImport) -> int:
    """Progress already reported while applying (new messages and files)."""
    if run.dry_run or plan.skip_reason:
        return 0
    return len(plan.messages) + len(plan.files)
