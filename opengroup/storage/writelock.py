"""One writer at a time on an SQLite file, queued by the kernel instead of by polling.

SQLite allows one write transaction at a time. A second ``BEGIN IMMEDIATE``
does not wait in a queue: SQLite's busy handler sleeps and retries, backing
off from 1 ms to 100 ms between attempts, so under load writers sleep while
the lock is free (measurements: bench/RESULTS.md, "Design notes moved from
the code").

So our own write transactions queue on a lock first: a ``threading.Lock``
for the threads of one process, then an exclusive ``flock`` on a file beside
the database for the processes sharing it. A waiter is woken the moment the
holder lets go, and by then SQLite's lock is free too, so ``BEGIN IMMEDIATE``
succeeds at once. ``busy_timeout`` stays as the safety net for writers that
do not take this lock (another program, an older server, the SQLite shell).

The lock file is opened once per process: a descriptor inherited across
``fork`` would share its lock with the parent, which would then exclude
nobody.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriteLock:
    """Held around every write transaction to one SQLite database file."""

    def __init__(self, database_file: str) -> None:
        self.path = database_file + ".write-lock"
        self._threads = threading.Lock()
        self._fd = -1
        self._fd_pid = -1

    def _descriptor(self) -> int:
        """This process's descriptor of the lock file (called with ``_threads`` held)."""
        if self._fd_pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Exclusive use of the database for writing, until the block ends."""
        with self._threads:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def held_at_once(self) -> Iterator[bool]:
        """Exclusive use as :meth:`held`, if it can be had without waiting: yields
        whether it was (if not, the block runs without it and must not write)."""
        if not self._threads.acquire(blocking=False):
            yield False
            return
        try:
            fd = self._descriptor()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd, self._fd_pid = -1, -1
