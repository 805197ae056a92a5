# Dynamic batching between the event loop and the model thread. Requests queue here; one task
# gathers them into a batch (until `max_batch_size` rows, or `batch_timeout_ms` after the oldest one
# started waiting), runs ONE forward pass on the model thread and splits the result back. While the
# model computes, the event loop keeps accepting and queueing, so a busy worker forms bigger batches
# without waiting any longer.
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from inference.runtime.contract.base import Prediction
from inference.runtime.contract.errors import ModelRuntimeError

Answer = dict[str, Any]


class QueueFull(Exception):
    pass


class DeadlinePassed(Exception):
    pass


class Draining(Exception):
    pass


@dataclass
class BatchSettings:
    max_batch_size: int
    batch_timeout_ms: float
    max_queue: int


@dataclass
class BatchCounters:
    batches: int = 0  # forward passes, retries of a failed batch included
    batch_size_sum: int = 0  # rows through those forward passes


@dataclass(eq=False)
class Job:
    rows: list[Any]
    deadline: float  # time.time()
    future: asyncio.Future[Answer]
    # Runs alone on the model thread instead of joining a batch (uncertainty, explain).
    solo: Callable[[], Answer] | None = None
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(self, predict: Callable[[Any], Prediction], executor: Executor, settings: BatchSettings) -> None:
        self.settings = settings
        self.counters = BatchCounters()
        self._predict = predict
        self._executor = executor
        self._queue: deque[Job] = deque()
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._closing = False
        self._busy = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def submit(
        self, rows: list[Any], deadline: float, *, solo: Callable[[], Answer] | None = None
    ) -> asyncio.Future[Answer]:
        if self._closing:
            raise Draining()
        if len(self._queue) >= self.settings.max_queue:
            raise QueueFull()
        job = Job(rows, deadline, asyncio.get_running_loop().create_future(), solo)
        self._queue.append(job)
        self._queued_rows += len(rows)
        self._arrived.set()
        return job.future

    def close(self) -> None:
        """Take no new jobs; the queued ones still run."""
        self._closing = True
        self._arrived.set()

    def abandon(self) -> None:
        """Answer every job still queued `draining` (the grace period for draining is over)."""
        while self._queue:
            _settle(self._pop().future, error=Draining())

    async def run(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._gather()
            jobs = self._take(time.time())
            if jobs:
                self._busy = True
                try:
                    await self._execute(jobs)
                finally:
                    self._busy = False

    async def _gather(self) -> None:
        oldest = self._queue[0]
        if oldest.solo is not None:
            return
        timeout_s = self.settings.batch_timeout_ms / 1000.0
        # Queued solo jobs' rows count too: only ever an early dispatch, never a late one.
        while self._queued_rows < self.settings.max_batch_size and not self._closing:
            remaining = oldest.enqueued + timeout_s - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, now: float) -> list[Job]:
        jobs: list[Job] = []
        rows = 0
        while self._queue:
            job = self._queue[0]
            if jobs and (job.solo is not None or rows + len(job.rows) > self.settings.max_batch_size):
                break
            self._pop()
            if job.future.done():
                continue
            if job.deadline <= now:
                _settle(job.future, error=DeadlinePassed())
                continue
            jobs.append(job)
            rows += len(job.rows)
            if job.solo is not None:
                break
        return jobs

    def _pop(self) -> Job:
        job = self._queue.popleft()
        self._queued_rows -= len(job.rows)
        return job

    async def _execute(self, jobs: list[Job]) -> None:
        if jobs[0].solo is not None:
            await self._run_solo(jobs[0])
            return
        rows = list(chain.from_iterable(job.rows for job in jobs))
        started = time.perf_counter()
        try:
            prediction = await self._forward(rows)
        except Exception as exc:  # noqa: BLE001 - answered per request below
            if len(jobs) == 1:
                _settle(jobs[0].future, error=exc)
            else:
                # One bad request must not fail the others: rerun each alone to find out whose it is.
                await self._one_by_one(jobs)
            return
        compute_ms = (time.perf_counter() - started) * 1000.0
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            queue_ms = (started - job.enqueued) * 1000.0
            _settle(job.future, _answer(prediction, start, end, len(rows), queue_ms, compute_ms))
            start = end

    async def _one_by_one(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.deadline <= time.time():
                _settle(job.future, error=DeadlinePassed())
                continue
            started = time.perf_counter()
            try:
                prediction = await self._forward(job.rows)
            except Exception as exc:  # noqa: BLE001 - becomes this request's error answer
                _settle(job.future, error=exc)
                continue
            compute_ms = (time.perf_counter() - started) * 1000.0
            queue_ms = (started - job.enqueued) * 1000.0
            _settle(job.future, _answer(prediction, 0, len(job.rows), len(job.rows), queue_ms, compute_ms))

    async def _forward(self, rows: list[Any]) -> Prediction:
        self.counters.batches += 1
        self.counters.batch_size_sum += len(rows)
        loop = asyncio.get_running_loop()
        prediction = await loop.run_in_executor(self._executor, self._predict, rows)
        _check_length(prediction, len(rows))
        return prediction

    async def _run_solo(self, job: Job) -> None:
        assert job.solo is not None
        self.counters.batches += 1
        self.counters.batch_size_sum += len(job.rows)
        started = time.perf_counter()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._executor, job.solo)
        except Exception as exc:  # noqa: BLE001 - becomes this request's error answer
            _settle(job.future, error=exc)
            return
        answer["queue_ms"] = (started - job.enqueued) * 1000.0
        answer["compute_ms"] = (time.perf_counter() - started) * 1000.0
        _settle(job.future, answer)


def _answer(
    prediction: Prediction, start: int, end: int, batch_size: int, queue_ms: float, compute_ms: float
) -> Answer:
    probabilities = prediction.probabilities
    return {
        "predictions": prediction.predictions[start:end],
        "probabilities": None if probabilities is None else probabilities[start:end],
        "classes": prediction.classes,
        "std": None,
        "batch_size": batch_size,
        "queue_ms": queue_ms,
        "compute_ms": compute_ms,
    }


def _check_length(prediction: Prediction, rows: int) -> None:
    sizes = {len(prediction.predictions)}
    if prediction.probabilities is not None:
        sizes.add(len(prediction.probabilities))
    if sizes != {rows}:
        raise ModelRuntimeError(f"the model returned {min(sizes)} predictions for {rows} rows")


def _settle(
    future: asyncio.Future[Answer], answer: Answer | None = None, *, error: BaseException | None = None
) -> None:
    # The connection's task may be gone (client hung up); a settled future is simply skipped.
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer or {})
