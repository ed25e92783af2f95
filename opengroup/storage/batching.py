"""Gathering the requests that wait at the same moment into one batch.

Where a round trip or a transaction costs more than the work of one request in
it, the requests that arrive while a batch is being handled wait and go
together into the next. :class:`Batcher` is the one such scheduler: the poll
reader batches polls (and posting's token checks) into round trips
(:mod:`opengroup.storage.pollreader`), the post writer posts into transactions
(group commit, :mod:`opengroup.storage.postwriter`).

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
from collections.abc import Awaitable, Callable, Sequence
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
