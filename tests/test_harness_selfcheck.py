"""Checks of the test harness itself (no server needed).

If the client-side crypto were wrong, every server test would fail or, worse,
pass against a server with the same mistake. These checks pin it against
independent re-implementations written here with the raw primitives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import xeddsa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness.v2client import (
    LEGACY_PREFIX,
    Client,
    Identity,
    NullBodyStyle,
    Transport,
    build_onion_request,
    decrypt_challenge,
    decrypt_onion_response,
    encode_visible_message,
    load_public_key_pem,
    pad_message,
)

# Made with: openssl genpkey -algorithm x25519 | openssl pkey -pubout
OPENSSL_PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEARtDp77fLeKnFh1noph01B+RbzmvRHPhjEcGWX7gsxUc=
-----END PUBLIC KEY-----
"""
OPENSSL_PUBLIC_RAW = "46d0e9efb7cb78a9c58759e8a61d3507e45bce6bd11cf86311c1965fb82cc547"


def server_side_key(server_priv: X25519PrivateKey, ephemeral_hex: str) -> bytes:
    """The server's half of the key agreement, written independently of the client."""
    shared = server_priv.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex(ephemeral_hex)))
    return hmac.new(b"LOKI", shared, hashlib.sha256).digest()


def open_envelope(server_priv: X25519PrivateKey, blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Parse and decrypt an lsrpc body; returns (inner JSON, key).

    As docs/spec/SPEC.md section 2.1 describes it.
    """
    (n,) = struct.unpack("<I", blob[:4])
    ciphertext = blob[4 : 4 + n]
    metadata = json.loads(blob[4 + n :].decode("utf-8"))
    key = server_side_key(server_priv, metadata["ephemeral_key"])
    plaintext = AESGCM(key).decrypt(ciphertext[:12], ciphertext[12:], None)
    return json.loads(plaintext), key


def seal_response(key: bytes, obj: object) -> str:
    """Encrypt a response the way the server must: base64(IV | ct | tag)."""
    iv = os.urandom(12)
    return base64.b64encode(iv + AESGCM(key).encrypt(iv, json.dumps(obj).encode(), None)).decode()


# --------------------------------------------------------------------------- envelope


def test_onion_blob_layout_round_trip() -> None:
    server_priv = X25519PrivateKey.generate()
    server_pub = server_priv.public_key().public_bytes_raw()
    headers = {"Room": "main", "Authorization": "ab" * 48}
    blob, key = build_onion_request(server_pub, "messages?limit=5", "GET", "null", headers)

    (n,) = struct.unpack("<I", blob[:4])
    metadata = json.loads(blob[4 + n :])
    assert len(metadata["ephemeral_key"]) == 64
    assert metadata["ephemeral_key"] == metadata["ephemeral_key"].lower()
    key_by_hand = server_side_key(server_priv, metadata["ephemeral_key"])
    ciphertext = blob[4 : 4 + n]
    plaintext = AESGCM(key_by_hand).decrypt(ciphertext[:12], ciphertext[12:], None)
    assert n == 12 + len(plaintext) + 16  # IV | ct | tag, nothing else

    inner, server_key = open_envelope(server_priv, blob)
    assert server_key == key
    assert inner == {
        "endpoint": "messages?limit=5",
        "method": "GET",
        "body": "null",
        "headers": headers,
    }

    answer = {"status_code": 200, "messages": []}
    assert decrypt_onion_response(key, seal_response(key, answer)) == answer


def test_onion_request_without_body_leaves_key_out() -> None:
    server_priv = X25519PrivateKey.generate()
    blob, _ = build_onion_request(
        server_priv.public_key().public_bytes_raw(), "rooms", "GET", None, {}
    )
    inner, _ = open_envelope(server_priv, blob)
    assert "body" not in inner


def test_each_request_uses_a_fresh_ephemeral_key() -> None:
    pub = X25519PrivateKey.generate().public_key().public_bytes_raw()
    _, key1 = build_onion_request(pub, "rooms", "GET", "", {})
    _, key2 = build_onion_request(pub, "rooms", "GET", "", {})
    assert key1 != key2


def test_decrypt_onion_response_rejects_tampering() -> None:
    key = os.urandom(32)
    sealed = bytearray(base64.b64decode(seal_response(key, {"status_code": 200})))
    sealed[-1] ^= 1
    with pytest.raises(InvalidTag):
        decrypt_onion_response(key, base64.b64encode(bytes(sealed)).decode())


# --------------------------------------------------------------------------- padding, protobuf


# Signal's getPaddedMessageLength(len + 1) - 1 == ceil((len + 2) / 160) * 160 - 1: the 0x80
# terminator alone may fill the block, so 158 bytes still fit in 159 and 159 need 319.
@pytest.mark.parametrize(
    ("length", "padded"),
    [(0, 159), (1, 159), (157, 159), (158, 159), (159, 319), (318, 319), (319, 479)],
)
def test_pad_message_lengths(length: int, padded: int) -> None:
    data = os.urandom(length)
    out = pad_message(data)
    assert len(out) == padded
    assert out[:length] == data
    assert out[length] == 0x80
    assert set(out[length + 1 :]) <= {0}


def test_visible_message_protobuf_bytes() -> None:
    # Content{dataMessage(1){body(1): "hi"}}
    assert encode_visible_message("hi") == bytes.fromhex("0a040a026869")
    long_body = encode_visible_message("x" * 200)
    assert long_body[:5] == bytes.fromhex("0acb010ac8")  # multi-byte varint lengths


# --------------------------------------------------------------------------- signatures


def test_sign_verifies_as_xeddsa() -> None:
    identity = Identity.generate()
    data = pad_message(encode_visible_message("signed"))
    sig = identity.sign(data)
    assert len(sig) == 64
    ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(identity.public_bytes, False)
    assert xeddsa.ed25519_verify(sig, ed_pub, data)
    assert not xeddsa.ed25519_verify(sig, ed_pub, data + b"\x00")


def test_sign_legacy_verifies_after_clearing_the_bit() -> None:
    identity = Identity.generate()
    data = b"legacy style"
    sig = identity.sign_legacy(data)
    assert len(sig) == 64
    assert sig[63] & 0x80
    cleared = sig[:63] + bytes([sig[63] & 0x7F])
    ed_pub_signed = xeddsa.curve25519_pub_to_ed25519_pub(identity.public_bytes, True)
    assert xeddsa.ed25519_verify(cleared, ed_pub_signed, data)


def test_session_id_format() -> None:
    identity = Identity.generate()
    assert len(identity.session_id) == 66
    assert identity.session_id.startswith("05")
    assert bytes.fromhex(identity.session_id[2:]) == identity.public_bytes


# --------------------------------------------------------------------------- challenge, keys


def make_challenge(user_pub: bytes, token: bytes) -> dict[str, str]:
    """Server side of auth_token_challenge, independent of the client's helpers."""
    eph = X25519PrivateKey.generate()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(user_pub))
    key = hmac.new(b"LOKI", shared, hashlib.sha256).digest()
    iv = os.urandom(12)
    return {
        "ciphertext": base64.b64encode(iv + AESGCM(key).encrypt(iv, token, None)).decode(),
        "ephemeral_public_key": base64.b64encode(eph.public_key().public_bytes_raw()).decode(),
    }


