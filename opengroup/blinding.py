"""Server side of "15" id blinding, as used by the Session community (SOGS v3) API.

A client that talks to a community server under blinding signs with a key that is
specific to that server, so its identity cannot be linked across servers:

* blinding factor ``k = crypto_core_ed25519_scalar_reduce(BLAKE2b-512(S))``, where
  ``S`` is the server's X25519 public key;
* blinded public key ``kA = k * A``, where ``A`` is the client's Ed25519 public key;
  the blinded id is ``"15" + hex(kA)``.

The server only sees Session ids ``"05" + hex(X)`` (``X`` an X25519 public key), and
``X`` determines ``A`` only up to sign. So ``A'`` is taken as the Ed25519 point of ``X``
with sign bit 0 (Edwards ``y = (u - 1) / (u + 1) mod p``, the XEdDSA conversion), and
``kA' = k * A'`` is either the client's blinded key or its negation. Negating an Ed25519
point flips the sign bit (the top bit of the last byte) of its encoding, so both
candidates agree once that bit is cleared; :func:`blinded_abs` gives that shared form
for lookups.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import nacl.bindings as sodium
import nacl.exceptions
import xeddsa

KEY_SIZE = 32
SIGN_BIT = 0x80
UNBLINDED_PREFIX = "05"
BLINDED_PREFIX = "15"

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _key_of(prefixed_id: str, prefix: str) -> bytes:
    """The 32 key bytes of ``prefix`` + 64 hex digits; ValueError on anything else."""
    if (
        not isinstance(prefixed_id, str)
        or not prefixed_id.startswith(prefix)
        or not _HEX_KEY.fullmatch(prefixed_id, len(prefix))
    ):
        raise ValueError(f"not a {prefix} id: {prefixed_id!r}")
    return bytes.fromhex(prefixed_id[len(prefix) :])


@lru_cache(maxsize=16)
def blinding_factor(server_x25519_public: bytes) -> bytes:
    """The scalar ``k`` (32 bytes) that blinds client keys for the server with this key."""
    if len(server_x25519_public) != KEY_SIZE:
        raise ValueError("server public key must be 32 bytes")
    digest = hashlib.blake2b(server_x25519_public, digest_size=64).digest()
    return sodium.crypto_core_ed25519_scalar_reduce(digest)


def blinded_candidates(session_id: str, server_x25519_public: bytes) -> tuple[str, str]:
    """The two "15" ids the owner of ``session_id`` ("05" + X25519 key) may use here.

    The first has the sign bit cleared, the second has it set; the client's actual
    blinded id is one of them. Raises ValueError if ``session_id`` is malformed or its
    key is not a usable curve point.
    """
    x25519_public = _key_of(session_id, UNBLINDED_PREFIX)
    k = blinding_factor(server_x25519_public)
    try:
        ed_public = xeddsa.curve25519_pub_to_ed25519_pub(x25519_public, False)
        blinded = bytearray(sodium.crypto_scalarmult_ed25519_noclamp(k, ed_public))
    except (xeddsa.XEdDSAException, nacl.exceptions.RuntimeError):
        raise ValueError(f"session id is not a usable public key: {session_id!r}") from None
    blinded[31] &= ~SIGN_BIT & 0xFF
    positive = BLINDED_PREFIX + blinded.hex()
    blinded[31] |= SIGN_BIT
    return positive, BLINDED_PREFIX + blinded.hex()


def blinded_abs(blinded_id: str) -> str:
    """``blinded_id`` ("15" + hex) with the sign bit cleared, in lower-case hex.

    Both candidates of :func:`blinded_candidates` map to the same value.
    """
    key = bytearray(_key_of(blinded_id, BLINDED_PREFIX))
    key[31] &= ~SIGN_BIT & 0xFF
    return BLINDED_PREFIX + key.hex()


def session_id_of_ed25519(ed25519_public: bytes) -> str:
    """The "05" Session id of an Ed25519 public key (its X25519 form, hex)."""
    try:
        x25519_public = sodium.crypto_sign_ed25519_pk_to_curve25519(ed25519_public)
    except nacl.exceptions.RuntimeError:
        raise ValueError("not a usable Ed25519 public key") from None
    return UNBLINDED_PREFIX + x25519_public.hex()


def is_valid_point(ed25519_public: bytes) -> bool:
    """True for a canonical encoding of a prime-order-subgroup point of large order."""
    if not isinstance(ed25519_public, bytes) or len(ed25519_public) != KEY_SIZE:
        return False
    return _is_valid_point(ed25519_public)


# The subgroup check costs about two thirds of a signature check, and every signed
# request asks it of its signer's key: the answers for the keys seen lately are kept
# (a client signs every poll with the same key).
@lru_cache(maxsize=16384)
def _is_valid_point(ed25519_public: bytes) -> bool:
    return bool(sodium.crypto_core_ed25519_is_valid_point(ed25519_public))
