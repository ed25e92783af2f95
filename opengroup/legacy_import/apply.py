"""Writing a room's plan, in the caller's transaction, so a room is imported whole or not at all."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import Connection

from opengroup.legacy_import.errors import LegacyImportError
from opengroup.legacy_import.plan import RoomPlan
from opengroup.legacy_import.source import LegacyRoomDb, int_or_none, session_id_or_none
from opengroup.storage import bulk, roomdetails
from opengroup.storage import queries as q
from opengroup.storage.queries import Message

IMAGE_ID_MIN = 2**31
IMAGE_ID_MAX = 2**53
MESSAGE_BATCH = 500

Advance = Callable[[int], None]


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
        stamp = int_or_none(timestamp) or 0
        if plan.messages[server_id]:
            message = Message(server_id, session_id_or_none(public_key) or "deleted", stamp, "", "")
        else:
            message = Message(
                server_id, session_id_or_none(public_key) or "", stamp, data, signature
            )
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
    if plan.moderators:  # staff lists are room details (servers cache them by info_updates)
        roomdetails.bump_info_updates(conn, room_id)
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
        roomdetails.set_image(conn, room_id, image_id)
