"""Running the real server and its admin CLI as subprocesses, for tests.

Kept out of conftest.py so tests can import ServerProcess for typing and for
their own set-ups (restarts, several processes, extra options). Nothing here
imports the server package: it is driven exactly as an operator would drive it.
Each admin command is a process of its own, forked from one that imported the
package once (`CliForkServer`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from .v2client import PUBLIC_KEY_PEM_NAME, Client, Transport, load_public_key_pem

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0


# --------------------------------------------------------------------------- backend


class Backend:
    """The run's storage backend; hands out a fresh PostgreSQL database per server."""

    def __init__(self, name: str, admin_url: str) -> None:
        """admin_url is only used with PostgreSQL, to create and drop databases."""
        self.name = name
        self.admin_url = admin_url
        self._created: set[str] = set()

    def new_database_url(self) -> str | None:
        """A fresh empty database URL, or None for SQLite (the server's default file)."""
        if self.name != "postgresql":
            return None
        db_name = f"opengroup_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        parts = urlsplit(self.admin_url)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + db_name, "", ""))
        self._created.add(url)
        return url

    def drop_database(self, url: str | None) -> None:
        """Drop a database made by new_database_url (FORCE: stray sessions must not block)."""
        if url is None or url not in self._created:
            return
        self._created.discard(url)
        db_name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name))
            )

    def drop_all(self) -> None:
        """Safety net at the end of the run."""
        for url in list(self._created):
            self.drop_database(url)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A port the kernel just considered free on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent env minus stray OPENGROUP_* settings, so a developer's shell can't
    redirect tests to another database; the log level stays overridable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENGROUP_") or k == "OPENGROUP_LOG_LEVEL"
    }
    env.setdefault("OPENGROUP_LOG_LEVEL", "warning")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


OPENGROUP_COMMAND = (sys.executable, "-m", "opengroup")


