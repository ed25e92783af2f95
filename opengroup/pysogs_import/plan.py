"""What a pysogs row becomes here: the rules of the copy, and the counts of a run.

pysogs stores a message's ``data`` without Session's padding and its padded
length in ``data_size``; the signature is over the padded bytes and its API
serves them padded again (``0x80`` then zeros up to ``data_size``). We keep
``data`` as the API serves it, so it is padded back here, once.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import Any

from opengroup.storage.bulk import CopiedMessage

# The SQL each section reads from pysogs (its column names; "user" is quoted in both
# dialects). Rows come back in a fixed order so progress and reruns are predictable.
MESSAGES = """
SELECT m.id, u.session_id, m.posted, m.edited, m.seqno, m.seqno_data, m.seqno_creation,
       m.data, m.data_size, m.signature, m.filtered, w.session_id, m.whisper_mods
FROM messages m JOIN users u ON u.id = m."user" LEFT JOIN users w ON w.id = m.whisper
WHERE m.room = :room ORDER BY m.id
"""
REACTIONS = """
SELECT r.message, r.reaction, u.session_id, ur.at
FROM reactions r JOIN user_reactions ur ON ur.reaction = r.id
     JOIN users u ON u.id = ur."user" JOIN messages m ON m.id = r.message
WHERE m.room = :room ORDER BY r.id, ur.at
"""
PINS = """
SELECT p.message, p.pinned_at, u.session_id
FROM pinned_messages p JOIN users u ON u.id = p.pinned_by
WHERE p.room = :room ORDER BY p.pinned_at
"""
OVERRIDES = """
SELECT u.session_id, o.banned, o.read, o.accessible, o.write, o.upload, o.moderator,
       o.admin, o.visible_mod
FROM user_permission_overrides o JOIN users u ON u.id = o."user"
WHERE o.room = :room ORDER BY u.session_id
"""
PERMISSION_FUTURES = """
SELECT u.session_id, f.at, f.read, f.write, f.upload
FROM user_permission_futures f JOIN users u ON u.id = f."user"
WHERE f.room = :room ORDER BY f.at, u.session_id
"""
ROOM_BAN_FUTURES = """
SELECT u.session_id, f.at, f.banned
FROM user_ban_futures f JOIN users u ON u.id = f."user"
WHERE f.room = :room ORDER BY f.at
"""
SERVER_BAN_FUTURES = """
SELECT u.session_id, f.at, f.banned
FROM user_ban_futures f JOIN users u ON u.id = f."user"
WHERE f.room IS NULL ORDER BY f.at
"""
FILES = """
SELECT f.id, u.session_id, f.uploaded, f.expiry, f.filename, f.path
FROM files f LEFT JOIN users u ON u.id = f.uploader
WHERE f.room = :room ORDER BY f.id
"""
ROOM_USERS = """
SELECT u.session_id, ru.last_active
FROM room_users ru JOIN users u ON u.id = ru."user"
WHERE ru.room = :room
"""
USERS = """
SELECT session_id, created, last_active, banned, moderator, admin, visible_mod
FROM users ORDER BY id
"""
NEEDS_BLINDING = """
SELECT u.session_id, n.blinded_abs
FROM needs_blinding n JOIN users u ON u.id = n."user" ORDER BY u.session_id
"""
INBOX = """
SELECT i.id, s.session_id, r.session_id, i.body, i.posted_at, i.expiry
FROM inbox i JOIN users s ON s.id = i.sender JOIN users r ON r.id = i.recipient
ORDER BY i.id
"""
NONCES = "SELECT nonce, expiry FROM user_request_nonces WHERE expiry > :now"
ROOMS = """
SELECT id, token, name, description, image, created, message_sequence, info_updates,
       read, accessible, write, upload
FROM rooms ORDER BY id
"""


def session_padded(data: bytes, size: int | None) -> bytes:
    """The bytes pysogs serves: ``data`` padded back to ``size`` (0x80, then zeros)."""
    if size is not None and size > len(data):
        return data + b"\x80" + b"\x00" * (size - len(data) - 1)
    return data


def v2_timestamp(posted: Any) -> int:
    """What pysogs' v2 API serves as a message's ``timestamp``: posted, in ms."""
    return int(float(posted) * 1000)


def copied_message(row: Any) -> CopiedMessage:
    """A pysogs ``messages`` row (as ``MESSAGES`` reads it) as we keep it: ids, seqnos
    and times unchanged; data and signature as its API serves them; a deleted one
    (data NULL) blank. The v2 timestamp is pysogs' own (posted, in milliseconds)."""
    (
        server_id, session_id, posted, edited, seqno, seqno_data, seqno_creation,
        data, data_size, signature, _filtered, whisper_to, whisper_mods,
    ) = row  # fmt: skip
    deleted = data is None
    served = b"" if deleted else session_padded(bytes(data), data_size)
    return CopiedMessage(
        server_id=int(server_id),
        public_key=session_id,
        timestamp=v2_timestamp(posted),
        data=base64.b64encode(served).decode(),
        signature="" if deleted else base64.b64encode(bytes(signature or b"")).decode(),
        posted_at=float(posted),
        edited_at=None if edited is None else float(edited),
        deleted=deleted,
        seqno=int(seqno),
        seqno_data=int(seqno_data),
        seqno_created=int(seqno_creation),
        whisper_to=whisper_to,
        whisper_mods=bool(whisper_mods),
    )


def ban_expiry(futures: list[tuple[float, bool]]) -> float | None:
    """When a ban ends: pysogs schedules an unban (``banned`` false) in its ban futures;
    the first one still to come. None: until lifted. (A past one: pysogs lifts it
    within seconds, so the ban counts as over; see ``ban_is_over``.)"""
    unbans = [at for at, banned in futures if not banned]
    return min(unbans) if unbans else None


def ban_is_over(futures: list[tuple[float, bool]], now: float) -> bool:
    expiry = ban_expiry(futures)
    return expiry is not None and expiry <= now


@dataclass
class RoomCounts:
    """What importing one room adds (or would add)."""

    messages: int = 0
    deleted: int = 0
    whispers: int = 0
    reactions: int = 0
    pins: int = 0
    moderators: int = 0
    bans: int = 0
    overrides: int = 0
    future_permissions: int = 0
    files: int = 0
    room_image: int = 0
    activity: int = 0

    def add(self, other: RoomCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def describe(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    def units(self) -> int:
        return self.messages + self.files


@dataclass
class ServerCounts:
    """What the server-wide part adds: people, DMs, nonces."""

    users: int = 0
    global_moderators: int = 0
    global_bans: int = 0
    blinded_links: int = 0
    direct_messages: int = 0
    nonces: int = 0

    def describe(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
