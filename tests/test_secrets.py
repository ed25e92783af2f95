"""Secrets: tokens kept only as hashes, a private key nobody else may read, quiet logs.

- Auth tokens are stored as SHA-256 hashes only (pending and claimed alike):
  a copy of the database yields no usable token.
- The private key file must be mode 0600 (as this server and `openssl genpkey`
  write it): the server refuses to start if every user of the machine may read
  or write it, and warns if its group may.
- Even at log level debug the log holds no token, no private key and no
  message or file content.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness import probe
from harness.server import REPO_ROOT, ServerProcess, run_cli, server_env
from harness.v2client import (
    DEFAULT_ROOM,
    Client,
    Identity,
    build_onion_request,
    decrypt_challenge,
    encode_visible_message,
    pad_message,
)
from psycopg import sql

ServerFactory = Callable[..., ServerProcess]

PRIVATE_PEM = "x25519_private_key.pem"
PUBLIC_PEM = "x25519_public_key.pem"
REFUSAL_TIMEOUT = 30.0


# --------------------------------------------------------------------------- helpers


def write_private_key(path: Path, mode: int) -> X25519PrivateKey:
    """A PKCS#8 PEM X25519 key as `openssl genpkey` writes it, with the given mode."""
    key = X25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(mode)
    return key


def database_dump(server: ServerProcess) -> bytes:
    """Everything the database holds: SQLite's files byte for byte, or every PostgreSQL
    table's rows as COPY text (bytea columns as \\x + hex)."""
    if server.database_url is None:
        files = [server.data_dir / f"opengroup.db{suffix}" for suffix in ("", "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    out: list[bytes] = []
    with probe.connect(server) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        assert tables, "no tables found: the dump would prove nothing"
        for (table,) in tables:
            copy_sql = sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))
            with conn.cursor().copy(copy_sql) as copy:
                out.extend(bytes(block) for block in copy)
    return b"".join(out)


def stored_forms(server: ServerProcess, raw: bytes) -> list[bytes]:
    """How some bytes would show in database_dump: raw in SQLite, hex in PostgreSQL COPY."""
    return [raw] if server.database_url is None else [raw.hex().encode()]


def token_forms(token_hex: str) -> list[bytes]:
    """Every form a token could leak in: raw bytes, lower- and upper-case hex."""
    return [bytes.fromhex(token_hex), token_hex.lower().encode(), token_hex.upper().encode()]


def token_hash(token_hex: str) -> bytes:
    """What the server should keep instead of the token."""
    return hashlib.sha256(bytes.fromhex(token_hex)).digest()


def unclaimed_token(client: Client, identity: Identity, room: str = DEFAULT_ROOM) -> str:
    """Ask for a challenge and decrypt it, without claiming it."""
    endpoint = f"auth_token_challenge?public_key={identity.session_id}"
    result = client.request("GET", endpoint, room=room)
    assert result["status_code"] == 200, result
    made = result["challenge"]
    return decrypt_challenge(identity, made["ciphertext"], made["ephemeral_public_key"])


def full_flow(client: Client) -> dict[str, Any]:
    """Everything a member does, over one transport; returns the secrets it involved.

    Keys: live (claimed tokens still valid), revoked, pending (unclaimed) token
    lists, and texts: message data and signatures, file contents (base64).
    """
    identity = Identity.generate()
    live = client.authenticate(identity, DEFAULT_ROOM)
    revoked = client.authenticate(identity, DEFAULT_ROOM)
    assert (
        client.request("DELETE", "auth_token", room=DEFAULT_ROOM, token=revoked)["status_code"]
        == 200
    )
    pending = unclaimed_token(client, identity)

    protobuf = encode_visible_message(f"a private thought {os.urandom(8).hex()}")
    posted = client.post_message(identity, live, DEFAULT_ROOM, protobuf)
    assert posted["status_code"] == 200, posted
    file_b64 = base64.b64encode(os.urandom(300)).decode()
    uploaded = client.request(
        "POST", "files", body={"file": file_b64}, room=DEFAULT_ROOM, token=live
    )
    assert uploaded["status_code"] == 200, uploaded
    fetched = client.request("GET", f"files/{uploaded['result']}", room=DEFAULT_ROOM, token=live)
    assert fetched["result"] == file_b64
    polled = client.compact_poll(
        [{"room_id": DEFAULT_ROOM, "auth_token": live, "from_message_server_id": 0}]
    )
    assert polled["results"][0]["status_code"] == 200, polled
    assert (
        client.request("GET", "messages", room=DEFAULT_ROOM, token="ab" * 48)["status_code"] == 401
    )
    return {
        "live": [live],
        "revoked": [revoked],
        "pending": [pending],
        "texts": [
            base64.b64encode(pad_message(protobuf)).decode(),
            posted["message"]["signature"],
            file_b64,
        ],
    }


# --------------------------------------------------------------------------- tokens at rest


