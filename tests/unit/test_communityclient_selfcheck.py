"""Self-checks of the community test client (tests/harness/communityclient.py), in-process.

The client is the yardstick of the community API tests, so it is checked here
against published vectors and against independent code: the X-SOGS header
vector of Session desktop, 15-blinded ids of pysogs, and decryption written
with a different library than the client's encryption.

Vector sources:
- session-foundation/session-desktop @ cd45cc067e22c0849afcc3ce6949003a6a438eda,
  ts/test/session/unit/crypto/OpenGroupAuthentication_test.ts
- oxen-io/session-pysogs @ 0b9c9c2bb036f74912bd8f95ec20907eb5358aa0,
  tests/test_blinding.py (test_blinded_key_derivation)
- draft-irtf-cfrg-xchacha-03 section 2.2.1 (HChaCha20)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import urllib.parse
from typing import Any

import httpx
import nacl.bindings as sodium
import pytest
import xeddsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from harness.communityclient import (
    BlindedIdentity,
    CommunityClient,
    EncType,
    OnionKey,
    Transport,
    WireFormatError,
    bdecode_strings,
    bencode_strings,
    blinding_factor,
    build_onion_envelope,
    decode_body,
    encode_v4_request,
    onion_decrypt,
    onion_encrypt,
    parse_v4_reply,
    signed_path,
    sogs_headers,
)
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

# --------------------------------------------------------------------------- desktop vector

DESKTOP_SEED = bytes.fromhex("c010d89eccbaf5d1c6d19df766c6eedf965d4a28a56f87c9fc819edb59896dd9")
DESKTOP_ED_PK = bytes.fromhex("bac6e71efd7dfa4a83c98ed24f254ab2c267f9ccdb172a5280a0444ad24e89cc")
DESKTOP_SERVER_PK = bytes.fromhex(
    "c3b3c6f32f0ab5a57f853cc4f30f5da7fda5624b0c77b3fb0829de562ada081d"
)
DESKTOP_TS = 1642472103
DESKTOP_METHOD = "GET"
DESKTOP_PATH = "/room/the-best-room/messages/recent?limit=25"
DESKTOP_NONCE_B64 = "CdB5nyKVmQGCw6s0Bvv8Ww=="
DESKTOP_BODY = "hello 🎂".encode()

DESKTOP_EXPECTED = {
    # (blinded, with body) -> (X-SOGS-Pubkey, X-SOGS-Signature)
    (True, False): (
        "1598932d4bccbe595a8789d7eb1629cefc483a0eaddc7e20e8fe5c771efafd9af5",
        "gYqpWZX6fnF4Gb2xQM3xaXs0WIYEI49+B8q4mUUEg8Rw0ObaHUWfoWjMHMArAtP9QlORfiydsKWz1o6zdPVeCQ==",
    ),
    (True, True): (
        "1598932d4bccbe595a8789d7eb1629cefc483a0eaddc7e20e8fe5c771efafd9af5",
        "hZCg5pEoy9t98umaY6fNarzcLP5UKUF8chz5mIjwwrRIQLy1kinRoYcNPdFOpJu8heA0val4viymXRTp1DGeBg==",
    ),
    (False, False): (
        "00bac6e71efd7dfa4a83c98ed24f254ab2c267f9ccdb172a5280a0444ad24e89cc",
        "xxLpXHbomAJMB9AtGMyqvBsXrdd2040y+Ol/IKzElWfKJa3EYZRv1GLO6CTLhrDFUwVQe8PPltyGs54Kd7O5Cg==",
    ),
    (False, True): (
        "00bac6e71efd7dfa4a83c98ed24f254ab2c267f9ccdb172a5280a0444ad24e89cc",
        "uumZNee7NUb0lVufegjzgjjnj4pe3kAe6OYw7iVTJrcxxxdIxUCgt5/xliBWqPlgY6ReUZRAuptNa4nprv7nCA==",
    ),
}


def test_desktop_seed_gives_desktop_public_key() -> None:
    """The vector's 64-byte secret key is seed || public key; our seed must match it."""
    assert BlindedIdentity.from_seed(DESKTOP_SEED).ed25519_public == DESKTOP_ED_PK


