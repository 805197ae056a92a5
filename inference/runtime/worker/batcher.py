# Dynamic batching between the event loop and the model thread. Short requests queue here; one task
# gathers them into a batch (until `max_batch_size` rows, or `batch_timeout_ms` after the oldest one
# started waiting), runs ONE forward pass on the model thread and splits the result back. While the
# model computes, the event loop keeps accepting and queueing, so a busy worker forms bigger batches
# without waiting any longer.
#
# Long requests (explain, Monte Carlo dropout, more rows than a batch takes) have a lane of their own and
# run alone, in passes over slices of their rows sized by the model's pace (pace.py) to last about LONG_PASS_S
# (or twice the model's fixed cost per call, when that is longer). The model thread takes a batch and a
# long pass in turn: a long request never holds the short ones back by more than one pass, and one whose
# deadline passed is abandoned before its next pass (a pass on the model thread cannot be interrupted).
# A request whose deadline passes while it waits leaves its lane at that moment: its client has stopped
# waiting, and it must not hold a place in the queue (max_queue) that a live request could take.
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import chain
from typing import Any

from inference.runtime.contract.base import Prediction
from inference.runtime.worker.jobs import (
    QUEUED,
    RUNNING,
    SETTLED,
    Answer,
    Job,
    LongRun,
    Slice,
    batch_answer,
    check_length,
    joined_answer,
    settle,
)
from inference.runtime.worker.pace import Pace

# What one pass of a long request may take: how long a short request queued behind it waits at most.
LONG_PASS_S = 0.05


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
    batches: int = 0  # forward passes, retries of a failed batch and the passes of long requests included
    batch_size_sum: int = 0  # rows through those forward passes
    expired: int = 0  # requests whose deadline passed while they waited: answered without running
    abandoned: int = 0  # long requests stopped between two of their passes, their deadline passed


