"""Several worker processes behind one port (`opengroup serve --workers N`).

Each worker accepts on a listening socket of its own, all bound to the server's port
with SO_REUSEPORT, and the kernel spreads new connections over them: a worker busy
when connections arrive still gets its share (with one shared socket, the idle one
took them all, and kept-alive pollers stayed there). The supervisor holds the
sockets: a worker that dies is replaced on its socket, and the connections that
arrive meanwhile are answered by the replacement instead of refused; so is one whose
event loop stops turning, past a timeout; SIGHUP replaces every worker so, one at
a time. Another server on the same port is refused at start, as with a single
socket.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.server import ServerProcess, server_env
from harness.workers import PinnedConnection, connections_to_each_worker, worker_pids

ServerFactory = Callable[..., ServerProcess]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux /proc")

CONNECTIONS = 40
# How long a client waits for an answer where a worker is being replaced: a new
# worker's start, on a machine busy with other tests.
REPLACEMENT_WAIT_SECONDS = 60
# Each connection reaches either of two workers with even odds: fewer than 6 of 40
# on one of them happens about once in a million runs.
FEWEST_EXPECTED = 6


@pytest.fixture
def two_workers(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(extra_args=["--workers", "2"])


def test_a_worker_busy_when_connections_arrive_still_gets_its_share(
    two_workers: ServerProcess,
) -> None:
    """One worker is stopped (SIGSTOP: as busy as a worker can be) while 40 clients
    connect; once it runs again, it answers about half of them itself."""
    busy, idle = worker_pids(two_workers, 2)
    os.kill(busy, signal.SIGSTOP)
    try:
        connections = [PinnedConnection(two_workers) for _ in range(CONNECTIONS)]
    finally:
        os.kill(busy, signal.SIGCONT)
    answered_by: dict[int, int] = {busy: 0, idle: 0}
    for conn in connections:
        assert conn.get("/rooms")[0] == 200
        answered_by[conn.worker_pid()] += 1
        conn.close()
    assert min(answered_by.values()) >= FEWEST_EXPECTED, answered_by


def test_a_worker_that_dies_is_replaced_and_the_clients_meanwhile_are_answered(
    two_workers: ServerProcess,
) -> None:
    """A worker killed outright: the clients that connect right after are all answered
    (those the kernel gave to its socket, by its replacement), and two workers serve
    again, the replacement among them."""
    dead, survivor = worker_pids(two_workers, 2)
    os.kill(dead, signal.SIGKILL)
    connections = [
        PinnedConnection(two_workers, REPLACEMENT_WAIT_SECONDS) for _ in range(CONNECTIONS)
    ]
    answered_by: set[int] = set()
    for conn in connections:
        assert conn.get("/rooms")[0] == 200
        answered_by.add(conn.worker_pid())
        conn.close()
    workers = worker_pids(two_workers, 2)
    assert len(workers) == 2 and survivor in workers and dead not in workers
    assert answered_by == set(workers)  # the replacement answered its socket's share
    assert "ended (exit code -9); starting another" in two_workers.output()


def test_a_worker_whose_event_loop_stops_turning_is_replaced_past_the_timeout(
    server_factory: ServerFactory,
) -> None:
    """A worker that neither serves nor ends (SIGSTOP: as stuck as a worker can be)
    would keep its socket's share of the connections unanswered. Past
    worker_timeout_seconds the supervisor kills it and starts another on its socket:
    every client is answered, those queued on the stuck one's socket too."""
    server = server_factory(
        extra_args=["--workers", "2"], env={"OPENGROUP_WORKER_TIMEOUT_SECONDS": "2"}
    )
    for conn in connections_to_each_worker(server, 2).values():
        conn.close()  # (both serve: one still starting has longer to start)
    stuck, survivor = worker_pids(server, 2)
    os.kill(stuck, signal.SIGSTOP)
    try:
        connections = [
            PinnedConnection(server, REPLACEMENT_WAIT_SECONDS) for _ in range(CONNECTIONS)
        ]
        for conn in connections:  # (each waits for the replacement if on its socket)
            assert conn.get("/rooms")[0] == 200
            conn.close()
        workers = worker_pids(server, 2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (killed, unless the test failed)
            os.kill(stuck, signal.SIGCONT)
    assert len(workers) == 2 and survivor in workers and stuck not in workers
    assert f"worker process {stuck} has not answered for" in server.output()


def status_of_a_new_connection(server: ServerProcess) -> int:
    """GET /rooms on a new connection, opened once more if the server closed it unanswered:
    a worker told to stop closes the connections that have not sent a request yet, and
    an HTTP client opens another (its request was never read)."""
    for attempt in range(2):
        conn = PinnedConnection(server, REPLACEMENT_WAIT_SECONDS)
        try:
            return conn.get("/rooms")[0]
        except http.client.RemoteDisconnected:
            if attempt:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def test_sighup_replaces_every_worker_and_the_clients_meanwhile_are_answered(
    two_workers: ServerProcess,
) -> None:
    before = set(worker_pids(two_workers, 2))
    assert two_workers.pid is not None
    os.kill(two_workers.pid, signal.SIGHUP)
    for _ in range(CONNECTIONS // 2):
        assert status_of_a_new_connection(two_workers) == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(worker_pids(two_workers, 2)) & before:
        time.sleep(0.1)
    after = worker_pids(two_workers, 2)
    assert len(after) == 2 and not set(after) & before
    assert two_workers.running


@pytest.mark.parametrize(("first", "second"), [(2, 2), (2, 1), (1, 2)])
def test_a_second_server_on_the_same_port_is_refused(
    server_factory: ServerFactory, first: int, second: int
) -> None:
    """Whatever the number of workers of each: SO_REUSEPORT shares the port only among
    sockets that all ask for it, and the supervisor first binds one that does not."""
    running = server_factory(extra_args=["--workers", str(first)])
    other = server_factory(port=running.port, extra_args=["--workers", str(second)], start=False)
    other.data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        other.command(), env=server_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "address already in use" in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr
    for _ in range(CONNECTIONS // 4):  # and every new connection still reaches the first
        conn = PinnedConnection(running)
        assert conn.get("/rooms")[0] == 200
        conn.close()
