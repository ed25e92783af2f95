"""What importing one room would add, found by reading only; a dry run stops here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from opengroup import crypto
from opengroup.config import Settings
from opengroup.legacy_import.source import (
    LegacyDataDir,
    LegacyRoom,
    LegacyRoomDb,
    as_seconds,
    int_or_none,
    session_id_or_none,
)
from opengroup.storage import bulk
from opengroup.storage import queries as q

LEGACY_TOKEN_TTL = 7 * 24 * 3600
LEGACY_PENDING_TOKEN_TTL = 10 * 60
LEGACY_FILE_ID_LIMIT = 2**53

Warn = Callable[[str], None]


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
        number, message_id = int_or_none(number), int_or_none(message_id)
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
        deleted = bool(int_or_none(is_deleted)) or server_id in deleted_ids
        sender, stamp = session_id_or_none(public_key), int_or_none(timestamp)
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
            key = session_id_or_none(public_key)
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
            key, stamp = session_id_or_none(public_key), int_or_none(timestamp)
            raw = _token_bytes(token)
            if key is None or stamp is None or not raw:
                continue
            expires_at = as_seconds(stamp) + ttl
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
        file_id, stamp = int_or_none(raw_id), int_or_none(timestamp)
        if file_id is None or not 0 <= file_id < LEGACY_FILE_ID_LIMIT or stamp is None:
            warn(f"room {room.id}: file row {raw_id!r} is unreadable; skipped")
            continue
        uploaded = as_seconds(stamp)
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
