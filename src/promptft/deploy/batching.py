"""Dynamic batching: concurrent requests wait a few milliseconds in an asyncio queue, are gathered up to a
maximum batch, and run as one forward in a worker thread (the event loop keeps accepting requests).

A request is never split: a batch is whole requests, at least one, adding more while the total stays within
`max_batch` and the first has waited less than `max_wait_ms`. One worker thread runs the forwards one at a
time (a model is not run from two threads at once). `stop()` stops taking requests and finishes every
queued one before returning, for a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More requests are waiting than the queue holds: the caller answers 503 and the client retries."""


class ShuttingDown(Exception):
    """The batcher is stopping and takes no new requests."""


@dataclass
class _Request:
    items: Sequence[Any]
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    requests: int = 0
    largest: int = 0

    def as_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "requests": self.requests,
            "items": self.items,
            "largest_batch": self.largest,
            "mean_batch": round(mean, 2),
        }


class DynamicBatcher:
    """`await batcher.submit(items)` -> `run(items)`'s results for those items, computed together with
    the items of other requests that arrived within `max_wait_ms`."""

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self._held: _Request | None = None  # a request that did not fit the last batch: first of the next

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done() and not self._stopping

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptft-batch")
        self._stopping = False
        self._worker = asyncio.create_task(self._loop())

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        if self._stopping or self._queue is None:
            raise ShuttingDown("the server is shutting down")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} requests are waiting")
        request = _Request(list(items), asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def stop(self) -> None:
        """Take no new requests; finish the queued ones; then stop the worker."""
        self._stopping = True
        if self._queue is not None:
            await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[_Request]:
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        batch, size = [first], len(first.items)
        deadline = first.arrived + self.max_wait
        while size < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                nxt = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if size + len(nxt.items) > self.max_batch:
                self._held = nxt  # starts the next batch, keeping arrival order
                break
            batch.append(nxt)
            size += len(nxt.items)
        return batch

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            items = [item for request in batch for item in request.items]
            try:
                results = await loop.run_in_executor(self._executor, self.run, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"the batch function returned {len(results)} results for {len(items)} items"
                    )
            except Exception as err:  # every request of the batch gets the error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(err)
            else:
                start = 0
                for request in batch:
                    if not request.future.done():
                        request.future.set_result(results[start : start + len(request.items)])
                    start += len(request.items)
                self.stats.batches += 1
                self.stats.items += len(items)
                self.stats.requests += len(batch)
                self.stats.largest = max(self.stats.largest, len(items))
            finally:
                for _ in batch:
                    self._queue.task_done()
