"""The request threads (opengroup/threads.py): calls run on the threads and their
results (or exceptions) reach the awaiting coroutine; a call may wait for a
coroutine on the event loop (a post waiting for the group-commit writer)."""

from __future__ import annotations

import asyncio
import threading

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


def test_a_call_may_wait_for_the_event_loop() -> None:
    """What a community API post in a batch does: it waits in the batch's thread for
    the post writer, which runs on the event loop."""
    threads = Threads(1, "test")

    async def main() -> str:
        async def on_the_loop() -> str:
            await asyncio.sleep(0)
            return "written"

        return await threads.run(lambda: threads.wait_for(on_the_loop()))

    assert asyncio.run(main()) == "written"
    threads.close()


def test_wait_for_outside_the_threads_is_refused() -> None:
    threads = Threads(1, "test")

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError):
        threads.wait_for(nothing())
    threads.close()


def test_wait_for_on_the_event_loop_is_refused_not_a_hang() -> None:
    threads = Threads(1, "test")

    async def nothing() -> None:
        return None

    async def main() -> None:
        await threads.run(lambda: None)  # (the threads know the loop now)
        with pytest.raises(RuntimeError):
            threads.wait_for(nothing())

    asyncio.run(main())
    threads.close()
