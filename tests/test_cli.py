"""The operator's admin commands: `opengroup ...` and the drop-in `session-open-group-server`.

The contract: docs/spec/SPEC.md section 4.

Admin commands act on the data directly, so they are run here next to the
module's running server, and every change must be visible to clients at once.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID
from harness import probe
from harness.expect import expect_cli_refused
from harness.server import ServerProcess, free_port, run_cli, server_env
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona, load_public_key_pem

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]
PersonaFactory = Callable[..., Persona]

# The `session-open-group-server` console script, run from the source tree.
LEGACY = (sys.executable, "-c", "from opengroup.cli.legacy import main; main()")


# --------------------------------------------------------------------------- helpers


def new_room_id() -> str:
    """A room id no other test uses (tests run twice, once per transport)."""
    return f"room_{os.urandom(4).hex()}"


def listed_rooms(cli: CliRunner) -> dict[str, str]:
    """`opengroup rooms list` as {id: name} (lines are ID<TAB>NAME)."""
    lines = cli("rooms", "list").stdout.splitlines()
    return dict(line.split("\t", 1) for line in lines if line)


def listed_moderators(cli: CliRunner, room: str) -> list[str]:
    """`opengroup moderators list ROOM`: one Session id a line."""
    return [line for line in cli("moderators", "list", room).stdout.splitlines() if line]


def legacy(
    server: ServerProcess, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`session-open-group-server ARGS` on the module server's data."""
    return run_cli(server.data_dir, server.database_url, *args, program=LEGACY, check=check)


def upload(c: Client, persona: Persona, data: bytes) -> int:
    """POST /files as persona; returns the file id."""
    result = c.request(
        "POST",
        "files",
        body={"file": base64.b64encode(data).decode()},
        room=persona.room,
        token=persona.token,
    )
    assert result["status_code"] == 200, result
    return result["result"]


def ban_status(c: Client, persona: Persona, victim: Identity) -> int:
    """The status of persona trying to ban victim (200 for a moderator, 403 for others)."""
    return c.request(
        "POST",
        "block_list",
        body={"public_key": victim.session_id},
        room=persona.room,
        token=persona.token,
    )["status_code"]


def openssl_like_key_pair(directory: Path) -> tuple[Path, Path]:
    """An X25519 key pair as `openssl genpkey` / `openssl pkey -pubout` write it."""
    directory.mkdir(parents=True, exist_ok=True)
    key = X25519PrivateKey.generate()
    private, public = directory / "server.key", directory / "server.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


# --------------------------------------------------------------------------- rooms


def test_rooms_add_is_listed_and_served_at_once(client: Client, cli: CliRunner) -> None:
    room = new_room_id()
    cli("rooms", "add", room, "Café Talk")
    assert listed_rooms(cli)[room] == "Café Talk"
    assert client.request("GET", f"rooms/{room}") == {
        "status_code": 200,
        "room": {"id": room, "name": "Café Talk"},
    }
    assert {"id": room, "name": "Café Talk"} in client.request("GET", "rooms")["rooms"]


def test_room_ids_at_the_length_limits_are_accepted(cli: CliRunner) -> None:
    # Community API tokens: 1 to 64 of A-Z, a-z, 0-9, _ and - (docs/spec/SPEC-v3.md 1).
    shortest, longest = "x", "A_9-" * 16
    cli("rooms", "add", shortest, "Shortest")
    cli("rooms", "add", longest, "Longest")
    rooms = listed_rooms(cli)
    assert (rooms[shortest], rooms[longest]) == ("Shortest", "Longest")


