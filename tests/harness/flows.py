"""Small helpers of the community API (v3) acceptance tests: posting a signed message,
reading a room's counters, checking a refusal's exact status and text.

Like the clients, nothing here imports the server package.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .communityclient import (
    CONTENT_JSON,
    CONTENT_TEXT,
    BlindedIdentity,
    CommunityAnswer,
    CommunityClient,
)
from .server import Backend, ServerProcess
from .v2client import DEFAULT_ROOM

ROOM = f"/room/{DEFAULT_ROOM}"
AUTH_REQUIRED = "X-SOGS-* request authentication required"
BLINDING_REQUIRED = "Invalid authentication: this server requires the use of blinded ids"

# The keys of a message as every read answers it (edited, whisper* only where they apply).
MESSAGE_KEYS = {"id", "session_id", "posted", "seqno", "data", "signature", "reactions"}
DELETION_KEYS = {"id", "session_id", "posted", "seqno", "data", "deleted"}
REACTION_ONLY_KEYS = {"id", "seqno", "reactions"}

CliRunner = Callable[..., Any]


def b64(data: bytes) -> str:
    """Standard padded base64, as clients send."""
    return base64.b64encode(data).decode()


def session_padded(text: str) -> bytes:
    """Message bytes ending with Session's padding (0x80, then zeros), which the server
    must keep: clients verify the signature over the padded bytes."""
    body = text.encode()
    return body + b"\x80" + b"\x00" * (159 - len(body) % 160)


def message_body(
    identity: BlindedIdentity,
    server_pk: bytes,
    data: bytes | None = None,
    *,
    blinded: bool = True,
    **extra: object,
) -> dict[str, Any]:
    """A ``POST /room/:t/message`` body, signed over ``data`` as the client signs it."""
    raw = data if data is not None else session_padded(f"hello {os.urandom(6).hex()}")
    signature = identity.sign_message_data(raw, server_pk, blinded=blinded)
    return {"data": b64(raw), "signature": b64(signature), **extra}


def post_message(
    client: CommunityClient,
    identity: BlindedIdentity,
    data: bytes | None = None,
    *,
    room: str = ROOM,
    blinded: bool = True,
    **extra: object,
) -> CommunityAnswer:
    """POST a freshly signed message; the whole answer."""
    body = message_body(identity, client.server_pk, data, blinded=blinded, **extra)
    return client.post(f"{room}/message", body, identity=identity, blinded=blinded)


def posted(
    client: CommunityClient,
    identity: BlindedIdentity,
    data: bytes | None = None,
    *,
    room: str = ROOM,
    blinded: bool = True,
    **extra: object,
) -> dict[str, Any]:
    """Post a message that must be stored (201); the message object answered."""
    answer = post_message(client, identity, data, room=room, blinded=blinded, **extra)
    assert answer.status == 201, answer
    assert answer.content_type == CONTENT_JSON, answer
    message: dict[str, Any] = answer.body
    return message


def ok(answer: CommunityAnswer, status: int = 200) -> Any:
    """The JSON body of an answer that must have succeeded with ``status``."""
    assert answer.status == status, answer
    assert answer.content_type == CONTENT_JSON, answer
    return answer.body


def assert_refused(answer: CommunityAnswer, status: int, text: str | None = None) -> None:
    """A refusal: the status, as plain text (the exact ``text`` if given)."""
    assert answer.status == status, answer
    assert answer.content_type == CONTENT_TEXT, answer
    assert isinstance(answer.body, str) and answer.body, answer
    if text is not None:
        assert answer.body == text


def room_info(
    client: CommunityClient, identity: BlindedIdentity | None = None, room: str = ROOM
) -> dict[str, Any]:
    """``GET /room/:t`` as ``identity`` (anonymous by default)."""
    info: dict[str, Any] = ok(client.get(room, identity=identity))
    return info


def room_seqno(client: CommunityClient, room: str = ROOM) -> int:
    """The room's ``message_sequence`` now: a cursor for the changes a test makes."""
    return int(room_info(client, room=room)["message_sequence"])


def since(
    client: CommunityClient,
    identity: BlindedIdentity | None,
    seqno: int,
    query: str = "",
    room: str = ROOM,
) -> list[dict[str, Any]]:
    """``GET messages/since/:seqno[?query]``; the list answered."""
    path = f"{room}/messages/since/{seqno}" + (f"?{query}" if query else "")
    found: list[dict[str, Any]] = ok(client.get(path, identity=identity))
    return found


def add_room(cli: CliRunner, token: str, name: str) -> str:
    """A new room made by the operator; its token."""
    cli("rooms", "add", token, name)
    return token


def start_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend, env: dict[str, str]
) -> Iterator[ServerProcess]:
    """A module-long extra server with its own settings, data dir and database."""
    url = backend.new_database_url()
    data_dir: Path = tmp_path_factory.mktemp("server") / "data"
    proc = ServerProcess(data_dir, database_url=url, env=env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        backend.drop_database(url)
