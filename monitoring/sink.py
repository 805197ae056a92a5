"""Monitoring's side of the prediction hot path (registered in inference.predict.contract.sinks).

A request costs an append to an in-process buffer (two when it is sampled into the log): no database write, no
Redis call, no lock. A daemon thread started lazily in each process (so a forked web worker never inherits a
dead one) drains the buffers every PREDICTION_LOG_FLUSH_S: the per-minute figures go to Redis in one pipelined
round trip (minutes.py), the sampled requests to a Redis list as one JSON batch (logwriter.py), from which the
scheduler and the log's readers write them to the database. When Redis is away the oldest entries give way
(bounded buffers) and a warning says how many.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
from collections import defaultdict, deque
from typing import Any

from django.conf import settings

from inference.predict.contract import PredictionSink, PredictRequest, Route
from monitoring import logwriter, minutes
from monitoring.figures import Figures

logger = logging.getLogger(__name__)

CAPACITY = 200_000


# (endpoint, version, time, seconds, error status or 0, cached, cache_used, batch_size)
Event = tuple[str, int, float, float, int, bool, bool, int | None]


class MonitoringSink(PredictionSink):
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._logged: deque[bytes] = deque(maxlen=capacity)
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_warning = 0.0

    # --- the hot path ---------------------------------------------------------------------------------------

    def served(self, route: Route, request: PredictRequest, response: dict[str, Any], rows: list[Any],
               seconds: float, *, cached: bool, cache_used: bool, batch_size: int | None) -> None:
        now = time.time()
        self._events.append((route.endpoint, route.version, now, seconds, 0, cached, cache_used, batch_size))
        rate = route.log_predictions
        if rate > 0 and (rate >= 1.0 or random.random() < rate):
            self._logged.append(logwriter.encode(route, request, response, rows, now, seconds, cached))
        if self._pid != os.getpid():
            self._start()

    def failed(self, route: Route, request: PredictRequest, code: str, status: int, seconds: float) -> None:
        self._events.append((route.endpoint, route.version, time.time(), seconds, status, False, False, None))
        if self._pid != os.getpid():
            self._start()

    # --- the flusher ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            if settings.PREDICTION_LOG_FLUSH_S <= 0:
                return  # written only when asked (tests: inside their transaction)
            threading.Thread(target=self._run, name="monitoring-flusher", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(settings.PREDICTION_LOG_FLUSH_S)
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                logger.exception("monitoring flush failed")

    def flush(self) -> None:
        """Writes what is buffered now (a reader that wants this process's latest figures calls it first)."""
        with self._flush_lock:
            events, logged = _drain(self._events), _drain(self._logged)
            if events:
                self._write(minutes.add, per_minute(events), len(events), "per-minute figures (Redis)")
            if logged:
                self._write(logwriter.push, logged, len(logged), "logged predictions (Redis)")

    def discard(self) -> None:
        self._events.clear()
        self._logged.clear()

    def _write(self, write, payload, count: int, what: str) -> None:
        try:
            write(payload)
        except Exception:
            if time.monotonic() - self._last_warning > 10:
                self._last_warning = time.monotonic()
                logger.warning("monitoring: %d %s lost", count, what, exc_info=True)


def _drain(buffer: deque) -> list:
    taken = []
    while True:
        try:
            taken.append(buffer.popleft())
        except IndexError:
            return taken


def per_minute(events: list[Event]) -> dict[minutes.Slot, Figures]:
    counted: dict[minutes.Slot, Figures] = defaultdict(Figures)
    for endpoint, version, at, seconds, status, cached, cache_used, batch_size in events:
        counted[(endpoint, version, minutes.minute_of(at))].count(
            seconds, status=status, cached=cached, cache_used=cache_used, batch_size=batch_size)
    return counted


sink = MonitoringSink()


def caught_up() -> None:
    """Before reading the log or the figures: this process's buffers written, and every process's pushed rows
    moved into the database."""
    sink.flush()
    logwriter.drain()
