"""The request threads (opengroup/threads.py): calls run on the threads, at most
``at_once`` of them at a time; a call waiting for the event loop gives up its turn,
so that calls waiting for the post writer never keep the others from running."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opengroup.threads import Threads


def test_calls_run_on_the_threads_and_return_their_results() -> None:
    threads = Threads(2, "test")

    async def main() -> tuple[str, int]:
        name = await threads.run(lambda: threading.current_thread().name)
        return name, await threads.run(pow, 2, 10)

    name, result = asyncio.run(main())
    threads.close()
    assert name.startswith("test") and result == 1024


def test_a_call_raises_into_its_awaiter() -> None:
    threads = Threads(1, "test")

    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        asyncio.run(threads.run(fail))
    threads.close()


def test_no_more_than_at_once_calls_run_together() -> None:
    threads = Threads(6, "test", at_once=2)
    running, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(threads.run(work) for _ in range(6)))

    started = time.monotonic()
    asyncio.run(main())
    threads.close()
    assert most == 2
    assert time.monotonic() - started >= 0.15  # three rounds of two


def test_a_call_waiting_for_the_event_loop_gives_up_its_turn() -> None:
    """One turn: the first call waits (in wait_for) for what only the second call can
    do; were the turn kept, the second could never run."""
    threads = Threads(2, "test", at_once=1)

    async def main() -> list[str]:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def until_done() -> str:
            await done.wait()
            return "waited"

        def waits() -> str:
            return threads.wait_for(until_done())

        def frees() -> str:
            loop.call_soon_threadsafe(done.set)
            return "freed"

        first = asyncio.ensure_future(threads.run(waits))
        await asyncio.sleep(0.05)  # the first holds, then gives up, the only turn
        second = threads.run(frees)
        return list(await asyncio.wait_for(asyncio.gather(first, second), timeout=5))

    assert asyncio.run(main()) == ["waited", "freed"]
    threads.close()


def test_wait_for_outside_the_threads_is_refused() -> None:
    threads = Threads(1, "test")

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError):
        threads.wait_for(nothing())
    threads.close()
