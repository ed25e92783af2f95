"""Known-answer and property tests of opengroup.blinding (15-blinded ids).

Vectors from outside this project:

* ``PYSOGS_VECTORS``: oxen-io/session-pysogs, tests/test_blinding.py
  (``test_blinded_key_derivation``), commit 9497ddbfffd34a5dabaf23cc9cca795a761521c7:
  Ed25519 seeds and the "15" id each gets on a server with a fixed public key.
* ``DESKTOP_*``: session-foundation/session-desktop,
  ts/test/session/unit/crypto/OpenGroupAuthentication_test.ts,
  commit 1380d1eb1169c11985e354b4623505e6a7f433e7: a user's key, a request, and the
  X-SOGS-Pubkey / X-SOGS-Signature headers the desktop client sends for it.
"""

from __future__ import annotations

import base64
import hashlib

import nacl.bindings as sodium
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from opengroup.blinding import (
    blinded_abs,
    blinded_candidates,
    blinding_factor,
    is_valid_point,
    session_id_of_ed25519,
)

# --------------------------------------------------------------------------- pysogs vectors

PYSOGS_SERVER_PK = bytes.fromhex("6a32c7b491f4199dd1260a4cc60ae51c6bd71dad939cc521e738409f53f943be")

# (Ed25519 seed, expected "15" id)
PYSOGS_VECTORS = [
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
    (
        "c929a389a0dcf375ae8177891655b3835773e3a2d6d27490de8b8a160ca472f8",
        "1515ad8f8c5e56b31078a4a5ae73938bd523b1c86ea36033d564759e4495fbb64d",
    ),
    (
        "0576076b8a82aae0fa1d0f00e97b538b43205f63759a972f26b851a55b60b5d0",
        "15375a56d4cbf0538f4b326e54917fd1953e9e3dfe076eb8b35929a8d869a15c13",
    ),
    (
        "0a5db01db307ffd1bbe3cdd0d47c71e8837c60b38983d1df1b187301959095c9",
        "151a821dd107ac68845f82085efb1f88d046a084a63f7fc381ec07a367e6bc5aac",
    ),
    (
        "d9b4ff572d4ebbcf26b07329f9029462f0606087d64e8932e698aa0a98231ce3",
        "15a4acf4c814fd1bcf83ebbe42c276630a63e32365633cb57089544b3a60b5e4ac",
    ),
    (
        "dbcf64e7e6323ace8a75327119c13ef0b41e0efb94e594a6424ba41472987844",
        "1503e60a1fbde2a930e11db0898220ceb41e5ea9161f61ff1dc7d83be3e9b96993",
    ),
    (
        "2e90f20775370121a2db8413a68bb41c3618e63c744c865d8b03ca2cb9d52e9e",
        "150bfdf09d985453d70b07b779ac7de982c0b6190c19126df74e8ca3adbfb87fec",
    ),
    (
        "0b19b8b2f006f73810a86244697ac3feb3500af22f97434bf1e4bac575e95d2f",
        "15c430f8cf5e3ca4a3d0fa79d75fe60b3dc21212b4467ddd01fc1173c738161628",
    ),
    (
        "32c58327a3856acb77ca0e97993100b4a14475b2d5cd3804213ae2d6f2515709",
        "150fdb6a400ade0aa2d261999fc51aa0151201d30626b30ec94d3a06a927948523",
    ),
    (
        "f5c57e9949bbb87b3ae9fa374bc05b8e945c33141b7eb19c5125d17023120287",
        "15cdda69401f8ca32c4760b025b8315967ce9f5c53d4b75239b26d8ff9db5852f8",
    ),
    (
        "3aacbfb5059e1df00d11ff5742f8a5b91cdb9fe163f38906d7dfaae29ad30c0c",
        "152701bb6cf273f7c30a0b2bb3a4b027415aab3fdff5d44b7b50af269aaa46007d",
    ),
    (
        "cce2487f4f1a01a54811204e8c774e7380c080f5f40cda0ef395752ef96dd35c",
        "15c92aa80e809a84d97323f911355d5015e916f3d5bebc297a17b4c44bad487ad6",
    ),
    (
        "a414c2990f36a115308f74bbcb56c4238135c0578abf8de0505b08e9c7b69134",
        "150e51c490bc7c570310276b7fdaeb9e0e14ab4674ce8217df5418b621b52c5c31",
    ),
    (
        "cbf84283c5d4a906b81e7533005fdd832d9d3712e71d5ee8247e3d32c1e2e38c",
        "157b0487fa9bc7449a167d66b56eb3e3fc628101d84a08f3f510f46de90de2e3a4",
    ),
    (
        "e75399dac3b5b3675874ba1708d1effc6ab9bbd5b0fac4cf78a3c2b36af9cfc5",
        "15f277d3d6afbecc15c71d16c3f183e6dbb772b176f3c818265f4459aa649b9d80",
    ),
    (
        "6cef60808348898f17123eb4f47556f22ae0e7bd1988455da6d4b685ea0f93d0",
        "152d766ba9a19fd108e8f397b7fddaad2473cf13192858b8fd28f641e6c817c7c1",
    ),
    (
        "9396176367912b4bc9b2fca427bf7fea97293ee9db75e521e31e4618e2da061c",
        "15a2308a015da570bd749348991d4fee7b0ea5816f372a6c584581964680c9d46a",
    ),
    (
        "b9ac6f130f0ef218e1fbd9484b38ba3a0a8ec5657744732b0a4a9e7f6c80a62e",
        "1513533ac53ea094b0c0e907046ffc2ade32122da069df503583bf89d6af01e127",
    ),
]


