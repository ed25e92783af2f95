"""Signed requests of the community API: the four ``X-SOGS-*`` headers.

A client signs, with its Ed25519 key (15-blinded, or unblinded with the ``00``
prefix), the bytes::

    server X25519 public key (32) | nonce (16) | timestamp (ASCII decimal seconds)
    | METHOD | path (URL-decoded) [ "?" raw query ] | BLAKE2b-512(body), if any body

and sends ``X-SOGS-Pubkey`` (66 hex digits), ``X-SOGS-Nonce`` (16 bytes, base64
or hex), ``X-SOGS-Timestamp`` and ``X-SOGS-Signature`` (64 bytes, base64 or
hex). :func:`read_signature` checks all of that without storage; what needs
the database (the nonce never seen before, a global ban) is
:class:`~opengroup.domain.users.Users`' part. The order of the checks, and the
status each refusal answers, follow what clients react to (docs/API.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from opengroup import blinding
from opengroup.domain.errors import InvalidInput, NotFresh, SignatureRejected

HEADERS = ("x-sogs-pubkey", "x-sogs-nonce", "x-sogs-timestamp", "x-sogs-signature")
BLINDING_REQUIRED = "Invalid authentication: this server requires the use of blinded ids"
NONCE_SIZE = 16
SIGNATURE_SIZE = 64
BLINDED_PREFIX = "15"
UNBLINDED_PREFIX = "00"


@dataclass(frozen=True)
class SignedRequest:
    """A request whose signature checked out (its nonce is not yet known to be new)."""

    session_id: str  # "15..." (blinded) or "05..." (the X25519 form of a "00" key)
    nonce: bytes
    timestamp: int

    @property
    def blinded(self) -> bool:
        return self.session_id.startswith(BLINDED_PREFIX)


def is_signed(headers: Mapping[str, str]) -> bool:
    """Whether the request carries any of the signature headers (then it needs all)."""
    return any(name in headers for name in HEADERS)


def _bytes(text: str, size: int, refusal: str) -> bytes:
    """Hex or base64 (padded or not) of exactly ``size`` bytes; 400 ``refusal`` if not."""
    raw: bytes | None = None
    if len(text) == 2 * size:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(refusal) from None
    if len(raw) != size:
        raise InvalidInput(refusal)
    return raw


def read_signature(
    headers: Mapping[str, str],
    method: str,
    signed_path: str,
    body: bytes,
    *,
    server_public_key: bytes,
    now: float,
    window_seconds: float,
    require_blinded: bool,
) -> SignedRequest:
    """Check the headers of a signed request: 400 malformed, 425 outside the time
    window, 401 bad signature. ``signed_path`` is the decoded path and, if the query
    is not empty, ``?`` and the raw query."""
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise InvalidInput(
            f"Invalid authentication headers: missing {len(missing)}/4 required X-SOGS-* headers"
        )
    # The refusals' texts are pysogs' own (docs/spec/sogs-v3.md section 2).
    pubkey_text = headers["x-sogs-pubkey"].lower()
    try:
        prefixed_key = bytes.fromhex(pubkey_text)
    except ValueError:
        prefixed_key = b""
    if len(pubkey_text) != 66 or len(prefixed_key) != 33:
        raise InvalidInput("Invalid authentication: X-SOGS-Pubkey is not a valid 66-hex digit id")
    public_key = prefixed_key[1:]
    if pubkey_text[:2] not in (BLINDED_PREFIX, UNBLINDED_PREFIX):
        raise InvalidInput("Invalid authentication: X-SOGS-Pubkey must be 00- or 15- prefixed")
    blinded = pubkey_text.startswith(BLINDED_PREFIX)
    if require_blinded and not blinded:
        raise InvalidInput(BLINDING_REQUIRED)
    if not blinding.is_valid_point(public_key):
        raise InvalidInput(
            "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"
        )
    nonce = _bytes(
        headers["x-sogs-nonce"],
        NONCE_SIZE,
        "Invalid authentication: X-SOGS-Nonce must be 16 bytes (encoded as base64 or hex)",
    )
    signature = _bytes(
        headers["x-sogs-signature"],
        SIGNATURE_SIZE,
        "Invalid authentication: X-SOGS-Signature is not base64[88]",
    )
    timestamp_text = headers["x-sogs-timestamp"]
    if not timestamp_text.isascii() or not timestamp_text.isdigit() or len(timestamp_text) > 12:
        raise InvalidInput("Invalid authentication: X-SOGS-Timestamp is not a valid timestamp")
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > window_seconds:
        raise NotFresh("Invalid authentication: X-SOGS-Timestamp is too far from current time")
    message = b"".join(
        (
            server_public_key,
            nonce,
            timestamp_text.encode(),
            method.encode(),
            signed_path.encode(),
            hashlib.blake2b(body, digest_size=64).digest() if body else b"",
        )
    )
    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        raise SignatureRejected(
            "Invalid authentication: X-SOGS-Signature verification failed"
        ) from None
    session_id = pubkey_text if blinded else blinding.session_id_of_ed25519(public_key)
    return SignedRequest(session_id, nonce, timestamp)