@pytest.mark.parametrize(("blinded", "with_body"), sorted(DESKTOP_EXPECTED))
def test_desktop_header_vector(blinded: bool, with_body: bool) -> None:
    """sogs_headers reproduces desktop's getOpenGroupHeaders output exactly."""
    headers = sogs_headers(
        BlindedIdentity.from_seed(DESKTOP_SEED),
        DESKTOP_SERVER_PK,
        DESKTOP_METHOD,
        DESKTOP_PATH,
        DESKTOP_BODY if with_body else b"",
        blinded=blinded,
        nonce=base64.b64decode(DESKTOP_NONCE_B64),
        timestamp=DESKTOP_TS,
    )
    pubkey, signature = DESKTOP_EXPECTED[(blinded, with_body)]
    assert headers == {
        "X-SOGS-Pubkey": pubkey,
        "X-SOGS-Timestamp": "1642472103",
        "X-SOGS-Nonce": DESKTOP_NONCE_B64,
        "X-SOGS-Signature": signature,
    }


# --------------------------------------------------------------------------- blinding

PYSOGS_SERVER_PK = bytes.fromhex("6a32c7b491f4199dd1260a4cc60ae51c6bd71dad939cc521e738409f53f943be")
PYSOGS_BLINDED15 = [
    (
        "880adf5164a79bce71f7387fbc2cb2693c0bf0ab4cb42bf1edafddade7527a66",
        "15cef185d46b60a548641bd8c5baa4b7cf90b7da8e883c0ac774c703d249086479",
    ),
    (
        "67416582e0700081604860d270bc986011fc5e62c53de908a9a5af2cb497c528",
        "15f8fbeb20cdde5e0cc0ec84e0b3705ca6090c7b23e8132589970473a5592ba388",
    ),
    (
        "a5ad71709cfa315d147921e377186270367fd06926f4dbfe33f519dec6b016f7",
        "15758e10dc51210d7a36ea6076e2aa84d9f87283bddb508364272dce0a7618f92a",
    ),
]


@pytest.mark.parametrize(("seed_hex", "expected"), PYSOGS_BLINDED15)
def test_pysogs_blinded_id_vectors(seed_hex: str, expected: str) -> None:
    """15-blinded ids match pysogs' derivation vectors."""
    identity = BlindedIdentity.from_seed(bytes.fromhex(seed_hex))
    assert identity.blinded_id(PYSOGS_SERVER_PK) == expected


def test_blinding_factor_is_reduced_blake2b() -> None:
    """k is BLAKE2b-512 of the server key reduced mod L (checked with big integers)."""
    order = 2**252 + 27742317777372353535851937790883648493
    digest = hashlib.blake2b(PYSOGS_SERVER_PK, digest_size=64).digest()
    expected = (int.from_bytes(digest, "little") % order).to_bytes(32, "little")
    assert blinding_factor(PYSOGS_SERVER_PK) == expected


def test_blinded_signature_verifies_under_blinded_key() -> None:
    """A blind15 signature is a plain Ed25519 signature under kA."""
    identity = BlindedIdentity.generate()
    server_pk = os.urandom(32)
    message = os.urandom(100)
    signature = identity.sign_blinded(server_pk, message)
    key = VerifyKey(bytes.fromhex(identity.blinded_id(server_pk)[2:]))
    assert key.verify(message, signature) == message
    assert identity.sign_blinded(server_pk, message) == signature  # deterministic
    with pytest.raises(BadSignatureError):
        key.verify(message + b"x", signature)


def test_ids_and_unblinded_signatures() -> None:
    """05 id = X25519 key of the same scalar; 00 mode signs with the Ed25519 key."""
    identity = BlindedIdentity.generate()
    x_public = X25519PrivateKey.from_private_bytes(identity.x25519_private).public_key()
    assert identity.session_id == "05" + x_public.public_bytes_raw().hex()
    assert identity.unblinded_id == "00" + identity.ed25519_public.hex()
    message = b"unblinded request"
    VerifyKey(identity.ed25519_public).verify(message, identity.sign_unblinded(message))