def client_blinded_id(signing_key: SigningKey, server_pk: bytes) -> str:
    """What a client computes: "15" + hex(k*a*G), a the private scalar of its key."""
    a = signing_key.to_curve25519_private_key().encode()
    ka = sodium.crypto_core_ed25519_scalar_mul(blinding_factor(server_pk), a)
    return "15" + sodium.crypto_scalarmult_ed25519_base_noclamp(ka).hex()


def session_id_of(signing_key: SigningKey) -> str:
    return "05" + signing_key.verify_key.to_curve25519_public_key().encode().hex()


def test_pysogs_vector_count() -> None:
    assert len(PYSOGS_VECTORS) == 20
    assert len({seed for seed, _ in PYSOGS_VECTORS}) == 20


@pytest.mark.parametrize(
    ("seed_hex", "expected"),
    PYSOGS_VECTORS,
    ids=[f"seed-{seed[:8]}" for seed, _ in PYSOGS_VECTORS],
)
def test_pysogs_blinded_key_derivation(seed_hex: str, expected: str) -> None:
    signing_key = SigningKey(bytes.fromhex(seed_hex))

    # The client-side derivation gives exactly the published id.
    assert client_blinded_id(signing_key, PYSOGS_SERVER_PK) == expected

    # From the 05 id alone the server gets two candidates that differ only in the sign
    # bit (the top bit of the last byte), one of which is the published id.
    positive, negative = blinded_candidates(session_id_of(signing_key), PYSOGS_SERVER_PK)
    assert len(positive) == len(negative) == 66
    assert positive != negative
    assert positive[:64] == negative[:64]
    assert int(positive[64], 16) ^ int(negative[64], 16) == 0x8
    assert positive[65] == negative[65]
    assert int(positive[64], 16) & 0x8 == 0
    assert expected in (positive, negative)
    assert blinded_abs(expected) == positive


# --------------------------------------------------------------------------- desktop vector

# The first 32 bytes of the desktop test's 64-byte libsodium secret key (seed || public key).
DESKTOP_SEED = bytes(
    [
        192, 16, 216, 158, 204, 186, 245, 209, 198, 209, 157, 247, 102, 198, 238, 223,
        150, 93, 74, 40, 165, 111, 135, 201, 252, 129, 158, 219, 89, 137, 109, 217,
    ]
)  # fmt: skip
DESKTOP_ED25519_PK = bytes(
    [
        186, 198, 231, 30, 253, 125, 250, 74, 131, 201, 142, 210, 79, 37, 74, 178,
        194, 103, 249, 204, 219, 23, 42, 82, 128, 160, 68, 74, 210, 78, 137, 204,
    ]
)  # fmt: skip
DESKTOP_SERVER_PK = bytes.fromhex(
    "c3b3c6f32f0ab5a57f853cc4f30f5da7fda5624b0c77b3fb0829de562ada081d"
)
DESKTOP_TIMESTAMP = 1642472103
DESKTOP_METHOD = "GET"
DESKTOP_PATH = "/room/the-best-room/messages/recent?limit=25"
DESKTOP_NONCE = base64.b64decode("CdB5nyKVmQGCw6s0Bvv8Ww==")
DESKTOP_BODY = "hello \N{BIRTHDAY CAKE}"
DESKTOP_BLINDED_ID = "1598932d4bccbe595a8789d7eb1629cefc483a0eaddc7e20e8fe5c771efafd9af5"
DESKTOP_SIG_NO_BODY = (
    "gYqpWZX6fnF4Gb2xQM3xaXs0WIYEI49+B8q4mUUEg8Rw0ObaHUWfoWjMHMArAtP9QlORfiydsKWz1o6zdPVeCQ=="
)
DESKTOP_SIG_WITH_BODY = (
    "hZCg5pEoy9t98umaY6fNarzcLP5UKUF8chz5mIjwwrRIQLy1kinRoYcNPdFOpJu8heA0val4viymXRTp1DGeBg=="
)


def signed_message(
    server_pk: bytes, nonce: bytes, timestamp: int, method: str, path: str, body: bytes | None
) -> bytes:
    """server pk || nonce || timestamp || METHOD || path || BLAKE2b-64(body) if any body."""
    message = server_pk + nonce + str(timestamp).encode() + method.encode() + path.encode()
    if body:
        message += hashlib.blake2b(body, digest_size=64).digest()
    return message


def test_desktop_key_pair_is_consistent() -> None:
    assert SigningKey(DESKTOP_SEED).verify_key.encode() == DESKTOP_ED25519_PK


