"""The benchmark runner: a real server on loopback, real users, a load, numbers.

For each history size M (``--messages``, comma-separated for several), it makes a
fresh data dir (and, with ``--database-url``, a fresh PostgreSQL database that
it drops at the end), adds 9 rooms with ``python -m opengroup rooms add``,
writes M messages into ``main`` directly through the server's storage layer,
starts ``python -m opengroup serve --workers W``, gets K users real tokens in
the rooms the v2 scenarios poll (challenge and claim over HTTP), and has K
blinded users sign their first request for the community API ones, then runs
each scenario: a warm-up, then D measured seconds at concurrency C. With
``--open-loop F`` it then drives (e) at a fixed rate, F times its measured
maximum, and after the server has stopped, the v4 ceiling at the same rate.

Before that, in the same run and with the same load generator, it measures
fixed references: the framework ceiling (``bench.ceiling_app:fixed_json``), the
onion ceiling (``bench.ceiling_app:onion_echo``) and, when a community API
scenario runs, the v4 onion ceiling (``bench.ceiling_app:onion_v4_echo``), each
served as the server is (``bench/serve_app.py``: uvicorn with uvloop, the
server's own HTTP protocol, which sends each answer in one write, and W workers
under the server's supervisor, a listening socket each), so that a ratio measures
the server's work and not a difference of HTTP layers or process models. Every
result is printed with its ratios to them, as a table and as one JSON line per
scenario.

    python -m bench.run --duration 5 --users 100 --messages 1000   # quick
    python -m bench.run --help
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bench import community, loadgen
from bench.loadgen import HttpConnection, HttpError, Job, User, http_request

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MAIN_ROOM = "main"
EXTRA_ROOMS = [f"room{i:02d}" for i in range(1, 10)]
PAGE_SIZE = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
HISTORY_AUTHORS = 100
HISTORY_DISTINCT = 500


@dataclass(frozen=True)
class Scenario:
    """A scenario: its name, the load generator's kind, how many rooms a poll covers,
    and the shares of posts and reactions in a mix."""

    name: str
    kind: str
    rooms: int
    post_fraction: float = 0.0
    react_fraction: float = 0.0

    @property
    def community(self) -> bool:
        """Of the community API (onion v4, blinded users), not of the v2 API."""
        return self.kind.startswith("v4")


SCENARIOS = {
    "a": Scenario("a_poll_1_room", "poll", 1),
    "b": Scenario("b_poll_10_rooms", "poll", 10),
    "c": Scenario("c_post", "post", 1),
    "d": Scenario("d_mix_95_5", "mix", 1, post_fraction=0.05),
    "e": Scenario("e_batch_1_room", "v4poll", 1),
    "f": Scenario("f_batch_10_rooms", "v4poll", 10),
    "g": Scenario("g_post_blinded", "v4post", 1, post_fraction=1.0),
    "h": Scenario("h_mix_95_5", "v4mix", 1, post_fraction=0.05),
    "i": Scenario("i_mix_90_5_5", "v4mix", 1, post_fraction=0.05, react_fraction=0.05),
}
SCENARIO_KEYS = {s.name: key for key, s in SCENARIOS.items()}
OPEN_LOOP_SUFFIX = "_open_loop"
CEILINGS = (  # label, app, load generator kind, ratio field
    ("framework_ceiling", "fixed_json", "fixed", "vs_framework_ceiling"),
    ("onion_ceiling", "onion_echo", "poll", "vs_onion_ceiling"),
    ("onion_v4_ceiling", "onion_v4_echo", "v4poll", "vs_onion_v4_ceiling"),
)
REACTION_TARGETS = 20  # reactions go to the newest 20 messages of main


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE / 2**20
    except OSError:
        return 0.0


def cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process's main thread, of all its other threads, exited ones too:
    the process's own counters include the threads that have ended)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    main = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return main, cpu_s(pid) - main


def tree_cpu_s(pid: int) -> float:
    return sum(cpu_s(p) for p in descendants(pid))


def connections_per_process(pids: list[int], port: int) -> list[int]:
    """How many established TCP connections to ``port`` each process holds: a closed
    loop's connections stay where the kernel put them, and a worker holding more
    of them than the other answers each later (its share of the p99)."""
    established: set[int] = set()  # socket inodes
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                        established.add(int(fields[9]))
        except OSError:
            continue
    return [len(socket_inodes(pid) & established) for pid in pids]


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def worker_pids(pid: int) -> list[int]:
    """The worker processes under the supervisor ``pid`` (its spawned children)."""
    return [p for p in descendants(pid) if p != pid and "spawn_main" in cmdline(p)]


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (PostgreSQL backends name their db)."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and text in cmdline(int(e))]


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Service:
    """A server subprocess in its own session, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.db_name: str | None = None  # a PostgreSQL database whose backends' CPU to count
        self.port = int(cmd[cmd.index("--port") + 1])
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, path: str = "/", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = asyncio.run(one_request(self.port, "GET", path))
                if status < 500:
                    # give every worker a moment to bind its loop before measuring
                    time.sleep(1.0)
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer in {timeout} s")

    def workers(self) -> list[int]:
        return worker_pids(self.proc.pid) or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def one_request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = await HttpConnection.open(HOST, port)
    try:
        return await conn.request(http_request(HOST, port, method, path, body, headers))
    finally:
        conn.close()


def _setting_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("a setting is NAME=VALUE")
    from opengroup.config import SETTINGS_BY_NAME  # (imported here, as elsewhere in this file)

    if name not in SETTINGS_BY_NAME:
        raise argparse.ArgumentTypeError(f"no such setting: {name}")
    return name, value


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENGROUP_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- database


class PostgresDatabase:
    """A fresh database on the server of ``admin_url``, dropped by :meth:`drop`."""

    def __init__(self, admin_url: str) -> None:
        import psycopg
        from psycopg import sql

        parts = urlsplit(admin_url)
        self.admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
        self.name = f"opengroup_bench_{secrets.token_hex(5)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + self.name, "", ""))

    def vacuum(self) -> tuple[float, str]:
        """Reclaim setup's dead rows and gather the planner's statistics of every table,
        as autovacuum does on a server that has run a while (setup's rows came too fast
        for it); the seconds it took, and whether autovacuum is on for the run."""
        import psycopg

        started = time.monotonic()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            row = conn.execute("SHOW autovacuum").fetchone()
        return time.monotonic() - started, str(row[0]) if row else "?"

    def drop(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )


def analyze_sqlite(data_dir: Path) -> float:
    """What a server on SQLite does every ``statistics_interval_seconds``
    (``Database.analyze``) to the database in ``data_dir``; the seconds it took."""
    from opengroup.storage.database import Database

    started = time.monotonic()
    db = Database(f"sqlite:///{data_dir / 'opengroup.db'}")
    try:
        db.analyze()
    finally:
        db.dispose()
    return time.monotonic() - started


