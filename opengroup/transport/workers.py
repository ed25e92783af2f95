"""Several worker processes behind one port, each accepting on a listening socket of
its own.

uvicorn's own workers all accept from one shared socket: whichever wakes first takes
the next connection. Under load that is the less busy worker, so a burst of new
connections can land mostly on one of them (the benchmark saw 10 and 54 of 64), and
a kept-alive connection stays where it landed: that worker's clients then wait for a
worker doing several times the other's work. Here the supervisor binds one socket
per worker on the same port with ``SO_REUSEPORT``, and Linux hands each new
connection to one of them by a hash of its addresses: every worker gets about its
share of the connections, whatever it is doing when they arrive.

The supervisor holds every socket, listening, for the whole run: the connections
the kernel gives a worker still starting, or one being replaced, wait in its
socket's queue instead of being refused or sent elsewhere. A worker that ends is
replaced on the same socket; but one that exits by itself before it started
serving (a certificate it cannot read, say) would fail the same way again, so the
supervisor then stops the others and exits with uvicorn's code for a failed start.
SIGINT and SIGTERM stop every worker gracefully; SIGHUP replaces them one at a
time.

A worker that stops serving without ending (its event loop stuck in a request, or
deadlocked) would keep its share of the new connections, never answered: its
socket is its own. So each worker's event loop marks the time in memory it shares
with the supervisor at every turn of uvicorn's ticker (ten a second), and a worker
whose mark is older than the timeout is killed and replaced like one that ended
(one still starting, past the timeout and another minute).
One told to stop (SIGTERM, SIGHUP) that has not ended within the timeout is killed
too: stuck, it would never finish what it is answering.

Another process already listening on the port makes the start fail, as with a single
socket: ``SO_REUSEPORT`` only shares the port among sockets that all ask for it, and
the supervisor first binds a socket that does not.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
CHECK_SECONDS = 0.5  # how often the supervisor looks for ended workers and signals
# How much longer than the timeout a worker may take to start serving (its imports, the
# app's start-up) before it is taken for stuck too.
STARTUP_SECONDS = 60
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Linux spreads connections over sockets sharing a port; elsewhere the option exists
# (macOS, the BSDs) but one socket takes them all, so the workers share one socket.
BALANCED_BY_KERNEL = sys.platform.startswith("linux")


class ListenError(Exception):
    """The address cannot be listened on (in use, not ours, not an address here)."""


def listening_sockets(
    host: str, port: int, count: int, *, own_each: bool, backlog: int = 2048
) -> list[socket.socket]:
    """``count`` sockets bound to ``host``:``port``, one per worker: each its own
    (``own_each``, sharing the port through ``SO_REUSEPORT``, and listening) or the
    same one (bound; uvicorn listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # First a socket that shares with no one: it fails if anything listens there,
        # another server with SO_REUSEPORT included. Port 0 picks a free port.
        first = _bound(family, host, port, reuse_port=False)
        if not own_each:
            return [first] * count
        port = first.getsockname()[1]
        first.close()
        sockets = [_bound(family, host, port, reuse_port=True) for _ in range(count)]
        # Listening from the start: the kernel spreads connections only over sockets
        # that listen, and one whose worker is still starting keeps its share queued.
        for sock in sockets:
            sock.listen(backlog)
        return sockets
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _bound(family: int, host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _WorkerServer(uvicorn.Server):
    """uvicorn's server, setting ``started`` for the supervisor once it serves, and
    marking ``alive`` (``time.monotonic()``, the same clock in every process) at each
    tick of its event loop."""

    def __init__(self, config: uvicorn.Config, started: Event, alive: ctypes.c_double) -> None:
        super().__init__(config)
        self.started_event = started
        self.alive = alive

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.alive.value = time.monotonic()
            self.started_event.set()

    async def on_tick(self, counter: int) -> bool:
        self.alive.value = time.monotonic()
        return await super().on_tick(counter)


def _serve_in_worker(
    config: uvicorn.Config, sock: socket.socket, started: Event, alive: ctypes.c_double
) -> None:
    """A worker process's whole life (runs in the spawned child)."""
    config.configure_logging()
    _WorkerServer(config, started, alive).run(sockets=[sock])


@dataclass
class _Worker:
    process: SpawnProcess
    started: Event
    alive: ctypes.c_double  # when its event loop last turned (see _WorkerServer)

    @classmethod
    def start(cls, config: uvicorn.Config, sock: socket.socket) -> _Worker:
        started = SPAWN.Event()
        alive = SPAWN.RawValue(ctypes.c_double, time.monotonic())  # (silent since its spawn)
        process = SPAWN.Process(target=_serve_in_worker, args=(config, sock, started, alive))
        process.start()
        return cls(process, started, alive)

    def stop(self) -> None:
        if self.process.exitcode is None:
            self.process.terminate()  # SIGTERM: uvicorn finishes what it is answering

    def stopped(self) -> bool:
        return not self.process.is_alive()

    def kill(self, why: str) -> None:
        """SIGKILL it and wait for its end, logging ``why``."""
        log.error("worker process %s %s; killing it", self.process.pid, why)
        self.process.kill()
        self.process.join()

    def silent_for(self) -> float:
        """Seconds since its event loop last turned (until it serves: since its spawn)."""
        return time.monotonic() - self.alive.value


@dataclass
class Supervisor:
    """Runs one worker per socket until stopped; see the module's docstring."""

    config: uvicorn.Config
    sockets: list[socket.socket]
    timeout_seconds: float = 0  # a worker silent this long is replaced (0: never)
    startup_seconds: float = STARTUP_SECONDS  # and one still starting, this much longer
    workers: list[_Worker] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    exit_code: int = 0

    def run(self) -> int:
        """Serve until a signal stops it; the process's exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED}
        try:
            self.workers = [_Worker.start(self.config, sock) for sock in self.sockets]
            while not self.stopping.wait(CHECK_SECONDS):
                self._handle_signals()
                self._kill_silent_workers()
                self._replace_ended_workers()
        finally:
            for worker in self.workers:
                worker.stop()
            for worker in self.workers:
                self._wait_for_end(worker)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in set(self.sockets):
                sock.close()
        return self.exit_code

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self.signals.append(sig)
        if sig != signal.SIGHUP:
            self.stopping.set()

    def _handle_signals(self) -> None:
        while self.signals:
            if self.signals.pop(0) == signal.SIGHUP:
                log.info("SIGHUP: replacing the workers one at a time")
                for slot in range(len(self.workers)):
                    if self.stopping.is_set():
                        return
                    self.workers[slot].stop()
                    self._wait_for_end(self.workers[slot])
                    self.workers[slot] = _Worker.start(self.config, self.sockets[slot])

    def _wait_for_end(self, worker: _Worker) -> None:
        """Wait for a worker told to stop; one still running past the timeout (stuck,
        so never finishing what it answers) is killed."""
        worker.process.join(self.timeout_seconds or None)
        if not worker.stopped():
            worker.kill(f"has not stopped within {self.timeout_seconds} s")

    def _kill_silent_workers(self) -> None:
        """SIGKILL each worker silent past the timeout: it is then replaced as ended."""
        if not self.timeout_seconds:
            return
        for worker in self.workers:
            silent = worker.silent_for()
            allowed = self.timeout_seconds + (
                0 if worker.started.is_set() else self.startup_seconds
            )
            if silent > allowed and not worker.stopped():
                worker.kill(f"has not answered for {silent:.0f} s")

    def _replace_ended_workers(self) -> None:
        for slot, worker in enumerate(self.workers):
            if not worker.stopped() or self.stopping.is_set():
                continue
            code = worker.process.exitcode
            if not worker.started.is_set() and code is not None and code >= 0:
                # It gave up by itself before serving: its replacement would too.
                # (One killed by a signal while starting is replaced.)
                log.error(
                    "worker process %s exited (code %s) before it started serving; "
                    "stopping the server",
                    worker.process.pid,
                    code,
                )
                self.exit_code = STARTUP_FAILURE
                self.stopping.set()
                return
            log.warning(
                "worker process %s ended (exit code %s); starting another", worker.process.pid, code
            )
            self.workers[slot] = _Worker.start(self.config, self.sockets[slot])


def serve(config: uvicorn.Config, workers: int, timeout_seconds: float = 0) -> int:
    """Serve ``config`` until stopped: in this process (one worker; uvicorn binds the
    address itself, every address a host name has), or in ``workers`` worker
    processes under a supervisor, which replaces a worker silent for
    ``timeout_seconds`` (0: never). The exit code: 0 when stopped by a signal,
    uvicorn's STARTUP_FAILURE when a worker could not start. Raises ListenError when
    the workers' address cannot be listened on."""
    if workers == 1:
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else STARTUP_FAILURE
    sockets = listening_sockets(
        config.host, config.port, workers, own_each=BALANCED_BY_KERNEL, backlog=config.backlog
    )
    host, port = sockets[0].getsockname()[:2]
    scheme = "https" if config.ssl_certfile else "http"
    log.info("listening on %s://%s:%d with %d worker processes", scheme, host, port, workers)
    return Supervisor(config, sockets, timeout_seconds).run()
