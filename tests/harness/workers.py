"""The worker processes of a server run with ``--workers N``: which one holds a
connection, and connections pinned to each (Linux /proc)."""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path

from harness.server import ServerProcess


def worker_pids(server: ServerProcess, count: int, timeout: float = 30) -> list[int]:
    """The pids of the server's worker processes (spawned children of its supervisor),
    once there are ``count`` of them: a replaced worker takes a moment to appear."""
    assert server.pid is not None
    deadline = time.monotonic() + timeout
    while True:
        pids = sorted(
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_of(stat) == server.pid and b"multiprocessing.spawn" in _cmdline(stat.parent)
        )
        if len(pids) == count or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def _parent_of(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


class PinnedConnection:
    """One keep-alive HTTP/1.1 connection: every request on it reaches the same worker."""

    def __init__(self, server: ServerProcess, timeout: float = 10) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        self.conn.connect()
        self.server_port = server.port

    def get(self, path: str) -> tuple[int, bytes]:
        """One GET on this connection: (status, body)."""
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def worker_pid(self) -> int:
        """The pid of the process holding the server side of this connection (after a request)."""
        client_port = self.conn.sock.getsockname()[1]
        inode = None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if local_port == self.server_port and remote_port == client_port:
                    inode = fields[9]
        assert inode and inode != "0", "the server side of the connection is not accepted"
        target = f"socket:[{inode}]"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
            except OSError:  # a process that ended, or one we may not look into
                continue
        raise AssertionError(f"no process holds {target}")

    def close(self) -> None:
        self.conn.close()


def connections_to_each_worker(server: ServerProcess, workers: int) -> dict[int, PinnedConnection]:
    """Open keep-alive connections until one reaches each worker (for at most 30 s: a
    worker still starting accepts none, and the kernel hands them all to the other)."""
    pinned: dict[int, PinnedConnection] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn = PinnedConnection(server)
        status, _ = conn.get("/rooms")
        assert status == 200
        pid = conn.worker_pid()
        if pid in pinned:
            conn.close()
            time.sleep(0.05)
        else:
            pinned[pid] = conn
        if len(pinned) == workers:
            return pinned
    for conn in pinned.values():
        conn.close()
    raise AssertionError(f"in 30 s, connections reached only workers {sorted(pinned)}")