def cli(data_dir: Path, database_url: str | None, *commands: list[str]) -> None:
    """Run ``python -m opengroup COMMAND --data-dir .. [--database-url ..]``, all at once."""
    running = []
    for command in commands:
        cmd = [sys.executable, "-m", "opengroup", *command, "--data-dir", str(data_dir)]
        if database_url:
            cmd += ["--database-url", database_url]
        running.append(
            (cmd, subprocess.Popen(cmd, cwd=REPO_ROOT, env=server_env(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        )  # fmt: skip
    for cmd, proc in running:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")


def insert_history(
    data_dir: Path, database_url: str | None, count: int, authors: list[User]
) -> float:
    """M signed messages in ``main``, written in one transaction through the server's
    storage layer (its Database and schema); the room's id counter is set to match.
    Returns the seconds it took."""
    from sqlalchemy import insert, update

    from opengroup.config import load_settings
    from opengroup.storage.database import Database
    from opengroup.storage.schema import messages, rooms

    started = time.monotonic()
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "database_url": database_url or ""}, env={}
    )
    rng = random.Random(1)
    distinct = []
    for i in range(min(HISTORY_DISTINCT, max(count, 1))):
        author = authors[i % len(authors)]
        data = loadgen.padded_message(rng)
        distinct.append(
            (
                author.session_id,
                base64.b64encode(data).decode(),
                base64.b64encode(loadgen.sign(author.private, data)).decode(),
            )
        )
    now = time.time()
    db = Database(settings.effective_database_url)
    try:
        with db.write() as conn:
            batch: list[dict[str, Any]] = []
            for server_id in range(1, count + 1):
                public_key, data_text, signature = distinct[server_id % len(distinct)]
                posted_at = now - (count - server_id) * 0.5
                batch.append(
                    {
                        "room_id": MAIN_ROOM,
                        "server_id": server_id,
                        "public_key": public_key,
                        "timestamp": int(posted_at * 1000),
                        "data": data_text,
                        "signature": signature,
                        "posted_at": posted_at,
                        "deleted": False,
                        "seqno": server_id,
                        "seqno_data": server_id,
                        "seqno_created": server_id,
                    }
                )
                if len(batch) == 5000:
                    conn.execute(insert(messages), batch)
                    batch = []
            if batch:
                conn.execute(insert(messages), batch)
            conn.execute(
                update(rooms).where(rooms.c.id == MAIN_ROOM).values(message_seq=count, seqno=count)
            )
    finally:
        db.dispose()
    return time.monotonic() - started


# --------------------------------------------------------------------------- users


def insert_nonces(data_dir: Path, database_url: str | None, count: int) -> float:
    """``count`` stored request nonces, as a server holds at steady state: requests
    signed over the last window (a day), evenly, so that they leave the window during
    the run at the rate they came in (``count`` a day), and the admissions and pruning
    passes delete them as they would. Written by the database itself, in the order of
    time, as they would have been. Returns the seconds it took."""
    from sqlalchemy import text

    from opengroup.config import load_settings
    from opengroup.storage.database import Database

    started = time.monotonic()
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "database_url": database_url or ""}, env={}
    )
    db = Database(settings.effective_database_url)
    window = settings.request_time_window_seconds
    params = {"count": count, "first": int(time.time()) - window, "window": window}
    if db.is_sqlite:
        statement = text(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1) "
            "INSERT INTO request_nonces (signed_at, nonce) "
            "SELECT :first + i * :window / :count, randomblob(16) FROM n"
        )
    else:
        statement = text(
            "INSERT INTO request_nonces (signed_at, nonce) "
            "SELECT :first + i::bigint * :window / :count, "
            "decode(md5(random()::text || i::text), 'hex') "
            "FROM generate_series(0, :count - 1) AS i"
        )
    try:
        with db.write() as conn:
            conn.execute(statement, params)
    finally:
        db.dispose()
    return time.monotonic() - started


def server_public_key(data_dir: Path) -> bytes:
    key = load_pem_public_key((data_dir / "x25519_public_key.pem").read_bytes())
    return key.public_bytes_raw()  # type: ignore[union-attr]


def decrypt_challenge(user: User, challenge: dict[str, str]) -> str:
    """The token (hex) inside a challenge encrypted to the user's key."""
    private = X25519PrivateKey.from_private_bytes(user.private)
    key = loadgen.loki_key(private, base64.b64decode(challenge["ephemeral_public_key"]))
    blob = base64.b64decode(challenge["ciphertext"])
    return AESGCM(key).decrypt(blob[:12], blob[12:], None).hex()


async def _authenticate_all(port: int, users: list[User], rooms: list[str], conns: int) -> None:
    queue: asyncio.Queue[tuple[User, str]] = asyncio.Queue()
    for user in users:
        for room in rooms:
            queue.put_nowait((user, room))

    async def one_connection() -> None:
        conn = await HttpConnection.open(HOST, port)
        try:
            while not queue.empty():
                user, room = queue.get_nowait()
                path = f"/auth_token_challenge?public_key={user.session_id}"
                status, body = await conn.request(
                    http_request(HOST, port, "GET", path, headers={"Room": room})
                )
                if status != 200:
                    raise SystemExit(f"challenge failed: {status} {body[:200]!r}")
                token = decrypt_challenge(user, orjson.loads(body)["challenge"])
                claim = orjson.dumps({"public_key": user.session_id})
                headers = {"Room": room, "Authorization": token, "Content-Type": "application/json"}
                status, body = await conn.request(
                    http_request(HOST, port, "POST", "/claim_auth_token", claim, headers)
                )
                if status != 200:
                    raise SystemExit(f"claim failed: {status} {body[:200]!r}")
                user.tokens[room] = token
                if conn.closed:
                    conn = await HttpConnection.open(HOST, port)
        finally:
            conn.close()

    await asyncio.gather(*(one_connection() for _ in range(conns)))


async def _heads(port: int, user: User, rooms: list[str]) -> dict[str, int]:
    """Newest message server_id of each room (0 if empty), read like a client."""
    heads = {}
    for room in rooms:
        headers = {"Room": room, "Authorization": user.tokens[room]}
        status, body = await one_request(port, "GET", "/messages?limit=1", headers=headers)
        if status != 200:
            raise SystemExit(f"GET /messages failed: {status} {body[:200]!r}")
        found = orjson.loads(body)["messages"]
        heads[room] = max((m["server_id"] for m in found), default=0)
    return heads


async def _signed_get(
    conn: HttpConnection, port: int, pub: bytes, user: community.BenchIdentity, path: str
) -> Any:
    """A signed GET over direct HTTP, its JSON answer (the setup's requests)."""
    headers = community.signed_headers(user, pub, "GET", path)
    status, body = await conn.request(http_request(HOST, port, "GET", path, headers=headers))
    if status != 200:
        raise SystemExit(f"GET {path} failed: {status} {body[:200]!r}")
    return orjson.loads(body)


