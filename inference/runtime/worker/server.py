# The worker's serving side, all on one asyncio event loop: connections, frames, op dispatch, stats,
# configure and draining. Model work never runs on the loop; it goes through the batcher to the model
# thread, so the loop keeps answering pings, stats and queue_full while the model computes.
from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from inference.runtime.contract.base import scrub_paths
from inference.runtime.contract.errors import ModelRuntimeError, UnsupportedOperation
from inference.runtime.contract.protocol import ErrorCode, FrameError, Outbox, decode, encode, pop_frames
from inference.runtime.worker.batcher import BatchSettings, DeadlinePassed, Draining, DynamicBatcher, QueueFull
from inference.runtime.worker.jobs import Answer
from inference.runtime.worker.model import MAX_UNCERTAINTY_SAMPLES, ServedModel

# How long a draining worker keeps finishing queued work before answering the rest `draining`.
DRAIN_GRACE_S = 5.0
_MAX_MESSAGE_CHARS = 1000
# Ops that are health and monitoring chatter: they neither count as requests nor as traffic.
_QUIET_OPS = frozenset({"ping", "stats"})
_SETTING_LIMITS: dict[str, tuple[float, float]] = {
    "max_batch_size": (1, 65536),
    "batch_timeout_ms": (0.0, 10_000.0),
    "max_queue": (1, 1_000_000),
    "threads": (1, 1024),
}


class BadRequest(Exception):
    pass


@dataclass
class WorkerCounters:
    load_ms: float
    started_at: float
    requests: int = 0
    errors: int = 0
    rows: int = 0  # rows answered with predictions or explanations
    last_request_at: float | None = None