def test_message_signatures_for_each_poster_kind() -> None:
    """15 posters sign data with the blinded key, 05 posters with XEd25519."""
    identity = BlindedIdentity.generate()
    server_pk = os.urandom(32)
    data = os.urandom(159)
    blinded_sig = identity.sign_message_data(data, server_pk, blinded=True)
    VerifyKey(bytes.fromhex(identity.poster_id(server_pk)[2:])).verify(data, blinded_sig)
    xed_sig = identity.sign_message_data(data, server_pk, blinded=False)
    ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(identity.x25519_public, False)
    assert xeddsa.ed25519_verify(xed_sig, ed_pub, data)
    assert identity.poster_id(server_pk, blinded=False) == identity.session_id


# --------------------------------------------------------------------------- signed message


def test_signed_path_decodes_path_but_not_query() -> None:
    """Desktop signs reaction paths decoded (raw emoji); the query stays as sent."""
    assert signed_path("/room/r/reaction/4/%F0%9F%8E%82") == "/room/r/reaction/4/🎂"
    assert signed_path("/room/r/reaction/4/🎂") == "/room/r/reaction/4/🎂"
    assert signed_path("/room/r/messages/since/3?t=r&reactors=5") == (
        "/room/r/messages/since/3?t=r&reactors=5"
    )
    assert signed_path("/x?a=%20") == "/x?a=%20"
    assert signed_path("/capabilities?") == "/capabilities"


def test_headers_sign_the_documented_message() -> None:
    """Rebuild the signed bytes here and verify: empty body adds no hash, a body adds 64 bytes."""
    identity = BlindedIdentity.generate()
    server_pk = os.urandom(32)
    key = VerifyKey(bytes.fromhex(identity.blinded_id(server_pk)[2:]))
    for body in (b"", b'{"a":1}'):
        headers = sogs_headers(identity, server_pk, "post", "/room/x/message?y=1", body)
        nonce = base64.b64decode(headers["X-SOGS-Nonce"])
        assert len(nonce) == 16
        assert len(headers["X-SOGS-Pubkey"]) == 66
        message = server_pk + nonce + headers["X-SOGS-Timestamp"].encode() + b"POST"
        message += b"/room/x/message?y=1"
        if body:
            message += hashlib.blake2b(body, digest_size=64).digest()
        key.verify(message, base64.b64decode(headers["X-SOGS-Signature"]))


# --------------------------------------------------------------------------- bencode framing

AWKWARD_BODIES = [b"", b":", b"e", b"l1:ee", b"12:e:e", bytes(range(256)), "🎂:e".encode()]


@pytest.mark.parametrize("body", AWKWARD_BODIES)
def test_bencode_round_trip(body: bytes) -> None:
    """Lengths, not delimiters, frame the strings: ':' 'e' and binary bytes survive."""
    meta = b'{"code":200}'
    assert bdecode_strings(bencode_strings([meta, body])) == [meta, body]


def test_v4_request_frames_like_desktop() -> None:
    """Meta JSON keys in desktop's order, compact; no body string when the body is empty."""
    frame = encode_v4_request("GET", "/room/r/reaction/1/🎂", {"X-A": "1"})
    meta = '{"method":"GET","endpoint":"/room/r/reaction/1/🎂","headers":{"X-A":"1"}}'.encode()
    assert frame == b"l" + str(len(meta)).encode() + b":" + meta + b"e"
    framed = encode_v4_request("POST", "/x", {}, b"e:e")
    assert bdecode_strings(framed)[1] == b"e:e"
    assert framed.endswith(b"3:e:ee")


def _reply(meta: object, body: bytes) -> bytes:
    """A reply frame built here, independently of the client's encoder."""
    meta_bytes = json.dumps(meta).encode()
    return b"l%d:%s%d:%se" % (len(meta_bytes), meta_bytes, len(body), body)