class CliForkServer:
    """Runs `python -m opengroup ARGS` in a child forked from one process that imported
    the package once (harness/cli_forkserver.py): the same command, its own process,
    without a second of imports each time. One per test process, started on first use."""

    _running: CliForkServer | None = None

    def __init__(self, workdir: Path) -> None:
        self.socket_path = str(workdir / "cli.sock")
        self.workdir = workdir
        script = Path(__file__).with_name("cli_forkserver.py")
        self._proc = subprocess.Popen(
            [sys.executable, str(script), self.socket_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=server_env(),
            cwd=REPO_ROOT,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the CLI fork server did not start")

    @classmethod
    def shared(cls) -> CliForkServer:
        if cls._running is None or cls._running._proc.poll() is not None:
            cls._running = cls(Path(tempfile.mkdtemp(prefix="opengroup-cli-")))
            atexit.register(cls._running.close)
        return cls._running

    def close(self) -> None:
        """Stop the fork server (its stdin closes) and remove its folder."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(STOP_TIMEOUT)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(
        self, args: Sequence[str], env: Mapping[str, str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        out_path = self.workdir / f"{secrets.token_hex(8)}.out"
        err_path = self.workdir / f"{secrets.token_hex(8)}.err"
        out_path.touch()
        err_path.touch()
        request = {
            "args": list(args),
            "env": dict(env),
            "cwd": str(cwd),
            "stdout": str(out_path),
            "stderr": str(err_path),
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.socket_path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            conn.settimeout(CLI_TIMEOUT)
            answers = conn.makefile("rb")
            pid = int(answers.readline())
            try:
                status = answers.readline()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired([*OPENGROUP_COMMAND, *args], CLI_TIMEOUT) from None
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        out_path.unlink()
        err_path.unlink()
        if not status:  # the child died without answering, as a killed process would
            status = b"-9"
        return subprocess.CompletedProcess([*OPENGROUP_COMMAND, *args], int(status), stdout, stderr)


def run_cli(
    data_dir: Path | None,
    database_url: str | None,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    program: Sequence[str] = OPENGROUP_COMMAND,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m opengroup ARGS --data-dir DIR [--database-url URL]` like an operator.

    data_dir None leaves --data-dir out (the default ./data of cwd); program replaces
    `python -m opengroup` (e.g. the legacy `session-open-group-server` command), and
    then the command starts as a new Python process rather than from the fork server.
    """
    cmd = [*program, *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if database_url is not None:
        cmd += ["--database-url", database_url]
    if tuple(program) == OPENGROUP_COMMAND:
        args_only = cmd[len(program) :]
        proc = CliForkServer.shared().run(args_only, server_env(env), cwd)
    else:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=server_env(env),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    if check and proc.returncode != 0:
        pytest.fail(
            f"CLI failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc


class ServerProcess:
    """One `opengroup serve` subprocess on loopback, restartable on the same data dir.

    Output goes to a log file (not a pipe: a full pipe would block the server);
    startup failures are reported with that output.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        create_data_dir: bool = True,
        cwd: Path | None = None,
        program: Sequence[str] | None = None,
        standard_flags: bool = True,
        public_key_path: Path | None = None,
    ) -> None:
        """extra_args go after the standard serve flags; env adds to server_env().

        cwd: the server's working directory (default the repository). program: the
        command before the flags (default `python -m opengroup serve`). With
        standard_flags=False no --host/--port/--data-dir/--database-url is passed: the
        test gives its settings another way (env, --config) and must still make the
        server listen on 127.0.0.1:port with its data in data_dir. public_key_path:
        where the server's public key PEM is (default in data_dir).
        """
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.port = port if port is not None else free_port()
        self.create_data_dir = create_data_dir
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.program = (
            list(program) if program is not None else [sys.executable, "-m", "opengroup", "serve"]
        )
        self.standard_flags = standard_flags
        self.public_key_path = (
            Path(public_key_path)
            if public_key_path is not None
            else self.data_dir / PUBLIC_KEY_PEM_NAME
        )
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- facts

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT, stable across restarts."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_key(self) -> bytes:
        """The server's raw X25519 public key, read from its data dir (or public_key_path)."""
        return load_public_key_pem(self.public_key_path.read_bytes())

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive (it may have crashed)."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The exact serve command line."""
        if not self.standard_flags:
            return self.program + self.extra_args
        cmd = [
            *self.program,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.database_url is not None:
            cmd += ["--database-url", self.database_url]
        return cmd + self.extra_args

    def output(self) -> str:
        """What the server printed since its last start (stdout and stderr)."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # -- life cycle

    def start(self, timeout: float = STARTUP_TIMEOUT) -> ServerProcess:
        """Launch and wait until GET /rooms answers 200."""
        if self.running:
            raise RuntimeError("server already running")
        if self.create_data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # Own process group: a server with worker children can be killed as a whole.
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=server_env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Poll GET /rooms; fail with the server's output on exit or timeout."""
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    self._fail_start(f"server exited with code {self._proc.returncode}")
                try:
                    resp = http.get("/rooms")
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                else:
                    if resp.status_code == 200:
                        if not self.public_key_path.exists():
                            self._fail_start(f"ready, but no {self.public_key_path}")
                        return
                    last_error = f"GET /rooms -> {resp.status_code} {resp.text[:200]!r}"
                time.sleep(0.05)
        self._fail_start(f"not ready after {timeout:.0f}s ({last_error})")

    def _fail_start(self, why: str) -> NoReturn:
        """Stop what was started and fail the fixture with the server's own words."""
        self.kill()
        pytest.fail(
            f"{why}\ncommand: {' '.join(self.command())}\n--- server output\n{self.output()}",
            pytrace=False,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful, as systemd would), SIGKILL if it hangs; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
                proc.wait()
        self._kill_group(proc)  # leftover workers, if any
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, for durability tests."""
        proc = self._proc
        if proc is None:
            return
        self._kill_group(proc)
        proc.wait()
        self._proc = None

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process group we created for this server (and only it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self, *, graceful: bool = True) -> ServerProcess:
        """Stop (or crash) and start again on the same port, data dir and database."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers

    def cli(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Admin command on this server's data (data dir and database URL added)."""
        merged = {**self.env, **(env or {})}
        return run_cli(self.data_dir, self.database_url, *args, check=check, env=merged)

    def client(self, transport: Transport = "http", **kwargs: Any) -> Client:
        """A Client of this server (the caller closes it)."""
        return Client(self.base_url, self.public_key, transport=transport, **kwargs)
