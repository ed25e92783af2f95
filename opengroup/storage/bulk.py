"""Statements only the imports (``import-legacy``, ``import-pysogs``) need: bulk copies
that keep ids.

Kept apart from :mod:`opengroup.storage.queries` (what the server runs) so
that module reads as the server's own storage interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from opengroup.storage.queries import Message
from opengroup.storage.schema import (
    deletions,
    direct_messages,
    files,
    messages,
    pending_tokens,
    rooms,
    tokens,
    untimed_nonces,
)


def rename_room(conn: Connection, room_id: str, name: str) -> None:
    conn.execute(update(rooms).where(rooms.c.id == room_id).values(name=name))


def room_counters(conn: Connection, room_id: str) -> tuple[int, int]:
    """The room's last message server_id and last deletion number."""
    row = conn.execute(
        select(rooms.c.message_seq, rooms.c.deletion_seq).where(rooms.c.id == room_id)
    ).one()
    return int(row[0]), int(row[1])


def set_room_counters(conn: Connection, room_id: str, message_seq: int, deletion_seq: int) -> None:
    """Set the id counters; the room's seqno becomes at least the last message id (the
    seqno imported messages took), so it never goes back."""
    seqno = conn.execute(select(rooms.c.seqno).where(rooms.c.id == room_id)).scalar_one()
    conn.execute(
        update(rooms)
        .where(rooms.c.id == room_id)
        .values(message_seq=message_seq, deletion_seq=deletion_seq, seqno=max(seqno, message_seq))
    )


def message_fingerprints(conn: Connection, room_id: str) -> dict[int, tuple[str, int, bool]]:
    """server_id -> (sender, timestamp, deleted) of every message of the room."""
    rows = conn.execute(
        select(
            messages.c.server_id, messages.c.public_key, messages.c.timestamp, messages.c.deleted
        ).where(messages.c.room_id == room_id)
    )
    return {row[0]: (row[1], row[2], bool(row[3])) for row in rows}


def insert_messages(
    conn: Connection, room_id: str, rows: Sequence[tuple[Message, float, bool]]
) -> None:
    """Insert (message, posted_at, deleted) rows with the server_ids they carry (and as
    many seqnos: imported history reads, to the community API, as posted in id order)."""
    if not rows:
        return
    conn.execute(
        insert(messages),
        [
            {
                "room_id": room_id,
                "server_id": m.server_id,
                "public_key": m.public_key,
                "timestamp": m.timestamp,
                "data": m.data,
                "signature": m.signature,
                "posted_at": posted_at,
                "deleted": deleted,
                "seqno": m.server_id,
                "seqno_data": m.server_id,
                "seqno_created": m.server_id,
            }
            for m, posted_at, deleted in rows
        ],
    )


def blank_message(conn: Connection, room_id: str, server_id: int) -> None:
    """Mark a message deleted without recording a deletion (the caller records its own)."""
    conn.execute(
        update(messages)
        .where(messages.c.room_id == room_id, messages.c.server_id == server_id)
        .values(deleted=True, data="", signature="")
    )


def room_deletions(conn: Connection, room_id: str) -> dict[int, int]:
    """Deletion number -> deleted message id, for the whole room."""
    rows = conn.execute(
        select(deletions.c.id, deletions.c.message_id).where(deletions.c.room_id == room_id)
    )
    return {row[0]: row[1] for row in rows}


def insert_deletion(conn: Connection, room_id: str, deletion_id: int, message_id: int) -> None:
    conn.execute(insert(deletions).values(room_id=room_id, id=deletion_id, message_id=message_id))


def known_token_hashes(
    conn: Connection, hashes: Sequence[bytes], *, pending: bool = False
) -> set[bytes]:
    """Those of ``hashes`` already stored as (pending) tokens, in any room."""
    table = pending_tokens if pending else tokens
    found: set[bytes] = set()
    for start in range(0, len(hashes), 500):
        chunk = list(hashes[start : start + 500])
        rows = conn.execute(select(table.c.token_hash).where(table.c.token_hash.in_(chunk)))
        found.update(bytes(row[0]) for row in rows)
    return found


def file_rooms(conn: Connection, file_ids: Sequence[int]) -> dict[int, str]:
    """file id -> room of those of ``file_ids`` that exist."""
    found: dict[int, str] = {}
    for start in range(0, len(file_ids), 500):
        chunk = list(file_ids[start : start + 500])
        rows = conn.execute(select(files.c.id, files.c.room_id).where(files.c.id.in_(chunk)))
        found.update({row[0]: row[1] for row in rows})
    return found


@dataclass(frozen=True)
class CopiedMessage:
    """A community message copied whole from another server: ids, seqnos and times kept."""

    server_id: int
    public_key: str
    timestamp: int  # v2 milliseconds
    data: str  # base64 ("" if deleted)
    signature: str
    posted_at: float
    edited_at: float | None
    deleted: bool
    seqno: int
    seqno_data: int
    seqno_created: int
    whisper_to: str | None
    whisper_mods: bool


def insert_copied_messages(conn: Connection, room_id: str, rows: Sequence[CopiedMessage]) -> None:
    if not rows:
        return
    conn.execute(
        insert(messages),
        [{"room_id": room_id, **m.__dict__} for m in rows],
    )


def direct_message_ids(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that are direct messages here already."""
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        rows = conn.execute(select(direct_messages.c.id).where(direct_messages.c.id.in_(chunk)))
        found.update(row[0] for row in rows)
    return found


def insert_direct_message(
    conn: Connection,
    message_id: int,
    sender: str,
    recipient: str,
    data: bytes,
    posted_at: float,
    expires_at: float,
) -> None:
    """A direct message under the id it had (clients page their inbox by id)."""
    conn.execute(
        insert(direct_messages).values(
            id=message_id,
            sender=sender,
            recipient=recipient,
            data=data,
            posted_at=posted_at,
            expires_at=expires_at,
        )
    )


def continue_direct_message_ids(conn: Connection) -> None:
    """After ids were given explicitly: new direct messages take ids above them. (SQLite
    takes the largest id plus one by itself; PostgreSQL's sequence must be moved.)"""
    if conn.dialect.name != "postgresql":
        return
    top = conn.execute(select(func.max(direct_messages.c.id))).scalar()
    if top is not None:
        conn.execute(
            text(
                "SELECT setval(seq, GREATEST(:top, "
                "COALESCE(pg_sequence_last_value(seq::regclass), 0))) "
                "FROM (SELECT pg_get_serial_sequence('direct_messages', 'id') AS seq) AS s"
            ),
            {"top": top},
        )


def insert_untimed_nonces(conn: Connection, rows: Sequence[tuple[bytes, float]]) -> None:
    """(nonce, expires_at) rows of nonces whose request time is unknown; a nonce
    already recorded is left as it is."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    conn.execute(
        dialect.insert(untimed_nonces).on_conflict_do_nothing(),
        [{"nonce": nonce, "expires_at": at} for nonce, at in rows],
    )