JSON_META = {"code": 200, "headers": {"content-type": "application/json"}}


def test_reply_parse_accepts_the_documented_shape() -> None:
    """Each exact content type decodes to its Python type."""
    answer = parse_v4_reply(_reply(JSON_META, b'{"id": 123}'))
    assert (answer.status, answer.body, answer.content_type) == (
        200,
        {"id": 123},
        "application/json",
    )
    text = parse_v4_reply(
        _reply({"code": 400, "headers": {"content-type": "text/plain; charset=utf-8"}}, b"no")
    )
    assert (text.status, text.body) == (400, "no")
    binary = parse_v4_reply(
        _reply({"code": 200, "headers": {"content-type": "application/octet-stream"}}, b"e:\0")
    )
    assert binary.body == b"e:\0"
    assert parse_v4_reply(_reply({"code": 304, "headers": {}}, b"")).body is None


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b'{"code":200}', "not a list"),
        (b"d4:code3:200e", "a dictionary"),
        (_reply(JSON_META, b"{}")[: -len(b"2:{}e")] + b"e", "missing body string"),
        (_reply(JSON_META, b"{}") + b"x", "trailing bytes"),
        (_reply(JSON_META, b"{}")[:-1] + b"0:e", "a third string"),
        (_reply(JSON_META, b"{}")[:-1], "no closing e"),
        (_reply(JSON_META, b"{}").replace(b"2:{}", b"9:{}"), "length past the end"),
        (_reply(JSON_META, b"{}").replace(b"2:{}", b"02:{}"), "leading zero"),
        (_reply({"code": "200", "headers": {}}, b""), "string code"),
        (_reply({"code": True, "headers": {}}, b""), "boolean code"),
        (_reply({"code": 200}, b""), "no headers"),
        (_reply({"code": 200, "headers": {"Content-Type": "application/json"}}, b"{}"), "case"),
        (_reply([200, {}], b""), "meta not an object"),
        (_reply({"code": 200, "headers": {"content-type": "text/plain"}}, b"x"), "no charset"),
        (_reply({"code": 200, "headers": {"content-type": "text/html"}}, b"x"), "unknown type"),
        (_reply({"code": 200, "headers": {}}, b"x"), "body without type"),
        (_reply(JSON_META, b"{"), "bad JSON body"),
    ],
)
def test_reply_parse_refuses(frame: bytes, why: str) -> None:
    """Anything but l<n>:{"code","headers"}<n>:<body>e with a known content type fails."""
    with pytest.raises(WireFormatError):
        parse_v4_reply(frame)


def test_decode_body_is_exact_about_content_type() -> None:
    """'application/json; charset=utf-8' is not what desktop matches."""
    with pytest.raises(WireFormatError):
        decode_body("application/json; charset=utf-8", b"{}")
    assert decode_body("application/json", b"[1]") == [1]


# --------------------------------------------------------------------------- onion encryption


def _hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2), written here for the cross-check."""

    def rotl(v: int, n: int) -> int:
        return ((v << n) & 0xFFFFFFFF) | (v >> (32 - n))

    def quarter(s: list[int], a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 7)

    state = list(struct.unpack("<4I", b"expand 32-byte k"))
    state += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)):
            quarter(state, a, b, c, d)
        for a, b, c, d in ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            quarter(state, a, b, c, d)
    return struct.pack("<8I", *(state[0:4] + state[12:16]))


def xchacha_decrypt_with_cryptography(key: bytes, data: bytes) -> bytes:
    """nonce24 || ct opened with `cryptography` (ChaCha20-Poly1305 on an HChaCha20 subkey)."""
    nonce, ciphertext = data[:24], data[24:]
    subkey = _hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(subkey).decrypt(b"\0" * 4 + nonce[16:], ciphertext, None)


def xchacha_encrypt_with_cryptography(key: bytes, plaintext: bytes) -> bytes:
    """The inverse, also with `cryptography`."""
    nonce = os.urandom(24)
    subkey = _hchacha20(key, nonce[:16])
    return nonce + ChaCha20Poly1305(subkey).encrypt(b"\0" * 4 + nonce[16:], plaintext, None)


def test_local_hchacha20_matches_the_draft_vector() -> None:
    """The test-local HChaCha20 is right before it judges the client."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    assert _hchacha20(key, nonce).hex() == (
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    )


