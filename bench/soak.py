"""Soak test: a bounded run of mixed load, watching errors and the server's memory.

Starts the real server on loopback (127.0.0.1 only) with a fresh data dir
(SQLite by default, or ``--database-url``), gives it a handful of users, and
drives it for ``--duration`` seconds (default 600) or ``--max-requests``
requests, whichever comes first, then stops it. Every request goes through
onion requests, as Session clients send them: per request, a post (with
probability ``--post-fraction``, default 5 %; every ``--upload-every``-th
write an upload of 10-100 kB instead) or else a ``compact_poll`` of the
room with the cursors a client keeps.

Every ``--report-every`` seconds (default 30) and at the end it prints the
requests so far, the rate, errors by status (and transport errors by kind),
and the server's resident memory: the sum of VmRSS over the server process
and all its descendants, read from /proc. The verdict compares the largest
RSS of the last third of the run with that of the middle third: growth above
``--rss-slack`` (default 5 % or 16 MiB, whichever is larger) says the memory
grew without bound. Exit status 0 if there were no errors and no growth.

    .venv/bin/python bench/soak.py                       # 10 minutes, SQLite
    .venv/bin/python bench/soak.py --database-url postgresql://postgres@127.0.0.1:5432/soak

Posting and upload rate limits are off (every write would otherwise be a
429 within seconds); any other limit stays at its default. Not run in CI.
The client is the test suite's own (tests/harness/v2client.py).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from harness.v2client import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    Client,
    Identity,
    load_server_public_key,
)

HOST = "127.0.0.1"
ROOM = "main"
MIB = 1024 * 1024


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    """A port the kernel just considered free on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, database_url: str | None, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    """`python -m opengroup serve` on loopback, in its own process group; waits until ready."""
    cmd = [sys.executable, "-m", "opengroup", "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--workers", str(workers)]
    if database_url:
        cmd += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENGROUP_")}
    env.update(
        OPENGROUP_LOG_LEVEL="warning",
        OPENGROUP_POST_RATE_LIMIT_SECONDS="0",
        OPENGROUP_UPLOAD_RATE_LIMIT_SECONDS="0",
        PYTHONPATH=str(REPO),
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
            try:
                if http.get("/rooms").status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"the server did not come up in 30 s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftover workers, if any
    proc.wait()


def process_tree(root: int) -> list[int]:
    """The pid and every descendant of it, from /proc/*/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += children
        frontier = children
    return tree


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over the server's processes."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------- the load


@dataclass
class Tally:
    """Counts shared by the user threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)

    def count(self, kind: str, status: str) -> int:
        """Record one answer; returns the total so far."""
        with self.lock:
            self.requests += 1
            self.by_status[status] += 1
            self.by_kind[kind] += 1
            return self.requests

    def errors(self) -> dict[str, int]:
        """Every outcome that is not a 200."""
        with self.lock:
            return {k: v for k, v in sorted(self.by_status.items()) if k != "200"}


def user_loop(
    base_url: str,
    server_key: bytes,
    args: argparse.Namespace,
    seed: int,
    tally: Tally,
    stop: threading.Event,
) -> None:
    """One user: authenticate, then poll or write until told to stop."""
    rng = random.Random(seed)
    identity = Identity.generate()
    with Client(base_url, server_key, transport="onion", timeout=30) as client:
        token = client.authenticate(identity, ROOM)
        after_message: int | None = None
        after_deletion: int | None = None
        writes = 0
        while not stop.is_set():
            kind = "post" if rng.random() < args.post_fraction else "poll"
            if kind == "post":
                writes += 1
                if args.upload_every and writes % args.upload_every == 0:
                    kind = "upload"
            try:
                if kind == "poll":
                    entry: dict[str, object] = {"room_id": ROOM, "auth_token": token}
                    if after_message is not None:
                        entry["from_message_server_id"] = after_message
                    if after_deletion is not None:
                        entry["from_deletion_server_id"] = after_deletion
                    answer = client.compact_poll([entry])
                    if answer["status_code"] == 200:
                        result = answer["results"][0]
                        status = result["status_code"]
                        if result["messages"]:
                            after_message = max(m["server_id"] for m in result["messages"])
                        if result["deletions"]:
                            last = result["deletions"][-1]
                            after_deletion = last["id"] if isinstance(last, dict) else last
                    else:
                        status = answer["status_code"]
                elif kind == "post":
                    status = client.post_message(identity, token, ROOM)["status_code"]
                else:
                    data = rng.randbytes(rng.randint(10_000, 100_000))
                    status = client.request(
                        "POST",
                        "files",
                        body={"file": base64.b64encode(data).decode()},
                        room=ROOM,
                        token=token,
                    )["status_code"]
                outcome = str(status)
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            except (AssertionError, ValueError) as exc:  # a malformed answer
                outcome = f"bad answer ({type(exc).__name__})"
            if tally.count(kind, outcome) >= args.max_requests:
                stop.set()


