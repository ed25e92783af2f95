"""Onion requests: the envelope the last service node POSTs to ``/loki/v3/lsrpc`` or
``/oxen/v4/lsrpc``, and the v3 framing of the request inside it.

Request body, byte by byte::

    +-------------------+----------------------------------+------------------------+
    | N: u32 little-end | N bytes: IV(12) | AES-GCM ct+tag | UTF-8 JSON metadata    |
    +-------------------+----------------------------------+------------------------+

    e.g. 2c 01 00 00 | 300 bytes of ciphertext | {"ephemeral_key": "<64 hex>", "host": ..}

The AES-256-GCM key is HMAC-SHA256(key=b"LOKI", msg=X25519(server key,
ephemeral_key)); with ``"enc_type": "xchacha20"`` in the metadata the blob is
nonce(24) | XChaCha20-Poly1305 ct+tag instead (see :mod:`opengroup.crypto`).
The v3 plaintext is the inner request (the v4 one: :mod:`.onion_v4`)::

    {"endpoint": "messages?limit=5", "method": "GET", "body": "null",
     "headers": {"Room": "main", "Authorization": "ab12..."}}

Real clients leave the leading ``/`` off ``endpoint``, send ``body`` as
``""`` or ``"null"`` on GET and DELETE, and may send header values as JSON
numbers or booleans; all of that is accepted here. The answer is base64 of
IV | AES-GCM(inner response JSON) under the same key, always with HTTP 200.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opengroup import crypto
from opengroup.api.exchange import ApiRequest, json_headers, query_of
from opengroup.api.jsonbody import (
    DEEP_JSON,
    JsonTooDeep,
    cannot_nest_deeper,
    json_too_deep,
    loads_json,
)

HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class EnvelopeError(ValueError):
    """The outer blob is unusable; answered with a plain HTTP 400 (no key to encrypt with)."""


class InnerRequestError(ValueError):
    """The blob decrypted but the request inside is malformed; answered encrypted, 400."""


class Cipher(Enum):
    """How an onion request and its answer are sealed (``enc_type`` in the metadata)."""

    AES_GCM = "aes-gcm"
    XCHACHA20 = "xchacha20"


# The names clients give enc_type (aes-gcm is the default: desktop sends none).
CIPHER_NAMES = {
    "aes-gcm": Cipher.AES_GCM,
    "gcm": Cipher.AES_GCM,
    "xchacha20": Cipher.XCHACHA20,
    "xchacha20-poly1305": Cipher.XCHACHA20,
}


@dataclass(frozen=True)
class OpenedEnvelope:
    key: bytes
    plaintext: bytes
    cipher: Cipher = Cipher.AES_GCM

    def seal(self, data: bytes) -> bytes:
        """``data`` sealed for the requester, as its request was."""
        if self.cipher is Cipher.XCHACHA20:
            return crypto.seal_xchacha(self.key, data)
        return crypto.seal(self.key, data)


def open_envelope(body: bytes, private_key: X25519PrivateKey) -> OpenedEnvelope:
    if len(body) < 4:
        raise EnvelopeError("body shorter than its 4-byte length prefix")
    (size,) = struct.unpack_from("<I", body)
    if len(body) < 4 + size:
        raise EnvelopeError("ciphertext length exceeds the body")
    ciphertext, metadata_bytes = body[4 : 4 + size], body[4 + size :]
    try:
        metadata = orjson.loads(metadata_bytes)
    except orjson.JSONDecodeError:
        raise EnvelopeError("metadata is not JSON") from None
    if not isinstance(metadata, dict):
        raise EnvelopeError("metadata is not a JSON object")
    ephemeral = metadata.get("ephemeral_key")
    if (
        not isinstance(ephemeral, str)
        or len(ephemeral) != 64
        or not HEX_DIGITS.issuperset(ephemeral)
    ):
        raise EnvelopeError("metadata lacks a 64-hex-digit ephemeral_key")
    enc_type = metadata.get("enc_type", "aes-gcm")
    cipher = CIPHER_NAMES.get(enc_type) if isinstance(enc_type, str) else None
    if cipher is None:
        raise EnvelopeError("unknown enc_type")
    try:
        if cipher is Cipher.XCHACHA20:
            key = crypto.xchacha_key(private_key, bytes.fromhex(ephemeral))
            plaintext = crypto.open_xchacha(key, ciphertext)
        else:
            key = crypto.loki_key(private_key, bytes.fromhex(ephemeral))
            plaintext = crypto.open_sealed(key, ciphertext)
    except crypto.DecryptionError as exc:
        raise EnvelopeError(str(exc)) from None
    return OpenedEnvelope(key, plaintext, cipher)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return b"" if body.strip() in ("", "null") else body.encode("utf-8")
    return orjson.dumps(body)  # a client that sent the object itself rather than its text


def parse_inner_request(plaintext: bytes, max_json_depth: int) -> tuple[ApiRequest, bool]:
    """The inner request, and whether it is for the v3 API (its endpoint starts with
    ``/``; 2021 clients write v2 endpoints without). Nested at most ``max_json_depth``
    levels apart from its ``body``, which is held to the same limit as a direct
    request's body, later."""
    try:
        inner = loads_json(plaintext, 0)
    except JsonTooDeep:
        raise InnerRequestError(DEEP_JSON) from None
    except orjson.JSONDecodeError:
        raise InnerRequestError("inner request is not JSON") from None
    if not isinstance(inner, dict):
        raise InnerRequestError("inner request must be a JSON object")
    if not cannot_nest_deeper(plaintext, max_json_depth) and json_too_deep(
        {k: v for k, v in inner.items() if k != "body"}, max_json_depth
    ):
        raise InnerRequestError(DEEP_JSON)
    endpoint, method = inner.get("endpoint"), inner.get("method")
    if not isinstance(endpoint, str) or not endpoint:
        raise InnerRequestError("inner request lacks an endpoint")
    if not isinstance(method, str) or not method:
        raise InnerRequestError("inner request lacks a method")
    headers = inner.get("headers")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise InnerRequestError("inner headers must be a JSON object")
    path, _, query_string = endpoint.partition("?")
    request = ApiRequest(
        method=method.upper(),
        path="/" + unquote(path).lstrip("/"),
        query=query_of(query_string),
        query_string=query_string,
        headers=json_headers(headers),
        body=_body_bytes(inner.get("body")),
    )
    return request, endpoint.startswith("/")


def seal_response(envelope: OpenedEnvelope, response_json: bytes) -> bytes:
    """The HTTP body of a v3 onion answer: base64 of the sealed answer."""
    return base64.b64encode(envelope.seal(response_json))