PLAINTEXTS = [b"", b"l2:{}e", os.urandom(1000)]


@pytest.mark.parametrize("plaintext", PLAINTEXTS)
def test_aes_gcm_round_trips_with_libsodium(plaintext: bytes) -> None:
    """Client AES-GCM (cryptography) against libsodium's aes256gcm, both directions."""
    key = OnionKey("aes-gcm", os.urandom(32))
    data = onion_encrypt(key, plaintext)
    assert len(data) == 12 + len(plaintext) + 16
    assert sodium.crypto_aead_aes256gcm_decrypt(data[12:], None, data[:12], key.key) == plaintext
    iv = os.urandom(12)
    theirs = iv + sodium.crypto_aead_aes256gcm_encrypt(plaintext, None, iv, key.key)
    assert onion_decrypt(key, theirs) == plaintext


@pytest.mark.parametrize("plaintext", PLAINTEXTS)
def test_xchacha_round_trips_with_cryptography(plaintext: bytes) -> None:
    """Client XChaCha20-Poly1305 (libsodium) against `cryptography`, both directions."""
    key = OnionKey("xchacha20", os.urandom(32))
    data = onion_encrypt(key, plaintext)
    assert len(data) == 24 + len(plaintext) + 16
    assert xchacha_decrypt_with_cryptography(key.key, data) == plaintext
    assert onion_decrypt(key, xchacha_encrypt_with_cryptography(key.key, plaintext)) == plaintext


@pytest.mark.parametrize("enc_type", ["aes-gcm", "xchacha20"])
def test_tampered_data_does_not_decrypt(enc_type: EncType) -> None:
    """One flipped bit is a WireFormatError, not garbage."""
    key = OnionKey(enc_type, os.urandom(32))
    data = bytearray(onion_encrypt(key, b"hello"))
    data[-1] ^= 1
    with pytest.raises(WireFormatError):
        onion_decrypt(key, bytes(data))


# --------------------------------------------------------------------------- the server side, here


