"""The server's X25519 key pair, kept as PEM files like ``openssl genpkey -algorithm x25519``.

The public key is what join URLs carry, so losing or replacing the private key
breaks every join URL: existing files are used as they are, and a new pair is
made only when there is no private key yet. Creation is atomic (hard link of
a finished temporary file), so processes starting together agree on one key.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opengroup.crypto import public_bytes

log = logging.getLogger(__name__)


class KeyFileError(RuntimeError):
    """The key files exist but cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ServerKeys:
    private_key: X25519PrivateKey
    public_key: bytes

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()


def _write_new_private_key(path: Path) -> None:
    """Create ``path`` with a fresh key, mode 0600, unless another process got there first."""
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".x25519-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)
            log.info("generated a new X25519 key pair in %s", path)
        except FileExistsError:
            pass  # another process created it first; use theirs
    finally:
        os.unlink(tmp)


def check_private_key_mode(path: Path) -> None:
    """Refuse a private key any user of the machine may read or write; warn if the group may.

    Whoever reads the key can decrypt every onion request sent to this server,
    and whoever writes it can replace the server's identity. Files this server
    writes, and ``openssl genpkey -out``, are mode 0600.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise KeyFileError(
            f"private key {path} is readable or writable by every user of this machine "
            f"(mode {mode:04o}); refusing to use it. Run: chmod 600 {path}"
        )
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        log.warning(
            "private key %s is readable or writable by its group (mode %04o); chmod 600 it",
            path,
            mode,
        )


def load_private_key(path: Path) -> X25519PrivateKey:
    check_private_key_mode(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an X25519 key")
    return key


def load_or_create_keys(private_path: Path, public_path: Path) -> ServerKeys:
    """Load the key pair, creating it on first start; writes a missing public key file."""
    try:
        return _load_or_create_keys(private_path, public_path)
    except OSError as exc:  # a folder that cannot be made, a file that cannot be written
        where = exc.filename or private_path.parent
        raise KeyFileError(f"cannot keep the key pair at {where}: {exc.strerror}") from None


def _load_or_create_keys(private_path: Path, public_path: Path) -> ServerKeys:
    private_path.parent.mkdir(parents=True, exist_ok=True)
    if not private_path.exists():
        _write_new_private_key(private_path)
    private_key = load_private_key(private_path)
    public = public_bytes(private_key)
    if public_path.exists():
        try:
            stored = serialization.load_pem_public_key(public_path.read_bytes())
            stored_raw = stored.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{public_path} is not a PEM public key: {exc}") from None
        if stored_raw != public:
            raise KeyFileError(f"{public_path} does not belong to the private key {private_path}")
    else:
        pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = public_path.with_name(f".{public_path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        os.replace(tmp, public_path)
    return ServerKeys(private_key, public)