def validate_settings(values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise BadRequest("params must be an object of settings")
    unknown = sorted(set(values) - set(_SETTING_LIMITS))
    if unknown:
        raise BadRequest(f"unknown settings: {', '.join(unknown)[:200]}")
    for name, value in values.items():
        low, high = _SETTING_LIMITS[name]
        kind = int if isinstance(low, int) else (int, float)
        # NaN fails both comparisons, and JSON booleans are ints to Python: refuse them explicitly.
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            noun = "an integer" if kind is int else "a number"
            raise BadRequest(f"{name} must be {noun} from {low:g} to {high:g}")
    return values


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            resident_pages = int(fh.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # peak, in KiB on Linux


def error_of(exc: BaseException) -> tuple[str, str]:
    """The protocol's error code and a message safe to show, for anything a request can raise."""
    if isinstance(exc, BadRequest):
        return ErrorCode.BAD_REQUEST, str(exc)
    if isinstance(exc, QueueFull):
        return ErrorCode.QUEUE_FULL, "the worker's queue is full"
    if isinstance(exc, DeadlinePassed):
        return ErrorCode.DEADLINE_EXCEEDED, "the deadline passed before the model could run"
    if isinstance(exc, Draining):
        return ErrorCode.DRAINING, "the worker is shutting down"
    if isinstance(exc, UnsupportedOperation):
        return ErrorCode.UNSUPPORTED, _safe(str(exc))
    if isinstance(exc, ModelRuntimeError):
        # 4xx runtime errors are the model refusing this request's data; the rest are its own faults.
        code = ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.MODEL_ERROR
        return code, _safe(str(exc))
    if isinstance(exc, MemoryError):
        return ErrorCode.MODEL_ERROR, "the model ran out of memory"
    return ErrorCode.MODEL_ERROR, _safe(f"the model failed: {type(exc).__name__}: {exc}")


def _safe(message: str) -> str:
    return scrub_paths(message)[:_MAX_MESSAGE_CHARS]


def _error(request_id: Any, code: str, message: str) -> Answer:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


class WorkerServer:
    def __init__(
        self,
        model: ServedModel,
        executor: Executor,
        settings: BatchSettings,
        *,
        load_ms: float,
        started_at: float,
        threads: int | None,
        set_threads: Callable[[int], None],
    ) -> None:
        self.connections: set[Connection] = set()
        self._model = model
        self._executor = executor
        self._batcher = DynamicBatcher(model.predict, executor, settings)
        self._counters = WorkerCounters(load_ms=load_ms, started_at=started_at)
        self._threads = threads
        self._set_threads = set_threads
        self._server: asyncio.AbstractServer | None = None
        self._in_flight = 0
        self._draining = False
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ops: dict[str, Callable[[dict[str, Any]], Answer | asyncio.Future[Answer]]] = {
            "predict": self._predict,
            "explain": self._explain,
            "ping": self._ping,
            "stats": self._stats,
            "configure": self._configure,
        }

    async def start(self, listener: Any) -> None:
        """Serve on an already bound, listening socket."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: Connection(self), sock=listener)
        self._keep(loop.create_task(self._batcher.run()))

    async def stopped(self) -> None:
        """Returns once `drain` has finished."""
        await self._stopped.wait()

    def drain(self) -> None:
        """SIGTERM: refuse new connections and requests, finish what is queued, then stop."""
        if self._draining:
            return
        self._draining = True
        if self._server is not None:
            self._server.close()
        self._batcher.close()
        self._keep(asyncio.get_running_loop().create_task(self._finish_draining()))

    async def _finish_draining(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + DRAIN_GRACE_S
        while self._in_flight and loop.time() < give_up_at:
            await asyncio.sleep(0.01)
        self._batcher.abandon()  # answers whatever is still queued `draining`...
        await asyncio.sleep(0.05)  # ...through future callbacks, which run on the next loop turns
        for connection in list(self.connections):
            connection.close()  # written answers are flushed before the transport closes
        self._stopped.set()

    def _keep(self, future: asyncio.Future[Any]) -> None:
        self._tasks.add(future)  # the loop keeps only weak references to tasks
        future.add_done_callback(self._tasks.discard)

    def handle(self, body: bytes, connection: Connection) -> None:
        """One frame in, one answer out (now, or when its future settles). Never raises."""
        try:
            message: dict[str, Any] | None = decode(body)
        except (ValueError, FrameError, RecursionError):
            message = None  # answered bad_request; the framing itself is intact, so the connection stays
        request_id, op = (message.get("id"), message.get("op")) if message else (None, None)
        if not isinstance(request_id, str):
            request_id = None
        counted = not (isinstance(op, str) and op in _QUIET_OPS)
        if counted:
            self._counters.requests += 1
            self._counters.last_request_at = time.time()
        try:
            result = self._dispatch(message)
        except Exception as exc:  # noqa: BLE001 - a worker answers every request, it never dies of one
            self._reply(connection, request_id, counted, error=exc)
            return
        if isinstance(result, dict):
            self._reply(connection, request_id, counted, result)
            return
        self._in_flight += 1
        result.add_done_callback(lambda done: self._reply_later(connection, request_id, counted, done))

    def _dispatch(self, message: dict[str, Any] | None) -> Answer | asyncio.Future[Answer]:
        if message is None:
            raise BadRequest("the frame does not hold a JSON object")
        if not isinstance(message.get("id"), str):
            raise BadRequest("the request needs a string id")
        op = message.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise BadRequest("unknown op; use predict, explain, ping, stats or configure")
        if self._draining and op != "stats":
            raise Draining()
        return handler(message)

    def _reply_later(
        self, connection: Connection, request_id: Any, counted: bool, done: asyncio.Future[Answer]
    ) -> None:
        self._in_flight -= 1
        error = Draining() if done.cancelled() else done.exception()
        if error is None:
            self._reply(connection, request_id, counted, done.result())
        else:
            self._reply(connection, request_id, counted, error=error)

    def _reply(
        self,
        connection: Connection,
        request_id: Any,
        counted: bool,
        fields: Answer | None = None,
        *,
        error: BaseException | None = None,
    ) -> None:
        if error is None:
            answer = {"id": request_id, "ok": True, **(fields or {})}
            try:
                frame = encode(answer)
            except (ValueError, TypeError):
                # NaN / inf or a non-JSON value from a model: the answer cannot travel, but its error can.
                frame, error = b"", ModelRuntimeError("the model produced NaN, infinite or non-JSON values")
        if error is not None:
            frame = encode(_error(request_id, *error_of(error)))
            if counted:
                self._counters.errors += 1
        connection.send(frame)

    def _predict(self, message: dict[str, Any]) -> asyncio.Future[Answer]:
        rows, deadline, params = _model_request(message)
        samples = _uncertainty_samples(params)
        if samples is None:
            future = self._batcher.submit(rows, deadline)
        else:
            # In slices of the rows, one pass each: the samples of one row never depend on another row's.
            future = self._batcher.submit(
                rows, deadline, sliced=lambda part: self._model.predict_with_dropout(part, samples), cost=samples
            )
        future.add_done_callback(lambda done: self._count_rows(done, len(rows)))
        return future

    def _explain(self, message: dict[str, Any]) -> asyncio.Future[Answer]:
        rows, deadline, params = _model_request(message)
        baseline = params.get("baseline")
        if baseline is not None and not isinstance(baseline, list):
            raise BadRequest("params.baseline must be a row (a list of numbers) or null")
        future = self._batcher.submit(rows, deadline, solo=lambda: self._model.explain(rows, baseline))
        future.add_done_callback(lambda done: self._count_rows(done, len(rows)))
        return future

    def _count_rows(self, done: asyncio.Future[Answer], rows: int) -> None:
        if not done.cancelled() and done.exception() is None:
            self._counters.rows += rows

    def _ping(self, message: dict[str, Any]) -> Answer:
        return {}

    def _stats(self, message: dict[str, Any]) -> Answer:
        counters, batching = self._counters, self._batcher.counters
        stats = {
            "requests": counters.requests,
            "errors": counters.errors,
            "rows": counters.rows,
            "batches": batching.batches,
            "batch_size_sum": batching.batch_size_sum,
            "queue_depth": self._batcher.depth,
            "expired": batching.expired,
            "abandoned": batching.abandoned,
            "last_request_at": counters.last_request_at,
            "memory_mb": rss_mb(),
            "load_ms": counters.load_ms,
            "pid": os.getpid(),
            "started_at": counters.started_at,
        }
        return {"stats": stats}

    def _configure(self, message: dict[str, Any]) -> Answer | asyncio.Future[Answer]:
        values = validate_settings(message.get("params"))
        if "threads" not in values:
            return self._apply_settings(values)
        task = asyncio.get_running_loop().create_task(self._configure_threads(values))
        self._keep(task)
        return task

    async def _configure_threads(self, values: dict[str, Any]) -> Answer:
        # On the model thread: thread settings are per calling thread, and a forward pass may be running.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._set_threads, values["threads"])
        self._threads = values["threads"]
        return self._apply_settings(values)

    def _apply_settings(self, values: dict[str, Any]) -> Answer:
        settings = self._batcher.settings
        for name in ("max_batch_size", "batch_timeout_ms", "max_queue"):
            if name in values:
                setattr(settings, name, values[name])
        return {"config": {**vars(settings), "threads": self._threads}}


class Connection(asyncio.Protocol):
    """Frames in, answers out. A Protocol rather than streams: no task or await per request, which
    measurably shortens the round trip of small requests. The answers of one batch leave in one write."""

    def __init__(self, server: WorkerServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._outbox = Outbox()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio.Transport.
        self._transport = self._outbox.transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = self._outbox.transport = None  # answers still pending for this client are dropped
        self._outbox.discard()
        self._server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            for body in pop_frames(self._buffer):
                if self._transport is None:
                    return
                self._server.handle(body, self)
        except FrameError as exc:
            # The body cannot be skipped safely, so the framing is lost: answer once, then hang up.
            self.send(encode(_error(None, ErrorCode.BAD_REQUEST, str(exc))))
            self.close()

    def send(self, frame: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._outbox.put(frame)

    def close(self) -> None:
        self._outbox.flush()  # an answer put before the close (a framing error's, the last of a drain) still leaves
        if self._transport is not None:
            self._transport.close()
        self._buffer.clear()


def _model_request(message: dict[str, Any]) -> tuple[list[Any], float, dict[str, Any]]:
    rows = message.get("inputs")
    if not isinstance(rows, list) or not rows:
        raise BadRequest("inputs must be a non-empty list of rows")
    deadline = message.get("deadline")
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline != deadline:
        raise BadRequest("deadline must be a time.time() number")
    params = message.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest("params must be an object")
    if deadline <= time.time():
        raise DeadlinePassed()
    return rows, float(deadline), params


def _uncertainty_samples(params: dict[str, Any]) -> int | None:
    uncertainty = params.get("uncertainty")
    if uncertainty is None:
        return None
    samples = uncertainty.get("samples") if isinstance(uncertainty, dict) else None
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_UNCERTAINTY_SAMPLES:
        raise BadRequest(f"params.uncertainty.samples must be an integer from 1 to {MAX_UNCERTAINTY_SAMPLES}")
    return samples