class FakeServer:
    """Opens envelopes with the server's secret key (libsodium X25519, not the client's library).

    It answers an onion v4 request with the X-SOGS check it performed and what it
    received, so the whole client path is checked without a real server.
    """

    def __init__(self) -> None:
        self.secret = os.urandom(32)
        self.public = sodium.crypto_scalarmult_base(self.secret)
        self.seen: list[dict[str, Any]] = []

    def open(self, envelope: bytes) -> tuple[bytes, dict[str, Any], str, bytes]:
        """-> (plaintext, trailing JSON, enc_type, symmetric key)."""
        (size,) = struct.unpack("<I", envelope[:4])
        data, meta = envelope[4 : 4 + size], json.loads(envelope[4 + size :])
        client_pub = bytes.fromhex(meta["ephemeral_key"])
        shared = sodium.crypto_scalarmult(self.secret, client_pub)
        enc_type = meta.get("enc_type", "aes-gcm")
        if enc_type == "aes-gcm":
            key = hmac.new(b"LOKI", shared, hashlib.sha256).digest()
            plaintext = sodium.crypto_aead_aes256gcm_decrypt(data[12:], None, data[:12], key)
        else:
            key = hashlib.blake2b(shared + client_pub + self.public, digest_size=32).digest()
            plaintext = xchacha_decrypt_with_cryptography(key, data)
        return plaintext, meta, enc_type, key

    def seal(self, enc_type: str, key: bytes, plaintext: bytes) -> bytes:
        """Encrypt a reply under the request's key."""
        if enc_type == "aes-gcm":
            iv = os.urandom(12)
            return iv + sodium.crypto_aead_aes256gcm_encrypt(plaintext, None, iv, key)
        return xchacha_encrypt_with_cryptography(key, plaintext)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route as the server does: the two onion endpoints, else a direct request."""
        if request.url.path == "/oxen/v4/lsrpc":
            return self.onion_v4(request)
        if request.url.path == "/loki/v3/lsrpc":
            return self.onion_v3(request)
        endpoint = request.url.raw_path.decode()
        echo = self.answer(request.method, endpoint, dict(request.headers), request.content)
        return httpx.Response(201, json=echo)

    def onion_v4(self, request: httpx.Request) -> httpx.Response:
        """Bencoded [meta, body?] in, encrypted bencoded [meta, body] out."""
        plaintext, relay, enc_type, key = self.open(request.content)
        assert plaintext.startswith(b"l") and plaintext.endswith(b"e")
        meta_len, rest = plaintext[1:].split(b":", 1)
        meta = json.loads(rest[: int(meta_len)])
        body, parts = b"", 1
        if rest[int(meta_len) :] != b"e":
            body_len, body_rest = rest[int(meta_len) :].split(b":", 1)
            body, parts = body_rest[: int(body_len)], 2
        echo = self.answer(meta["method"], meta["endpoint"], meta["headers"], body)
        self.seen[-1].update(relay=relay, parts=parts)
        reply_meta = {"code": 201, "headers": {"content-type": "application/json"}}
        sealed = self.seal(enc_type, key, _reply(reply_meta, json.dumps(echo).encode()))
        return httpx.Response(200, content=sealed)

    def onion_v3(self, request: httpx.Request) -> httpx.Response:
        """JSON {"endpoint","method","body"?,"headers"} in, base64 of the encrypted body out."""
        plaintext, relay, enc_type, key = self.open(request.content)
        inner = json.loads(plaintext)
        body = inner.get("body", "").encode()
        echo = self.answer(inner["method"], inner["endpoint"], inner["headers"], body)
        self.seen[-1].update(relay=relay)
        sealed = self.seal(enc_type, key, json.dumps(echo).encode())
        return httpx.Response(200, content=base64.b64encode(sealed))

    def answer(
        self, method: str, endpoint: str, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        """Record the request; echo whether its signature holds and what body came."""
        self.seen.append({"method": method, "endpoint": endpoint, "headers": headers})
        return {"verified": self.verify(method, endpoint, headers, body), "body": body.decode()}

    def verify(self, method: str, endpoint: str, headers: dict[str, str], body: bytes) -> bool:
        """Check the X-SOGS headers as the server would: over the URL-decoded path."""
        h = {k.lower(): v for k, v in headers.items()}
        path, _, query = endpoint.partition("?")
        message = (
            self.public
            + base64.b64decode(h["x-sogs-nonce"])
            + h["x-sogs-timestamp"].encode()
            + method.encode()
            + urllib.parse.unquote(path).encode()
            + (b"?" + query.encode() if query else b"")
        )
        if body:
            message += hashlib.blake2b(body, digest_size=64).digest()
        VerifyKey(bytes.fromhex(h["x-sogs-pubkey"][2:])).verify(
            message, base64.b64decode(h["x-sogs-signature"])
        )
        return True


def fake_client(
    server: FakeServer, transport: Transport, enc_type: EncType = "aes-gcm"
) -> CommunityClient:
    """A CommunityClient whose HTTP goes to server in-process."""
    base_url = "http://127.0.0.1:8123"
    http = httpx.Client(base_url=base_url, transport=httpx.MockTransport(server.handle))
    return CommunityClient(base_url, server.public, transport, enc_type=enc_type, http_client=http)


@pytest.mark.parametrize("enc_type", ["aes-gcm", "xchacha20"])
def test_client_onion_request_end_to_end(enc_type: EncType) -> None:
    """request() over onion: envelope, framing, signature and reply all agree with FakeServer."""
    server = FakeServer()
    identity = BlindedIdentity.generate()
    with fake_client(server, "onion", enc_type) as client:
        answer = client.post("/room/r/message", {"data": "ZQ==", "x": "🎂"}, identity=identity)
    assert answer.status == 201
    assert answer.content_type == "application/json"
    assert answer.body == {"verified": True, "body": '{"data":"ZQ==","x":"🎂"}'}
    seen = server.seen[0]
    assert seen["relay"]["enc_type"] == enc_type
    assert {k: seen["relay"][k] for k in ("host", "target", "method", "protocol", "port")} == {
        "host": "127.0.0.1",
        "target": "/oxen/v4/lsrpc",
        "method": "POST",
        "protocol": "http",
        "port": 8123,
    }
    assert (seen["method"], seen["endpoint"], seen["parts"]) == ("POST", "/room/r/message", 2)
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["X-SOGS-Pubkey"] == identity.blinded_id(server.public)


def test_bodiless_onion_request_has_one_string_and_signs_decoded_path() -> None:
    """A reaction PUT without body: one bencoded string; raw emoji path signed as is."""
    server = FakeServer()
    identity = BlindedIdentity.generate()
    with fake_client(server, "onion") as client:
        answer = client.put("/room/r/reaction/7/🎂", identity=identity, blinded=False)
    assert answer.body == {"verified": True, "body": ""}
    assert server.seen[0]["parts"] == 1
    assert server.seen[0]["endpoint"] == "/room/r/reaction/7/🎂"
    assert server.seen[0]["headers"]["X-SOGS-Pubkey"] == identity.unblinded_id


def test_http_transport_sends_the_same_signed_request() -> None:
    """Direct HTTP: the same headers and body; the server verifies over the decoded path."""
    server = FakeServer()
    identity = BlindedIdentity.generate()
    items = [{"method": "GET", "path": "/capabilities"}]
    with fake_client(server, "http") as client:
        batch = client.batch(items, identity)
        reaction = client.put("/room/r/reaction/7/🎂?x=1", identity=identity)
    assert batch.status == 201
    assert batch.headers["content-type"] == "application/json"
    assert batch.body == {"verified": True, "body": '[{"method":"GET","path":"/capabilities"}]'}
    assert reaction.body["verified"] is True
    assert server.seen[1]["endpoint"] == "/room/r/reaction/7/%F0%9F%8E%82?x=1"


def test_onion_v3_helper() -> None:
    """The v3 helper: leading-slash endpoint, string body, base64 reply decrypted."""
    server = FakeServer()
    identity = BlindedIdentity.generate()
    with fake_client(server, "onion") as client:
        reply = client.onion_v3("POST", "/sequence", identity=identity, json=[])
    assert reply.http_status == 200
    assert reply.json() == {"verified": True, "body": "[]"}
    assert server.seen[0]["relay"]["target"] == "/loki/v3/lsrpc"
    assert server.seen[0]["endpoint"] == "/sequence"


def test_envelope_without_enc_type_is_aes_gcm() -> None:
    """send_enc_type=False leaves enc_type out, as desktop does; the server then uses AES-GCM."""
    server = FakeServer()
    envelope, key = build_onion_envelope(server.public, b"l2:{}e", send_enc_type=False)
    plaintext, meta, enc_type, server_key = server.open(envelope)
    assert "enc_type" not in meta
    assert (plaintext, enc_type, server_key) == (b"l2:{}e", "aes-gcm", key.key)


def test_outer_status_other_than_200_is_a_wire_error() -> None:
    """Desktop treats a non-200 from the onion endpoint as a failed path."""
    http = httpx.Client(
        base_url="http://127.0.0.1:1",
        transport=httpx.MockTransport(lambda request: httpx.Response(400, content=b"bad")),
    )
    client = CommunityClient("http://127.0.0.1:1", os.urandom(32), "onion", http_client=http)
    with client, pytest.raises(WireFormatError, match="outer HTTP 400"):
        client.get("/capabilities")
