"""opengroup.domain.signed_requests.read_signature: the X-SOGS-* headers, without storage.

Requests are signed here with keys built in the test: a 15-blinded key from
docs/spec/sogs-v3.md section 2.1 (``k = reduce(BLAKE2b-512(server key))``, ``ka = k * a``,
``kA = ka * G``, the signature ``R | S`` with ``r`` from the seed's second half) and a
plain ``00`` Ed25519 key.

Rules pinned here:

* The signed bytes are ``server key | nonce | timestamp text | METHOD | signed path |
  BLAKE2b-512(body)``, the hash only for a non-empty body; the signed path is what the
  caller passes (the decoded path, and ``?`` with the raw query if there is one).
* All four headers are required (an empty one is missing): 400 "missing N/4".
* ``X-SOGS-Pubkey`` is 66 hex digits, ``15`` (blinded) or ``00`` (unblinded), any case,
  and a point of the prime-order subgroup: the identity, small-order points, points
  with a torsion part, non-canonical encodings and non-points are 400. With
  ``require_blinded`` a ``00`` key is 400 with the text clients react to.
* ``X-SOGS-Nonce`` is 16 bytes and ``X-SOGS-Signature`` 64, each as hex or base64
  (padded or not); other sizes or encodings are 400.
* ``X-SOGS-Timestamp`` is ASCII decimal seconds: 425 when more than the window away
  from now, either way; exactly the window away is accepted.
* A signature that does not verify is 401. The refusals' texts are pysogs' own.
* A blinded signer is its ``15`` id; an unblinded one is known by its ``05`` Session id.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable

import nacl.bindings as sodium
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nacl.signing import SigningKey

from opengroup.api.errors import status_of
from opengroup.domain.errors import InvalidInput, NotAuthenticated, NotFresh
from opengroup.domain.signed_requests import (
    BLINDING_REQUIRED,
    SignedRequest,
    is_signed,
    read_signature,
)

SERVER_PK = X25519PrivateKey.generate().public_key().public_bytes_raw()
NOW = 1_700_000_000
WINDOW = 86_400

Encode = Callable[[bytes], str]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64_unpadded(data: bytes) -> str:
    return b64(data).rstrip("=")


def hex_lower(data: bytes) -> str:
    return data.hex()


def hex_upper(data: bytes) -> str:
    return data.hex().upper()


class BlindedSigner:
    """A Session user's 15-blinded key for :data:`SERVER_PK`, signing as clients do."""

    def __init__(self, server_pk: bytes = SERVER_PK) -> None:
        seed = os.urandom(32)
        ed_secret = seed + bytes(SigningKey(seed).verify_key)
        a = sodium.crypto_sign_ed25519_sk_to_curve25519(ed_secret)
        digest = hashlib.blake2b(server_pk, digest_size=64).digest()
        k = sodium.crypto_core_ed25519_scalar_reduce(digest)
        self.ka = sodium.crypto_core_ed25519_scalar_mul(k, a)
        self.public = sodium.crypto_scalarmult_ed25519_base_noclamp(self.ka)
        self.nonce_key = hashlib.sha512(seed).digest()[32:]
        self.header = "15" + self.public.hex()
        self.session_id = self.header

    def sign(self, message: bytes) -> bytes:
        r = sodium.crypto_core_ed25519_scalar_reduce(
            hashlib.sha512(self.nonce_key + self.public + message).digest()
        )
        big_r = sodium.crypto_scalarmult_ed25519_base_noclamp(r)
        h = sodium.crypto_core_ed25519_scalar_reduce(
            hashlib.sha512(big_r + self.public + message).digest()
        )
        s = sodium.crypto_core_ed25519_scalar_add(
            r, sodium.crypto_core_ed25519_scalar_mul(h, self.ka)
        )
        return big_r + s


class PlainSigner:
    """An unblinded Ed25519 key: ``00`` in the header, known by its ``05`` Session id."""

    def __init__(self) -> None:
        self.key = SigningKey.generate()
        public = bytes(self.key.verify_key)
        self.header = "00" + public.hex()
        self.session_id = "05" + sodium.crypto_sign_ed25519_pk_to_curve25519(public).hex()

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message).signature


Signer = BlindedSigner | PlainSigner