def test_desktop_blinded_pubkey() -> None:
    session_id = session_id_of_ed25519(DESKTOP_ED25519_PK)
    # The desktop user's blinded key has its sign bit set: the second candidate.
    assert blinded_candidates(session_id, DESKTOP_SERVER_PK)[1] == DESKTOP_BLINDED_ID
    assert client_blinded_id(SigningKey(DESKTOP_SEED), DESKTOP_SERVER_PK) == DESKTOP_BLINDED_ID


@pytest.mark.parametrize(
    ("body", "signature_b64"),
    [(None, DESKTOP_SIG_NO_BODY), (DESKTOP_BODY.encode(), DESKTOP_SIG_WITH_BODY)],
    ids=["no-body", "with-body"],
)
def test_desktop_signature_verifies(body: bytes | None, signature_b64: str) -> None:
    message = signed_message(
        DESKTOP_SERVER_PK, DESKTOP_NONCE, DESKTOP_TIMESTAMP, DESKTOP_METHOD, DESKTOP_PATH, body
    )
    signature = base64.b64decode(signature_b64)
    blinded_pk = bytes.fromhex(DESKTOP_BLINDED_ID[2:])
    assert VerifyKey(blinded_pk).verify(message, signature) == message

    # ... and only under the right key: the other candidate does not verify it.
    session_id = session_id_of_ed25519(DESKTOP_ED25519_PK)
    (other,) = set(blinded_candidates(session_id, DESKTOP_SERVER_PK)) - {DESKTOP_BLINDED_ID}
    with pytest.raises(BadSignatureError):
        VerifyKey(bytes.fromhex(other[2:])).verify(message, signature)


# --------------------------------------------------------------------------- properties


def test_blinded_abs_makes_candidates_equal() -> None:
    session_id = session_id_of(SigningKey.generate())
    positive, negative = blinded_candidates(session_id, PYSOGS_SERVER_PK)
    assert blinded_abs(positive) == blinded_abs(negative) == positive
    assert blinded_abs("15" + negative[2:].upper()) == positive


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("15" + "00" * 32, id="blinded-prefix"),
        pytest.param("05" + "00" * 31, id="short"),
        pytest.param("05" + "00" * 33, id="long"),
        pytest.param("05" + "zz" * 32, id="not-hex"),
        pytest.param("05 " + "0" * 63, id="space"),
        # Well-formed hex whose key is unusable: u = 0 maps to a point of order 2,
        # u = 2 is not on Curve25519 (it lies on the twist).
        pytest.param("05" + "00" * 32, id="small-order-point"),
        pytest.param("0502" + "00" * 31, id="twist-point"),
    ],
)
def test_blinded_candidates_rejects_malformed_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        blinded_candidates(bad, PYSOGS_SERVER_PK)


@pytest.mark.parametrize("bad", ["", "05" + "00" * 32, "15" + "00" * 31, "15" + "g0" * 32])
def test_blinded_abs_rejects_malformed_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        blinded_abs(bad)


def test_blinding_factor_is_a_reduced_scalar() -> None:
    k = blinding_factor(PYSOGS_SERVER_PK)
    assert len(k) == 32
    assert sodium.crypto_core_ed25519_scalar_reduce(k + bytes(32)) == k
    with pytest.raises(ValueError):
        blinding_factor(PYSOGS_SERVER_PK[:31])


def test_session_id_of_ed25519_matches_pynacl() -> None:
    verify_key = SigningKey.generate().verify_key
    expected = "05" + verify_key.to_curve25519_public_key().encode().hex()
    assert session_id_of_ed25519(verify_key.encode()) == expected


def test_is_valid_point() -> None:
    assert is_valid_point(SigningKey.generate().verify_key.encode())
    assert is_valid_point(DESKTOP_ED25519_PK)
    assert not is_valid_point(DESKTOP_ED25519_PK[:31])
    assert not is_valid_point(DESKTOP_ED25519_PK + b"\x00")
    assert not is_valid_point(b"")
    assert not is_valid_point(bytes(32))
    assert not is_valid_point(b"\x01" + bytes(31))  # the identity: small order


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "server_pk", [PYSOGS_SERVER_PK, DESKTOP_SERVER_PK], ids=["pysogs", "desktop"]
)
@pytest.mark.parametrize("attempt", range(8))
def test_round_trip_with_fresh_key(server_pk: bytes, attempt: int) -> None:
    signing_key = SigningKey.generate()
    ed25519_pk = signing_key.verify_key.encode()
    session_id = "05" + signing_key.verify_key.to_curve25519_public_key().encode().hex()
    assert session_id_of_ed25519(ed25519_pk) == session_id

    # The client's side, straight from libsodium: kA = (k * a) * G.
    k = blinding_factor(server_pk)
    a = sodium.crypto_sign_ed25519_sk_to_curve25519(signing_key.encode() + ed25519_pk)
    ka = sodium.crypto_core_ed25519_scalar_mul(k, a)
    kA = sodium.crypto_scalarmult_ed25519_base_noclamp(ka)

    candidates = blinded_candidates(session_id, server_pk)
    assert "15" + kA.hex() in candidates
    assert blinded_abs("15" + kA.hex()) == candidates[0]