async def _introduce_all(
    port: int, pub: bytes, seeds: list[bytes], rooms: list[str], conns: int
) -> None:
    """Each community API user's first signed request, a ``/batch`` of ``pollInfo`` in
    every room: the server records the user, and their activity in each room, as it
    holds them for a client that has been polling for a while (a client records its
    activity in a room once every ``activity_interval_seconds``)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for seed in seeds:
        queue.put_nowait(seed)
    items = [{"method": "GET", "path": f"/room/{room}/pollInfo/0"} for room in rooms]
    body = orjson.dumps(items)

    async def one_connection() -> None:
        conn = await HttpConnection.open(HOST, port)
        try:
            while not queue.empty():
                user = community.identity(queue.get_nowait())
                headers = community.signed_headers(user, pub, "POST", "/batch", body)
                request = http_request(HOST, port, "POST", "/batch", body, headers=headers)
                status, answer = await conn.request(request)
                codes = [item["code"] for item in orjson.loads(answer)] if status == 200 else []
                if codes != [200] * len(rooms):
                    raise SystemExit(f"POST /batch failed: {status} {answer[:200]!r}")
                if conn.closed:
                    conn = await HttpConnection.open(HOST, port)
        finally:
            conn.close()

    await asyncio.gather(*(one_connection() for _ in range(conns)))


async def _seqnos(
    port: int, pub: bytes, user: community.BenchIdentity, rooms: list[str]
) -> dict[str, int]:
    """Each room's seqno (its message_sequence), read like a client."""
    conn = await HttpConnection.open(HOST, port)
    try:
        return {
            room: int(
                (await _signed_get(conn, port, pub, user, f"/room/{room}"))["message_sequence"]
            )
            for room in rooms
        }
    finally:
        conn.close()


async def _recent_ids(
    port: int, pub: bytes, user: community.BenchIdentity, room: str, count: int
) -> list[int]:
    """Ids of the room's newest messages (what the reactions go to)."""
    conn = await HttpConnection.open(HOST, port)
    try:
        path = f"/room/{room}/messages/recent?limit={count}"
        found = await _signed_get(conn, port, pub, user, path)
    finally:
        conn.close()
    ids = [int(m["id"]) for m in found]
    if not ids:
        raise SystemExit(f"no messages in {room} to react to")
    return ids


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One scenario's numbers."""

    name: str
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    poll_p99_ms: float  # the polls' alone: in a mix, whether the polls stall or the writes wait
    write_p99_ms: float  # the posts' and reactions' alone (0: none)
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    loadgen_cpu_pct: float
    loadgen_cpu_pct_per_process: list[float]
    server_cpu_pct: float = 0.0
    postgres_cpu_pct: float | None = None  # approximate: backends sampled every 0.5 s
    postgres_backends_seen: int | None = None
    server_loop_thread_cpu_pct: float = 0.0  # workers' event loop threads, summed
    server_other_threads_cpu_pct: float = 0.0  # workers' thread pools (and others), summed
    server_rss_mb: float = 0.0
    server_rss_mb_max_worker: float = 0.0
    server_rss_mb_per_process: dict[str, float] = field(default_factory=dict)
    connections_per_worker: list[int] = field(default_factory=list)  # at the window's start
    polls: int = 0
    posts: int = 0
    messages_seen: int = 0
    # community API scenarios only (left out of the JSON line when None)
    reactions: int | None = None
    loadgen_sign_cpu_pct: float | None = None  # time the generator spent signing, % of a core
    generator_signed: int | None = None  # requests signed during the window
    generator_presigned: int | None = None  # pre-signed requests sent during the window
    # open loop only
    open_loop_rate: float | None = None  # requests/s asked for
    intended: int | None = None  # sends due in the window
    missed_sends: int | None = None  # sent late_ms or more after their time, or never
    unsent: int | None = None  # never sent
    send_lag_p99_ms: float | None = None  # how late the sends went out
    send_lag_max_ms: float | None = None


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index] / 1e6


