# Starts, watches and stops model worker processes, one per (deployment, generation, replica).
#
# reconcile() runs on the server loop every ~0.5-1 s and never waits on a child: loading happens in
# the child, its one-line announcement and its stderr are read by threads that only write into that
# child's own Launch, and every state change is decided inside reconcile(), so the state machine has
# a single writer. Events are emitted after the lock is released, so a slow status write in on_event
# cannot hold up snapshot() callers.
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from inference.runtime.contract.protocol import FAILED_EVENT, READY_EVENT, WorkerSpec
from inference.runtime.supervisor.launch import (
    Launch,
    ask_stats,
    describe_exit,
    exit_reason,
    kill_group,
    scrub,
    send_configure,
    spawn,
)

logger = logging.getLogger(__name__)

WorkerKey = tuple[int, int, int]  # (deployment_id, generation, replica)
EventKind = Literal["ready", "failed", "crashed", "restarting", "stopped"]
StateName = Literal["starting", "ready", "failed", "crashed", "backoff"]

DEFAULT_WORKER_CMD = (sys.executable, "-m", "inference.runtime.worker")
# Changing these never needs a reload: they are sent with the `configure` op instead.
KNOBS = ("max_batch_size", "batch_timeout_ms", "max_queue", "threads")
_CONFIGURE_RETRY_S = 2.0


@dataclass(frozen=True)
class WorkerEvent:
    key: WorkerKey
    kind: EventKind
    detail: dict[str, Any]


@dataclass(frozen=True)
class WorkerState:
    state: StateName
    pid: int | None
    socket_path: str
    ready_at: float | None
    load_ms: float | None
    memory_mb: float | None
    restarts: int
    last_error: str | None


@dataclass
class _Worker:
    key: WorkerKey
    spec: WorkerSpec  # desired
    state: StateName = "starting"
    launch: Launch | None = None
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)
    start_at: float = 0.0
    ready_at: float | None = None
    load_ms: float | None = None
    memory_mb: float | None = None
    last_error: str | None = None


@dataclass
class _Stopping:
    key: WorkerKey
    launch: Launch
    reason: str | None  # None: reap quietly (a worker that already reported "failed")
    kill_at: float
    killed: bool = False


