"""Setting up a server: zero configuration, key files, settings (docs/spec/SPEC.md section 4).

`opengroup serve` with no flags must work in an empty directory: data in
./data, an openssl-compatible X25519 key pair, a default room `main`, and the
join URL printed. Settings come from flags, OPENGROUP_* variables or a TOML
file, and a bad value stops the command with a message naming the setting.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness.server import ServerProcess, free_port, run_cli, server_env
from harness.v2client import DEFAULT_ROOM, Client, load_public_key_pem
from harness.workers import worker_pids

PRIVATE_PEM = "x25519_private_key.pem"
PUBLIC_PEM = "x25519_public_key.pem"
OPENSSL = shutil.which("openssl")
BAD_SETTING_TIMEOUT = 30.0


# --------------------------------------------------------------------------- helpers


def openssl_genpkey(private_path: Path) -> None:
    """`openssl genpkey -algorithm x25519 -out PATH` (cryptography's PKCS#8 if no openssl)."""
    if OPENSSL:
        subprocess.run(
            [OPENSSL, "genpkey", "-algorithm", "x25519", "-out", str(private_path)],
            check=True,
            capture_output=True,
        )
    else:
        private_path.write_bytes(
            X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    private_path.chmod(0o600)


def openssl_public_pem(private_path: Path) -> bytes:
    """`openssl pkey -in PATH -pubout`: the public PEM openssl derives from a private key."""
    if OPENSSL:
        return subprocess.run(
            [OPENSSL, "pkey", "-in", str(private_path), "-pubout"],
            check=True,
            capture_output=True,
        ).stdout
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(key, X25519PrivateKey)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def join_url(base: str, room: str, public_key: bytes) -> str:
    """The join URL docs/spec/SPEC.md section 4 prescribes."""
    return f"{base}/{room}?public_key={public_key.hex()}"


def rooms_of(server: ServerProcess) -> list[dict[str, object]]:
    """GET /rooms of a server (direct HTTP)."""
    with server.client() as c:
        result = c.request("GET", "rooms")
    assert result["status_code"] == 200
    return result["rooms"]


def is_listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def zero_config_server(workdir: Path, port: int | None = None) -> ServerProcess:
    """`python -m opengroup serve --host 127.0.0.1 --port P` run in workdir, nothing else."""
    port = port if port is not None else free_port()
    return ServerProcess(
        workdir / "data",
        cwd=workdir,
        standard_flags=False,
        extra_args=["--host", "127.0.0.1", "--port", str(port)],
        port=port,
        create_data_dir=False,
    )


# --------------------------------------------------------------------------- zero configuration


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory for the zero-configuration server."""
    return tmp_path_factory.mktemp("operator")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[ServerProcess]:
    """This module's server: `opengroup serve` with no data dir, database or config.

    It always runs on embedded SQLite (that is what zero configuration means).
    """
    proc = zero_config_server(workdir)
    proc.start()
    yield proc
    proc.stop()


def test_zero_config_keeps_everything_in_dot_data(server: ServerProcess, workdir: Path) -> None:
    data = workdir / "data"
    assert data.is_dir()
    assert {"opengroup.db", PRIVATE_PEM, PUBLIC_PEM} <= {p.name for p in data.iterdir()}
    # Nothing else lands in the working directory (but the harness's own log file).
    assert {p.name for p in workdir.iterdir() if p != server.log_path} == {"data"}


def test_private_key_file_is_mode_0600(server: ServerProcess, workdir: Path) -> None:
    assert (workdir / "data" / PRIVATE_PEM).stat().st_mode & 0o777 == 0o600


def test_key_files_are_openssl_x25519_pems(server: ServerProcess, workdir: Path) -> None:
    private = workdir / "data" / PRIVATE_PEM
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    # The public PEM is exactly what openssl derives from the private one.
    assert (workdir / "data" / PUBLIC_PEM).read_bytes() == openssl_public_pem(private)


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_openssl_reads_the_private_key_as_x25519(server: ServerProcess, workdir: Path) -> None:
    assert OPENSSL is not None
    text = subprocess.run(
        [OPENSSL, "pkey", "-in", str(workdir / "data" / PRIVATE_PEM), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert text.startswith("X25519 Private-Key:")


def test_default_room_main_named_main_exists(client: Client) -> None:
    # Over onion too: the key in the PEM file is the one the server decrypts with.
    assert client.request("GET", "rooms") == {
        "status_code": 200,
        "rooms": [{"id": "main", "name": "Main"}],
    }
    assert client.request("GET", "rooms/main") == {
        "status_code": 200,
        "room": {"id": "main", "name": "Main"},
    }


def test_start_prints_the_join_url_of_main(server: ServerProcess) -> None:
    output = server.output()
    assert re.fullmatch(r"[0-9a-f]{64}", server.public_key.hex())
    assert join_url(server.base_url, DEFAULT_ROOM, server.public_key) in output
    assert "443" in output  # the note on https ports goes where the URL is printed


def test_admin_commands_default_to_dot_data(server: ServerProcess, workdir: Path) -> None:
    out = run_cli(None, None, "url", cwd=workdir).stdout
    # Same key as the server's (same ./data); the default port is 8080.
    assert re.search(
        rf"^main\thttp://[^/\s]+:8080/main\?public_key={server.public_key.hex()}$", out, re.M
    )


def test_restart_reuses_the_key_pair(server: ServerProcess, workdir: Path) -> None:
    before = {name: (workdir / "data" / name).read_bytes() for name in (PRIVATE_PEM, PUBLIC_PEM)}
    url = join_url(server.base_url, DEFAULT_ROOM, server.public_key)
    server.restart()
    after = {name: (workdir / "data" / name).read_bytes() for name in (PRIVATE_PEM, PUBLIC_PEM)}
    assert after == before
    assert url in server.output()
    assert rooms_of(server) == [{"id": "main", "name": "Main"}]


# --------------------------------------------------------------------------- key files


@pytest.mark.parametrize("with_public_file", [False, True], ids=["private-only", "both-files"])
def test_key_pair_made_beforehand_with_openssl_is_used_as_is(
    tmp_path: Path, with_public_file: bool
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    openssl_genpkey(data / PRIVATE_PEM)
    expected_public_pem = openssl_public_pem(data / PRIVATE_PEM)
    if with_public_file:
        (data / PUBLIC_PEM).write_bytes(expected_public_pem)
    private_before = (data / PRIVATE_PEM).read_bytes()

    with zero_config_server(tmp_path) as proc:
        proc.start()
        assert (data / PRIVATE_PEM).read_bytes() == private_before
        assert (data / PUBLIC_PEM).read_bytes() == expected_public_pem
        openssl_key = load_public_key_pem(expected_public_pem)
        assert join_url(proc.base_url, DEFAULT_ROOM, openssl_key) in proc.output()
        with Client(proc.base_url, openssl_key, transport="onion") as onion:
            assert onion.request("GET", "rooms")["status_code"] == 200


def test_public_key_file_of_another_key_stops_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    openssl_genpkey(data / PRIVATE_PEM)
    openssl_genpkey(tmp_path / "other.pem")
    (data / PUBLIC_PEM).write_bytes(openssl_public_pem(tmp_path / "other.pem"))

    proc = run_cli(
        None,
        None,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert PUBLIC_PEM in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- settings


def test_settings_from_environment_variables(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    port = free_port()
    env = {
        "OPENGROUP_DATA_DIR": str(tmp_path / "envdata"),
        "OPENGROUP_PORT": str(port),
        "OPENGROUP_HOST": "127.0.0.1",
    }
    if fresh_database_url is not None:
        env["OPENGROUP_DATABASE_URL"] = fresh_database_url
    proc = ServerProcess(
        tmp_path / "envdata",
        cwd=tmp_path,
        standard_flags=False,
        env=env,
        port=port,
        create_data_dir=False,
    )
    with proc:
        proc.start()  # ready on the port from OPENGROUP_PORT
        names = {p.name for p in (tmp_path / "envdata").iterdir()}
        assert {PRIVATE_PEM, PUBLIC_PEM} <= names
        assert ("opengroup.db" in names) == (fresh_database_url is None)
        assert not (tmp_path / "data").exists()
        assert rooms_of(proc) == [{"id": "main", "name": "Main"}]


def toml_string(value: str) -> str:
    """A TOML basic string (the values here have no quotes or backslashes)."""
    return f'"{value}"'


def test_settings_from_a_toml_config_file(tmp_path: Path, fresh_database_url: str | None) -> None:
    port = free_port()
    lines = [
        f"data_dir = {toml_string(str(tmp_path / 'confdata'))}",
        f"port = {port}",
        'host = "127.0.0.1"',
        'public_url = "https://chat.example.org"',
    ]
    if fresh_database_url is not None:
        lines.append(f"database_url = {toml_string(fresh_database_url)}")
    config = tmp_path / "opengroup.toml"
    config.write_text("\n".join(lines) + "\n")
    proc = ServerProcess(
        tmp_path / "confdata",
        cwd=tmp_path,
        standard_flags=False,
        extra_args=["--config", str(config)],
        port=port,
        create_data_dir=False,
    )
    with proc:
        proc.start()
        assert (tmp_path / "confdata" / PRIVATE_PEM).exists()
        assert not (tmp_path / "data").exists()
        url = join_url("https://chat.example.org", DEFAULT_ROOM, proc.public_key)
        assert url in proc.output()
        assert rooms_of(proc) == [{"id": "main", "name": "Main"}]


def test_flags_beat_environment_beat_config_file(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    config = tmp_path / "opengroup.toml"
    config.write_text(f'port = {file_port}\npublic_url = "https://file.example"\n')
    env = {"OPENGROUP_PORT": str(env_port), "OPENGROUP_PUBLIC_URL": "https://env.example"}
    flags = ["--config", str(config), "--host", "127.0.0.1", "--port", str(flag_port)]
    flags += ["--data-dir", str(tmp_path / "data")]
    if fresh_database_url is not None:
        flags += ["--database-url", fresh_database_url]
    proc = ServerProcess(
        tmp_path / "data",
        cwd=tmp_path,
        standard_flags=False,
        extra_args=flags,
        env=env,
        port=flag_port,
    )
    with proc:
        proc.start()  # ready on the flag's port
        # What it says it listens on (another test's server may have taken the other
        # ports since they were found free, so asking the ports would be a race).
        assert f"listening on 127.0.0.1:{flag_port} " in proc.output()
        assert f":{env_port} " not in proc.output()
        assert f":{file_port} " not in proc.output()
        assert join_url("https://env.example", DEFAULT_ROOM, proc.public_key) in proc.output()
        assert "file.example" not in proc.output()


BadSetting = Callable[[Path], tuple[list[str], dict[str, str]]]


def _env(**variables: str) -> BadSetting:
    """A bad setting given as environment variables (with a good --port)."""
    return lambda _dir: (["--port", str(free_port())], dict(variables))


def _config(text: str | None, with_port: bool = True) -> BadSetting:
    """A bad setting given in config.toml (text None: the file does not exist)."""

    def make(directory: Path) -> tuple[list[str], dict[str, str]]:
        path = directory / "config.toml"
        if text is not None:
            path.write_text(text)
        port = ["--port", str(free_port())] if with_port else []
        return ["--config", str(path), *port], {}

    return make


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        pytest.param(_env(OPENGROUP_PORT="abc"), "OPENGROUP_PORT", id="env-port-abc"),
        pytest.param(
            _env(OPENGROUP_DELETIONS_FORMAT="xml"), "deletions_format", id="env-deletions-xml"
        ),
        pytest.param(
            _env(OPENGROUP_VERIFY_SIGNATURES="maybe"), "verify_signatures", id="env-bool-maybe"
        ),
        pytest.param(_env(OPENGROUP_WORKERS="-2"), "workers", id="env-negative-workers"),
        pytest.param(_config('colour = "blue"\n'), "colour", id="config-unknown-key"),
        pytest.param(
            _config('deletions_format = "xml"\n'), "deletions_format", id="config-deletions-xml"
        ),
        pytest.param(_config('port = "abc"\n', with_port=False), "port", id="config-port-abc"),
        pytest.param(_config("port = \n"), "config.toml", id="config-not-toml"),
        pytest.param(_config(None), "config.toml", id="config-file-missing"),
        pytest.param(lambda _dir: (["--port", "abc"], {}), "--port", id="flag-port-abc"),
        pytest.param(_env(OPENGROUP_PORT="65536"), "at most 65535", id="env-port-too-high"),
        # A slip of the keyboard must not start ten thousand processes.
        pytest.param(
            lambda _dir: (["--workers", "10000"], {}), "at most 64", id="flag-workers-10000"
        ),
        pytest.param(lambda _dir: (["--workers", "0"], {}), "at least 1", id="flag-workers-0"),
        pytest.param(
            lambda tmp: (["--log-file", str(tmp / "missing" / "og.log")], {}),
            "cannot write the log file",
            id="flag-log-file-in-a-missing-folder",
        ),
    ],
)
def test_bad_setting_stops_serve_with_a_message_naming_it(
    tmp_path: Path, bad: BadSetting, named: str
) -> None:
    args, env = bad(tmp_path)
    cmd = [sys.executable, "-m", "opengroup", "serve", "--host", "127.0.0.1"]
    cmd += ["--data-dir", str(tmp_path / "data"), *args]
    # A bad value that were ignored would start serving: the timeout turns that into a failure.
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=BAD_SETTING_TIMEOUT,
        check=False,
    )
    assert proc.returncode != 0
    assert named in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "listening" not in proc.stdout


DatabaseSetting = Callable[[Path], list[str]]


def _unreachable_postgresql(_dir: Path) -> list[str]:
    return ["--database-url", f"postgresql://opengroup:hunter2@127.0.0.1:{free_port()}/og"]


@pytest.mark.parametrize(
    ("database", "named"),
    [
        pytest.param(_unreachable_postgresql, "127.0.0.1", id="postgresql-not-answering"),
        pytest.param(
            lambda _dir: ["--database-url", "mysql://root@127.0.0.1/og"],
            "database_url",
            id="unsupported-database",
        ),
        pytest.param(
            lambda tmp: ["--database-url", f"sqlite:///{tmp / 'missing' / 'og.db'}"],
            "unable to open",
            id="sqlite-folder-missing",
        ),
        pytest.param(
            lambda tmp: ["--data-dir", str(tmp / "a-file" / "data")],
            "a-file/data: Not a directory",
            id="data-dir-under-a-file",
        ),
    ],
)
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["rooms", "list"]])
def test_a_database_that_cannot_be_opened_stops_the_command_with_its_reason(
    tmp_path: Path, database: DatabaseSetting, named: str, command: list[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    proc = run_cli(None, None, *command, *database(tmp_path), check=False, cwd=tmp_path)
    assert proc.returncode != 0
    assert named in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr  # the URL's password is never shown
    assert "listening" not in proc.stdout


# --------------------------------------------------------------------------- default room


def test_default_room_is_created_only_once(
    server_factory: Callable[..., ServerProcess],
) -> None:
    proc = server_factory()
    assert rooms_of(proc) == [{"id": "main", "name": "Main"}]
    proc.cli("rooms", "delete", DEFAULT_ROOM)
    proc.restart()
    assert rooms_of(proc) == []
    assert proc.cli("rooms", "list").stdout == ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux /proc")
def test_workers_flag_runs_that_many_worker_processes(
    server_factory: Callable[..., ServerProcess],
) -> None:
    proc = server_factory(extra_args=["--workers", "2"])
    assert len(worker_pids(proc, 2)) == 2
    for transport in ("http", "onion"):
        with proc.client(transport) as c:
            for _ in range(4):
                assert c.request("GET", "rooms")["status_code"] == 200
