"""The supervisor of several workers (opengroup/transport/workers.py): one listening
socket per worker on one port, the port refused when anything else listens on it,
a worker that cannot start stopping the whole server instead of being started
again and again, and a worker whose event loop is stuck killed (and replaced,
unless stopping). Real sockets and real spawned processes; the whole server with
two workers is exercised by tests/test_workers.py.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from uvicorn.config import STARTUP_FAILURE

from opengroup.transport.workers import ListenError, Supervisor, listening_sockets


async def fails_to_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app whose start-up fails, as one with an unreadable certificate would."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "on purpose"})


async def stalls_on_request(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers with its process id, except that ``/stall`` blocks its
    event loop (as a request stuck in a loop, or deadlocked, would)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/stall":
        time.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


async def never_starts(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app whose start-up blocks its event loop (stuck before serving)."""
    assert scope["type"] == "lifespan"
    await receive()
    time.sleep(60)


def answering_pid(port: int) -> int | None:
    """The process id the app answers with; None if nothing answers within a second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/")
        return int(conn.getresponse().read())
    except OSError:
        return None
    finally:
        conn.close()


def close_all(sockets: list[socket.socket]) -> None:
    for sock in set(sockets):
        sock.close()


def test_each_worker_gets_its_own_socket_on_one_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3, own_each=True)
    try:
        assert len(set(sockets)) == 3
        assert len({sock.getsockname() for sock in sockets}) == 1  # port 0: one port for all
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert sock.get_inheritable()
    finally:
        close_all(sockets)


def test_where_the_kernel_does_not_spread_connections_the_workers_share_one_socket() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3, own_each=False)
    try:
        assert len(set(sockets)) == 1 and len(sockets) == 3
        assert sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    finally:
        close_all(sockets)


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain-listener", "sharing-listener"])
def test_a_port_something_listens_on_is_refused(reuse_port: bool) -> None:
    taken = socket.socket()
    if reuse_port:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        for own_each in (True, False):
            with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
                listening_sockets("127.0.0.1", port, 2, own_each=own_each)
    finally:
        taken.close()


def test_a_worker_that_cannot_start_stops_the_supervisor() -> None:
    """Not started again and again: the supervisor stops the other worker and returns
    uvicorn's exit code for a failed start."""
    sockets = listening_sockets("127.0.0.1", 0, 2, own_each=True)
    config = uvicorn.Config(f"{__name__}:fails_to_start", lifespan="on", log_level="critical")
    supervisor = Supervisor(config, sockets)
    # Were it to start workers again and again, a SIGTERM stops it (exit code 0).
    give_up = threading.Timer(60, os.kill, (os.getpid(), signal.SIGTERM))
    give_up.start()
    try:
        assert supervisor.run() == STARTUP_FAILURE
    finally:
        give_up.cancel()
    assert len(supervisor.workers) == 2
    for worker in supervisor.workers:
        assert worker.process.exitcode is not None  # none is left running
    for sock in sockets:
        assert sock.fileno() == -1  # the supervisor closed its sockets


def run_beside(supervisor: Supervisor, client: Callable[[], None]) -> float:
    """Run the supervisor here (it handles signals: the main thread) while ``client``
    runs in a thread, then stop it with SIGTERM; the seconds it ran."""

    def then_stop() -> None:
        try:
            client()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=then_stop)
    thread.start()
    began = time.monotonic()
    try:
        assert supervisor.run() == 0
    finally:
        thread.join()
    return time.monotonic() - began


def first_answer(port: int) -> int | None:
    """The process id of the first answer, waiting up to 30 s for a worker to serve."""
    deadline = time.monotonic() + 30
    while (pid := answering_pid(port)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid


def stall(port: int) -> socket.socket:
    """A request that blocks the event loop of the worker it reaches."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
    return conn


def test_a_worker_whose_event_loop_is_stuck_is_killed_and_replaced() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 1, own_each=True)
    port = sockets[0].getsockname()[1]
    config = uvicorn.Config(f"{__name__}:stalls_on_request", lifespan="off", log_level="critical")
    supervisor = Supervisor(config, sockets, timeout_seconds=1)
    seen: list[int | None] = []

    def client() -> None:
        seen.append(first_answer(port))
        with stall(port):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pid = answering_pid(port)
                if pid is not None and pid != seen[0]:
                    seen.append(pid)
                    break

    run_beside(supervisor, client)
    assert len(seen) == 2 and None not in seen, seen  # answered again, by another process
    assert supervisor.workers[0].process.pid == seen[1]


def test_a_stuck_worker_told_to_stop_is_killed_past_the_timeout() -> None:
    """It would never finish what it is answering: the supervisor ends anyway."""
    sockets = listening_sockets("127.0.0.1", 0, 1, own_each=True)
    port = sockets[0].getsockname()[1]
    config = uvicorn.Config(f"{__name__}:stalls_on_request", lifespan="off", log_level="critical")
    supervisor = Supervisor(config, sockets, timeout_seconds=2)

    def client() -> None:
        first_answer(port)
        with stall(port):
            time.sleep(0.5)

    assert run_beside(supervisor, client) < 30  # (the stall lasts 60 s)
    assert supervisor.workers[0].process.exitcode == -signal.SIGKILL


def test_a_worker_stuck_while_starting_is_killed_past_the_timeout_and_the_start_allowance() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 1, own_each=True)
    config = uvicorn.Config(f"{__name__}:never_starts", lifespan="on", log_level="critical")
    supervisor = Supervisor(config, sockets, timeout_seconds=1, startup_seconds=1)
    first: list[Any] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not supervisor.workers and time.monotonic() < deadline:
            time.sleep(0.05)
        first.extend(supervisor.workers)
        while supervisor.workers == first and time.monotonic() < deadline:
            time.sleep(0.1)

    run_beside(supervisor, watch)
    assert first and first[0].process.exitcode == -signal.SIGKILL  # killed, not left
    assert supervisor.workers[0] is not first[0]  # and another started in its place