@pytest.mark.parametrize(
    "room",
    [
        pytest.param("lob by", id="space"),
        pytest.param("lob.by", id="dot"),
        pytest.param("lob/by", id="slash"),
        pytest.param("café", id="non-ascii"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_room_id_is_refused(cli: CliRunner, room: str) -> None:
    expect_cli_refused(cli("rooms", "add", room, "Bad", check=False), "room id")


def test_adding_an_existing_room_fails_and_keeps_it(cli: CliRunner) -> None:
    room = new_room_id()
    cli("rooms", "add", room, "First")
    expect_cli_refused(cli("rooms", "add", room, "Second", check=False), room)
    assert listed_rooms(cli)[room] == "First"


def test_rooms_delete_removes_the_room_and_all_its_data_at_once(
    client: Client, cli: CliRunner, setup_client: Client, make_persona: PersonaFactory
) -> None:
    room = new_room_id()
    cli("rooms", "add", room, "Doomed")
    member = make_persona(room=room)
    cli("moderators", "add", member.session_id, room)
    posted = setup_client.post_message(member.identity, member.token, room)
    assert posted["status_code"] == 200, posted
    file_id = upload(setup_client, member, b"doomed file")

    cli("rooms", "delete", room)
    assert client.request("GET", f"rooms/{room}")["status_code"] == 404
    gone = client.request("GET", "messages", room=room, token=member.token)
    assert gone["status_code"] == 404

    # A new room under the same id starts empty: nothing of the old one comes back.
    cli("rooms", "add", room, "Reborn")
    old_token = client.request("GET", "messages", room=room, token=member.token)
    assert old_token["status_code"] == 401
    newcomer = make_persona(member.identity, room=room)
    fresh = client.request("GET", "messages", room=room, token=newcomer.token)
    assert fresh == {"status_code": 200, "messages": []}
    deletions = client.request("GET", "deleted_messages", room=room, token=newcomer.token)
    assert deletions == {"status_code": 200, "ids": []}
    moderators = client.request("GET", "moderators", room=room, token=newcomer.token)
    assert moderators == {"status_code": 200, "moderators": []}
    file = client.request("GET", f"files/{file_id}", room=room, token=newcomer.token)
    assert file["status_code"] == 404


def test_deleting_an_unknown_room_fails(cli: CliRunner) -> None:
    expect_cli_refused(cli("rooms", "delete", "no_such_room", check=False), "no_such_room")


# --------------------------------------------------------------------------- moderators


def test_moderators_add_list_delete(
    client: Client, cli: CliRunner, make_persona: PersonaFactory
) -> None:
    room = new_room_id()
    cli("rooms", "add", room, "Moderated")
    mod = Identity.generate()
    member = make_persona(room=room)

    cli("moderators", "add", mod.session_id, room)
    cli("moderators", "add", mod.session_id, room)  # again: still one entry
    assert listed_moderators(cli, room) == [mod.session_id]
    seen = client.request("GET", "moderators", room=room, token=member.token)
    assert seen == {"status_code": 200, "moderators": [mod.session_id]}

    cli("moderators", "delete", mod.session_id, room)
    seen = client.request("GET", "moderators", room=room, token=member.token)
    assert seen == {"status_code": 200, "moderators": []}


def test_moderator_rights_from_the_cli_apply_to_live_tokens_at_once(
    client: Client, cli: CliRunner, user: Persona
) -> None:
    victim = Identity.generate()
    assert ban_status(client, user, victim) == 403
    cli("moderators", "add", user.session_id, DEFAULT_ROOM)
    assert ban_status(client, user, victim) == 200  # the same token, no re-authentication
    cli("moderators", "delete", user.session_id, DEFAULT_ROOM)
    assert ban_status(client, user, Identity.generate()) == 403


BAD_SESSION_IDS = [
    pytest.param("05" + "ab" * 31 + "a", id="65-chars"),
    pytest.param("ab" * 32, id="no-05-prefix"),
    pytest.param("06" + "ab" * 32, id="06-prefix"),
    pytest.param("05" + "zz" * 32, id="not-hex"),
    pytest.param("05" + "ab" * 33, id="68-chars"),
]


@pytest.mark.parametrize("session_id", BAD_SESSION_IDS)
def test_invalid_session_id_is_refused(cli: CliRunner, session_id: str) -> None:
    proc = cli("moderators", "add", session_id, DEFAULT_ROOM, check=False)
    expect_cli_refused(proc, "session id")


def test_invalid_session_id_is_refused_on_delete(cli: CliRunner) -> None:
    proc = cli("moderators", "delete", "05" + "zz" * 32, DEFAULT_ROOM, check=False)
    expect_cli_refused(proc, "session id")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("add", Identity.generate().session_id), id="add"),
        pytest.param(("delete", Identity.generate().session_id), id="delete"),
        pytest.param(("list",), id="list"),
    ],
)
def test_moderator_commands_on_an_unknown_room_fail(cli: CliRunner, args: tuple[str, ...]) -> None:
    expect_cli_refused(cli("moderators", *args, "no_such_room", check=False), "no_such_room")