def drive(
    name: str,
    job: Job,
    processes: int,
    target: Service | None = None,
    profile_to: Path | None = None,
    py_spy: str = "py-spy",
    py_spy_args: str = "",
) -> Measured:
    """Run the load generator processes against ``job.port`` and merge what they saw."""
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    first = 0
    for i in range(processes):
        n = job.total_conns // processes + (1 if i < job.total_conns % processes else 0)
        part = Job(**{**job.__dict__, "connections": n, "first_conn": first, "seed": i + 1})
        first += n
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=loadgen.worker_main, args=(part, child), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    for pipe in pipes:
        kind, payload = pipe.recv()
        if kind != "ready":
            raise SystemExit(f"load generator failed: {payload}")
    t_go = time.perf_counter_ns() + 200_000_000
    for pipe in pipes:
        pipe.send(("go", t_go))
    t_measure = t_go + int(job.warmup_s * 1e9)
    t_end = t_measure + int(job.duration_s * 1e9)

    def sleep_until(t_ns: int) -> None:
        time.sleep(max(0.0, (t_ns - time.perf_counter_ns()) / 1e9))

    server_cpu0 = server_cpu = 0.0
    rss: dict[int, float] = {}
    # PostgreSQL backends come and go (a pool's overflow connections): keep each one's CPU
    # when first seen (0 if it started in the window) and when last seen.
    db_first: dict[int, float] = {}
    db_last: dict[int, float] = {}

    def sample_db(at_start: bool) -> None:
        if target is None or not target.db_name:
            return
        for pid in pids_matching(target.db_name):
            used = cpu_s(pid)
            db_first.setdefault(pid, used if at_start else 0.0)
            db_last[pid] = used

    spy = None
    workers0: dict[int, tuple[float, float]] = {}
    connections: list[int] = []
    workers1: dict[int, tuple[float, float]] = {}
    if target is not None:
        sleep_until(t_measure)
        server_cpu0 = tree_cpu_s(target.proc.pid)
        sample_db(at_start=True)
        workers0 = {pid: thread_cpu_s(pid) for pid in target.workers()}
        connections = connections_per_process(list(workers0), target.port)
        if profile_to is not None:
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(target.workers()[0]), "--duration",
                 str(int(job.duration_s)), "--format", "speedscope", "--output", str(profile_to),
                 *shlex.split(py_spy_args)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
        sample_rss(target.proc.pid, rss)  # (once at least, however short the window)
        while time.perf_counter_ns() < t_end - 500_000_000:
            sample_rss(target.proc.pid, rss)
            sample_db(at_start=False)
            time.sleep(0.5)
        sleep_until(t_end)
        server_cpu = tree_cpu_s(target.proc.pid) - server_cpu0
        sample_db(at_start=False)
        workers1 = {pid: thread_cpu_s(pid) for pid in workers0}
    results: list[loadgen.Result] = []
    for pipe in pipes:
        kind, payload = pipe.recv()
        if kind != "result":
            raise SystemExit(f"load generator failed: {payload}")
        results.append(payload)
    for proc in procs:
        proc.join(10)
    if spy is not None:
        spy.wait(60)

    import array

    def merged(field: str) -> list[int]:
        """The generator processes' nanoseconds of one kind, sorted."""
        values: list[int] = []
        for r in results:
            values.extend(array.array("q", getattr(r, field)))
        return sorted(values)

    latencies = merged("latencies_ns")
    poll_latencies = merged("poll_latencies_ns")
    write_latencies = merged("write_latencies_ns")
    lags = merged("lags_ns")
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    count = len(latencies)
    measured = Measured(
        name=name,
        requests=count,
        rps=count / job.duration_s,
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        poll_p99_ms=percentile(poll_latencies, 0.99),
        write_p99_ms=percentile(write_latencies, 0.99),
        mean_ms=(sum(latencies) / count / 1e6) if count else 0.0,
        max_ms=latencies[-1] / 1e6 if latencies else 0.0,
        errors=errors,
        loadgen_cpu_pct=100 * sum(r.cpu_s for r in results) / job.duration_s,
        loadgen_cpu_pct_per_process=[round(100 * r.cpu_s / job.duration_s, 1) for r in results],
        polls=sum(r.polls for r in results),
        posts=sum(r.posts for r in results),
        messages_seen=sum(r.messages_seen for r in results),
    )
    if job.kind.startswith("v4"):
        measured.reactions = sum(r.reactions for r in results)
        measured.loadgen_sign_cpu_pct = 100 * sum(r.sign_s for r in results) / job.duration_s
        measured.generator_signed = sum(r.signed for r in results)
        measured.generator_presigned = sum(r.presigned for r in results)
    if job.open_loop_rate > 0:
        measured.open_loop_rate = job.open_loop_rate
        measured.intended = sum(r.intended for r in results)
        measured.missed_sends = sum(r.missed for r in results)
        measured.unsent = sum(r.unsent for r in results)
        measured.send_lag_p99_ms = percentile(lags, 0.99)
        measured.send_lag_max_ms = lags[-1] / 1e6 if lags else 0.0
    if target is not None:
        measured.server_cpu_pct = 100 * server_cpu / job.duration_s
        if target.db_name:
            database_cpu = sum(db_last[p] - db_first[p] for p in db_last)
            measured.postgres_cpu_pct = 100 * database_cpu / job.duration_s
            measured.postgres_backends_seen = len(db_last)
        for pid, (main0, others0) in workers0.items():
            main1, others1 = workers1[pid]
            measured.server_loop_thread_cpu_pct += 100 * (main1 - main0) / job.duration_s
            measured.server_other_threads_cpu_pct += 100 * (others1 - others0) / job.duration_s
        workers = set(target.workers())
        measured.connections_per_worker = connections
        measured.server_rss_mb = sum(rss.values())
        measured.server_rss_mb_per_process = {
            ("worker" if pid in workers else "supervisor" if pid == target.proc.pid else "helper")
            + f"_{pid}": round(v, 1)
            for pid, v in sorted(rss.items())
        }
        measured.server_rss_mb_max_worker = max(
            (v for pid, v in rss.items() if pid in workers), default=0.0
        )
    return measured


def sample_rss(root: int, rss: dict[int, float]) -> None:
    """Each process of the tree at ``root``: the largest resident size seen so far."""
    for pid in descendants(root):
        rss[pid] = max(rss.get(pid, 0.0), rss_mb(pid))


# --------------------------------------------------------------------------- the run


@dataclass
class Config:
    args: argparse.Namespace
    tmp: Path
    seeds: list[bytes] = field(default_factory=list)  # the community API users' Ed25519 seeds
    ceilings: dict[str, Measured] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    json_out: Any = None


def base_job(args: argparse.Namespace, kind: str, port: int, pub: bytes) -> Job:
    return Job(
        kind=kind, host=HOST, port=port, server_public=pub, rooms=[MAIN_ROOM], users=[],
        heads={}, connections=0, first_conn=0, total_conns=args.concurrency,
        warmup_s=args.warmup, duration_s=args.duration,
    )  # fmt: skip


def community_job(
    cfg: Config, scenario: Scenario, port: int, pub: bytes, heads: dict[str, int],
    reaction_ids: list[int],
) -> Job:  # fmt: skip
    """A community API job; its pools of pre-signed requests are sized for the v4
    ceiling's rate of this run (an upper bound of any scenario's), or --presign-rate."""
    args = cfg.args
    job = base_job(args, scenario.kind, port, pub)
    job.rooms = [MAIN_ROOM, *EXTRA_ROOMS][: scenario.rooms]
    job.seeds = cfg.seeds
    job.heads = heads
    job.reaction_ids = reaction_ids
    job.post_fraction = scenario.post_fraction
    job.react_fraction = scenario.react_fraction
    ceiling = cfg.ceilings.get("onion_v4_ceiling")
    rate = ceiling.rps if ceiling is not None and ceiling.rps else args.presign_rate
    job.presign_posts = presigned_per_user(cfg, rate, scenario.post_fraction)
    job.presign_reactions = presigned_per_user(cfg, rate, scenario.react_fraction)
    if scenario.kind == "v4poll":  # (nothing is posted: each user's poll stays the same)
        job.presign_polls = presigned_per_user(cfg, rate, 1.0)
    return job


def presigned_per_user(cfg: Config, rate: float, fraction: float) -> int:
    """How many requests of a kind (``fraction`` of a scenario's) each user signs before
    the clock, for a scenario at ``rate`` over the warm-up and the window, with a
    quarter to spare (a user whose pool runs dry signs on the fly)."""
    if not fraction:
        return 0
    args = cfg.args
    users = max(len(cfg.seeds), args.concurrency)
    return math.ceil(rate * (args.warmup + args.duration) * 1.25 / users * fraction) + 2


def ceiling_service(cfg: Config, label: str, app: str) -> tuple[Service, bytes]:
    """A reference app served as the server is, with the run's workers, ready; and its
    onion key."""
    args = cfg.args
    key_dir = cfg.tmp / "ceiling-keys"
    if not key_dir.exists():
        cli(key_dir, None, ["url"])  # makes a key pair (and a throwaway SQLite file)
    env = server_env({"BENCH_ONION_PRIVATE_KEY_FILE": str(key_dir / "x25519_private_key.pem")})
    port = free_port()
    cmd = [
        sys.executable, "-m", "bench.serve_app", f"bench.ceiling_app:{app}", "--host", HOST,
        "--port", str(port), "--workers", str(args.workers),
    ]  # fmt: skip
    service = Service(label, cmd, env, cfg.tmp / f"{label}.log")
    try:
        service.wait_ready()
    except BaseException:
        service.stop()
        raise
    return service, server_public_key(key_dir)


