"""The server key: pysogs keeps 32 raw bytes, we keep the same key as a PEM pair.

The join URLs carry the key's public half, and every client's blinded id is
derived from it, so a different key pair of ours stops the import.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opengroup import crypto
from opengroup.config import Settings
from opengroup.keys import KeyFileError
from opengroup.legacy_import.errors import LegacyImportError
from opengroup.legacy_import.keys import keys_needed, public_pem, write_exclusive
from opengroup.pysogs_import.errors import PysogsImportError


def check_keys(key: X25519PrivateKey, source: Path, settings: Settings) -> tuple[bytes, bool]:
    """(the public key, whether our key files need writing); refuses a different pair."""
    public = crypto.public_bytes(key)
    try:
        return public, keys_needed(public, source, settings)
    except (LegacyImportError, KeyFileError) as exc:
        raise PysogsImportError(str(exc)) from None


def install_keys(key: X25519PrivateKey, settings: Settings) -> None:
    """Write the key as our PEM pair (those files missing); the private one mode 0600."""
    if not settings.private_key_path.exists():
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_exclusive(settings.private_key_path, pem, 0o600)
    if not settings.public_key_path.exists():
        write_exclusive(settings.public_key_path, public_pem(key), 0o644)
