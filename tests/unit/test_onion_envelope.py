"""Onion requests, in-process: the envelope (opengroup.transport.onion.open_envelope),
the v3 inner request (parse_inner_request) and the v4 bencoded framing
(opengroup.transport.onion_v4). Envelopes are built here with ``cryptography`` and
PyNaCl from docs/spec/sogs-v3.md section 3, not with the server's code.

Rules pinned here:

* Envelope: ``N (u32 LE) | N bytes of ciphertext | JSON metadata`` with a 64-hex-digit
  ``ephemeral_key``. AES-GCM (key HMAC-SHA256("LOKI", X25519), blob ``IV12 | ct+tag``)
  unless ``enc_type`` names XChaCha20-Poly1305 (key BLAKE2b-256(X25519 | client key |
  server key), blob ``nonce24 | ct+tag``); the answer is sealed the same way. Anything
  unusable is :class:`EnvelopeError`: a body shorter than its prefix, a length past the
  end, metadata not a JSON object, an ephemeral key that is missing, malformed or of low
  order, an unknown ``enc_type``, a blob too short or that does not authenticate.
* v3 inner request: a JSON object with ``endpoint`` and ``method``. A leading ``/``
  marks the community API (2021 clients write v2 endpoints without it); the path is
  percent-decoded, the query kept raw for the signature and parsed (first value wins);
  header names are lower-cased, Android's numeric and boolean header values become
  text, null headers are dropped; a ``body`` of "", "null" or null is no body. The
  request apart from its body nests at most ``max_json_depth`` levels.
* v4: a bencoded list of one or two strings (metadata JSON, then the body), nothing
  after it; string lengths are decimal without leading zeros and may not run past the
  end; bodies are bytes (``:`` and ``e`` included). ``endpoint`` starts with ``/``; the
  path is percent-decoded, the raw query kept. The answer is two strings: ``{"code",
  "headers"}`` (content type first, none for an empty one) and the body.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Any

import nacl.bindings as sodium
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opengroup.api.jsonbody import DEEP_JSON
from opengroup.transport.onion import (
    Cipher,
    EnvelopeError,
    InnerRequestError,
    open_envelope,
    parse_inner_request,
)
from opengroup.transport.onion_v4 import (
    bdecode_strings,
    bencode_strings,
    encode_response,
    parse_request,
)

JSON = "application/json"

# ---------------------------------------------------------------------------- the client side


def raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


class Client:
    """One onion requester: an ephemeral X25519 key and the key it shares with the server."""

    def __init__(self, server_public: bytes, enc_type: str | None) -> None:
        self.ephemeral = X25519PrivateKey.generate()
        self.public = raw_public(self.ephemeral)
        self.enc_type = enc_type
        shared = self.ephemeral.exchange(X25519PublicKey.from_public_bytes(server_public))
        if self.xchacha:
            self.key = hashlib.blake2b(
                shared + self.public + server_public, digest_size=32
            ).digest()
        else:
            self.key = hmac.new(b"LOKI", shared, hashlib.sha256).digest()

    @property
    def xchacha(self) -> bool:
        return self.enc_type in ("xchacha20", "xchacha20-poly1305")

    def seal(self, plaintext: bytes) -> bytes:
        if self.xchacha:
            nonce = os.urandom(24)
            return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                plaintext, None, nonce, self.key
            )
        iv = os.urandom(12)
        return iv + AESGCM(self.key).encrypt(iv, plaintext, None)

    def open(self, blob: bytes) -> bytes:
        if self.xchacha:
            return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                blob[24:], None, blob[:24], self.key
            )
        return AESGCM(self.key).decrypt(blob[:12], blob[12:], None)

    def metadata(self, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"ephemeral_key": self.public.hex(), "host": "example.org"}
        if self.enc_type is not None:
            meta["enc_type"] = self.enc_type
        return {**meta, **extra}

    def envelope(self, plaintext: bytes, **extra: Any) -> bytes:
        return frame(self.seal(plaintext), orjson.dumps(self.metadata(**extra)))


def frame(blob: bytes, metadata: bytes) -> bytes:
    return struct.pack("<I", len(blob)) + blob + metadata


@pytest.fixture(scope="module")
def server_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


CIPHERS = [
    pytest.param(None, Cipher.AES_GCM, id="no enc_type is aes-gcm"),
    pytest.param("aes-gcm", Cipher.AES_GCM, id="aes-gcm"),
    pytest.param("gcm", Cipher.AES_GCM, id="gcm"),
    pytest.param("xchacha20", Cipher.XCHACHA20, id="xchacha20"),
    pytest.param("xchacha20-poly1305", Cipher.XCHACHA20, id="xchacha20-poly1305"),
]


# ---------------------------------------------------------------------------- the envelope


@pytest.mark.parametrize("enc_type, cipher", CIPHERS)
def test_an_envelope_opens_with_the_cipher_its_enc_type_names_and_answers_in_kind(
    server_key: X25519PrivateKey, enc_type: str | None, cipher: Cipher
) -> None:
    client = Client(raw_public(server_key), enc_type)
    opened = open_envelope(client.envelope(b'{"endpoint": "/capabilities"}'), server_key)
    assert opened.plaintext == b'{"endpoint": "/capabilities"}'
    assert opened.cipher is cipher
    assert opened.key == client.key
    assert client.open(opened.seal(b"the answer")) == b"the answer"


def test_an_empty_plaintext_opens(server_key: X25519PrivateKey) -> None:
    client = Client(raw_public(server_key), None)
    assert open_envelope(client.envelope(b""), server_key).plaintext == b""


def test_an_upper_case_ephemeral_key_is_accepted(server_key: X25519PrivateKey) -> None:
    client = Client(raw_public(server_key), None)
    body = client.envelope(b"x", ephemeral_key=client.public.hex().upper())
    assert open_envelope(body, server_key).plaintext == b"x"


@pytest.mark.parametrize(
    "body, reason",
    [
        pytest.param(b"", "shorter than its 4-byte length prefix", id="empty"),
        pytest.param(b"\x01\x00\x00", "shorter than its 4-byte length prefix", id="3 bytes"),
        pytest.param(b"\x05\x00\x00\x00abcd", "length exceeds the body", id="one byte short"),
        pytest.param(b"\xff\xff\xff\xff{}", "length exceeds the body", id="a huge length"),
        pytest.param(b"\x00\x00\x00\x00", "metadata is not JSON", id="no metadata"),
        pytest.param(b"\x00\x00\x00\x00not json", "metadata is not JSON", id="text metadata"),
        pytest.param(b"\x00\x00\x00\x00[]", "not a JSON object", id="a list as metadata"),
        pytest.param(b"\x00\x00\x00\x00null", "not a JSON object", id="null as metadata"),
        pytest.param(b"\x00\x00\x00\x00{}", "ephemeral_key", id="no ephemeral key"),
    ],
)
def test_a_malformed_envelope_is_refused(
    server_key: X25519PrivateKey, body: bytes, reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        open_envelope(body, server_key)


def test_a_length_prefix_that_cuts_the_blob_leaves_metadata_that_is_not_json(
    server_key: X25519PrivateKey,
) -> None:
    client = Client(raw_public(server_key), None)
    blob = client.seal(b"payload")
    body = struct.pack("<I", len(blob) - 5) + blob + orjson.dumps(client.metadata())
    with pytest.raises(EnvelopeError, match="metadata is not JSON"):
        open_envelope(body, server_key)


@pytest.mark.parametrize(
    "ephemeral_key",
    [
        pytest.param("ab" * 31, id="62 hex digits"),
        pytest.param("ab" * 33, id="66 hex digits"),
        pytest.param("zz" * 32, id="not hex"),
        pytest.param(" " + "ab" * 31 + "a", id="a space inside"),
        pytest.param(12, id="a number"),
        pytest.param(None, id="null"),
    ],
)
def test_a_malformed_ephemeral_key_is_refused(
    server_key: X25519PrivateKey, ephemeral_key: Any
) -> None:
    client = Client(raw_public(server_key), None)
    with pytest.raises(EnvelopeError, match="64-hex-digit ephemeral_key"):
        open_envelope(client.envelope(b"x", ephemeral_key=ephemeral_key), server_key)


@pytest.mark.parametrize("enc_type", [pytest.param("aes-gcm"), pytest.param("xchacha20")])
@pytest.mark.parametrize(
    "point",
    [
        pytest.param("00" * 32, id="u = 0"),
        pytest.param("01" + "00" * 31, id="u = 1"),
        pytest.param("ec" + "ff" * 30 + "7f", id="u = p - 1"),
    ],
)
def test_an_ephemeral_key_of_low_order_is_refused(
    server_key: X25519PrivateKey, enc_type: str, point: str
) -> None:
    client = Client(raw_public(server_key), enc_type)
    with pytest.raises(EnvelopeError, match="bad X25519 public key"):
        open_envelope(client.envelope(b"x", ephemeral_key=point), server_key)


@pytest.mark.parametrize(
    "enc_type",
    [
        pytest.param("aes-cbc", id="another cipher"),
        pytest.param("AES-GCM", id="upper case"),
        pytest.param("", id="empty"),
        pytest.param(1, id="a number"),
        pytest.param(None, id="null"),
    ],
)
def test_an_unknown_enc_type_is_refused(server_key: X25519PrivateKey, enc_type: Any) -> None:
    client = Client(raw_public(server_key), None)
    with pytest.raises(EnvelopeError, match="unknown enc_type"):
        open_envelope(client.envelope(b"x", enc_type=enc_type), server_key)


@pytest.mark.parametrize("enc_type", [pytest.param("aes-gcm"), pytest.param("xchacha20")])
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]), id="a flipped tag bit"),
        pytest.param(
            lambda blob: blob[:30] + bytes([blob[30] ^ 0x80]) + blob[31:],
            id="a flipped ciphertext bit",
        ),
        pytest.param(lambda blob: blob[:-1], id="one byte cut"),
        pytest.param(
            lambda blob: blob[:1] + bytes([blob[1] ^ 1]) + blob[2:], id="a flipped nonce bit"
        ),
    ],
)
def test_a_tampered_ciphertext_is_refused(
    server_key: X25519PrivateKey, enc_type: str, damage: Any
) -> None:
    client = Client(raw_public(server_key), enc_type)
    blob = damage(client.seal(b"x" * 40))
    with pytest.raises(EnvelopeError, match="does not authenticate"):
        open_envelope(frame(blob, orjson.dumps(client.metadata())), server_key)


@pytest.mark.parametrize("enc_type", [pytest.param("aes-gcm"), pytest.param("xchacha20")])
def test_a_blob_shorter_than_nonce_and_tag_is_refused(
    server_key: X25519PrivateKey, enc_type: str
) -> None:
    client = Client(raw_public(server_key), enc_type)
    with pytest.raises(EnvelopeError, match="ciphertext too short"):
        open_envelope(frame(os.urandom(27), orjson.dumps(client.metadata())), server_key)


def test_an_envelope_for_another_server_does_not_open(server_key: X25519PrivateKey) -> None:
    client = Client(raw_public(X25519PrivateKey.generate()), None)
    with pytest.raises(EnvelopeError, match="does not authenticate"):
        open_envelope(client.envelope(b"x"), server_key)


def test_an_envelope_sealed_with_the_other_cipher_does_not_open(
    server_key: X25519PrivateKey,
) -> None:
    client = Client(raw_public(server_key), "xchacha20")
    body = frame(client.seal(b"x"), orjson.dumps(client.metadata(enc_type="aes-gcm")))
    with pytest.raises(EnvelopeError, match="does not authenticate"):
        open_envelope(body, server_key)


# ---------------------------------------------------------------------------- v3 inner request


def inner(**fields: Any) -> bytes:
    return orjson.dumps({"method": "GET", "endpoint": "/capabilities", **fields})


@pytest.mark.parametrize(
    "endpoint, path, community_api",
    [
        pytest.param("/room/main", "/room/main", True, id="a leading slash: community API"),
        pytest.param("rooms", "/rooms", False, id="no leading slash: v2"),
        pytest.param("/legacy/rooms", "/legacy/rooms", True, id="the v2 API under /legacy"),
        pytest.param("//room/main", "/room/main", True, id="two leading slashes"),
        pytest.param("/room/ma%20in", "/room/ma in", True, id="percent-decoded"),
        pytest.param("/room/é", "/room/é", True, id="raw UTF-8"),
    ],
)
def test_a_leading_slash_marks_a_community_api_request(
    endpoint: str, path: str, community_api: bool
) -> None:
    request, is_v3 = parse_inner_request(inner(endpoint=endpoint), 32)
    assert (request.path, is_v3) == (path, community_api)


def test_the_query_is_kept_raw_and_parsed_first_value_first() -> None:
    request, _ = parse_inner_request(
        inner(endpoint="/room/main/messages/recent?limit=5&a=%20b&a=2&flag"), 32
    )
    assert request.path == "/room/main/messages/recent"
    assert request.query_string == "limit=5&a=%20b&a=2&flag"
    assert dict(request.query) == {"limit": "5", "a": " b", "flag": ""}


def test_the_method_is_upper_cased() -> None:
    request, _ = parse_inner_request(inner(method="post"), 32)
    assert request.method == "POST"


@pytest.mark.parametrize(
    "value, text",
    [
        pytest.param("main", "main", id="text"),
        pytest.param(5, "5", id="an integer"),
        pytest.param(5.0, "5", id="a whole float"),
        pytest.param(1.5, "1.5", id="a fraction"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
    ],
)
def test_header_names_are_lower_cased_and_android_values_become_text(value: Any, text: str) -> None:
    request, _ = parse_inner_request(inner(headers={"Room": value, "X-Other": "a"}), 32)
    assert dict(request.headers) == {"room": text, "x-other": "a"}


def test_null_headers_are_dropped_and_no_headers_is_none() -> None:
    request, _ = parse_inner_request(inner(headers={"Room": None, "A": "b"}), 32)
    assert dict(request.headers) == {"a": "b"}
    request, _ = parse_inner_request(inner(headers=None), 32)
    assert dict(request.headers) == {}
    request, _ = parse_inner_request(inner(), 32)
    assert dict(request.headers) == {}


@pytest.mark.parametrize(
    "body, raw",
    [
        pytest.param("null", b"", id="the text null"),
        pytest.param(" null ", b"", id="null with spaces"),
        pytest.param("", b"", id="empty text"),
        pytest.param(None, b"", id="JSON null"),
        pytest.param('{"a": 1}', b'{"a": 1}', id="JSON text kept as sent"),
        pytest.param("é", "é".encode(), id="text as UTF-8"),
        pytest.param({"a": 1}, b'{"a":1}', id="an object instead of its text"),
    ],
)
def test_a_body_of_null_or_empty_text_is_no_body(body: Any, raw: bytes) -> None:
    request, _ = parse_inner_request(inner(body=body), 32)
    assert request.body == raw


def test_no_body_at_all_is_no_body() -> None:
    request, _ = parse_inner_request(inner(), 32)
    assert request.body == b""


@pytest.mark.parametrize(
    "plaintext, reason",
    [
        pytest.param(b"not json", "not JSON", id="not JSON"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"[]", "must be a JSON object", id="a list"),
        pytest.param(b'{"method": "GET"}', "lacks an endpoint", id="no endpoint"),
        pytest.param(inner(endpoint=""), "lacks an endpoint", id="an empty endpoint"),
        pytest.param(inner(endpoint=5), "lacks an endpoint", id="a numeric endpoint"),
        pytest.param(b'{"endpoint": "/rooms"}', "lacks a method", id="no method"),
        pytest.param(inner(method=""), "lacks a method", id="an empty method"),
        pytest.param(inner(headers=["Room", "main"]), "headers must be a JSON", id="list headers"),
        pytest.param(inner(headers="Room: main"), "headers must be a JSON", id="text headers"),
    ],
)
def test_a_malformed_inner_request_is_refused(plaintext: bytes, reason: str) -> None:
    with pytest.raises(InnerRequestError, match=reason):
        parse_inner_request(plaintext, 32)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_the_inner_request_nests_at_most_max_json_depth_levels_apart_from_its_body() -> None:
    parse_inner_request(inner(headers=nested(3)["a"]), 3)  # 3 levels with the request itself
    with pytest.raises(InnerRequestError, match=DEEP_JSON):
        parse_inner_request(inner(headers=nested(3)), 3)
    request, _ = parse_inner_request(inner(body=nested(10)), 3)  # the body: checked later
    assert orjson.loads(request.body) == nested(10)


# ---------------------------------------------------------------------------- v4 framing


@pytest.mark.parametrize(
    "parts, encoded",
    [
        pytest.param([], b"le", id="no strings"),
        pytest.param([b""], b"l0:e", id="one empty string"),
        pytest.param([b"{}"], b"l2:{}e", id="one string"),
        pytest.param([b"{}", b"ab"], b"l2:{}2:abe", id="two strings"),
        pytest.param([b"x" * 10], b"l10:xxxxxxxxxxe", id="a two-digit length"),
    ],
)
def test_bencoded_lists_of_strings_round_trip(parts: list[bytes], encoded: bytes) -> None:
    assert bencode_strings(parts) == encoded
    assert bdecode_strings(encoded) == parts


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"e", id="a lone e"),
        pytest.param(b"3:abce", id="bencoding inside"),
        pytest.param(b"l1:ae:", id="a list inside"),
        pytest.param(bytes(range(256)), id="every byte"),
        pytest.param(b"\x00" * 1000 + b"e", id="zeros and a final e"),
    ],
)
def test_binary_bodies_with_colons_and_es_survive_the_framing(body: bytes) -> None:
    meta = b'{"method":"POST","endpoint":"/room/main/file"}'
    assert bdecode_strings(bencode_strings([meta, body])) == [meta, body]


@pytest.mark.parametrize(
    "data, reason",
    [
        pytest.param(b"", "not a bencoded list", id="empty"),
        pytest.param(b"2:ab", "not a bencoded list", id="a bare string"),
        pytest.param(b"l2:ab", "not a bencoded list", id="no final e"),
        pytest.param(b"d2:ab2:cde", "not a bencoded list", id="a dictionary"),
        pytest.param(b"l01:ae", "bad string length", id="a leading zero"),
        pytest.param(b"l00:e", "bad string length", id="a zero with a leading zero"),
        pytest.param(b"l-1:ae", "bad string length", id="a negative length"),
        pytest.param(b"l:ae", "bad string length", id="no length"),
        pytest.param(b"l1ae", "bad string length", id="no colon"),
        pytest.param(b"li5ee", "bad string length", id="an integer item"),
        pytest.param(b"l1:aexe", "bad string length", id="bytes after the list"),
        pytest.param(b"l1:aee", "bad string length", id="a second e"),
        pytest.param(b"l12345678901:ae", "bad string length", id="an 11-digit length"),
        pytest.param(b"l5:abe", "runs past the end", id="a length past the end"),
        pytest.param(b"l2:ab3:cde", "runs past the end", id="the second one past the end"),
    ],
)
def test_malformed_bencoding_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InnerRequestError, match=reason):
        bdecode_strings(data)


def v4(meta: Any, *body: bytes) -> bytes:
    return bencode_strings([orjson.dumps(meta), *body])


def test_a_v4_request_of_one_string_has_no_body() -> None:
    request = parse_request(v4({"method": "get", "endpoint": "/capabilities"}), 32)
    assert (request.method, request.path, request.body) == ("GET", "/capabilities", b"")


def test_a_v4_request_of_two_strings_carries_its_body_as_bytes() -> None:
    request = parse_request(v4({"method": "POST", "endpoint": "/room/a/file"}, b"1:ae\xff"), 32)
    assert request.body == b"1:ae\xff"


def test_a_v4_path_is_percent_decoded_and_its_query_kept_raw() -> None:
    endpoint = "/room/ma%20in/messages/since/5?t=r&reactors=%35&t=x"
    request = parse_request(v4({"method": "GET", "endpoint": endpoint}), 32)
    assert request.path == "/room/ma in/messages/since/5"
    assert request.query_string == "t=r&reactors=%35&t=x"
    assert dict(request.query) == {"t": "r", "reactors": "5"}


def test_v4_header_names_are_lower_cased_and_values_become_text() -> None:
    headers = {"X-SOGS-Pubkey": "15ab", "Room": 5, "Flag": True, "Gone": None}
    request = parse_request(v4({"method": "GET", "endpoint": "/", "headers": headers}), 32)
    assert dict(request.headers) == {"x-sogs-pubkey": "15ab", "room": "5", "flag": "true"}


@pytest.mark.parametrize(
    "data, reason",
    [
        pytest.param(b"le", "one or two strings", id="no strings"),
        pytest.param(bencode_strings([b"{}", b"", b""]), "one or two strings", id="three strings"),
        pytest.param(bencode_strings([b"{"]), "not JSON", id="metadata not JSON"),
        pytest.param(v4([]), "must be a JSON object", id="metadata a list"),
        pytest.param(v4({"endpoint": "/"}), "lacks a method", id="no method"),
        pytest.param(v4({"method": "GET"}), "endpoint must start with /", id="no endpoint"),
        pytest.param(
            v4({"method": "GET", "endpoint": "capabilities"}),
            "endpoint must start with /",
            id="no leading slash",
        ),
        pytest.param(
            v4({"method": "GET", "endpoint": "/", "headers": ["a"]}),
            "headers must be a JSON object",
            id="list headers",
        ),
        pytest.param(
            v4({"method": "GET", "endpoint": "/", "headers": nested(3)}),
            DEEP_JSON,
            id="metadata nested too deeply",
        ),
    ],
)
def test_a_malformed_v4_request_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InnerRequestError, match=reason):
        parse_request(data, 3)


def test_a_v4_answer_is_its_metadata_and_its_body() -> None:
    body = b"l3:a:ee\x00"
    meta, got = bdecode_strings(encode_response(200, JSON, {"x-extra": "1"}, body))
    assert got == body
    assert orjson.loads(meta) == {"code": 200, "headers": {"content-type": JSON, "x-extra": "1"}}


def test_a_v4_answer_without_a_content_type_names_none() -> None:
    meta, body = bdecode_strings(encode_response(304, "", {}, b""))
    assert (orjson.loads(meta), body) == ({"code": 304, "headers": {}}, b"")
