# A request inside the worker's batcher: its job, the job's states, and the answers built from forward passes.
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inference.runtime.contract.base import Prediction
from inference.runtime.contract.errors import ModelRuntimeError

Answer = dict[str, Any]
# The answer for one slice of a long request's rows: its prediction, and its std per row for MC dropout.
Slice = tuple[Prediction, list[Any] | None]
# A job's life: waiting in a lane, then on the model thread, then answered (or answered from its lane).
QUEUED, RUNNING, SETTLED = "queued", "running", "settled"


@dataclass(eq=False)
class Job:
    rows: list[Any]
    deadline: float  # time.time()
    future: asyncio.Future[Answer]
    # Runs alone, in one pass (explain).
    solo: Callable[[], Answer] | None = None
    # Runs alone, one slice of the rows per pass (Monte Carlo dropout, more rows than a batch takes).
    sliced: Callable[[list[Any]], Slice] | None = None
    cost: int = 1  # what a row weighs in a pass (the samples of MC dropout)
    enqueued: float = field(default_factory=time.perf_counter)
    state: str = QUEUED
    timer: asyncio.TimerHandle | None = None

    @property
    def long(self) -> bool:
        return self.solo is not None or self.sliced is not None


@dataclass(eq=False)
class LongRun:
    """The long job on the model thread: how far it got, and how many rows its next pass takes."""

    job: Job
    pass_rows: int
    done_rows: int = 0
    slices: list[Slice] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    compute_s: float = 0.0


def batch_answer(
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


def joined_answer(run: LongRun) -> Answer:
    """The answer of a long job from its slices' (batch_size: the largest pass)."""
    first, std = run.slices[0]
    probabilities = None
    if first.probabilities is not None:
        probabilities = [row for prediction, _ in run.slices for row in prediction.probabilities or []]
    return {
        "predictions": [value for prediction, _ in run.slices for value in prediction.predictions],
        "probabilities": probabilities,
        "classes": first.classes,
        "std": None if std is None else [row for _, part in run.slices for row in part or []],
        "batch_size": max(len(prediction.predictions) for prediction, _ in run.slices),
        "queue_ms": (run.started - run.job.enqueued) * 1000.0,
        "compute_ms": run.compute_s * 1000.0,
    }


def check_length(prediction: Prediction, rows: int) -> None:
    sizes = {len(prediction.predictions)}
    if prediction.probabilities is not None:
        sizes.add(len(prediction.probabilities))
    if sizes != {rows}:
        raise ModelRuntimeError(f"the model returned {min(sizes)} predictions for {rows} rows")


def settle(
    future: asyncio.Future[Answer], answer: Answer | None = None, *, error: BaseException | None = None
) -> None:
    # The connection's task may be gone (client hung up); a settled future is simply skipped.
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer or {})
