"""Micro-batching with a bounded queue: concurrent requests share forward passes.

Requests first *reserve* room for their images; when ``max_queue`` images are already
admitted and unanswered the reservation fails at once (the API answers 503 with
Retry-After), so memory stays bounded however hard the clients push.  One thread per
model runs the engine: it takes what is queued, waits at most ``max_wait_s`` for more
while the batch is short of ``max_batch``, scores the batch and hands each request its
rows back on the event loop.  Under load the queue refills while a batch runs, so
batches grow with load and throughput with them.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["BatchResult", "MicroBatcher", "QueueFull"]

Engine = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class QueueFull(Exception):
    """No room for more images now; ``retry_after`` seconds is a fair wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class BatchResult:
    """One request's rows of a forward pass."""

    scores: np.ndarray
    maps: np.ndarray | list[np.ndarray] | None  # (B, H, W); tiled: one map per image, at its own size
    batch_size: int  # images in the forward pass that scored them
    queued_s: float  # from submit to the start of that pass


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    submitted: float
    reserved: int  # queue room this job holds (its images; a tiled image's tiles hold one)


def _deliver(future: asyncio.Future, value: object, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class MicroBatcher:
    """Groups submitted images into forward passes of at most ``max_batch`` on one thread."""

    def __init__(
        self,
        engine: Engine,
        max_batch: int = 4,
        max_wait_s: float = 0.002,
        max_queue: int = 64,
        name: str = "model",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.engine, self.max_batch, self.max_wait_s, self.max_queue = engine, max_batch, max_wait_s, max_queue
        self.on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._depth = 0  # images admitted and not yet answered
        self._closed = False
        self._rate = 0.0  # images/s of recent passes, for Retry-After
        self._thread = threading.Thread(target=self._loop, name=f"reconad-batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._depth

    def reserve(self, n: int) -> None:
        """Admit ``n`` images or raise QueueFull (a request larger than the queue runs alone)."""
        with self._cv:
            if self._closed:
                raise QueueFull(1)
            if self._depth > 0 and self._depth + n > self.max_queue:
                wait = self._depth / self._rate if self._rate > 0 else 1.0
                raise QueueFull(max(1, math.ceil(wait)))
            self._depth += n

    def release(self, n: int) -> None:
        """Give back a reservation that will not be submitted (e.g. an upload failed to decode)."""
        with self._cv:
            self._depth = max(0, self._depth - n)

    async def score(self, images: np.ndarray, reserved: int | None = None) -> BatchResult:
        """Score reserved images (N, 3, H, W); resolves when their forward pass is done.
        ``reserved``: the room reserved for them (default N; the tiles of a tiled
        model's images are reserved as the images they come from)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        room = len(images) if reserved is None else int(reserved)
        with self._cv:
            self._jobs.append(_Job(images, future, loop, time.perf_counter(), room))
            self._cv.notify()
        result: BatchResult = await future
        return result

    def close(self, timeout: float | None = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------ the thread
    def _queued_images(self) -> int:
        return sum(len(j.images) for j in self._jobs)

    def _take(self) -> list[_Job] | None:
        """The next batch of whole jobs (None when closed and drained)."""
        with self._cv:
            while not self._jobs and not self._closed:
                self._cv.wait()
            if not self._jobs:
                return None
            deadline = time.perf_counter() + self.max_wait_s
            while self._queued_images() < self.max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cv.wait(left)
            jobs = [self._jobs.popleft()]
            total = len(jobs[0].images)
            while self._jobs and total + len(self._jobs[0].images) <= self.max_batch:
                total += len(self._jobs[0].images)
                jobs.append(self._jobs.popleft())
            return jobs

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The engine over ``x`` in chunks of at most ``max_batch`` (a large request)."""
        if len(x) <= self.max_batch:
            return self.engine(x)
        parts = [self.engine(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        maps = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return np.concatenate([p[0] for p in parts]), maps

    def _answer(
        self, jobs: list[_Job], scores: np.ndarray, maps: np.ndarray | None, start: float, error: BaseException | None
    ) -> None:
        """Hand each job its rows (or the error) on its own event loop."""
        offset, n = 0, sum(len(j.images) for j in jobs)
        for job in jobs:
            k = len(job.images)
            value = None
            if error is None:
                part = None if maps is None else maps[offset : offset + k]
                value = BatchResult(scores[offset : offset + k], part, n, start - job.submitted)
            offset += k
            try:
                job.loop.call_soon_threadsafe(_deliver, job.future, value, error)
            except RuntimeError:  # the event loop is gone (shutdown)
                pass

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            x = np.ascontiguousarray(np.concatenate([j.images for j in jobs]), dtype=np.float32)
            start = time.perf_counter()
            error: BaseException | None = None
            scores: np.ndarray = np.empty(0)
            maps: np.ndarray | None = None
            try:
                scores, maps = self._run(x)
            except Exception as exc:  # one bad pass fails its requests, not the server
                error = exc
            seconds = max(time.perf_counter() - start, 1e-6)
            self._rate = 0.8 * self._rate + 0.2 * len(x) / seconds if self._rate else len(x) / seconds
            with self._cv:  # free the room first: an answered client may post again at once
                self._depth = max(0, self._depth - sum(j.reserved for j in jobs))
            self._answer(jobs, scores, maps, start, error)
            if self.on_batch is not None:
                self.on_batch(len(x), seconds)
