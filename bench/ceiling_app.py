"""Three reference ASGI apps: what this machine can do at best, measured like the server.

``fixed_json``  the framework ceiling: reads the request body and answers a fixed
                JSON; what uvicorn (uvloop, httptools) itself costs per request.
``onion_echo``  the onion ceiling: opens each onion request as the server does
                (X25519 with the request's ephemeral key, HMAC "LOKI", AES-GCM),
                parses the inner request and answers an encrypted, fixed
                ``compact_poll`` result of one room with nothing new. No storage,
                no routing: the cost of the onion layer on top of the framework.
``onion_v4_echo`` the v4 onion ceiling: opens each v4 onion request as the server
                does, parses its bencoded framing and its metadata, verifies its
                X-SOGS Ed25519 signature (PyNaCl's VerifyKey, over the server
                key, nonce, timestamp, method, decoded path and BLAKE2b-512 of
                the body; the timestamp must be within 24 h) and answers a fixed,
                sealed, bencoded reply: the answer of scenario (e)'s batch poll
                when nothing is new. No storage, no nonce store, no routing.

Run with (the runner does)::

    BENCH_ONION_PRIVATE_KEY_FILE=data/x25519_private_key.pem \\
    uvicorn bench.ceiling_app:onion_echo --workers 2 --loop uvloop \
        --http opengroup.transport.http1:OneWriteHttpProtocol

on the server's own HTTP protocol, so that a ratio compares the apps and not their
HTTP layers.

Raw ASGI, no Starlette, and independent of the server package and of the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any
from urllib.parse import unquote

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

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

JSON_HEADERS = {"content-type": "application/json"}
ROOM_DETAILS = {
    "token": "main",
    "name": "Bench main",
    "info_updates": 1,
    "message_sequence": 1000,
    "created": 1764400000.0,
    "active_users": 1000,
    "active_users_cutoff": 604800,
    "admins": [],
    "moderators": [],
    "read": True,
    "write": True,
    "upload": True,
}
# (e)'s batch: capabilities, pollInfo/0 of main (with its details), its messages since the
# client's seqno (none), the inbox and the outbox (empty).
V4_POLL_ITEMS = [
    {
        "code": 200,
        "headers": JSON_HEADERS,
        "body": {"capabilities": ["blind", "reactions", "sogs"]},
    },
    {
        "code": 200,
        "headers": JSON_HEADERS,
        "body": {
            "token": "main",
            "active_users": 1000,
            "read": True,
            "write": True,
            "upload": True,
            "details": ROOM_DETAILS,
        },
    },
    {"code": 200, "headers": JSON_HEADERS, "body": []},
    {"code": 200, "headers": JSON_HEADERS, "body": []},
    {"code": 200, "headers": JSON_HEADERS, "body": []},
]
SIGNATURE_WINDOW_S = 24 * 3600


def bencode_strings(parts: list[bytes]) -> bytes:
    return b"l" + b"".join(b"%d:%s" % (len(part), part) for part in parts) + b"e"


def bdecode_strings(data: bytes) -> list[bytes]:
    """A bencoded list of byte strings and nothing after it; ValueError otherwise."""
    if not data.startswith(b"l") or not data.endswith(b"e"):
        raise ValueError("not a bencoded list")
    parts, at, end = [], 1, len(data) - 1
    while at < end:
        colon = data.index(b":", at, min(end, at + 11))
        start = colon + 1
        stop = start + int(data[at:colon])
        if stop > end:
            raise ValueError("a string runs past the end")
        parts.append(data[start:stop])
        at = stop
    return parts


def v4_reply(code: int, content_type: bytes, body: bytes) -> bytes:
    meta = orjson.dumps({"code": code, "headers": {"content-type": content_type.decode()}})
    return bencode_strings([meta, body])


V4_POLL_REPLY = v4_reply(200, b"application/json", orjson.dumps(V4_POLL_ITEMS))
V4_BAD_REQUEST = v4_reply(400, b"text/plain; charset=utf-8", b"Invalid v4 onion request")
V4_UNAUTHORIZED = v4_reply(401, b"text/plain; charset=utf-8", b"Invalid signature")


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


@cache
def public_key() -> bytes:
    return private_key().public_key().public_bytes_raw()


def verify_signed(meta: dict[str, Any], body: bytes) -> None:
    """Check a v4 request's X-SOGS headers as the server does (without its nonce store);
    BadSignatureError or ValueError (and KeyError) if they do not hold."""
    headers = {str(k).lower(): v for k, v in meta["headers"].items()}
    pubkey = headers["x-sogs-pubkey"]
    if len(pubkey) != 66 or pubkey[:2] not in ("15", "00"):
        raise ValueError("bad X-SOGS-Pubkey")
    timestamp = headers["x-sogs-timestamp"]
    if abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW_S:
        raise ValueError("timestamp out of the window")
    nonce = base64.b64decode(headers["x-sogs-nonce"], validate=True)
    signature = base64.b64decode(headers["x-sogs-signature"], validate=True)
    if len(nonce) != 16 or len(signature) != 64:
        raise ValueError("bad nonce or signature")
    path, _, query = meta["endpoint"].partition("?")
    signed_path = unquote(path) + ("?" + query if query else "")
    message = public_key() + nonce + timestamp.encode() + meta["method"].encode()
    message += signed_path.encode()
    if body:
        message += hashlib.blake2b(body, digest_size=64).digest()
    VerifyKey(bytes.fromhex(pubkey[2:])).verify(message, signature)


async def onion_v4_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """v4 onion ceiling: decrypt, parse the framing, verify the signature, answer a fixed
    reply sealed with the request's key."""
    if scope["type"] == "lifespan":
        public_key()
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    try:
        aead, plaintext = open_onion(body)
    except Exception:
        await _answer(send, 400, b"text/plain", b"bad onion request")
        return
    try:
        parts = bdecode_strings(plaintext)
        meta = orjson.loads(parts[0])
        verify_signed(meta, parts[1] if len(parts) > 1 else b"")
        reply = V4_POLL_REPLY
    except BadSignatureError:
        reply = V4_UNAUTHORIZED
    except Exception:
        reply = V4_BAD_REQUEST
    iv = os.urandom(12)
    await _answer(send, 200, b"application/octet-stream", iv + aead.encrypt(iv, reply, None))