def ceiling_job(cfg: Config, kind: str, port: int, pub: bytes, users: list[User]) -> Job:
    """The job of (a) for the v2 ceilings, of (e) for the v4 one, on an idle room."""
    job = base_job(cfg.args, kind, port, pub)
    if kind == "v4poll":
        job.seeds = cfg.seeds
        job.presign_polls = presigned_per_user(cfg, cfg.args.presign_rate, 1.0)
    else:
        job.users = [
            User(u.private, u.session_id, {MAIN_ROOM: secrets.token_hex(48)}) for u in users
        ]
    job.heads = {MAIN_ROOM: 1}
    return job


def measure_ceilings(cfg: Config, users: list[User], before: tuple[str, int] | None) -> None:
    """The reference apps, with the same generator and concurrency, and the request of (a)
    (the v4 ceiling: of (e), measured only when a community API scenario runs).
    ``before``: the (backend, M) group measured next, for the report."""
    args = cfg.args
    cfg.ceilings.clear()
    community = any(SCENARIOS[key].community for key in args.scenarios)
    for label, app, kind, _ in CEILINGS:
        if kind.startswith("v4") and not community:
            continue
        service, pub = ceiling_service(cfg, label, app)
        try:
            job = ceiling_job(cfg, kind, service.port, pub, users)
            measured = drive(label, job, args.loadgen_processes, service)
        finally:
            service.stop()
        cfg.ceilings[label] = measured
        where = {"backend": before[0], "messages": before[1]} if before else {}
        report(cfg, measured, {"target": "ceiling", "app": f"bench.ceiling_app:{app}", **where})


def measure_open_loop_ceiling(cfg: Config, rate: float, where: dict[str, Any]) -> None:
    """The v4 ceiling driven open loop at ``rate``: what (e)'s open loop is compared with."""
    args = cfg.args
    label, app = "onion_v4_ceiling", "onion_v4_echo"
    service, pub = ceiling_service(cfg, label, app)
    try:
        job = ceiling_job(cfg, "v4poll", service.port, pub, [])
        job.open_loop_rate = rate
        job.late_ms = args.open_loop_late_ms
        measured = drive(label + OPEN_LOOP_SUFFIX, job, args.loadgen_processes, service)
    finally:
        service.stop()
    report(
        cfg,
        measured,
        {"target": "ceiling", "app": f"bench.ceiling_app:{app}", "mode": "open_loop", **where},
    )


# Measured fields only the community API scenarios or the open loop fill in.
OPTIONAL_FIELDS = frozenset(
    {
        "reactions", "loadgen_sign_cpu_pct", "generator_signed", "generator_presigned",
        "open_loop_rate", "intended", "missed_sends", "unsent", "send_lag_p99_ms",
        "send_lag_max_ms",
    }
)  # fmt: skip


def report(cfg: Config, m: Measured, extra: dict[str, Any]) -> None:
    args = cfg.args
    line: dict[str, Any] = {
        "scenario": m.name,
        **extra,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "duration_s": args.duration,
        "loadgen_processes": args.loadgen_processes,
        **{
            k: (round(v, 3) if isinstance(v, float) else v)
            for k, v in m.__dict__.items()
            if v is not None or k not in OPTIONAL_FIELDS
        },
    }
    line.pop("name")
    key = SCENARIO_KEYS.get(m.name)
    community = (key is not None and SCENARIOS[key].community) or m.name == "onion_v4_ceiling"
    for label, _, _, ratio in CEILINGS:
        ceiling = cfg.ceilings.get(label)
        if ceiling is None or not ceiling.rps or m.name == label or extra.get("mode"):
            continue  # an open loop runs at a set rate: no ratio
        v4_to_v3 = m.name == "onion_v4_ceiling" and label == "onion_ceiling"
        if extra.get("target") == "ceiling" and label != "framework_ceiling" and not v4_to_v3:
            continue  # ceilings are compared with the framework ceiling (v4: and v3)
        if label == "onion_v4_ceiling" and not community:
            continue
        line[ratio] = round(m.rps / ceiling.rps, 3)
    line["load_average"] = load_average()
    text = json.dumps(line, sort_keys=False)
    print("JSON " + text, flush=True)
    if cfg.json_out is not None:
        cfg.json_out.write(text + "\n")
        cfg.json_out.flush()
    cfg.rows.append(line)


