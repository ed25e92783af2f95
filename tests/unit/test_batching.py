"""opengroup.storage.batching.Batcher: the one "gather waiting requests into one batch"
scheduler (the poll reader's round trips, the post writer's group commit).

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
"""

from __future__ import annotations

import asyncio

import pytest

from opengroup.storage.batching import Batcher


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