# --------------------------------------------------------------------------- reporting


def verdict(samples: list[tuple[float, int]], slack_fraction: float, slack_bytes: int) -> str:
    """Compare the largest RSS of the last third of the run with the middle third's."""
    if len(samples) < 6:
        return "too short to judge (fewer than 6 RSS samples)"
    start, end = samples[0][0], samples[-1][0]
    third = (end - start) / 3
    middle = [rss for t, rss in samples if start + third <= t < start + 2 * third]
    last = [rss for t, rss in samples if t >= start + 2 * third]
    if not middle or not last:
        return "too short to judge"
    grew = max(last) - max(middle)
    allowed = max(max(middle) * slack_fraction, slack_bytes)
    word = "GREW WITHOUT BOUND" if grew > allowed else "bounded"
    return (
        f"RSS {word}: max of the middle third {max(middle) / MIB:.1f} MiB, of the last third "
        f"{max(last) / MIB:.1f} MiB (change {grew / MIB:+.1f} MiB, allowed {allowed / MIB:.1f})"
    )


def report(tally: Tally, started: float, rss: int, label: str) -> None:
    """One line of progress."""
    elapsed = time.monotonic() - started
    with tally.lock:
        requests = tally.requests
        kinds = dict(tally.by_kind)
    errors = tally.errors()
    print(
        f"[{label} {elapsed:6.0f}s] requests {requests} ({requests / max(elapsed, 1e-9):.0f}/s) "
        f"{kinds} errors {errors or 'none'} server RSS {rss / MIB:.1f} MiB",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--max-requests", type=int, default=5_000_000, help="stop after these")
    parser.add_argument("--users", type=int, default=6, help="concurrent users (default 6)")
    parser.add_argument("--post-fraction", type=float, default=0.05)
    parser.add_argument("--upload-every", type=int, default=10, help="every Nth write uploads")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report-every", type=float, default=30)
    parser.add_argument("--sample-every", type=float, default=5, help="RSS sampling, seconds")
    parser.add_argument("--rss-slack", type=float, default=0.05, help="fraction (default 0.05)")
    parser.add_argument("--rss-slack-mib", type=float, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the data dir and log")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="opengroup-soak-"))
    data_dir, log = work / "data", work / "server.log"
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    print(f"soak: server on {base_url}, data in {data_dir}, log {log}", flush=True)
    proc = start_server(data_dir, port, args.database_url, args.workers, log)
    server_key = load_server_public_key(data_dir)
    tally, stop = Tally(), threading.Event()
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=user_loop, args=(base_url, server_key, args, i, tally, stop), daemon=True
        )
        for i in range(args.users)
    ]
    for t in threads:
        t.start()
    next_report = started + args.report_every
    try:
        while not stop.is_set() and time.monotonic() - started < args.duration:
            if proc.poll() is not None:
                print(f"the server died ({proc.returncode}); see {log}", flush=True)
                break
            samples.append((time.monotonic(), rss_bytes(proc.pid)))
            if time.monotonic() >= next_report:
                report(tally, started, samples[-1][1], "soak")
                next_report += args.report_every
            stop.wait(args.sample_every)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        final_rss = rss_bytes(proc.pid) if proc.poll() is None else 0
        alive = proc.poll() is None
        stop_server(proc)
    report(tally, started, final_rss, "end ")
    judged = verdict(samples, args.rss_slack, int(args.rss_slack_mib * MIB))
    print(f"verdict: {judged}", flush=True)
    tracebacks = log.read_text(errors="replace").count("Traceback") if log.exists() else 0
    print(f"server log: {tracebacks} tracebacks", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    failed = bool(tally.errors()) or "WITHOUT BOUND" in judged or tracebacks or not alive
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