def message(
    nonce: bytes,
    timestamp: str,
    method: str,
    path: str,
    body: bytes,
    *,
    server_pk: bytes = SERVER_PK,
    hash_body: bool | None = None,
) -> bytes:
    """The bytes a client signs (``hash_body`` forces the body hash in or out)."""
    with_hash = bool(body) if hash_body is None else hash_body
    body_hash = hashlib.blake2b(body, digest_size=64).digest() if with_hash else b""
    return server_pk + nonce + timestamp.encode() + method.encode() + path.encode() + body_hash


def signed_headers(
    signer: Signer,
    method: str = "GET",
    path: str = "/room/main",
    body: bytes = b"",
    *,
    timestamp: int | str = NOW,
    nonce: bytes | None = None,
    encode_nonce: Encode = b64,
    encode_signature: Encode = b64,
    signed: bytes | None = None,
) -> dict[str, str]:
    """The four headers (lower-case names, as the transports give them); ``signed``
    replaces the bytes signed, to sign something other than the request."""
    nonce = os.urandom(16) if nonce is None else nonce
    timestamp = str(timestamp)
    to_sign = message(nonce, timestamp, method, path, body) if signed is None else signed
    return {
        "x-sogs-pubkey": signer.header,
        "x-sogs-nonce": encode_nonce(nonce),
        "x-sogs-timestamp": timestamp,
        "x-sogs-signature": encode_signature(signer.sign(to_sign)),
    }


def read(
    headers: dict[str, str],
    method: str = "GET",
    path: str = "/room/main",
    body: bytes = b"",
    *,
    require_blinded: bool = True,
) -> SignedRequest:
    return read_signature(
        headers,
        method,
        path,
        body,
        server_public_key=SERVER_PK,
        now=NOW,
        window_seconds=WINDOW,
        require_blinded=require_blinded,
    )


@pytest.fixture
def blinded() -> BlindedSigner:
    return BlindedSigner()


@pytest.fixture
def plain() -> PlainSigner:
    return PlainSigner()


# ---------------------------------------------------------------------------- accepted


def test_a_request_signed_with_a_blinded_key_is_its_15_id(blinded: BlindedSigner) -> None:
    nonce = os.urandom(16)
    signed = read(signed_headers(blinded, nonce=nonce))
    assert signed == SignedRequest(blinded.session_id, nonce, NOW)
    assert signed.blinded


@pytest.mark.parametrize(
    "require_blinded",
    [pytest.param(True, id="blinding required"), pytest.param(False, id="blinding optional")],
)
def test_a_blinded_key_is_accepted_whether_or_not_blinding_is_required(
    blinded: BlindedSigner, require_blinded: bool
) -> None:
    signed = read(signed_headers(blinded), require_blinded=require_blinded)
    assert signed.session_id == blinded.session_id


def test_an_unblinded_key_is_its_05_session_id_when_blinding_is_optional(
    plain: PlainSigner,
) -> None:
    signed = read(signed_headers(plain), require_blinded=False)
    assert signed.session_id == plain.session_id
    assert not signed.blinded


