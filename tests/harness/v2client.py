"""An independent Session open group (v2) client for the test suite.

It does the client side of the cryptography itself and never imports the
server package: a bug shared by client and server code would otherwise hide
itself. Behaviour follows what the 2021 Session clients do on the wire
(see docs/spec/client-protocol.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import xeddsa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Transport = Literal["http", "onion"]
# "null": Android/iOS send the text "null" as body on GET/DELETE; "empty" (or ""): desktop's "".
NullBodyStyle = Literal["null", "empty", ""]

ONION_PATH = "/loki/v3/lsrpc"
# Where a server that also speaks the community (v3) API serves the v2 API over direct
# HTTP (docs/spec/SPEC-v3.md section 1). "" sends v2 requests at the root, where the
# server answers them only for the paths the v3 API has no route of that method for.
LEGACY_PREFIX = "/legacy"
IV_SIZE = 12
HMAC_KEY = b"LOKI"
DEFAULT_ROOM = "main"
PUBLIC_KEY_PEM_NAME = "x25519_public_key.pem"
# The server closes a connection idle for 5 s (uvicorn's keep-alive timeout). A client
# that kept it as long could send a request just as it closes ("server disconnected
# without sending a response"), so test clients let idle connections go sooner.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


# --------------------------------------------------------------------------- crypto primitives


def derive_symmetric_key(private_key: X25519PrivateKey, peer_public: bytes) -> bytes:
    """HMAC-SHA256("LOKI", X25519 shared secret): the key every v2 exchange uses."""
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return hmac.new(HMAC_KEY, shared, hashlib.sha256).digest()


def encrypt_aes_gcm(key: bytes, plaintext: bytes) -> bytes:
    """Return IV | ciphertext | tag, the layout clients and server exchange."""
    iv = os.urandom(IV_SIZE)
    return iv + AESGCM(key).encrypt(iv, plaintext, None)


def decrypt_aes_gcm(key: bytes, blob: bytes) -> bytes:
    """Inverse of encrypt_aes_gcm; raises InvalidTag on any tampering."""
    return AESGCM(key).decrypt(blob[:IV_SIZE], blob[IV_SIZE:], None)


def pad_message(protobuf_bytes: bytes) -> bytes:
    """Apply Session's message padding (with Signal's off-by-one total length).

    Clients sign the padded bytes, so the server must store and serve them as is.
    """
    length = len(protobuf_bytes)
    total = math.ceil((length + 2) / 160) * 160 - 1
    return protobuf_bytes + b"\x80" + b"\x00" * (total - length - 1)


def _protobuf_length_delimited(field: int, payload: bytes) -> bytes:
    """Encode one length-delimited protobuf field (wire type 2)."""
    out = bytearray([(field << 3) | 2])
    n = len(payload)
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    return bytes(out) + payload


def encode_visible_message(text: str) -> bytes:
    """A minimal SignalService.Content{dataMessage{body}}, so posted data looks real."""
    data_message = _protobuf_length_delimited(1, text.encode())
    return _protobuf_length_delimited(1, data_message)


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """A Session user: an X25519 key pair whose public half is the session id."""

    private_key: X25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random user, so tests never share state through keys."""
        return cls(X25519PrivateKey.generate())

    @property
    def private_bytes(self) -> bytes:
        """The raw 32-byte X25519 private key (xeddsa signs with it)."""
        return self.private_key.private_bytes_raw()

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte X25519 public key."""
        return self.private_key.public_key().public_bytes_raw()

    @property
    def session_id(self) -> str:
        """The session id, "05" + hex public key: the form clients put in public_key fields."""
        return "05" + self.public_bytes.hex()

    def sign(self, data: bytes) -> bytes:
        """XEdDSA signature as current clients make it (sign bit cleared)."""
        priv = xeddsa.priv_force_sign(self.private_bytes, False)
        return bytes(xeddsa.ed25519_priv_sign(priv, data))

    def sign_legacy(self, data: bytes) -> bytes:
        """Old libsignal-style signature: sign bit of the Ed25519 key carried in sig[63]."""
        priv = xeddsa.priv_force_sign(self.private_bytes, True)
        sig = bytearray(xeddsa.ed25519_priv_sign(priv, data))
        sig[63] |= 0x80
        return bytes(sig)


@dataclass(frozen=True)
class Persona:
    """A user with a claimed token in one room: what most tests act as."""

    identity: Identity
    token: str
    room: str = DEFAULT_ROOM

    @property
    def session_id(self) -> str:
        """The user's "05..." id."""
        return self.identity.session_id