class DynamicBatcher:
    def __init__(self, predict: Callable[[Any], Prediction], executor: Executor, settings: BatchSettings) -> None:
        self.settings = settings
        self.counters = BatchCounters()
        self.pace = Pace()
        self._predict = predict
        self._executor = executor
        self._queue: deque[Job] = deque()  # the short lane
        self._long_queue: deque[Job] = deque()
        self._long: LongRun | None = None
        # QUEUED jobs in either lane. A job that expired stays in its deque, SETTLED, until it reaches the
        # front: removing it from the middle would cost a scan per expiry.
        self._waiting = 0
        self._queued_rows = 0  # rows of the short lane's QUEUED jobs
        self._arrived = asyncio.Event()
        self._closing = False
        self._busy = False

    @property
    def depth(self) -> int:
        return self._waiting

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._busy and self._long is None

    def submit(
        self,
        rows: list[Any],
        deadline: float,
        *,
        solo: Callable[[], Answer] | None = None,
        sliced: Callable[[list[Any]], Slice] | None = None,
        cost: int = 1,
    ) -> asyncio.Future[Answer]:
        if self._closing:
            raise Draining()
        if self._waiting >= self.settings.max_queue:
            raise QueueFull()
        if solo is None and sliced is None and len(rows) > self.settings.max_batch_size:
            sliced = self._predict_slice
        loop = asyncio.get_running_loop()
        job = Job(rows, deadline, loop.create_future(), solo, sliced, cost)
        job.timer = loop.call_later(max(deadline - time.time(), 0.0), self._expire, job)
        if job.long:
            self._long_queue.append(job)
        else:
            self._queue.append(job)
            self._queued_rows += len(rows)
        self._waiting += 1
        self._arrived.set()
        return job.future

    def close(self) -> None:
        """Take no new jobs; the queued ones still run."""
        self._closing = True
        self._arrived.set()

    def abandon(self) -> None:
        """Answer every job still queued, or running in passes, `draining` (the grace period is over)."""
        for lane in (self._queue, self._long_queue):
            while (job := self._live_head(lane)) is not None:
                lane.popleft()
                self._leave(job, Draining())
        self._queued_rows = 0
        if self._long is not None:
            self._finish(self._long.job, error=Draining())
            self._long = None

    async def run(self) -> None:
        while self._waiting or self._long is not None or not self._closing:
            if not self._waiting and self._long is None:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # A batch of short jobs, then one pass of the long job, in turn.
            if self._live_head(self._queue) is not None:
                await self._short_turn()
            if self._long is None:
                self._long = self._next_long()
            if self._long is not None:
                await self._long_pass(self._long)

    # --- the short lane ---------------------------------------------------------------------

    async def _short_turn(self) -> None:
        if self._long is None and self._live_head(self._long_queue) is None:
            await self._gather()  # never while a long job waits: the model thread would idle meanwhile
        jobs = self._take(time.time())
        if jobs:
            self._busy = True
            try:
                await self._execute(jobs)
            finally:
                self._busy = False

    async def _gather(self) -> None:
        oldest = self._live_head(self._queue)
        if oldest is None:
            return
        timeout_s = self.settings.batch_timeout_ms / 1000.0
        while self._queued_rows < self.settings.max_batch_size and not self._closing:
            remaining = oldest.enqueued + timeout_s - time.perf_counter()
            if remaining <= 0 or oldest.state != QUEUED:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, now: float) -> list[Job]:
        jobs: list[Job] = []
        rows = 0
        while (job := self._live_head(self._queue)) is not None:
            if jobs and rows + len(job.rows) > self.settings.max_batch_size:
                break
            self._queue.popleft()
            self._queued_rows -= len(job.rows)
            if job.deadline <= now:
                self._leave(job, DeadlinePassed(), expired=True)
                continue
            self._start(job)
            jobs.append(job)
            rows += len(job.rows)
        return jobs

    async def _execute(self, jobs: list[Job]) -> None:
        rows = list(chain.from_iterable(job.rows for job in jobs))
        started = time.perf_counter()
        try:
            prediction = await self._forward(rows)
        except Exception as exc:  # noqa: BLE001 - answered per request below
            if len(jobs) == 1:
                self._finish(jobs[0], error=exc)
            else:
                # One bad request must not fail the others: rerun each alone to find out whose it is.
                await self._one_by_one(jobs)
            return
        compute_ms = (time.perf_counter() - started) * 1000.0
        self.pace.add(len(rows), compute_ms / 1000.0)
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            queue_ms = (started - job.enqueued) * 1000.0
            self._finish(job, batch_answer(prediction, start, end, len(rows), queue_ms, compute_ms))
            start = end

    async def _one_by_one(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.deadline <= time.time():
                self._finish(job, error=DeadlinePassed())
                continue
            started = time.perf_counter()
            try:
                prediction = await self._forward(job.rows)
            except Exception as exc:  # noqa: BLE001 - becomes this request's error answer
                self._finish(job, error=exc)
                continue
            compute_ms = (time.perf_counter() - started) * 1000.0
            queue_ms = (started - job.enqueued) * 1000.0
            self._finish(job, batch_answer(prediction, 0, len(job.rows), len(job.rows), queue_ms, compute_ms))

    async def _forward(self, rows: list[Any]) -> Prediction:
        self._count_pass(len(rows))
        loop = asyncio.get_running_loop()
        prediction = await loop.run_in_executor(self._executor, self._predict, rows)
        check_length(prediction, len(rows))
        return prediction

    # --- the long lane ----------------------------------------------------------------------

    def _next_long(self) -> LongRun | None:
        now = time.time()
        while (job := self._live_head(self._long_queue)) is not None:
            self._long_queue.popleft()
            if job.deadline <= now:
                self._leave(job, DeadlinePassed(), expired=True)
                continue
            self._start(job)
            return LongRun(job, pass_rows=self._pass_rows(job))
        return None

    async def _long_pass(self, run: LongRun) -> None:
        job = run.job
        if job.state == SETTLED:  # its deadline passed during its last pass, and it was answered then
            self._long = None
            return
        if job.deadline <= time.time():
            self.counters.abandoned += 1
            self._finish(job, error=DeadlinePassed())
            self._long = None
            return
        self._busy = True
        try:
            finished = await self._run_pass(run)
        except Exception as exc:  # noqa: BLE001 - becomes this request's error answer
            self._finish(job, error=exc)
            finished = True
        finally:
            self._busy = False
        if finished:
            self._long = None

    async def _run_pass(self, run: LongRun) -> bool:
        """One pass of the long job; True once it is answered."""
        job, loop = run.job, asyncio.get_running_loop()
        started = time.perf_counter()
        if job.solo is not None:
            self._count_pass(len(job.rows))
            answer = await loop.run_in_executor(self._executor, job.solo)
            answer["queue_ms"] = (started - job.enqueued) * 1000.0
            answer["compute_ms"] = (time.perf_counter() - started) * 1000.0
            self._finish(job, answer)
            return True
        assert job.sliced is not None
        part = job.rows[run.done_rows : run.done_rows + run.pass_rows]
        self._count_pass(len(part))
        result = await loop.run_in_executor(self._executor, job.sliced, part)
        check_length(result[0], len(part))
        elapsed = time.perf_counter() - started
        run.compute_s += elapsed
        run.slices.append(result)
        run.done_rows += len(part)
        self.pace.add(len(part) * job.cost, elapsed)
        run.pass_rows = self._pass_rows(job)
        if run.done_rows < len(job.rows):
            return False
        self._finish(job, joined_answer(run))
        return True

    def _pass_rows(self, job: Job) -> int:
        # Before the model's pace is known, as many rows as a batch takes (shared among MC dropout's samples).
        fallback = self.settings.max_batch_size // job.cost
        return self.pace.rows_for(LONG_PASS_S, cost=job.cost, fallback=fallback)

    def _predict_slice(self, rows: list[Any]) -> Slice:
        return self._predict(rows), None

    def _count_pass(self, rows: int) -> None:
        self.counters.batches += 1
        self.counters.batch_size_sum += rows

    # --- a job's states ---------------------------------------------------------------------

    def _expire(self, job: Job) -> None:
        """The job's deadline timer: out of its lane if it still waits; answered now if it runs in passes."""
        if job.state == QUEUED:
            if not job.long:
                self._queued_rows -= len(job.rows)
            self._leave(job, DeadlinePassed(), expired=True)
        elif self._long is not None and self._long.job is job and job.state == RUNNING:
            # The pass on the model thread runs to its end; its result is dropped and no pass follows.
            self.counters.abandoned += 1
            self._finish(job, error=DeadlinePassed())

    def _live_head(self, lane: deque[Job]) -> Job | None:
        while lane and lane[0].state != QUEUED:
            lane.popleft()  # answered by its deadline timer, and no longer counted: only skipped here
        return lane[0] if lane else None

    def _start(self, job: Job) -> None:
        self._waiting -= 1
        job.state = RUNNING
        if job.timer is not None and not job.long:
            job.timer.cancel()  # a batch runs to its end; only long jobs are abandoned between passes

    def _leave(self, job: Job, error: BaseException, *, expired: bool = False) -> None:
        """A QUEUED job answered without running (the short lane's rows are the caller's to uncount)."""
        self._waiting -= 1
        if expired:
            self.counters.expired += 1
        self._finish(job, error=error)

    def _finish(self, job: Job, answer: Answer | None = None, *, error: BaseException | None = None) -> None:
        job.state = SETTLED
        if job.timer is not None:
            job.timer.cancel()
        settle(job.future, answer, error=error)