def run_server_scenarios(
    cfg: Config, backend: str, messages: int, users: list[User]
) -> float | None:
    """Set up and drive one (backend, M) group; the open loop's rate if one ran."""
    args = cfg.args
    data_dir = cfg.tmp / f"data-{backend}-{messages}"
    pg = PostgresDatabase(args.database_url) if backend == "postgresql" else None
    db_url = pg.url if pg else None
    service = None
    open_loop_rate = None
    v2 = any(not SCENARIOS[key].community for key in args.scenarios)
    v4 = any(SCENARIOS[key].community for key in args.scenarios)
    try:
        started = time.monotonic()
        cli(data_dir, db_url, ["db", "upgrade"])
        cli(data_dir, db_url, *(["rooms", "add", room, f"Bench {room}"] for room in EXTRA_ROOMS))
        history_s = insert_history(data_dir, db_url, messages, users[:HISTORY_AUTHORS])
        nonces_s = insert_nonces(data_dir, db_url, args.nonces) if args.nonces else 0.0
        port = free_port()
        env = server_env(
            {
                "OPENGROUP_LOG_LEVEL": "warning",
                "OPENGROUP_POST_RATE_LIMIT_SECONDS": "0",
                "OPENGROUP_DELETIONS_FORMAT": "objects",
                **{f"OPENGROUP_{name.upper()}": value for name, value in args.setting},
            }
        )
        cmd = [sys.executable, "-m", "opengroup", "serve", "--workers", str(args.workers),
               "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]  # fmt: skip
        if db_url:
            cmd += ["--database-url", db_url]
        service = Service(
            f"opengroup-{backend}-{messages}",
            cmd,
            env,
            cfg.tmp / f"server-{backend}-{messages}.log",
        )
        service.db_name = pg.name if pg else None
        service.wait_ready("/rooms")
        pub = server_public_key(data_dir)
        rooms = [MAIN_ROOM, *EXTRA_ROOMS]
        setup = [f"history {history_s:.1f} s"]
        if args.nonces:
            setup.append(f"{args.nonces} stored nonces in {nonces_s:.1f} s")
        if v2:
            # Tokens in the rooms the v2 scenarios poll only: each costs a challenge
            # and a claim, two writes (80-110 s for all ten rooms on a slow day).
            polled = rooms[: max(SCENARIOS[key].rooms for key in args.scenarios
                                 if not SCENARIOS[key].community)]  # fmt: skip
            auth_started = time.monotonic()
            for user in users:
                user.tokens = {}
            asyncio.run(_authenticate_all(port, users, polled, 16))
            setup.append(
                f"{len(users)} users x {len(polled)} rooms: tokens in "
                f"{time.monotonic() - auth_started:.1f} s"
            )
        if v4:
            introduced = time.monotonic()
            asyncio.run(_introduce_all(port, pub, cfg.seeds, rooms, 16))
            setup.append(
                f"{len(cfg.seeds)} blinded users' first batch poll of {len(rooms)} rooms in "
                f"{time.monotonic() - introduced:.1f} s"
            )
        # The planner's statistics, as a server that has run a while has them
        # (PostgreSQL's autovacuum; on SQLite the server's hourly Database.analyze).
        if pg:
            took, autovacuum = pg.vacuum()
            setup.append(f"tables vacuumed and analyzed in {took:.1f} s (autovacuum {autovacuum})")
        else:
            setup.append(f"tables analyzed in {analyze_sqlite(data_dir):.1f} s")
        setup.append(f"total {time.monotonic() - started:.1f} s")
        print(f"# setup {backend} M={messages}: " + ", ".join(setup), flush=True)
        where = {"backend": backend, "messages": messages, "stored_nonces": args.nonces}
        measured_rps: dict[str, float] = {}
        for key in args.scenarios:
            scenario = SCENARIOS[key]
            name = scenario.name
            profile = profile_path(args, name, backend, messages)
            try:
                job, extra = scenario_job(cfg, scenario, port, pub, users)
            except (OSError, HttpError) as exc:
                stopped_answering(service, exc, name, f"{backend} M={messages}")
                return None
            measured = drive(
                name, job, args.loadgen_processes, service, profile, args.py_spy, args.py_spy_args
            )
            measured_rps[key] = measured.rps
            report(cfg, measured, {"target": "opengroup", **where, **extra})
            if measured.errors:
                print_log_tail(service)
        if args.open_loop:
            scenario = SCENARIOS["e"]
            if args.open_loop_base == "ceiling":
                base, of = cfg.ceilings["onion_v4_ceiling"].rps, "onion_v4_ceiling"
            else:
                base, of = measured_rps["e"], scenario.name
            try:
                job, extra = scenario_job(cfg, scenario, port, pub, users)
            except (OSError, HttpError) as exc:
                stopped_answering(service, exc, "the open loop", f"{backend} M={messages}")
                return None
            open_loop_rate = args.open_loop * base
            job.open_loop_rate = open_loop_rate
            job.late_ms = args.open_loop_late_ms
            name = scenario.name + OPEN_LOOP_SUFFIX
            profile = profile_path(args, name, backend, messages)
            measured = drive(
                name, job, args.loadgen_processes, service, profile, args.py_spy, args.py_spy_args
            )
            report(
                cfg,
                measured,
                {"target": "opengroup", "mode": "open_loop", **where, **extra,
                 "open_loop_fraction": args.open_loop, "open_loop_of": of},
            )  # fmt: skip
            if measured.errors:
                print_log_tail(service)
    finally:
        if service is not None:
            service.stop()
        if pg is not None:
            pg.drop()
    return open_loop_rate


def profile_path(args: argparse.Namespace, name: str, backend: str, messages: int) -> Path | None:
    """Where ``--profile`` records one scenario (its open loop too), if it is given."""
    if not args.profile:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    path: Path = args.profile / f"{name}-{backend}-M{messages}.speedscope.json"
    return path


def scenario_job(
    cfg: Config, scenario: Scenario, port: int, pub: bytes, users: list[User]
) -> tuple[Job, dict[str, Any]]:
    """The job of a scenario with the cursors of caught-up clients, read just before it;
    and what the report says about where it started."""
    rooms = [MAIN_ROOM, *EXTRA_ROOMS][: scenario.rooms]
    if not scenario.community:
        job = base_job(cfg.args, scenario.kind, port, pub)
        job.rooms = rooms
        job.users = users
        job.post_fraction = scenario.post_fraction or 0.05
        job.heads = asyncio.run(_heads(port, users[0], rooms))
        return job, {"users": len(users), "main_room_head": job.heads[MAIN_ROOM]}
    first = community.identity(cfg.seeds[0])
    heads = asyncio.run(_seqnos(port, pub, first, rooms))
    reaction_ids: list[int] = []
    if scenario.react_fraction:
        reaction_ids = asyncio.run(_recent_ids(port, pub, first, MAIN_ROOM, REACTION_TARGETS))
    job = community_job(
        cfg, scenario, port, pub, {} if cfg.args.fresh_clients else heads, reaction_ids
    )
    extra = {"users": len(cfg.seeds), "main_room_seqno": heads[MAIN_ROOM]}
    if cfg.args.fresh_clients:
        extra["fresh_clients"] = True
    return job, extra


def stopped_answering(service: Service, exc: Exception, before: str, group: str) -> None:
    """Say that the server stopped answering (the rest of the group is skipped)."""
    print(
        f"# the server stopped answering ({exc!r}) before {before}: the rest of {group} is skipped",
        flush=True,
    )
    print_log_tail(service)


def print_log_tail(service: Service) -> None:
    tail = service.log.read_text(errors="replace")[-2000:]
    if tail.strip():
        print(f"# server log tail:\n{tail}", flush=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The human summary: one row per measurement (the JSON lines carry more)."""
    head = (
        f"{'scenario':<18} {'backend':<10} {'M':>7} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'poll99':>6} {'wr99':>6} {'vs fw':>6} {'vs onion':>8} {'vs v4':>6} "
        f"{'srv+pg cpu%':>11} {'gen cpu%':>8} {'sign%':>5} {'rss MB':>7} {'max wkr':>7} "
        f"{'conns':>7}  errors"
    )
    print(head)
    print("-" * len(head))

    def ratio(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:.3f}" if key in r else "-"

    def cpu(r: dict[str, Any]) -> str:
        text = f"{r['server_cpu_pct']:.0f}"
        if r.get("postgres_cpu_pct") is not None:
            text += f"+{r['postgres_cpu_pct']:.0f}"
        return text

    def sign(r: dict[str, Any]) -> str:
        return f"{r['loadgen_sign_cpu_pct']:.0f}" if "loadgen_sign_cpu_pct" in r else "-"

    for r in rows:
        if r.get("mode") == "open_loop":
            continue
        print(
            f"{r['scenario']:<18} {r.get('backend', '-'):<10} {r.get('messages', '-')!s:>7} "
            f"{r['rps']:>8.0f} {r['p50_ms']:>7.1f} {r['p90_ms']:>7.1f} {r['p99_ms']:>7.1f} "
            f"{r.get('poll_p99_ms', 0.0):>6.1f} {r.get('write_p99_ms', 0.0):>6.1f} "
            f"{ratio(r, 'vs_framework_ceiling'):>6} "
            f"{ratio(r, 'vs_onion_ceiling'):>8} "
            f"{ratio(r, 'vs_onion_v4_ceiling'):>6} {cpu(r):>11} {r['loadgen_cpu_pct']:>8.0f} "
            f"{sign(r):>5} {r['server_rss_mb']:>7.0f} {r['server_rss_mb_max_worker']:>7.0f} "
            f"{'/'.join(map(str, r.get('connections_per_worker', []))) or '-':>7}  "
            f"{r['errors'] or ''}"
        )
    open_rows = [r for r in rows if r.get("mode") == "open_loop"]
    if not open_rows:
        return
    print("\nopen loop (latency from each request's intended send time):")
    head = (
        f"{'scenario':<28} {'backend':<10} {'M':>7} {'rate/s':>7} {'done/s':>7} {'p50 ms':>7} "
        f"{'p90 ms':>7} {'p99 ms':>7} {'max ms':>8} {'missed':>7} {'unsent':>6} "
        f"{'lag p99':>7} {'srv cpu%':>8} {'gen cpu%':>8}  errors"
    )
    print(head)
    print("-" * len(head))
    for r in open_rows:
        print(
            f"{r['scenario']:<28} {r.get('backend', '-'):<10} {r.get('messages', '-')!s:>7} "
            f"{r['open_loop_rate']:>7.0f} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} "
            f"{r['p90_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['max_ms']:>8.1f} "
            f"{r['missed_sends']:>7} {r['unsent']:>6} {r['send_lag_p99_ms']:>7.1f} "
            f"{cpu(r):>8} {r['loadgen_cpu_pct']:>8.0f}  {r['errors'] or ''}"
        )


# scenario key -> (share of a ceiling it should reach, the ratio field, that ceiling's name)
FLOORS = {
    "a": (0.50, "vs_onion_ceiling", "onion ceiling"),
    "b": (0.25, "vs_onion_ceiling", "onion ceiling"),
    "c": (0.25, "vs_onion_ceiling", "onion ceiling"),
    "e": (0.40, "vs_onion_v4_ceiling", "onion v4 ceiling"),
    "f": (0.20, "vs_onion_v4_ceiling", "onion v4 ceiling"),
    "g": (0.25, "vs_onion_v4_ceiling", "onion v4 ceiling"),
}
# scenario key -> (the scenario whose p99 it is held to, how many times that)
TAILS = {"d": ("a", 2.0), "h": ("e", 2.0), "i": ("e", 2.0)}
# scenario key -> the ratio its speed is compared by across history sizes and backends
SCALED = {"a": "vs_onion_ceiling", "e": "vs_onion_v4_ceiling"}


def target_checks(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """The issue's targets against what was measured: (what, measured, met)."""
    found = {
        (SCENARIO_KEYS[r["scenario"]], r["backend"], r["messages"]): r
        for r in rows
        if r.get("target") == "opengroup" and not r.get("mode") and r["scenario"] in SCENARIO_KEYS
    }
    checks: list[tuple[str, str, bool]] = []
    sizes = sorted({m for _, _, m in found})
    for (key, backend, m), r in sorted(found.items()):
        where = f"{backend} M={m}"
        if key in FLOORS:
            floor, field_name, of = FLOORS[key]
            share = r.get(field_name)
            if share is not None:
                checks.append(
                    (
                        f"({key}) >= {floor:.0%} of {of}, {where}",
                        f"{share:.1%}",
                        share >= floor,
                    )
                )
        if key == "a":
            checks.append((f"(a) p99 < 25 ms, {where}", f"{r['p99_ms']:.1f} ms", r["p99_ms"] < 25))
        if key in TAILS:
            base_key, times = TAILS[key]
            base = found.get((base_key, backend, m))
            if base is not None:
                checks.append(
                    (
                        f"({key}) p99 <= {times:g}x ({base_key}) p99, {where}",
                        f"{r['p99_ms']:.1f} ms vs {base['p99_ms']:.1f} ms "
                        f"({r['p99_ms'] / base['p99_ms']:.2f}x)"
                        if base["p99_ms"]
                        else f"{r['p99_ms']:.1f} ms",
                        r["p99_ms"] <= times * base["p99_ms"],
                    )
                )

    def relative(a: dict[str, Any], b: dict[str, Any], key: str) -> tuple[float, str]:
        """a's speed over b's: of the ratios to the ceiling when both have one (the
        machine's load may change between them), else of the raw requests/s."""
        raw = a["rps"] / b["rps"] if b["rps"] else 0.0
        if a.get(key) and b.get(key):
            normalised = a[key] / b[key]
            return normalised, f"{normalised:.2f}x of the ceiling ratios ({raw:.2f}x raw req/s)"
        return raw, f"{raw:.2f}x"

    for backend in sorted({b for _, b, _ in found}):
        for key, ratio_key in SCALED.items():
            small, large = found.get((key, backend, 1000)), found.get((key, backend, 100_000))
            if small and large:
                ratio, text = relative(large, small, ratio_key)
                checks.append(
                    (f"({key}) M=100,000 within 10% of M=1,000, {backend}", text, ratio >= 0.9)
                )
        if sizes:
            at = [r for (_, b, m), r in found.items() if b == backend and m == sizes[-1]]
            worst = max(r["server_rss_mb_max_worker"] for r in at) if at else 0.0
            checks.append(
                (
                    f"RSS < 150 MB per worker, {backend} M={sizes[-1]}",
                    f"{worst:.0f} MB",
                    worst < 150,
                )
            )
    for m in sizes:
        for key, ratio_key in SCALED.items():
            lite, pg = found.get((key, "sqlite", m)), found.get((key, "postgresql", m))
            if lite and pg and pg["rps"]:
                slower, text = relative(lite, pg, ratio_key)
                checks.append(
                    (f"({key}) PostgreSQL within 1.5x of SQLite, M={m}", text, slower <= 1.5)
                )
    open_rows = [r for r in rows if r.get("mode") == "open_loop"]
    for r in open_rows:
        if r.get("target") != "opengroup":
            continue
        ceiling = next(
            (
                c
                for c in open_rows
                if c.get("target") == "ceiling"
                and c.get("backend") == r["backend"]
                and c.get("messages") == r["messages"]
            ),
            None,
        )
        if ceiling is None:
            continue
        checks.append(
            (
                f"(e) open loop at {r['open_loop_fraction']:.0%} of {r['open_loop_of']}'s max "
                f"({r['open_loop_rate']:.0f}/s): p99 <= 3x the v4 ceiling's p99 at that rate, "
                f"{r['backend']} M={r['messages']}",
                f"{r['p99_ms']:.1f} ms vs {ceiling['p99_ms']:.1f} ms, "
                f"{r['missed_sends']} of {r['intended']} sends missed "
                f"(ceiling {ceiling['missed_sends']})",
                r["p99_ms"] <= 3 * ceiling["p99_ms"],
            )
        )
    return checks


def print_targets(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    checks = target_checks(rows)
    if not checks:
        return
    print(
        f"\ntargets (stated for C=64, K=1000, 2 workers; this run: C={args.concurrency}, "
        f"K={args.users}, {args.workers} workers):"
    )
    for what, value, met in checks:
        print(f"  {'met ' if met else 'MISS'}  {what}: {value}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--scenarios", default=",".join(SCENARIOS),
        help="comma-separated: a=poll 1 room, b=poll 10 rooms, c=post, d=95%% polls/5%% posts "
        "(v2, onion v3); e=batch poll of 1 room, f=of 10 rooms, g=post, h=95%% e/5%% g, "
        "i=90%% e/5%% g/5%% reactions (community API, onion v4, blinded users)",
    )  # fmt: skip
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per scenario")
    p.add_argument("--concurrency", type=int, default=64, help="connections in flight (C)")
    p.add_argument(
        "--users", type=int, default=1000,
        help="users (K): v2 users with tokens in all rooms, and as many blinded users",
    )  # fmt: skip
    p.add_argument(
        "--messages", default="1000", help="history size M of main; comma-separated for several"
    )
    p.add_argument("--workers", type=int, default=2, help="server (and ceiling) worker processes")
    p.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default=None,
        help="storage to run the server on (default sqlite; postgresql if --database-url)",
    )  # fmt: skip
    p.add_argument(
        "--database-url", default=None,
        help=f"PostgreSQL server for the postgresql backend (default {DEFAULT_PG}): a fresh "
        "database is created there for each history size and dropped afterwards",
    )  # fmt: skip
    p.add_argument(
        "--nonces", type=int, default=0,
        help="request nonces stored before the clock (as a busy server holds for its window)",
    )  # fmt: skip
    p.add_argument("--loadgen-processes", type=int, default=2, help="load generator processes")
    p.add_argument("--json-out", type=Path, default=None, help="also append the JSON lines here")
    p.add_argument(
        "--ceilings", choices=("once", "each", "none"), default="once",
        help="measure the reference apps once at the start, before each backend and "
        "history size (ratios then use the nearest, on a machine whose load changes), or not",
    )  # fmt: skip
    p.add_argument("--no-ceilings", action="store_true", help="same as --ceilings none")
    p.add_argument(
        "--open-loop", type=float, default=None, metavar="FRACTION",
        help="after the scenarios, drive (e) open loop at FRACTION of its measured maximum "
        "(or of the v4 ceiling's, --open-loop-base ceiling), then the v4 ceiling at the same "
        "rate; latency from the intended send time",
    )  # fmt: skip
    p.add_argument(
        "--open-loop-base", choices=("scenario", "ceiling"), default="scenario",
        help="what --open-loop is a fraction of: (e)'s closed-loop req/s or the v4 ceiling's",
    )  # fmt: skip
    p.add_argument(
        "--open-loop-late-ms", type=float, default=10.0,
        help="an open-loop send that goes out this late or later counts as missed",
    )  # fmt: skip
    p.add_argument(
        "--presign-rate", type=float, default=5000.0,
        help="req/s the pools of pre-signed requests are sized for when no v4 ceiling was "
        "measured in the run, and the v4 ceiling's own (a user whose pool runs dry signs "
        "on the fly)",
    )  # fmt: skip
    p.add_argument(
        "--fresh-clients", action="store_true",
        help="community API users start with no cursors (first poll messages/recent), not "
        "caught up",
    )  # fmt: skip
    p.add_argument(
        "--profile", type=Path, default=None,
        help="record each scenario with py-spy (first worker) into this directory",
    )  # fmt: skip
    p.add_argument("--py-spy", default=default_py_spy(), help="py-spy executable for --profile")
    p.add_argument(
        "--py-spy-args", default="", help="extra py-spy record flags, e.g. '--gil' or '--native'"
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the data dirs and logs")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        type=_setting_arg,
        metavar="NAME=VALUE",
        help="a server setting for the opengroup scenarios, e.g. reads_on_event_loop=false "
        "(repeatable; the run's environment's OPENGROUP_* are not passed on)",
    )
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; pick from {', '.join(SCENARIOS)}")
    args.messages = [int(m) for m in str(args.messages).split(",")]
    if args.no_ceilings:
        args.ceilings = "none"
    if args.open_loop is not None:
        if not 0 < args.open_loop <= 2:
            p.error("--open-loop takes a fraction, e.g. 0.5")
        if args.open_loop_base == "ceiling" and args.ceilings == "none":
            p.error("--open-loop-base ceiling needs the ceilings measured")
        if args.open_loop_base == "scenario" and "e" not in args.scenarios:
            args.scenarios.append("e")  # its maximum sets the rate
    backend = args.backend or ("postgresql" if args.database_url else "sqlite")
    args.backends = ["sqlite", "postgresql"] if backend == "both" else [backend]
    args.database_url = args.database_url or DEFAULT_PG
    if args.concurrency < args.loadgen_processes:
        p.error("--concurrency must be at least --loadgen-processes")
    return args


def default_py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="opengroup-bench-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"# kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with workspace(args.keep_tmp) as tmp:
        cfg = Config(args, tmp)
        if args.json_out:
            cfg.json_out = open(args.json_out, "a")  # noqa: SIM115
        print(
            f"# {platform.node()}: {os.cpu_count()} cpus, Python {platform.python_version()}, "
            f"load average {load_average()}; C={args.concurrency} K={args.users} "
            f"W={args.workers} D={args.duration}s warm-up={args.warmup}s "
            f"generator processes={args.loadgen_processes}",
            flush=True,
        )
        started = time.monotonic()
        users = [User.generate() for _ in range(args.users)]
        cfg.seeds = [os.urandom(32) for _ in range(args.users)]  # the blinded users' keys
        try:
            if args.ceilings == "once":
                measure_ceilings(cfg, users, None)
            for backend in args.backends:
                for messages in args.messages:
                    if args.ceilings == "each":
                        measure_ceilings(cfg, users, (backend, messages))
                    rate = run_server_scenarios(cfg, backend, messages, users)
                    if rate is not None:
                        where = {"backend": backend, "messages": messages}
                        measure_open_loop_ceiling(cfg, rate, where)
        finally:
            if cfg.json_out is not None:
                cfg.json_out.close()
        print()
        print_table(cfg.rows)
        print_targets(cfg.rows, args)
        print(f"# done in {time.monotonic() - started:.0f} s; load average {load_average()}")


if __name__ == "__main__":
    main()