def test_the_database_holds_token_hashes_never_tokens(server: ServerProcess) -> None:
    flows = []
    for transport in ("http", "onion"):
        with server.client(transport) as c:
            flows.append(full_flow(c))

    dump = database_dump(server)

    for flow in flows:
        for token in flow["live"] + flow["revoked"] + flow["pending"]:
            for form in token_forms(token):
                assert form not in dump, f"token {token[:12]}... stored in clear"
        for token in flow["live"] + flow["pending"]:
            assert any(f in dump for f in stored_forms(server, token_hash(token))), (
                "the token's hash is not where the dump should show it: the dump proves nothing"
            )


# --------------------------------------------------------------------------- logs


def test_debug_logs_hold_no_token_no_private_key_and_no_content(
    server_factory: ServerFactory,
) -> None:
    noisy = server_factory(env={"OPENGROUP_LOG_LEVEL": "debug"})
    flows = []
    for transport in ("http", "onion"):
        with noisy.client(transport) as c:
            flows.append(full_flow(c))
    with noisy.client("onion") as c:
        blob, _ = build_onion_request(noisy.public_key, "rooms", "GET", "", {})
        assert c.raw_onion(blob[:-40]).status_code == 400  # a refused envelope is logged
    pem = (noisy.data_dir / PRIVATE_PEM).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, X25519PrivateKey)
    raw_key = key.private_bytes_raw()

    log = noisy.output()

    assert "compact_poll" in log and "files" in log, "request lines missing: log not captured"
    secrets_in_text = [raw_key.hex(), raw_key.hex().upper(), base64.b64encode(raw_key).decode()]
    secrets_in_text += [line for line in pem.decode().splitlines() if "-----" not in line]
    for flow in flows:
        for token in flow["live"] + flow["revoked"] + flow["pending"]:
            secrets_in_text += [token.lower(), token.upper()]
        secrets_in_text += flow["texts"]
    secrets_in_text.append("ab" * 48)  # an unknown token is a secret too
    leaked = [s[:16] + "..." for s in secrets_in_text if s in log]
    assert leaked == [], f"secrets in the debug log: {leaked}"


# --------------------------------------------------------------------------- private key mode


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(0o604, id="world-readable"),
        pytest.param(0o602, id="world-writable"),
        pytest.param(0o644, id="group-and-world-readable"),
        pytest.param(0o666, id="everyone-read-write"),
    ],
)
def test_a_private_key_other_users_can_access_stops_the_server(
    tmp_path: Path, fresh_database_url: str | None, mode: int
) -> None:
    data_dir = tmp_path / "data"
    key_path = data_dir / PRIVATE_PEM
    write_private_key(key_path, mode)
    before = key_path.read_bytes()
    command = ServerProcess(data_dir, database_url=fresh_database_url).command()

    try:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=REFUSAL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server started with a mode {mode:o} private key")

    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert str(key_path) in said and "chmod 600" in said, said
    assert "Traceback" not in said, said
    assert key_path.read_bytes() == before and stat.S_IMODE(key_path.stat().st_mode) == mode
    assert not (data_dir / PUBLIC_PEM).exists(), "nothing is written before refusing"


def test_admin_commands_that_use_the_key_refuse_it_too(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    write_private_key(data_dir / PRIVATE_PEM, 0o644)

    done = run_cli(data_dir, fresh_database_url, "url", check=False)

    assert done.returncode != 0
    assert "chmod 600" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "mode, warns",
    [
        pytest.param(0o640, True, id="group-readable-warns"),
        pytest.param(0o620, True, id="group-writable-warns"),
        pytest.param(0o600, False, id="owner-only-is-quiet"),
        pytest.param(0o400, False, id="owner-read-only-is-quiet"),
    ],
)
def test_a_private_key_only_its_owner_or_group_can_access_is_used(
    tmp_path: Path, server_factory: ServerFactory, mode: int, warns: bool
) -> None:
    data_dir = tmp_path / "keyed" / "data"
    key = write_private_key(data_dir / PRIVATE_PEM, mode)

    started = server_factory(data_dir=data_dir)

    assert started.public_key == key.public_key().public_bytes_raw()
    output = started.output()
    assert ("chmod 600" in output) is warns, output


def test_a_key_from_openssl_genpkey_is_used_as_written(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    """`openssl genpkey -out` writes mode 0600 itself: no chmod needed, no warning."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    data_dir = tmp_path / "openssl" / "data"
    data_dir.mkdir(parents=True)
    key_path = data_dir / PRIVATE_PEM
    subprocess.run(
        [openssl, "genpkey", "-algorithm", "x25519", "-out", str(key_path)],
        check=True,
        capture_output=True,
        timeout=30,
    )

    started = server_factory(data_dir=data_dir)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with started.client("onion") as c:
        assert c.request("GET", "rooms")["status_code"] == 200
    assert "chmod" not in started.output()