def test_decrypt_challenge_round_trip() -> None:
    identity = Identity.generate()
    token = os.urandom(48)
    challenge = make_challenge(identity.public_bytes, token)
    assert (
        decrypt_challenge(identity, challenge["ciphertext"], challenge["ephemeral_public_key"])
        == token.hex()
    )


def test_load_openssl_public_key_pem() -> None:
    assert load_public_key_pem(OPENSSL_PUBLIC_PEM).hex() == OPENSSL_PUBLIC_RAW


# --------------------------------------------------------------------------- Client vs a fake


@dataclass
class FakeServer:
    """A tiny in-memory server behind httpx.MockTransport, to exercise Client's plumbing."""

    priv: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    pending: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    seen_bodies: list[object] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def public_key(self) -> bytes:
        return self.priv.public_key().public_bytes_raw()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/loki/v3/lsrpc":
            inner, key = open_envelope(self.priv, request.content)
            self.seen_bodies.append(inner.get("body"))
            headers = {k.lower(): str(v) for k, v in inner["headers"].items()}
            endpoint = "/" + inner["endpoint"].lstrip("/")
            status, obj = self.dispatch(inner["method"], endpoint, inner.get("body"), headers)
            return httpx.Response(200, text=seal_response(key, {"status_code": status, **obj}))
        body = request.content.decode() if request.content else None
        self.seen_bodies.append(body)
        headers = {k.lower(): v for k, v in request.headers.items()}
        target = request.url.raw_path.decode()
        if not target.startswith(LEGACY_PREFIX + "/"):  # direct v2 lives under /legacy/
            return httpx.Response(404, json={"status_code": 404, "error": "not found"})
        target = target.removeprefix(LEGACY_PREFIX)
        status, obj = self.dispatch(request.method, target, body, headers)
        return httpx.Response(status, json={"status_code": status, **obj})

    def dispatch(
        self, method: str, target: str, body: str | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        params: Any = json.loads(body) if body and body != "null" else None
        if (method, url.path) == ("GET", "/auth_token_challenge"):
            session_id = parse_qs(url.query)["public_key"][0]
            raw_token = os.urandom(48)
            self.pending[raw_token.hex()] = session_id
            return 200, {"challenge": make_challenge(bytes.fromhex(session_id[2:]), raw_token)}
        if (method, url.path) == ("POST", "/claim_auth_token"):
            token = headers.get("authorization", "")
            if self.pending.get(token) != params["public_key"]:
                return 401, {"error": "bad token"}
            self.tokens[token] = self.pending.pop(token)
            return 200, {}
        if (method, url.path) == ("POST", "/messages"):
            sender = self.tokens.get(headers.get("authorization", ""))
            if sender is None:
                return 401, {}
            data = base64.b64decode(params["data"])
            ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(bytes.fromhex(sender[2:]), False)
            if not xeddsa.ed25519_verify(base64.b64decode(params["signature"]), ed_pub, data):
                return 400, {"error": "bad signature"}
            message = {**params, "public_key": sender, "server_id": len(self.messages) + 1}
            self.messages.append(message)
            return 200, {"message": message}
        if (method, url.path) == ("POST", "/compact_poll"):
            results = [
                {
                    "room_id": r["room_id"],
                    "status_code": 200 if r.get("auth_token") in self.tokens else 401,
                    "messages": self.messages,
                    "deletions": [],
                    "moderators": [],
                }
                for r in params["requests"]
            ]
            return 200, {"results": results}
        if (method, url.path) == ("GET", "/mismatch"):
            return 200, {"status_code": 404}
        return 404, {"error": "not found"}


def fake_client(
    fake: FakeServer, transport: Transport, null_body_style: NullBodyStyle = "null"
) -> Client:
    http = httpx.Client(base_url="http://fake", transport=httpx.MockTransport(fake.handle))
    return Client(
        "http://fake",
        fake.public_key,
        transport=transport,
        null_body_style=null_body_style,
        http_client=http,
    )


@pytest.mark.parametrize("transport", ["http", "onion"])
def test_client_flow_against_fake(transport: Transport) -> None:
    fake = FakeServer()
    identity = Identity.generate()
    with fake_client(fake, transport) as client:
        token = client.authenticate(identity, "main")
        assert len(token) == 96
        posted = client.post_message(identity, token, "main", timestamp=1234)
        assert posted["status_code"] == 200
        assert posted["message"]["timestamp"] == 1234
        poll = client.compact_poll(
            [{"room_id": "main", "auth_token": token, "from_message_server_id": None}]
        )
        assert [r["status_code"] for r in poll["results"]] == [200]
        legacy = client.post_message(identity, token, "main", legacy_signature=True)
        assert legacy["status_code"] == 400  # the fake only knows the modern style
        assert client.request("GET", "nothing")["status_code"] == 404


@pytest.mark.parametrize(("style", "expected"), [("null", "null"), ("empty", ""), ("", "")])
def test_onion_null_body_style(style: NullBodyStyle, expected: str) -> None:
    fake = FakeServer()
    with fake_client(fake, "onion", style) as client:
        client.request("GET", "rooms")
        client.request("DELETE", "auth_token")
    assert fake.seen_bodies == [expected, expected]


def test_http_status_mismatch_is_an_error() -> None:
    with (
        fake_client(FakeServer(), "http") as client,
        pytest.raises(AssertionError, match="status"),
    ):
        client.request("GET", "mismatch")
