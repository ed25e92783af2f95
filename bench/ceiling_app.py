"""Two reference ASGI apps: what this machine can do at best, measured like the server.

``fixed_json``  the framework ceiling: reads the request body and answers a fixed
                JSON; what uvicorn (uvloop, httptools) itself costs per request.
``onion_echo``  the onion ceiling: opens each onion request as the server does
                (X25519 with the request's ephemeral key, HMAC "LOKI", AES-GCM),
                parses the inner request and answers an encrypted, fixed
                ``compact_poll`` result of one room with nothing new. No storage,
                no routing: the cost of the onion layer on top of the framework.

Run with (the runner does)::

    BENCH_ONION_PRIVATE_KEY_FILE=data/x25519_private_key.pem \\
    uvicorn bench.ceiling_app:onion_echo --workers 2 --loop uvloop --http httptools

Raw ASGI, no Starlette, and independent of the server package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FIXED_BODY = orjson.dumps({"status_code": 200, "results": []})
ONION_ANSWER = orjson.dumps(
    {
        "status_code": 200,
        "results": [
            {
                "room_id": "main",
                "status_code": 200,
                "messages": [],
                "deletions": [],
                "moderators": [],
            }
        ],
    }
)


@cache
def private_key() -> X25519PrivateKey:
    """The server's key, from the PEM file named by BENCH_ONION_PRIVATE_KEY_FILE."""
    with open(os.environ["BENCH_ONION_PRIVATE_KEY_FILE"], "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    assert isinstance(key, X25519PrivateKey)
    return key


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def fixed_json(scope: Scope, receive: Receive, send: Send) -> None:
    """Framework ceiling: read the body, answer a fixed JSON."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _body(receive)
    await _answer(send, 200, b"application/json", FIXED_BODY)


def open_onion(body: bytes) -> tuple[AESGCM, bytes]:
    """Decrypt an onion request: (the channel's cipher, the inner plaintext)."""
    (size,) = struct.unpack_from("<I", body)
    blob, metadata = body[4 : 4 + size], orjson.loads(body[4 + size :])
    peer = X25519PublicKey.from_public_bytes(bytes.fromhex(metadata["ephemeral_key"]))
    key = hmac.new(b"LOKI", private_key().exchange(peer), hashlib.sha256).digest()
    aead = AESGCM(key)
    return aead, aead.decrypt(blob[:12], blob[12:], None)


async def onion_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Onion ceiling: decrypt, parse the inner request, answer a fixed result encrypted."""
    if scope["type"] == "lifespan":
        private_key()
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    try:
        aead, plaintext = open_onion(body)
        orjson.loads(plaintext)
    except Exception:
        await _answer(send, 400, b"text/plain", b"bad onion request")
        return
    iv = os.urandom(12)
    sealed = base64.b64encode(iv + aead.encrypt(iv, ONION_ANSWER, None))
    await _answer(send, 200, b"text/plain", sealed)