def decrypt_challenge(
    identity: Identity, ciphertext_b64: str, ephemeral_public_key_b64: str
) -> str:
    """Open an auth_token_challenge the way clients do; returns the hex token."""
    key = derive_symmetric_key(identity.private_key, base64.b64decode(ephemeral_public_key_b64))
    return decrypt_aes_gcm(key, base64.b64decode(ciphertext_b64)).hex()


# --------------------------------------------------------------------------- server key files


def load_public_key_pem(pem: bytes | str) -> bytes:
    """Raw 32 bytes from an X25519 SubjectPublicKeyInfo PEM (openssl's format)."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, X25519PublicKey):
        raise ValueError(f"not an X25519 public key: {type(key).__name__}")
    return key.public_bytes_raw()


def load_server_public_key(data_dir: Path | str) -> bytes:
    """The server's public key as written into its data dir on first start."""
    return load_public_key_pem((Path(data_dir) / PUBLIC_KEY_PEM_NAME).read_bytes())


# --------------------------------------------------------------------------- onion requests


def encrypt_onion_payload(
    server_x25519_pub: bytes,
    plaintext: bytes,
    *,
    metadata_extra: Mapping[str, object] | None = None,
) -> tuple[bytes, bytes]:
    """Wrap arbitrary plaintext in an lsrpc envelope; returns (blob, symmetric key).

    Separate from build_onion_request so tests can send undecodable inner JSON.
    """
    ephemeral = X25519PrivateKey.generate()
    key = derive_symmetric_key(ephemeral, server_x25519_pub)
    ciphertext = encrypt_aes_gcm(key, plaintext)
    metadata: dict[str, object] = {}
    if metadata_extra:
        metadata.update(metadata_extra)
    metadata["ephemeral_key"] = ephemeral.public_key().public_bytes_raw().hex()
    blob = struct.pack("<I", len(ciphertext)) + ciphertext + json.dumps(metadata).encode()
    return blob, key


def build_onion_request(
    server_x25519_pub: bytes,
    endpoint: str,
    method: str,
    body: str | None,
    headers: Mapping[str, object],
    *,
    metadata_extra: Mapping[str, object] | None = None,
) -> tuple[bytes, bytes]:
    """Build a v3 onion request body as the last service node would relay it.

    The metadata carries the relay fields clients add (host, target, ...); the
    server must ignore them. A body of None leaves the "body" key out.
    """
    inner: dict[str, object] = {"endpoint": endpoint, "method": method}
    if body is not None:
        inner["body"] = body
    inner["headers"] = dict(headers)
    extra: dict[str, object] = {"host": "127.0.0.1", "target": ONION_PATH, "method": "POST"}
    if metadata_extra:
        extra.update(metadata_extra)
    return encrypt_onion_payload(
        server_x25519_pub, json.dumps(inner).encode(), metadata_extra=extra
    )


def decrypt_onion_response(key: bytes, response_text: str) -> dict[str, Any]:
    """Base64 -> AES-GCM -> JSON object, strictly as the spec promises."""
    plaintext = decrypt_aes_gcm(key, base64.b64decode(response_text, validate=True))
    result = json.loads(plaintext)
    if not isinstance(result, dict):
        raise AssertionError(f"onion response is not a JSON object: {plaintext!r}")
    return result


# --------------------------------------------------------------------------- client


