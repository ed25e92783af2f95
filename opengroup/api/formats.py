"""How domain objects look on the wire (docs/spec/SPEC.md section 3)."""

from __future__ import annotations

import base64
from typing import Any

from opengroup.config import DeletionsFormat
from opengroup.storage.queries import Message, Room


def room_json(room: Room) -> dict[str, Any]:
    return {"id": room.id, "name": room.name}


def message_json(message: Message) -> dict[str, Any]:
    return {
        "server_id": message.server_id,
        "public_key": message.public_key,
        "timestamp": message.timestamp,
        "data": message.data,
        "signature": message.signature,
    }


def deletions_json(
    deletions: list[tuple[int, int]], deletions_format: DeletionsFormat
) -> list[Any]:
    """``ids``: the seed's list of deleted message ids; ``objects``: what clients read."""
    if deletions_format is DeletionsFormat.OBJECTS:
        return [
            {"id": number, "deleted_message_id": message_id} for number, message_id in deletions
        ]
    return [message_id for _number, message_id in deletions]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
