"""The cryptography Session clients expect, built from `cryptography`, `PyNaCl` and
`xeddsa` (15-blinding and signed requests are in :mod:`opengroup.blinding` and
:mod:`opengroup.domain.signed_requests`).

These constructions, from docs/spec/SPEC.md sections 2.1 and 3 and
docs/spec/sogs-v3.md section 3:

* the "LOKI" channel: key = HMAC-SHA256(key=b"LOKI", msg=X25519(ours, theirs)),
  messages sealed with AES-256-GCM as ``IV(12) | ciphertext | tag(16)``; used
  for onion requests and for auth-token challenges;
* the onion channel with ``enc_type`` xchacha20: key = BLAKE2b-256(X25519(ours,
  theirs) | their public key | ours), sealed with XChaCha20-Poly1305 as
  ``nonce(24) | ciphertext | tag(16)``;
* XEdDSA signature checks of posted messages, accepting both the XEdDSA
  form (sign bit 0) and the older libsignal form that carries the sign bit of
  the Ed25519 key in the top bit of the signature's last byte;
* auth tokens: 48 random bytes; the database keeps only their SHA-256 hash
  (the hashing is our choice: docs/SECURITY.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import xeddsa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_aead as aead
from nacl.exceptions import CryptoError

IV_SIZE = 12
XCHACHA_NONCE_SIZE = 24
TAG_SIZE = 16
KEY_SIZE = 32
SIGNATURE_SIZE = 64


class DecryptionError(ValueError):
    """A sealed blob could not be opened: wrong key, tampered or truncated."""


def loki_key(private_key: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The symmetric key both sides derive from an X25519 exchange."""
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # wrong length or an all-zero (low order) result
        raise DecryptionError(f"bad X25519 public key: {exc}") from None
    return hmac.new(b"LOKI", shared, hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM with a fresh random IV, laid out as IV | ciphertext | tag."""
    iv = os.urandom(IV_SIZE)
    return iv + AESGCM(key).encrypt(iv, plaintext, None)


def open_sealed(key: bytes, blob: bytes) -> bytes:
    """Inverse of :func:`seal`."""
    if len(blob) < IV_SIZE + TAG_SIZE:
        raise DecryptionError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:IV_SIZE], blob[IV_SIZE:], None)
    except InvalidTag:
        raise DecryptionError("ciphertext does not authenticate") from None


def xchacha_key(private_key: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The onion key for ``enc_type`` xchacha20: BLAKE2b-256 of the X25519 shared secret,
    the client's (ephemeral) public key and ours."""
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise DecryptionError(f"bad X25519 public key: {exc}") from None
    own = public_bytes(private_key)
    return hashlib.blake2b(shared + peer_public + own, digest_size=KEY_SIZE).digest()


def seal_xchacha(key: bytes, plaintext: bytes) -> bytes:
    """XChaCha20-Poly1305 with a fresh random nonce, laid out as nonce(24) | ciphertext."""
    nonce = os.urandom(XCHACHA_NONCE_SIZE)
    return nonce + aead.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)


def open_xchacha(key: bytes, blob: bytes) -> bytes:
    """Inverse of :func:`seal_xchacha`."""
    if len(blob) < XCHACHA_NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("ciphertext too short")
    nonce, ciphertext = blob[:XCHACHA_NONCE_SIZE], blob[XCHACHA_NONCE_SIZE:]
    try:
        return aead.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, None, nonce, key)
    except CryptoError:
        raise DecryptionError("ciphertext does not authenticate") from None


def seal_for(recipient_public: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """Encrypt to a user's X25519 key with a one-off key; returns (ephemeral pub, blob)."""
    ephemeral = X25519PrivateKey.generate()
    blob = seal(loki_key(ephemeral, recipient_public), plaintext)
    return public_bytes(ephemeral), blob


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def verify_signature(x25519_public: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid XEdDSA signature of ``message`` by that X25519 key."""
    if len(signature) != SIGNATURE_SIZE or len(x25519_public) != KEY_SIZE:
        return False
    sign_bit = bool(signature[63] & 0x80)
    plain_sig = signature[:63] + bytes([signature[63] & 0x7F])
    try:
        ed_public = xeddsa.curve25519_pub_to_ed25519_pub(x25519_public, sign_bit)
        return bool(xeddsa.ed25519_verify(plain_sig, ed_public, message))
    except xeddsa.XEdDSAException:
        return False


def new_token() -> bytes:
    """48 random bytes: an auth token (sent to clients hex-encoded)."""
    return secrets.token_bytes(48)


def token_hash(token: bytes) -> bytes:
    """What the database keeps instead of a token, so a stolen copy yields no tokens."""
    return hashlib.sha256(token).digest()