# --------------------------------------------------------------------------- url, settings, db


def test_url_prints_the_join_url_of_every_room(server: ServerProcess, cli: CliRunner) -> None:
    cli("rooms", "add", new_room_id(), "Another")
    key = server.public_key.hex()
    urls = {}
    for line in cli("url").stdout.splitlines():
        if line and not line.startswith("#"):
            room, url = line.split("\t")
            urls[room] = url
    assert set(urls) == set(listed_rooms(cli))
    for room, url in urls.items():
        assert re.fullmatch(rf"http://[^/\s]+/{room}\?public_key={key}", url), url


@pytest.mark.parametrize(
    ("env", "base"),
    [
        pytest.param(
            {"OPENGROUP_PUBLIC_URL": "https://chat.example.org"},
            "https://chat.example.org",
            id="public-url",
        ),
        pytest.param(
            {"OPENGROUP_PUBLIC_URL": "https://chat.example.org/"},
            "https://chat.example.org",
            id="public-url-trailing-slash",
        ),
        pytest.param(
            {"OPENGROUP_HOST": "203.0.113.5", "OPENGROUP_PORT": "80"},
            "http://203.0.113.5",
            id="port-80-left-out",
        ),
        pytest.param(
            {"OPENGROUP_HOST": "203.0.113.5", "OPENGROUP_PORT": "8443"},
            "http://203.0.113.5:8443",
            id="other-port-kept",
        ),
    ],
)
def test_url_follows_the_address_settings(
    server: ServerProcess, cli: CliRunner, env: dict[str, str], base: str
) -> None:
    out = cli("url", env=env).stdout
    assert f"main\t{base}/main?public_key={server.public_key.hex()}\n" in out


SPEC_SETTINGS = {
    "data_dir",
    "host",
    "port",
    "workers",
    "database_url",
    "public_url",
    "x25519_private_key",
    "x25519_public_key",
    "deletions_format",
    "verify_signatures",
    "max_upload_bytes",
    "max_message_bytes",
    "post_rate_limit_count",
    "post_rate_limit_seconds",
    "pending_token_ttl_seconds",
    "token_ttl_seconds",
    "file_ttl_seconds",
    "log_file",
}


def test_settings_lists_every_setting_with_its_variable(tmp_path: Path) -> None:
    out = run_cli(None, None, "settings", cwd=tmp_path).stdout
    variables = re.findall(r"^# Environment: (OPENGROUP_\w+)$", out, re.M)
    assignments = re.findall(r"^# (\w+) = .*$", out, re.M)
    assert set(assignments) >= SPEC_SETTINGS
    assert variables == ["OPENGROUP_" + name.upper() for name in assignments]


