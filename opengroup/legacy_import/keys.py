"""The key pair: the join URLs hang on it, so a different pair of ours stops the import."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opengroup import crypto
from opengroup.config import Settings
from opengroup.keys import load_private_key
from opengroup.legacy_import.errors import LegacyImportError
from opengroup.legacy_import.source import LegacyDataDir


def write_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` atomically; never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".import-", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def public_pem(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_keys(legacy: LegacyDataDir, settings: Settings) -> tuple[str, bool]:
    """(reference public key hex, whether our key files need writing).

    Refuses if our key paths hold a different key pair.
    """
    public = crypto.public_bytes(legacy.private_key())
    return public.hex(), keys_needed(public, legacy.private_key_path, settings)


def keys_needed(public: bytes, source: Path, settings: Settings) -> bool:
    """Whether our key files need writing to hold the key pair of ``public`` (read from
    ``source``); refuses if our key paths hold a different key pair."""
    ours_private, ours_public = settings.private_key_path, settings.public_key_path
    if ours_private.exists() and crypto.public_bytes(load_private_key(ours_private)) != public:
        raise LegacyImportError(
            f"{ours_private} holds a different key pair than {source}; "
            "importing would change every join URL. Move our key files away first "
            "(or import into another data dir)."
        )
    if ours_public.exists():
        try:
            stored = serialization.load_pem_public_key(ours_public.read_bytes())
            raw = stored.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except (ValueError, TypeError):
            raw = b""
        if raw != public:
            raise LegacyImportError(
                f"{ours_public} is not the public key of {source}; move it away first"
            )
    return not (ours_private.exists() and ours_public.exists())


def install_keys(legacy: LegacyDataDir, settings: Settings) -> None:
    """Copy the reference key files to our key paths (those missing)."""
    key = legacy.private_key()
    if not settings.private_key_path.exists():
        write_exclusive(settings.private_key_path, legacy.private_key_path.read_bytes(), 0o600)
    if not settings.public_key_path.exists():
        pem = (
            legacy.public_key_path.read_bytes()
            if legacy.public_key_path.exists()
            else public_pem(key)
        )
        write_exclusive(settings.public_key_path, pem, 0o644)