class Client:
    """A Session client of one server, speaking direct HTTP or onion requests.

    Every response is checked for the invariants clients rely on (a numeric
    status_code; HTTP status == status_code directly; outer 200 via onion), so
    each test checks them for free.
    """

    def __init__(
        self,
        base_url: str,
        server_public_key: bytes,
        *,
        transport: Transport = "http",
        null_body_style: NullBodyStyle = "null",
        http_client: httpx.Client | None = None,
        timeout: float = 15.0,
        http_prefix: str = LEGACY_PREFIX,
    ) -> None:
        """null_body_style: "null" as Android/iOS send on GET/DELETE, "empty"/"" as desktop.

        http_prefix: the path direct requests are sent under ("" for the root).
        """
        if null_body_style not in ("null", "empty", ""):
            raise ValueError(f"unknown null_body_style {null_body_style!r}")
        if len(server_public_key) != 32:
            raise ValueError("server public key must be 32 raw bytes")
        self.base_url = base_url.rstrip("/")
        self.server_public_key = server_public_key
        self.transport: Transport = transport
        self.null_body_style: NullBodyStyle = null_body_style
        self.http_prefix = http_prefix.rstrip("/")
        # trust_env=False: a proxy from the environment must not sit in front of loopback.
        self.http = http_client or httpx.Client(
            base_url=self.base_url, timeout=timeout, trust_env=False, limits=CLIENT_LIMITS
        )

    def close(self) -> None:
        """Release the connection pool."""
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        body: object | None = None,
        headers: Mapping[str, object] | None = None,
        room: str | None = None,
        token: str | None = None,
        transport: Transport | None = None,
    ) -> dict[str, Any]:
        """Make one API call and return the (inner) JSON object.

        endpoint has no leading slash, like real clients ("messages?limit=5").
        """
        all_headers: dict[str, object] = dict(headers or {})
        if room is not None:
            all_headers["Room"] = room
        if token is not None:
            all_headers["Authorization"] = token
        mode = transport or self.transport
        if mode == "http":
            return self._request_http(method, endpoint, body, all_headers)
        if mode == "onion":
            return self._request_onion(method, endpoint, body, all_headers)
        raise ValueError(f"unknown transport {mode!r}")

    def _request_http(
        self, method: str, endpoint: str, body: object | None, headers: dict[str, object]
    ) -> dict[str, Any]:
        """Direct call under http_prefix; the answer must be JSON, its HTTP status its
        body's status_code.

        See docs/spec/SPEC.md section 2.2.
        """
        str_headers = {k: str(v) for k, v in headers.items()}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body).encode()
            str_headers.setdefault("Content-Type", "application/json")
        path = self.http_prefix + "/" + endpoint.lstrip("/")
        resp = self.http.request(method, path, headers=str_headers, content=content)
        content_type = resp.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise AssertionError(
                f"{method} {endpoint}: HTTP {resp.status_code}, content type {content_type!r}"
                f" where the v2 API always answers JSON: {resp.text[:500]!r}"
            )
        try:
            parsed: object = resp.json()
        except ValueError as exc:
            raise AssertionError(
                f"{method} {endpoint}: HTTP {resp.status_code}, "
                f"body is not JSON: {resp.text[:500]!r}"
            ) from exc
        result = _checked(method, endpoint, parsed)
        if result["status_code"] != resp.status_code:
            raise AssertionError(
                f"{method} {endpoint}: HTTP status {resp.status_code} != "
                f"body status_code {result['status_code']}: {result!r}"
            )
        return result

    def _onion_body_text(self, body: object | None) -> str:
        """The inner "body" string exactly as the clients' serialisers produce it."""
        if body is not None:
            return json.dumps(body)
        return "null" if self.null_body_style == "null" else ""

    def _request_onion(
        self, method: str, endpoint: str, body: object | None, headers: dict[str, object]
    ) -> dict[str, Any]:
        """Call through /loki/v3/lsrpc: outer status 200, inner flat JSON.

        See docs/spec/SPEC.md section 2.1.
        """
        blob, key = build_onion_request(
            self.server_public_key, endpoint, method, self._onion_body_text(body), headers
        )
        resp = self.raw_onion(blob)
        if resp.status_code != 200:
            raise AssertionError(
                f"onion {method} {endpoint}: outer HTTP {resp.status_code}: {resp.text[:500]!r}"
            )
        try:
            result = decrypt_onion_response(key, resp.text)
        except (ValueError, InvalidTag) as exc:
            raise AssertionError(
                f"onion {method} {endpoint}: undecryptable response {resp.text[:200]!r}: {exc!r}"
            ) from exc
        return _checked(method, endpoint, result)

    def raw_onion(self, blob: bytes, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """POST raw bytes to the onion endpoint, without checks (malformed-envelope tests)."""
        return self.http.post(ONION_PATH, content=blob, headers=dict(headers or {}))

    # -- conveniences (the flows real clients run)

    def authenticate(
        self, identity: Identity, room: str, *, transport: Transport | None = None
    ) -> str:
        """Challenge + claim, as every client does per room; returns the hex token."""
        challenge = self.request(
            "GET",
            f"auth_token_challenge?public_key={identity.session_id}",
            room=room,
            transport=transport,
        )
        _expect_ok("auth_token_challenge", challenge)
        token = decrypt_challenge(
            identity,
            challenge["challenge"]["ciphertext"],
            challenge["challenge"]["ephemeral_public_key"],
        )
        claim = self.request(
            "POST",
            "claim_auth_token",
            body={"public_key": identity.session_id},
            room=room,
            token=token,
            transport=transport,
        )
        _expect_ok("claim_auth_token", claim)
        return token

    def post_message(
        self,
        identity: Identity,
        token: str,
        room: str,
        text_bytes: bytes | None = None,
        timestamp: int | None = None,
        *,
        legacy_signature: bool = False,
        transport: Transport | None = None,
    ) -> dict[str, Any]:
        """Pad, base64, sign and POST a message; returns the whole response object.

        text_bytes is the (unpadded) protobuf; by default a fresh visible message.
        """
        body = signed_message(identity, text_bytes, timestamp, legacy_signature=legacy_signature)
        return self.request(
            "POST", "messages", body=body, room=room, token=token, transport=transport
        )

    def compact_poll(
        self, requests: list[dict[str, Any]], *, transport: Transport | None = None
    ) -> dict[str, Any]:
        """POST compact_poll with no Room/Authorization headers, as clients do."""
        return self.request(
            "POST", "compact_poll", body={"requests": requests}, transport=transport
        )

    def all_messages(self, persona: Persona, page_size: int = 256) -> list[dict[str, Any]]:
        """Every live message of the persona's room, paging GET messages from the start."""
        return self._page_all(persona, "messages", "messages", "server_id", page_size)

    def all_deletions(self, persona: Persona, page_size: int = 256) -> list[dict[str, Any]]:
        """Every deletion entry of the persona's room, paging GET deleted_messages."""
        return self._page_all(persona, "deleted_messages", "ids", "id", page_size)

    def _page_all(
        self, persona: Persona, endpoint: str, key: str, cursor_of: str, page_size: int
    ) -> list[dict[str, Any]]:
        """Every entry of a v2 list read page by page from the start: ``key`` holds a
        page's entries, and the last entry's ``cursor_of`` is where the next starts."""
        found: list[dict[str, Any]] = []
        cursor = 0
        while True:
            page = self.request(
                "GET",
                f"{endpoint}?from_server_id={cursor}&limit={page_size}",
                room=persona.room,
                token=persona.token,
            )
            assert page["status_code"] == 200, page
            if not page[key]:
                return found
            found.extend(page[key])
            cursor = page[key][-1][cursor_of]


def make_message_body(
    identity: Identity, padded: bytes, signature: bytes, timestamp: int
) -> dict[str, Any]:
    """The POST messages body desktop and Android send (iOS omits public_key)."""
    return {
        "data": base64.b64encode(padded).decode(),
        "timestamp": timestamp,
        "public_key": identity.session_id,
        "signature": base64.b64encode(signature).decode(),
    }


def signed_message(
    identity: Identity,
    text_bytes: bytes | None = None,
    timestamp: int | None = None,
    *,
    legacy_signature: bool = False,
) -> dict[str, Any]:
    """A POST messages body as clients make it: padded, base64, signed (text_bytes: the
    unpadded protobuf, by default a fresh visible message; timestamp: now by default)."""
    payload = (
        text_bytes
        if text_bytes is not None
        else encode_visible_message(f"hello {os.urandom(6).hex()}")
    )
    padded = pad_message(payload)
    signature = identity.sign_legacy(padded) if legacy_signature else identity.sign(padded)
    when = timestamp if timestamp is not None else int(time.time() * 1000)
    return make_message_body(identity, padded, signature, when)


def _checked(method: str, endpoint: str, result: object) -> dict[str, Any]:
    """Every answer must be an object with an integer status_code (clients need it)."""
    if not isinstance(result, dict):
        raise AssertionError(f"{method} {endpoint}: response is not a JSON object: {result!r}")
    code = result.get("status_code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise AssertionError(f"{method} {endpoint}: no integer status_code: {result!r}")
    if code in (406, 421):
        raise AssertionError(f"{method} {endpoint}: status {code} means something else to clients")
    return result


def _expect_ok(what: str, result: dict[str, Any]) -> None:
    """Fail with the server's answer when a setup step is refused."""
    if result.get("status_code") != 200:
        raise AssertionError(f"{what} failed: {result!r}")
