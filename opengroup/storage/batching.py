"""Gathering the requests that wait at the same moment into one batch.

Where a round trip or a transaction costs more than the work of one request in
it, the requests that arrive while a batch is being handled wait and go
together into the next. Two schedulers do so: :class:`Batcher` for batches
handled by a task on the event loop (the poll reader batches polls and
posting's token checks into round trips, :mod:`opengroup.storage.pollreader`;
PostgreSQL's admissions of signed requests are one statement each batch,
:mod:`opengroup.domain.users`), and :class:`BatchThread` for batches handled
by a blocking function in a thread of their own (the post writer's groups,
:mod:`opengroup.storage.postwriter`). The second answers sooner but gathers
less: a batch that waits for a turn of the loop gathers what arrived during
that turn. For SQLite's admissions (one per signed request) that mattered
more: in a thread of their own, (e) lost a fifth of its rate
(bench/RESULTS.md, 2026-12-07, eleventh session).

- :meth:`Batcher.submit` queues a request and waits for its result. If fewer
  than ``concurrency`` batches are being handled, a new one starts at once with
  what is queued; otherwise the request waits for a running one to finish its
  batch and take the queue as its next.
- The handler gets a batch (in the order it was queued) and returns one result
  per request, in that order; a result that is an ``Exception`` fails its request
  alone. If the handler raises, every request of the batch fails with that.
- The tasks handling batches are held until they end (the event loop holds tasks
  weakly). :meth:`Batcher.close` cancels them; a request whose batch was cancelled
  is cancelled with it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class Batcher(Generic[Request, Result]):
    def __init__(
        self,
        handle: Callable[[list[Request]], Awaitable[Sequence[Result | Exception]]],
        concurrency: int,
    ) -> None:
        self._handle = handle
        self._concurrency = concurrency
        self._queue: list[tuple[Request, asyncio.Future[Result]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a batch is being handled (the next request waits for it, if
        ``concurrency`` is 1)."""
        return self._running > 0

    async def submit(self, request: Request) -> Result:
        """The request's result, once a batch holding it has been handled."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((request, answer))
        if self._running < self._concurrency:
            self._running += 1
            task = asyncio.create_task(self._handle_batches())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await answer

    async def _handle_batches(self) -> None:
        """Handle batches until nothing is queued."""
        batch: list[tuple[Request, asyncio.Future[Result]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._handle([request for request, _ in batch])
                except Exception as exc:  # every request of the batch fails with it
                    for _, answer in batch:
                        _settle(answer, exc)
                else:
                    for (_, answer), result in zip(batch, results, strict=True):
                        _settle(answer, result)
                batch = []
        finally:
            self._running -= 1
            for _, answer in batch:  # left unanswered only if cancelled (closing)
                answer.cancel()
            if self._running == 0:  # no batch will take the queue now
                for _, answer in self._queue:
                    answer.cancel()
                self._queue = []

    async def close(self) -> None:
        """Cancel the batches being handled, and wait until they have stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _settle(answer: asyncio.Future[Result], result: Result | Exception) -> None:
    if answer.done():  # the request was given up on (cancelled) while it was handled
        return
    if isinstance(result, Exception):
        answer.set_exception(result)
    else:
        answer.set_result(result)


# A request's future, and its result.
_Settled = tuple[asyncio.Future[Result], Result | Exception]


class BatchThread(Generic[Request, Result]):
    """Batches handled one at a time by a blocking ``handle`` in a thread of their own,
    for code on event loops: :meth:`submit` queues a request and waits for its result,
    and the thread takes every request queued when its batch ends as the next batch.

    The thread, not a task on the loop, starts each batch and hands each result to
    its request's loop (one call per loop and batch): under load a turn of a loop
    takes tens of milliseconds, and a batch started and ended by a task there cost
    each request two more turns. ``handle`` gets the requests in the order they came
    and returns one result per request, in that order; a result that is an
    ``Exception`` fails its request alone. If ``handle`` raises, every request of
    the batch fails with that. The thread (named ``name``) starts with the first
    request.
    """

    def __init__(
        self, handle: Callable[[list[Request]], Sequence[Result | Exception]], name: str
    ) -> None:
        self._handle = handle
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Request, asyncio.Future[Result]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._closed = False
        self._handling = False  # set by the thread

    @property
    def busy(self) -> bool:
        """Whether a batch is being handled or requests wait for one."""
        return self._handling or not self._queue.empty()

    async def submit(self, request: Request) -> Result:
        """The request's result, once the thread has handled a batch holding it."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        with self._starting:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((request, answer))
        return await answer

    async def close(self) -> None:
        """Stop: the requests queued by now are handled, then the thread ends."""
        with self._starting:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    stop = True
                    break
                batch.append(queued)
            self._handling = True
            try:
                results: Sequence[Result | Exception] = self._handle([r for r, _ in batch])
            except Exception as exc:
                results = [exc] * len(batch)
            finally:
                self._handling = False
            _hand_back([answer for _, answer in batch], results)


def _hand_back(
    answers: list[asyncio.Future[Result]], results: Sequence[Result | Exception]
) -> None:
    """From a batch's thread: each result to its request's event loop, one call per loop."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Result | Exception]]
    ]
    by_loop = {}
    for answer, result in zip(answers, results, strict=True):
        by_loop.setdefault(answer.get_loop(), []).append((answer, result))
    for loop, settled in by_loop.items():
        with suppress(RuntimeError):  # (the loop is closed: nobody waits for these)
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[_Settled[Result]]) -> None:
    for answer, result in settled:
        _settle(answer, result)
