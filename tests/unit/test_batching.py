"""opengroup.storage.batching: gathering waiting requests into one batch, by a task on
the event loop (Batcher: the poll reader's round trips, PostgreSQL's admissions) or
by a thread of its own (BatchThread: the post writer's group commit).

Rules pinned here:

* A request submitted while no batch is being handled starts one at once, alone.
* Requests submitted while ``concurrency`` batches are being handled wait, and the
  next batch holds all of them, in the order they came.
* Each request gets its own result; one handed back as an exception fails that
  request alone; a handler that raises fails every request of its batch (and the
  next batch is handled as usual).
* The batcher holds the tasks handling batches until they end, and none is left
  once everything is answered.
* A request given up on (cancelled) while its batch is handled does not disturb the
  others; ``close`` cancels the batches in flight and the requests waiting on them.

BatchThread, the same rules of results, and: the thread takes what is queued when
its batch ends as the next batch without a turn of the event loop, and answers
requests from several loops; ``close`` handles what is queued, then ends the thread.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opengroup.storage.batching import Batcher, BatchThread


class Recorder:
    """A handler that records its batches and holds each until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def handle(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(list(batch))
        self.started.set()
        await self.release.wait()
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_requests_waiting_for_a_batch_go_together_into_the_next() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(recorder.handle, 1)
        first = asyncio.create_task(batcher.submit(0))
        await recorder.started.wait()
        later = [asyncio.create_task(batcher.submit(n)) for n in (2, 4, 6)]
        await settle()
        assert recorder.batches == [[0]]  # the others wait for the batch in progress
        recorder.release.set()
        assert await first == 0
        assert await asyncio.gather(*later) == [20, 40, 60]
        assert recorder.batches == [[0], [2, 4, 6]]
        await settle()
        assert not batcher._tasks

    asyncio.run(scenario())


def test_at_most_concurrency_batches_are_handled_at_once() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(recorder.handle, 2)
        tasks = [asyncio.create_task(batcher.submit(n)) for n in (0, 2)]
        await settle()
        assert recorder.batches == [[0, 2]]  # queued before the first task ran
        tasks.append(asyncio.create_task(batcher.submit(4)))
        await settle()
        assert recorder.batches == [[0, 2], [4]]  # a second batch at once
        assert len(batcher._tasks) == 2  # both held until they end
        tasks += [asyncio.create_task(batcher.submit(n)) for n in (6, 8)]
        await settle()
        assert recorder.batches == [[0, 2], [4]]  # a third must wait
        recorder.release.set()
        assert await asyncio.gather(*tasks) == [0, 20, 40, 60, 80]
        assert [6, 8] in recorder.batches
        await settle()
        assert not batcher._tasks

    asyncio.run(scenario())


def test_an_exception_as_a_result_fails_its_request_alone() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        recorder.release.set()
        batcher: Batcher[int, int] = Batcher(recorder.handle, 1)
        results = await asyncio.gather(
            *(batcher.submit(n) for n in (2, 3, 4)), return_exceptions=True
        )
        assert results[0] == 20 and results[2] == 40
        assert isinstance(results[1], ValueError) and str(results[1]) == "odd 3"

    asyncio.run(scenario())


def test_a_handler_that_raises_fails_its_whole_batch_and_the_next_runs() -> None:
    async def scenario() -> None:
        calls: list[list[str]] = []
        gate = asyncio.Event()

        async def handle(batch: list[str]) -> list[str | Exception]:
            calls.append(batch)
            await gate.wait()
            if "boom" in batch:
                raise RuntimeError("the transaction failed")
            return [s.upper() for s in batch]

        batcher: Batcher[str, str] = Batcher(handle, 1)
        doomed = [asyncio.create_task(batcher.submit(s)) for s in ("a", "boom")]
        await settle()
        fine = asyncio.create_task(batcher.submit("c"))
        await settle()
        gate.set()
        for task in doomed:
            with pytest.raises(RuntimeError, match="the transaction failed"):
                await task
        assert await fine == "C"
        assert calls == [["a", "boom"], ["c"]]

    asyncio.run(scenario())


def test_a_request_given_up_on_leaves_the_others_answered() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(recorder.handle, 1)
        impatient = asyncio.create_task(batcher.submit(2))
        patient = asyncio.create_task(batcher.submit(4))
        await recorder.started.wait()
        impatient.cancel()
        recorder.release.set()
        assert await patient == 40
        with pytest.raises(asyncio.CancelledError):
            await impatient

    asyncio.run(scenario())


def test_close_cancels_the_batches_in_flight_and_their_requests() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(recorder.handle, 1)
        in_flight = asyncio.create_task(batcher.submit(2))
        await recorder.started.wait()
        queued = asyncio.create_task(batcher.submit(4))
        await settle()
        await batcher.close()
        for task in (in_flight, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not batcher._tasks

    asyncio.run(scenario())


class ThreadRecorder:
    """A blocking handler that records its batches; the first waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    def handle(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(list(batch))
        if len(self.batches) == 1:
            self.release.wait(10)
        if -1 in batch:
            raise RuntimeError("the whole batch fails")
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def first_batch_under_way(
    recorder: ThreadRecorder, batcher: BatchThread[int, int]
) -> asyncio.Task[int]:
    """Submit 0, and wait until the thread handles it (held until released)."""
    task = asyncio.create_task(batcher.submit(0))
    while not recorder.batches:
        await asyncio.sleep(0.01)
    return task


def test_a_batch_thread_takes_the_queued_requests_as_its_next_batch_without_the_loop() -> None:
    recorder = ThreadRecorder()
    batcher: BatchThread[int, int] = BatchThread(recorder.handle, "test-batches")

    async def scenario() -> list[object]:
        tasks = [await first_batch_under_way(recorder, batcher)]
        tasks += [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
        await settle()  # each queued behind the first batch
        recorder.release.set()
        deadline = time.monotonic() + 10
        while len(recorder.batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop takes no turn meanwhile
        assert recorder.batches == [[0], [2, 3, 4]]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[:2] == [0, 20] and results[3] == 40
    assert isinstance(results[2], ValueError)  # its own result fails it alone
    asyncio.run(batcher.close())


def test_a_batch_thread_whose_handler_raises_fails_that_batch_and_goes_on() -> None:
    recorder = ThreadRecorder()
    recorder.release.set()
    batcher: BatchThread[int, int] = BatchThread(recorder.handle, "test-batches")

    async def scenario() -> tuple[BaseException | int, int]:
        [failed] = await asyncio.gather(batcher.submit(-1), return_exceptions=True)
        return failed, await batcher.submit(6)

    failed, later = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and later == 60
    asyncio.run(batcher.close())


def test_a_batch_thread_answers_each_request_on_its_own_loop() -> None:
    """Requests from two event loops (two threads) in one batch: each is answered."""
    recorder = ThreadRecorder()
    batcher: BatchThread[int, int] = BatchThread(recorder.handle, "test-batches")
    results: dict[int, int] = {}

    def from_another_loop(n: int) -> None:
        results[n] = asyncio.run(batcher.submit(n))

    first = threading.Thread(target=from_another_loop, args=(0,))
    first.start()
    while not recorder.batches:
        time.sleep(0.01)
    others = [threading.Thread(target=from_another_loop, args=(n,)) for n in (2, 4)]
    for thread in others:
        thread.start()
    while batcher._queue.qsize() < 2:
        time.sleep(0.01)
    recorder.release.set()
    for thread in (first, *others):
        thread.join(10)
    assert results == {0: 0, 2: 20, 4: 40}
    assert recorder.batches == [[0], [2, 4]]
    asyncio.run(batcher.close())


def test_closing_a_batch_thread_handles_what_is_queued_then_refuses_more() -> None:
    recorder = ThreadRecorder()
    batcher: BatchThread[int, int] = BatchThread(recorder.handle, "test-batches")

    async def scenario() -> list[int]:
        tasks = [await first_batch_under_way(recorder, batcher)]
        tasks.append(asyncio.create_task(batcher.submit(2)))
        await settle()
        closing = asyncio.create_task(batcher.close())
        await settle()
        recorder.release.set()
        await closing
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(4)
        return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == [0, 20]
    assert recorder.batches == [[0], [2]]
    assert batcher._thread is not None and not batcher._thread.is_alive()