def test_settings_listing_is_a_config_file_of_the_defaults(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = run_cli(None, None, "settings", cwd=tmp_path).stdout
    config = tmp_path / "defaults.toml"
    config.write_text(
        "\n".join(line[2:] for line in out.splitlines() if re.match(r"# \w+ = ", line))
    )
    defaults = tomllib.loads(config.read_text())
    assert defaults["port"] == 8080
    assert defaults["data_dir"] == "./data"
    assert defaults["deletions_format"] == "ids"
    # The server accepts it as --config (flags still win: the module server's data).
    rooms = run_cli(
        server.data_dir, server.database_url, "rooms", "list", "--config", str(config)
    ).stdout
    assert f"{DEFAULT_ROOM}\tMain" in rooms.splitlines()


def stored_revision(data_dir: Path, database_url: str | None) -> str:
    """The schema revision recorded in a database (alembic_version)."""
    revision: str = probe.value(
        probe.DatabaseAt(data_dir, database_url), "SELECT version_num FROM alembic_version"
    )
    return revision


def test_db_upgrade_makes_a_new_database_ready(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    first = run_cli(data_dir, fresh_database_url, "db", "upgrade").stdout
    revision = stored_revision(data_dir, fresh_database_url)
    assert revision and revision in first
    again = run_cli(data_dir, fresh_database_url, "db", "upgrade").stdout
    assert again == first
    rooms = run_cli(data_dir, fresh_database_url, "rooms", "list").stdout
    assert rooms == f"{DEFAULT_ROOM}\tMain\n"


def test_db_upgrade_beside_the_running_server_changes_nothing(
    client: Client, cli: CliRunner, setup_client: Client, user: Persona
) -> None:
    assert setup_client.post_message(user.identity, user.token, DEFAULT_ROOM)["status_code"] == 200
    rooms = client.request("GET", "rooms")
    messages = client.request("GET", "messages", room=DEFAULT_ROOM, token=user.token)
    cli("db", "upgrade")
    assert client.request("GET", "rooms") == rooms
    assert client.request("GET", "messages", room=DEFAULT_ROOM, token=user.token) == messages


def test_db_downgrade_takes_the_schema_back_and_any_command_brings_it_forward(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """Going back to run an older version: the revisions undone are named, the rooms
    kept; then any command of this version upgrades the database again."""
    data_dir = tmp_path / "data"
    run_cli(data_dir, fresh_database_url, "db", "upgrade")
    newest = stored_revision(data_dir, fresh_database_url)
    back = run_cli(data_dir, fresh_database_url, "db", "downgrade", "0005", "--yes").stdout
    assert back.startswith("undid 0006: ") and back.endswith("database at revision 0005\n")
    assert stored_revision(data_dir, fresh_database_url) == "0005"
    refused = run_cli(data_dir, fresh_database_url, "db", "downgrade", "0999", "--yes", check=False)
    expect_cli_refused(refused, "no schema revision '0999'")
    rooms = run_cli(data_dir, fresh_database_url, "rooms", "list").stdout
    assert rooms == f"{DEFAULT_ROOM}\tMain\n"
    assert stored_revision(data_dir, fresh_database_url) == newest


def test_a_database_a_newer_version_upgraded_is_refused_by_every_command(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """Running an older version on a newer one's database: a reason and what to do,
    no traceback, and the database untouched."""
    data_dir = tmp_path / "data"
    run_cli(data_dir, fresh_database_url, "db", "upgrade")
    at = probe.DatabaseAt(data_dir, fresh_database_url)
    probe.run(at, "UPDATE alembic_version SET version_num = '0999'")
    for args in (("db", "upgrade"), ("rooms", "list"), ("serve", "--port", str(free_port()))):
        proc = run_cli(data_dir, fresh_database_url, *args, check=False)
        expect_cli_refused(proc, "revision 0999", "a newer version upgraded it", "db downgrade")
    assert stored_revision(data_dir, fresh_database_url) == "0999"


# --------------------------------------------------------------- session-open-group-server


def test_legacy_add_room_and_delete_room(client: Client, server: ServerProcess) -> None:
    room = new_room_id()
    legacy(server, "--add-room", room, "Legacy Room")
    assert client.request("GET", f"rooms/{room}") == {
        "status_code": 200,
        "room": {"id": room, "name": "Legacy Room"},
    }
    legacy(server, "--delete-room", room)
    assert client.request("GET", f"rooms/{room}")["status_code"] == 404


def test_legacy_add_and_delete_moderator(server: ServerProcess, cli: CliRunner) -> None:
    mod = Identity.generate()
    legacy(server, "--add-moderator", mod.session_id, DEFAULT_ROOM)
    assert mod.session_id in listed_moderators(cli, DEFAULT_ROOM)
    legacy(server, "--delete-moderator", mod.session_id, DEFAULT_ROOM)
    assert mod.session_id not in listed_moderators(cli, DEFAULT_ROOM)


def test_legacy_print_url_defaults_to_port_80(server: ServerProcess, cli: CliRunner) -> None:
    out = legacy(server, "--print-url").stdout
    key = server.public_key.hex()
    for room in listed_rooms(cli):
        # Port 80 is the scheme's default: left out of the URL.
        assert re.search(rf"^{room}\thttp://[^/:\s]+/{room}\?public_key={key}$", out, re.M), out


def test_legacy_print_url_uses_the_key_files_given(server: ServerProcess, tmp_path: Path) -> None:
    private, public = openssl_like_key_pair(tmp_path / "keys")
    key = load_public_key_pem(public.read_bytes()).hex()
    out = legacy(
        server,
        "--print-url",
        "--port",
        "8080",
        "--x25519-private-key",
        str(private),
        "--x25519-public-key",
        str(public),
    ).stdout
    assert re.search(rf"^main\thttp://[^/\s]+:8080/main\?public_key={key}$", out, re.M), out
    assert server.public_key.hex() not in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("--add-room", "Bad Id", "Bad"), ("room id",), id="add-room-bad-id"),
        pytest.param(("--delete-room", "no_such_room"), ("no_such_room",), id="delete-unknown"),
        pytest.param(
            ("--add-moderator", "05zz", DEFAULT_ROOM), ("session id",), id="add-mod-bad-key"
        ),
        pytest.param(
            ("--add-moderator", Identity.generate().session_id, "no_such_room"),
            ("no_such_room",),
            id="add-mod-unknown-room",
        ),
        pytest.param(
            ("--delete-moderator", "05zz", DEFAULT_ROOM), ("session id",), id="del-mod-bad-key"
        ),
    ],
)
def test_legacy_refuses_bad_input(
    server: ServerProcess, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    expect_cli_refused(legacy(server, *args, check=False), *words)


def test_legacy_serves_with_its_own_flags(tmp_path: Path, fresh_database_url: str | None) -> None:
    private, public = openssl_like_key_pair(tmp_path / "keys")
    log_file = tmp_path / "sogs.log"
    proc = ServerProcess(
        tmp_path / "data",
        database_url=fresh_database_url,
        program=LEGACY,  # with --host, --port, --data-dir (and --database-url)
        extra_args=[
            "--x25519-private-key",
            str(private),
            "--x25519-public-key",
            str(public),
            "--log-file",
            str(log_file),
        ],
        env={"OPENGROUP_LOG_LEVEL": "info"},
        public_key_path=public,
    )
    with proc:
        proc.start()
        assert proc.public_key == load_public_key_pem(public.read_bytes())
        for transport in ("http", "onion"):
            with proc.client(transport) as c:
                assert c.request("GET", "rooms") == {
                    "status_code": 200,
                    "rooms": [{"id": "main", "name": "Main"}],
                }
        # The key files given were used; none was made in the data dir.
        assert not list(proc.data_dir.glob("x25519_*"))
        assert f"127.0.0.1:{proc.port}" in log_file.read_text()  # the start-up lines


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (PEM files: certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("fault", ["not-pem", "missing", "another-key"])
def test_legacy_refuses_to_start_with_a_certificate_it_cannot_serve_https_with(
    tmp_path: Path, fault: str, workers: int
) -> None:
    """Said at once, in one line, before any worker starts: not a traceback from each."""
    cert, key = self_signed_certificate(tmp_path / "tls")
    if fault == "not-pem":
        cert.write_text("not a certificate\n")
    elif fault == "missing":
        cert.unlink()
    else:
        key = self_signed_certificate(tmp_path / "other")[1]
    command = [*LEGACY, "--tls", "--tls-certificate", str(cert), "--tls-private-key", str(key)]
    command += ["--host", "127.0.0.1", "--port", str(free_port())]
    command += ["--data-dir", str(tmp_path / "data")]
    env = server_env({"OPENGROUP_WORKERS": str(workers)})
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    reason = {
        "not-pem": "not a PEM certificate",
        "missing": "No such file",
        "another-key": "the key is not the certificate's",
    }[fault]
    expect_cli_refused(refused, "cannot serve HTTPS", str(cert), reason)


def test_legacy_serves_https_with_a_certificate_and_its_key(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """`--tls` serves HTTPS: an answer, and pipelined answers on one TLS connection whole
    and in order (each answer's head and body leave in one write, over TLS too)."""
    cert, key = self_signed_certificate(tmp_path / "tls")
    port = free_port()
    command = [*LEGACY, "--tls", "--tls-certificate", str(cert), "--tls-private-key", str(key)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    if fresh_database_url is not None:
        command += ["--database-url", fresh_database_url]
    trust = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}/legacy/rooms"
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, env=server_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        answer = None
        deadline = time.monotonic() + 30
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(url, verify=trust, trust_env=False, timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, (tmp_path / "server.log").read_text()
        assert answer.status_code == 200 and answer.json()["status_code"] == 200

        request = b"GET /legacy/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall((request + b"\r\n") * 2 + request + b"Connection: close\r\n\r\n")
            received = b""
            while chunk := tls.recv(65536):  # (until the server closes, after the third)
                received += chunk
        bodies = [part.partition(b"\r\n\r\n")[2] for part in received.split(b"HTTP/1.1 ")[1:]]
        assert [json.loads(body) for body in bodies] == [answer.json()] * 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