def test_an_unblinded_key_is_refused_with_the_text_clients_react_to_when_blinding_is_required(
    plain: PlainSigner,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        read(signed_headers(plain))
    assert refused.value.reason == BLINDING_REQUIRED
    assert BLINDING_REQUIRED == (
        "Invalid authentication: this server requires the use of blinded ids"
    )


def test_an_upper_case_key_is_accepted_and_its_id_is_lower_case(blinded: BlindedSigner) -> None:
    headers = signed_headers(blinded)
    headers["x-sogs-pubkey"] = headers["x-sogs-pubkey"].upper()
    assert read(headers).session_id == blinded.session_id


@pytest.mark.parametrize(
    "encode_nonce",
    [
        pytest.param(b64, id="base64"),
        pytest.param(b64_unpadded, id="unpadded base64"),
        pytest.param(hex_lower, id="hex"),
        pytest.param(hex_upper, id="upper-case hex"),
    ],
)
@pytest.mark.parametrize(
    "encode_signature",
    [
        pytest.param(b64, id="base64 signature"),
        pytest.param(b64_unpadded, id="unpadded base64 signature"),
        pytest.param(hex_lower, id="hex signature"),
    ],
)
def test_nonces_and_signatures_may_be_hex_or_base64(
    blinded: BlindedSigner, encode_nonce: Encode, encode_signature: Encode
) -> None:
    nonce = os.urandom(16)
    headers = signed_headers(
        blinded, nonce=nonce, encode_nonce=encode_nonce, encode_signature=encode_signature
    )
    assert read(headers).nonce == nonce


# ---------------------------------------------------------------------------- headers


HEADERS = ("x-sogs-pubkey", "x-sogs-nonce", "x-sogs-timestamp", "x-sogs-signature")


@pytest.mark.parametrize(
    "absent",
    [
        *[pytest.param((h,), id=f"no {h}") for h in HEADERS],
        pytest.param(HEADERS[:2], id="two missing"),
        pytest.param(HEADERS, id="all missing"),
    ],
)
def test_every_header_is_required(blinded: BlindedSigner, absent: tuple[str, ...]) -> None:
    headers = {k: v for k, v in signed_headers(blinded).items() if k not in absent}
    with pytest.raises(InvalidInput) as refused:
        read(headers)
    assert refused.value.reason == (
        f"Invalid authentication headers: missing {len(absent)}/4 required X-SOGS-* headers"
    )


@pytest.mark.parametrize("name", [pytest.param(h, id=h) for h in HEADERS])
def test_an_empty_header_counts_as_missing(blinded: BlindedSigner, name: str) -> None:
    headers = {**signed_headers(blinded), name: ""}
    with pytest.raises(InvalidInput, match="missing 1/4 required"):
        read(headers)


def test_a_request_with_any_of_the_headers_is_signed() -> None:
    assert not is_signed({"room": "main"})
    for name in HEADERS:
        assert is_signed({name: "x"})


# ---------------------------------------------------------------------------- the key

KEY_HEX = "ab" * 32
NOT_AN_ID = "Invalid authentication: X-SOGS-Pubkey is not a valid 66-hex digit id"
BAD_PREFIX = "Invalid authentication: X-SOGS-Pubkey must be 00- or 15- prefixed"
NOT_A_POINT = "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"


@pytest.mark.parametrize(
    "pubkey, reason",
    [
        pytest.param(KEY_HEX, NOT_AN_ID, id="no prefix"),
        pytest.param("15" + KEY_HEX[:-2], NOT_AN_ID, id="64 hex digits with a prefix"),
        pytest.param("15" + KEY_HEX + "ab", NOT_AN_ID, id="68 hex digits"),
        pytest.param("15" + KEY_HEX[:-1] + "g", NOT_AN_ID, id="a non-hex digit"),
        pytest.param("15" + KEY_HEX[:-2] + "  ", NOT_AN_ID, id="trailing spaces"),
        pytest.param("05" + KEY_HEX, BAD_PREFIX, id="a 05 Session id"),
        pytest.param("25" + KEY_HEX, BAD_PREFIX, id="a 25 blinded id"),
        pytest.param("ff" + KEY_HEX, BAD_PREFIX, id="prefix ff"),
    ],
)
def test_a_malformed_key_is_refused(blinded: BlindedSigner, pubkey: str, reason: str) -> None:
    headers = {**signed_headers(blinded), "x-sogs-pubkey": pubkey}
    with pytest.raises(InvalidInput) as refused:
        read(headers)
    assert refused.value.reason == reason


def _with_torsion() -> str:
    """A valid key plus a point of order 8: on the curve, not in the prime-order subgroup."""
    order_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
    return sodium.crypto_core_ed25519_add(BlindedSigner().public, order_8).hex()


NOT_POINTS = [
    pytest.param("01" + "00" * 31, id="the identity"),
    pytest.param("00" * 32, id="a point of order 4"),
    pytest.param("ec" + "ff" * 30 + "7f", id="the point of order 2"),
    pytest.param("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", id="order 8"),
    pytest.param(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", id="order 8 too"
    ),
    pytest.param("ed" + "ff" * 30 + "7f", id="a non-canonical encoding"),
    pytest.param("02" + "00" * 31, id="not on the curve"),
    pytest.param(_with_torsion(), id="a torsion part"),
]


@pytest.mark.parametrize("prefix", [pytest.param("15"), pytest.param("00")])
@pytest.mark.parametrize("point", NOT_POINTS)
def test_a_key_outside_the_prime_order_subgroup_is_refused(
    blinded: BlindedSigner, prefix: str, point: str
) -> None:
    headers = {**signed_headers(blinded), "x-sogs-pubkey": prefix + point}
    with pytest.raises(InvalidInput) as refused:
        read(headers, require_blinded=False)
    assert refused.value.reason == NOT_A_POINT


# ---------------------------------------------------------------------------- nonce, signature

BAD_NONCE = "Invalid authentication: X-SOGS-Nonce must be 16 bytes (encoded as base64 or hex)"
BAD_SIGNATURE = "Invalid authentication: X-SOGS-Signature is not base64[88]"


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param(hex_lower(os.urandom(15)), id="15 bytes in hex"),
        pytest.param(hex_lower(os.urandom(17)), id="17 bytes in hex"),
        pytest.param(b64(os.urandom(15)), id="15 bytes in base64"),
        pytest.param(b64(os.urandom(17)), id="17 bytes in base64"),
        pytest.param("g" * 32, id="32 characters, neither hex nor 16 bytes of base64"),
        pytest.param("!" * 24, id="not base64"),
        pytest.param(base64.urlsafe_b64encode(b"\xff" * 16).decode(), id="URL-safe base64"),
    ],
)
def test_a_nonce_of_another_size_or_encoding_is_refused(blinded: BlindedSigner, nonce: str) -> None:
    headers = {**signed_headers(blinded), "x-sogs-nonce": nonce}
    with pytest.raises(InvalidInput) as refused:
        read(headers)
    assert refused.value.reason == BAD_NONCE


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(hex_lower(os.urandom(63)), id="63 bytes in hex"),
        pytest.param(hex_lower(os.urandom(65)), id="65 bytes in hex"),
        pytest.param(b64(os.urandom(63)), id="63 bytes in base64"),
        pytest.param(b64(os.urandom(65)), id="65 bytes in base64"),
        pytest.param("*" * 88, id="not base64"),
    ],
)
def test_a_signature_of_another_size_or_encoding_is_refused(
    blinded: BlindedSigner, signature: str
) -> None:
    headers = {**signed_headers(blinded), "x-sogs-signature": signature}
    with pytest.raises(InvalidInput) as refused:
        read(headers)
    assert refused.value.reason == BAD_SIGNATURE