class ProcessManager:
    def __init__(
        self,
        *,
        worker_cmd: Sequence[str] = DEFAULT_WORKER_CMD,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str],
        load_timeout_s: float = 120,
        backoff: Sequence[float] = (1, 2, 4, 8, 16, 30),
        max_crashes: int = 5,
        crash_window_s: float = 300,
        stop_grace_s: float = 30,
        on_event: Callable[[WorkerEvent], None] = lambda event: None,
    ) -> None:
        if not backoff or min(backoff) < 0 or max_crashes < 1 or load_timeout_s <= 0 or stop_grace_s < 0:
            raise ValueError("backoff must be non-empty and non-negative; max_crashes, load_timeout_s positive")
        self.worker_cmd = list(worker_cmd)
        self.cwd = cwd
        # Explicit on purpose: the workers load artifacts, and must not inherit the web's secrets by default.
        self.env = dict(env)
        self.load_timeout_s = load_timeout_s
        self.backoff = tuple(backoff)
        self.max_crashes = max_crashes
        self.crash_window_s = crash_window_s
        self.stop_grace_s = stop_grace_s
        self.on_event = on_event
        self._workers: dict[WorkerKey, _Worker] = {}
        self._stopping: list[_Stopping] = []
        self._lock = threading.Lock()
        self._closed = False

    def reconcile(self, desired: Mapping[WorkerKey, WorkerSpec]) -> None:
        events: list[WorkerEvent] = []
        with self._lock:
            if self._closed:
                return
            now = time.monotonic()
            for key in self._workers.keys() - desired.keys():
                self._retire(self._workers.pop(key), "removed", now)
            for key, spec in desired.items():
                self._want(key, spec, now)
            for worker in self._workers.values():
                self._advance(worker, now, events)
            self._reap(now, events)
        self._emit(events)

    def snapshot(self) -> dict[WorkerKey, WorkerState]:
        with self._lock:
            return {key: _public_state(worker) for key, worker in self._workers.items()}

    def collect_stats(self, timeout_s: float = 0.5) -> dict[WorkerKey, dict[str, Any]]:
        """The `stats` answer of each ready worker; one that does not answer gets an error entry."""
        with self._lock:
            targets = {k: w.spec.socket_path for k, w in self._workers.items() if w.state == "ready"}
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(targets)), thread_name_prefix="stats") as pool:
            futures = {key: pool.submit(ask_stats, path, timeout_s) for key, path in targets.items()}
            answers = {key: future.result() for key, future in futures.items()}
        with self._lock:
            for key, answer in answers.items():
                memory_mb = _number((answer.get("stats") or {}).get("memory_mb"))
                if key in self._workers and memory_mb is not None:
                    self._workers[key].memory_mb = memory_mb
        return answers

    def shutdown(self, grace_s: float = 20) -> None:
        """SIGTERM every worker (they drain), wait up to grace_s, SIGKILL what is left."""
        events: list[WorkerEvent] = []
        with self._lock:
            self._closed = True
            now = time.monotonic()
            for worker in self._workers.values():
                self._retire(worker, "shutdown", now)
            self._workers.clear()
            for stopping in self._stopping:
                stopping.kill_at = min(stopping.kill_at, now + grace_s)
        # SIGKILL'd children still need a moment to be reaped; they cannot ignore it.
        deadline = time.monotonic() + grace_s + 5
        while time.monotonic() < deadline:
            with self._lock:
                self._reap(time.monotonic(), events)
                if not self._stopping:
                    break
            time.sleep(0.05)
        self._emit(events)

    def _want(self, key: WorkerKey, spec: WorkerSpec, now: float) -> None:
        worker = self._workers.get(key)
        if worker is not None and worker.spec == spec:
            return
        if worker is None or worker.state == "failed" or _needs_reload(worker.spec, spec):
            # A changed spec is a fresh start: crash history and restarts belong to the old one.
            if worker is not None:
                self._retire(worker, "replaced", now)
            self._workers[key] = _Worker(key=key, spec=spec)
        else:
            worker.spec = spec  # knobs only: _configure_knobs sends them to the running process

    def _advance(self, worker: _Worker, now: float, events: list[WorkerEvent]) -> None:
        if worker.state == "backoff" and now >= worker.start_at:
            worker.state = "starting"
        if worker.state == "starting" and worker.launch is None:
            self._start(worker, events)
        if worker.state == "starting" and worker.launch is not None:
            self._check_loading(worker, worker.launch, now, events)
        if worker.state == "ready" and worker.launch is not None:
            if worker.launch.proc.poll() is None:
                self._configure_knobs(worker, worker.launch, now)
            else:
                worker.state, worker.ready_at = "crashed", None  # off the routes at once
        if worker.state == "crashed" and worker.launch is not None and worker.launch.finished(now):
            self._after_exit(worker, worker.launch, now, events)

    def _start(self, worker: _Worker, events: list[WorkerEvent]) -> None:
        path = worker.spec.socket_path
        if any(s.launch.spec.socket_path == path for s in self._stopping):
            return  # the process it replaces still drains on this socket path
        try:
            launch = spawn(worker.spec, _knobs(worker.spec), cmd=self.worker_cmd, cwd=self.cwd, env=self.env)
        except OSError:
            logger.exception("could not start a worker for %s", worker.key)
            self._fail(worker, "the worker process could not be started", events)
            return
        worker.launch = launch
        if worker.restarts:
            events.append(WorkerEvent(worker.key, "restarting", {"pid": launch.proc.pid, "restarts": worker.restarts}))

    def _check_loading(self, worker: _Worker, launch: Launch, now: float, events: list[WorkerEvent]) -> None:
        announcement = launch.announcement or {}
        if announcement.get("event") == READY_EVENT:
            self._mark_ready(worker, launch, announcement, events)
        elif announcement.get("event") == FAILED_EVENT:
            self._fail_launch(worker, launch, announcement, now, events)
        elif launch.proc.poll() is not None:
            worker.state = "crashed"
        elif now - launch.started > self.load_timeout_s:
            self._stop(worker.key, launch, None, now)
            worker.launch = None
            self._fail(worker, f"the model did not load within {self.load_timeout_s:g}s", events)

    def _mark_ready(
        self, worker: _Worker, launch: Launch, announcement: dict[str, Any], events: list[WorkerEvent]
    ) -> None:
        worker.state, worker.ready_at = "ready", time.time()
        worker.load_ms = _number(announcement.get("load_ms"))
        worker.memory_mb = _number(announcement.get("memory_mb"))
        detail = {"pid": launch.proc.pid, "socket_path": launch.spec.socket_path, "load_ms": worker.load_ms}
        detail |= {"memory_mb": worker.memory_mb, "restarts": worker.restarts}
        events.append(WorkerEvent(worker.key, "ready", detail))

    def _fail_launch(
        self, worker: _Worker, launch: Launch, announcement: dict[str, Any], now: float, events: list[WorkerEvent]
    ) -> None:
        # The worker exits by itself after a failed event; reaping it (and killing it should it hang) is ours.
        self._stop(worker.key, launch, None, now)
        worker.launch = None
        self._fail(worker, scrub(str(announcement.get("error") or "the model could not be loaded")), events)

    def _after_exit(self, worker: _Worker, launch: Launch, now: float, events: list[WorkerEvent]) -> None:
        announcement = launch.announcement or {}
        if announcement.get("event") == FAILED_EVENT:
            self._fail_launch(worker, launch, announcement, now, events)  # it exited before we read the line
            return
        reason = exit_reason(launch)
        worker.launch, worker.last_error = None, reason
        worker.crashes.append(now)
        while now - worker.crashes[0] > self.crash_window_s:
            worker.crashes.popleft()
        crashes = len(worker.crashes)
        delay = None if crashes >= self.max_crashes else self.backoff[min(crashes, len(self.backoff)) - 1]
        detail = {"pid": launch.proc.pid, "error": reason, "crashes": crashes, "retry_in_s": delay}
        events.append(WorkerEvent(worker.key, "crashed", detail))
        if delay is None:
            self._fail(worker, reason, events, crashes=crashes)
        else:
            worker.state, worker.start_at, worker.restarts = "backoff", now + delay, worker.restarts + 1

    def _fail(self, worker: _Worker, reason: str, events: list[WorkerEvent], **detail: Any) -> None:
        worker.state, worker.ready_at, worker.last_error = "failed", None, reason
        events.append(WorkerEvent(worker.key, "failed", {"error": reason, "restarts": worker.restarts, **detail}))

    def _configure_knobs(self, worker: _Worker, launch: Launch, now: float) -> None:
        result = launch.configure_result
        if result is not None:
            # The sender thread writes the result once and starts no other until this one is consumed.
            launch.configure_result, launch.configuring = None, False
            self._configured(worker, launch, result, now)
        wanted = _knobs(worker.spec)
        changes = {name: value for name, value in wanted.items() if launch.knobs.get(name) != value}
        if not changes or launch.configuring or now < launch.configure_after or wanted == launch.refused_knobs:
            return
        launch.configuring = True
        # A thread, because the worker may be busy and reconcile must not wait on its socket.
        threading.Thread(target=send_configure, args=(launch, changes), daemon=True).start()

    def _configured(
        self, worker: _Worker, launch: Launch, result: tuple[dict[str, Any], str | None, bool], now: float
    ) -> None:
        knobs, error, transient = result
        if error is None:
            launch.knobs |= knobs
            return
        worker.last_error = f"configure failed: {error}"
        if transient:
            launch.configure_after = now + _CONFIGURE_RETRY_S
        else:
            launch.refused_knobs = _knobs(worker.spec)  # the same values would be refused again

    def _retire(self, worker: _Worker, reason: str, now: float) -> None:
        if worker.launch is not None:
            self._stop(worker.key, worker.launch, reason, now)
            worker.launch = None

    def _stop(self, key: WorkerKey, launch: Launch, reason: str | None, now: float) -> None:
        if launch.proc.poll() is None:
            # The worker itself gets SIGTERM so it can drain; SIGKILL later goes to its whole group.
            launch.proc.send_signal(signal.SIGTERM)
        self._stopping.append(_Stopping(key, launch, reason, kill_at=now + self.stop_grace_s))

    def _reap(self, now: float, events: list[WorkerEvent]) -> None:
        for stopping in list(self._stopping):
            proc = stopping.launch.proc
            if proc.poll() is not None:
                self._stopping.remove(stopping)
                if stopping.reason is not None:
                    detail = {"pid": proc.pid, "reason": stopping.reason, "exit": describe_exit(proc.returncode)}
                    events.append(WorkerEvent(stopping.key, "stopped", detail))
            elif now >= stopping.kill_at and not stopping.killed:
                kill_group(stopping.launch.proc)
                stopping.killed = True

    def _emit(self, events: list[WorkerEvent]) -> None:
        for event in events:
            try:
                self.on_event(event)
            except Exception:
                # Recording status is the caller's business; a failure there must not stop supervision.
                logger.exception("on_event failed for %s %s", event.kind, event.key)


def _public_state(worker: _Worker) -> WorkerState:
    launch = worker.launch
    return WorkerState(
        state=worker.state,
        pid=launch.proc.pid if launch is not None else None,
        socket_path=worker.spec.socket_path,
        ready_at=worker.ready_at,
        load_ms=worker.load_ms,
        memory_mb=worker.memory_mb,
        restarts=worker.restarts,
        last_error=worker.last_error,
    )


def _knobs(spec: WorkerSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in KNOBS}


def _needs_reload(old: WorkerSpec, new: WorkerSpec) -> bool:
    def without_knobs(spec: WorkerSpec) -> dict[str, Any]:
        return {name: value for name, value in asdict(spec).items() if name not in KNOBS}

    # `configure` can set a knob but not reset one to its default (None): that takes a fresh process.
    reset = any(getattr(new, name) is None and getattr(old, name) is not None for name in KNOBS)
    return reset or without_knobs(old) != without_knobs(new)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
