"""The steps many tests take, of both APIs: making a room, waiting for the server to
do something, posting a signed message, reading a room's counters and messages.

Like the clients, nothing here imports the server package.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from .expect import expect_ok
from .server import Backend, ServerProcess
from .v2client import DEFAULT_ROOM, Client, Identity

ROOM = f"/room/{DEFAULT_ROOM}"
AUTH_REQUIRED = "X-SOGS-* request authentication required"
BLINDING_REQUIRED = "Invalid authentication: this server requires the use of blinded ids"

# The keys of a message as every read answers it (edited, whisper* only where they apply).
MESSAGE_KEYS = {"id", "session_id", "posted", "seqno", "data", "signature", "reactions"}
DELETION_KEYS = {"id", "session_id", "posted", "seqno", "data", "deleted"}
REACTION_ONLY_KEYS = {"id", "seqno", "reactions"}

CliRunner = Callable[..., Any]


# --------------------------------------------------------------------------- both APIs


def b64(data: bytes) -> str:
    """Standard padded base64, as clients send."""
    return base64.b64encode(data).decode()


def add_room(cli: CliRunner, token: str, name: str) -> str:
    """A new room made by the operator; its token."""
    cli("rooms", "add", token, name)
    return token


def new_room(cli: CliRunner, prefix: str, name: str | None = None) -> str:
    """A new room with a fresh token starting with ``prefix`` (so its ids start at 1),
    made by the operator; its token."""
    token = f"{prefix}_{secrets.token_hex(4)}"
    return add_room(cli, token, name or f"Room {token}")


def wait_until(condition: Callable[[], object], seconds: float, what: str = "") -> float:
    """Poll ``condition()`` until it holds; how long it took. Fails after ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            pytest.fail(f"{what or 'the condition'}: not within {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - start


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


# --------------------------------------------------------------------------- the v2 API


def challenge(client: Client, identity: Identity, room: str = DEFAULT_ROOM) -> dict[str, Any]:
    """``GET auth_token_challenge`` for the identity in a room; the whole answer."""
    endpoint = f"auth_token_challenge?public_key={identity.session_id}"
    return client.request("GET", endpoint, room=room)


# --------------------------------------------------------------------------- the community API


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
    message: dict[str, Any] = expect_ok(answer, 201)
    return message


def room_info(
    client: CommunityClient, identity: BlindedIdentity | None = None, room: str = ROOM
) -> dict[str, Any]:
    """``GET /room/:t`` as ``identity`` (anonymous by default)."""
    info: dict[str, Any] = expect_ok(client.get(room, identity=identity))
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
    found: list[dict[str, Any]] = expect_ok(client.get(path, identity=identity))
    return found


async def turns_until_done(task: asyncio.Future[Any], limit: int = 3) -> int | None:
    """How many turns of the running event loop ``task`` takes to finish (None: more
    than ``limit``): 1 if it needed no hand-off to a thread and back."""
    for turn in range(1, limit + 1):
        await asyncio.sleep(0)
        if task.done():
            return turn
    return None