# ---------------------------------------------------------------------------- the timestamp


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param(NOW - WINDOW, id="a whole window ago"),
        pytest.param(NOW + WINDOW, id="a whole window ahead"),
        pytest.param(NOW, id="now"),
    ],
)
def test_a_timestamp_within_the_window_either_way_is_accepted(
    blinded: BlindedSigner, timestamp: int
) -> None:
    assert read(signed_headers(blinded, timestamp=timestamp)).timestamp == timestamp


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param(NOW - WINDOW - 1, id="a second too old"),
        pytest.param(NOW + WINDOW + 1, id="a second too far ahead"),
        pytest.param(0, id="zero"),
    ],
)
def test_a_timestamp_outside_the_window_is_too_early(
    blinded: BlindedSigner, timestamp: int
) -> None:
    with pytest.raises(NotFresh) as refused:
        read(signed_headers(blinded, timestamp=timestamp))
    assert status_of(refused.value) == 425
    assert refused.value.reason == (
        "Invalid authentication: X-SOGS-Timestamp is too far from current time"
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param("soon", id="a word"),
        pytest.param(f"-{NOW}", id="negative"),
        pytest.param(f"{NOW}.5", id="a fraction"),
        pytest.param(f"+{NOW}", id="a plus sign"),
        pytest.param(f" {NOW}", id="a leading space"),
        pytest.param("1" * 13, id="13 digits"),
        pytest.param("\u0661\u0667" + "\u0660" * 8, id="Arabic-Indic digits"),
    ],
)
def test_a_timestamp_that_is_not_decimal_seconds_is_refused(
    blinded: BlindedSigner, timestamp: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        read(signed_headers(blinded, timestamp=timestamp))
    assert refused.value.reason == (
        "Invalid authentication: X-SOGS-Timestamp is not a valid timestamp"
    )


# ---------------------------------------------------------------------------- the signature


def test_a_signature_by_another_key_is_refused(blinded: BlindedSigner) -> None:
    headers = {**signed_headers(BlindedSigner()), "x-sogs-pubkey": blinded.header}
    with pytest.raises(NotAuthenticated) as refused:
        read(headers)
    assert status_of(refused.value) == 401
    assert refused.value.reason == ("Invalid authentication: X-SOGS-Signature verification failed")


M, P, B, T = "POST", "/room/main", b'{"a":1}', str(NOW)


@pytest.mark.parametrize(
    "signed_bytes",
    [
        pytest.param(lambda n: message(n, T, "PUT", P, B), id="another method"),
        pytest.param(lambda n: message(n, T, "post", P, B), id="the method in lower case"),
        pytest.param(lambda n: message(n, T, M, "/room/other", B), id="another path"),
        pytest.param(lambda n: message(n, T, M, P, b"{}"), id="another body"),
        pytest.param(lambda n: message(n, T, M, P, B, server_pk=bytes(32)), id="another server"),
        pytest.param(lambda n: message(bytes(16), T, M, P, B), id="another nonce"),
        pytest.param(lambda n: message(n, str(NOW + 1), M, P, B), id="another timestamp"),
    ],
)
def test_a_signature_over_other_bytes_is_refused(
    blinded: BlindedSigner, signed_bytes: Callable[[bytes], bytes]
) -> None:
    nonce = os.urandom(16)
    read(signed_headers(blinded, M, P, B, nonce=nonce), M, P, B)  # the request itself is fine
    headers = signed_headers(blinded, M, P, B, nonce=nonce, signed=signed_bytes(nonce))
    with pytest.raises(NotAuthenticated):
        read(headers, M, P, B)


def test_random_signature_bytes_are_refused(blinded: BlindedSigner) -> None:
    headers = {**signed_headers(blinded), "x-sogs-signature": b64(os.urandom(64))}
    with pytest.raises(NotAuthenticated):
        read(headers)


@pytest.mark.parametrize(
    "body, hash_body, accepted",
    [
        pytest.param(b"", False, True, id="no body: no hash"),
        pytest.param(b"", True, False, id="no body: the hash of nothing is refused"),
        pytest.param(b'{"a":1}', True, True, id="a body: its hash"),
        pytest.param(b'{"a":1}', False, False, id="a body without its hash is refused"),
    ],
)
def test_the_body_hash_is_signed_only_for_a_non_empty_body(
    blinded: BlindedSigner, body: bytes, hash_body: bool, accepted: bool
) -> None:
    nonce = os.urandom(16)
    signed = message(nonce, str(NOW), "POST", "/room/main", body, hash_body=hash_body)
    headers = signed_headers(blinded, "POST", "/room/main", body, nonce=nonce, signed=signed)
    if accepted:
        read(headers, "POST", "/room/main", body)
    else:
        with pytest.raises(NotAuthenticated):
            read(headers, "POST", "/room/main", body)


QUERY_PATH = "/room/main/messages/recent?limit=5&t=r"


@pytest.mark.parametrize(
    "signed_path, accepted",
    [
        pytest.param(QUERY_PATH, True, id="the path, '?' and the raw query"),
        pytest.param("/room/main/messages/recent", False, id="the path without the query"),
        pytest.param(QUERY_PATH.replace("?", ""), False, id="the query without '?'"),
        pytest.param(QUERY_PATH + "&", False, id="another query"),
    ],
)
def test_the_signed_path_carries_the_query_after_a_question_mark(
    blinded: BlindedSigner, signed_path: str, accepted: bool
) -> None:
    nonce = os.urandom(16)
    signed = message(nonce, str(NOW), "GET", signed_path, b"")
    headers = signed_headers(blinded, "GET", QUERY_PATH, nonce=nonce, signed=signed)
    if accepted:
        read(headers, "GET", QUERY_PATH)
    else:
        with pytest.raises(NotAuthenticated):
            read(headers, "GET", QUERY_PATH)


def test_the_signed_path_is_the_decoded_path_as_given(blinded: BlindedSigner) -> None:
    read(signed_headers(blinded, "GET", "/room/ma in/é"), "GET", "/room/ma in/é")
    headers = signed_headers(blinded, "GET", "/room/ma%20in/%C3%A9")
    with pytest.raises(NotAuthenticated):
        read(headers, "GET", "/room/ma in/é")


@pytest.mark.parametrize(
    "require_blinded",
    [pytest.param(True, id="blinding required"), pytest.param(False, id="blinding optional")],
)
def test_a_key_check_comes_before_the_signature_check(
    blinded: BlindedSigner, require_blinded: bool
) -> None:
    headers = {**signed_headers(blinded), "x-sogs-signature": b64(bytes(64))}
    headers["x-sogs-pubkey"] = "15" + "01" + "00" * 31
    with pytest.raises(InvalidInput, match="not a valid Ed25519 pubkey"):
        read(headers, require_blinded=require_blinded)
