"""Threads that run blocking work (database transactions) for the event loop.

Every request hands its work to a thread and back, some twice (the signer's
admission, then the handler), so the hand-off is on the hot path. A plain
executor's hand-off costs the event loop about a third of anyio's
``to_thread.run_sync`` under load (bench/RESULTS.md, 2026-12-04 night), and a
fixed number of threads keeps them from taking turns at the interpreter lock
more often than the work needs (the setting ``request_threads``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Threads:
    """A fixed set of threads that run blocking calls the event loop awaits."""

    def __init__(self, count: int, name: str) -> None:
        """``count`` threads at most, started when first needed, named ``name``."""
        self._executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on one of the threads, its result (or its exception)."""
        loop = self._loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def wait_for(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """From one of the threads: run ``coroutine`` on the event loop that handed the
        thread its work, and wait for its result."""
        if self._loop is None or _on_an_event_loop():
            coroutine.close()  # (on the loop itself, it would wait for ever)
            raise RuntimeError("wait_for is for the threads that run() started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Wait for the calls under way, then end the threads."""
        self._executor.shutdown(wait=True)


def _on_an_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
