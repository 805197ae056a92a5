import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from inference.runtime.contract.protocol import MemberSpec, WorkerSpec, encode, recv_message
from inference.runtime.supervisor.launch import describe_exit, scrub
from inference.runtime.supervisor.manager import ProcessManager, WorkerEvent
from tests.paths import REPO_ROOT as REPO

FAKE_WORKER = [sys.executable, str(REPO / "tests/inference/runtime/fake_worker.py")]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[float, WorkerEvent]] = []

    def __call__(self, event: WorkerEvent) -> None:
        self.events.append((time.monotonic(), event))

    def of(self, key, kind: str | None = None) -> list[WorkerEvent]:
        return [e for _, e in self.events if e.key == key and kind in (None, e.kind)]


@pytest.fixture
def socket_dir():
    # Short on purpose: a Unix socket path must fit in 108 bytes, which pytest's tmp_path may not.
    folder = Path(tempfile.mkdtemp(prefix="sv-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_manager(recorder):
    managers: list[ProcessManager] = []

    def make(**overrides) -> ProcessManager:
        options = dict(load_timeout_s=5, backoff=(0.05, 0.1), max_crashes=3, crash_window_s=30, stop_grace_s=2)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
        manager = ProcessManager(worker_cmd=FAKE_WORKER, cwd=REPO, env=env, on_event=recorder, **options | overrides)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(grace_s=2)


def _spec(socket_dir: Path, endpoint: str = "iris", deployment_id: int = 1, replica: int = 0, **fields) -> WorkerSpec:
    member = MemberSpec(path="/models/iris.skops", format="skops", sha256="a" * 64)
    return WorkerSpec(
        socket_path=str(socket_dir / f"{deployment_id}-{replica}.sock"),
        deployment_id=deployment_id,
        endpoint=endpoint,
        generation=1,
        replica=replica,
        task="classification",
        members=[member],
        **fields,
    )


def _key(spec: WorkerSpec) -> tuple[int, int, int]:
    return (spec.deployment_id, spec.generation, spec.replica)


def _until(manager: ProcessManager, desired: dict, condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        manager.reconcile(desired)
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met; snapshot: {manager.snapshot()}")


def _state(manager: ProcessManager, key) -> str:
    return manager.snapshot()[key].state


def _ready(manager: ProcessManager, desired: dict) -> None:
    _until(manager, desired, lambda: all(_state(manager, key) == "ready" for key in desired))


def _ping(socket_path: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(socket_path)
        sock.sendall(encode({"id": "t", "op": "ping", "deadline": time.time() + 2, "inputs": [], "params": {}}))
        return recv_message(sock)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_starts_and_reports_ready(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir)
    desired = {_key(spec): spec}

    _ready(manager, desired)

    state = manager.snapshot()[_key(spec)]
    (event,) = recorder.of(_key(spec), "ready")
    assert event.detail["pid"] == state.pid and event.detail["socket_path"] == spec.socket_path
    assert (state.load_ms, state.memory_mb, state.restarts, state.last_error) == (12.5, 64.0, 0, None)
    assert state.ready_at is not None
    assert _ping(spec.socket_path) == {"id": "t", "ok": True}


def test_reconcile_returns_at_once_while_a_worker_loads(make_manager, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir, "slow-load")

    started = time.monotonic()
    for _ in range(5):
        manager.reconcile({_key(spec): spec})

    assert time.monotonic() - started < 0.5
    assert _state(manager, _key(spec)) == "starting"


def test_a_load_failure_ends_failed_with_the_workers_reason(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir, "fail-load")
    desired = {_key(spec): spec}

    _until(manager, desired, lambda: _state(manager, _key(spec)) == "failed")
    for _ in range(10):
        manager.reconcile(desired)
        time.sleep(0.02)

    state = manager.snapshot()[_key(spec)]
    assert (state.state, state.pid, state.restarts) == ("failed", None, 0)
    assert state.last_error == "could not load the model: bad weights"
    assert [e.detail["error"] for e in recorder.of(_key(spec), "failed")] == [state.last_error]
    assert recorder.of(_key(spec), "restarting") == []


def test_a_worker_that_never_loads_fails_after_the_load_timeout(make_manager, recorder, socket_dir):
    manager = make_manager(load_timeout_s=0.3)
    spec = _spec(socket_dir, "slow-load")
    desired = {_key(spec): spec}
    manager.reconcile(desired)
    pid = manager.snapshot()[_key(spec)].pid

    _until(manager, desired, lambda: _state(manager, _key(spec)) == "failed")
    _until(manager, desired, lambda: not _alive(pid))

    assert manager.snapshot()[_key(spec)].last_error == "the model did not load within 0.3s"


def test_an_exit_before_announcing_is_reported_with_its_scrubbed_last_stderr_line(make_manager, socket_dir):
    manager = make_manager(max_crashes=1)
    spec = _spec(socket_dir, "exit-early")
    desired = {_key(spec): spec}

    _until(manager, desired, lambda: _state(manager, _key(spec)) == "failed")

    assert manager.snapshot()[_key(spec)].last_error == "worker exited with code 2: OSError: cannot open <path>"


def test_a_crashed_ready_worker_is_restarted_after_the_backoff(make_manager, recorder, socket_dir):
    manager = make_manager(backoff=(0.3, 1))
    spec = _spec(socket_dir)
    desired = {_key(spec): spec}
    _ready(manager, desired)
    first_pid = manager.snapshot()[_key(spec)].pid

    os.kill(first_pid, signal.SIGKILL)
    _until(manager, desired, lambda: len(recorder.of(_key(spec), "ready")) == 2)

    state = manager.snapshot()[_key(spec)]
    assert state.state == "ready" and state.pid != first_pid and state.restarts == 1
    assert state.last_error == "worker exited with signal SIGKILL"
    times = {event.kind: at for at, event in recorder.events if event.kind in ("crashed", "restarting")}
    assert times["restarting"] - times["crashed"] >= 0.3
    (crashed,) = recorder.of(_key(spec), "crashed")
    assert crashed.detail["retry_in_s"] == 0.3 and crashed.detail["pid"] == first_pid


def test_a_crash_loop_ends_failed_while_another_worker_stays_ready_and_untouched(make_manager, recorder, socket_dir):
    manager = make_manager()
    healthy, looping = _spec(socket_dir, "iris", deployment_id=1), _spec(socket_dir, "crash-loop", deployment_id=2)
    desired = {_key(healthy): healthy, _key(looping): looping}
    _until(manager, desired, lambda: _state(manager, _key(healthy)) == "ready")
    healthy_pid = manager.snapshot()[_key(healthy)].pid

    _until(manager, desired, lambda: _state(manager, _key(looping)) == "failed")
    for _ in range(10):
        manager.reconcile(desired)
        time.sleep(0.02)

    failed = manager.snapshot()[_key(looping)]
    assert (failed.state, failed.restarts, failed.pid) == ("failed", 2, None)
    assert failed.last_error == "worker exited with code 3: RuntimeError: CUDA error in <path>"
    assert len(recorder.of(_key(looping), "crashed")) == 3
    assert recorder.of(_key(looping), "failed")[0].detail["crashes"] == 3
    assert manager.snapshot()[_key(healthy)].pid == healthy_pid
    assert [e.kind for e in recorder.of(_key(healthy))] == ["ready"]


def test_a_failed_worker_starts_afresh_when_its_spec_changes(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir, "fail-load")
    _until(manager, {_key(spec): spec}, lambda: _state(manager, _key(spec)) == "failed")

    fixed = replace(spec, endpoint="iris", members=[replace(spec.members[0], sha256="b" * 64)])
    _ready(manager, {_key(fixed): fixed})

    assert manager.snapshot()[_key(fixed)].restarts == 0


def test_removing_a_key_stops_that_worker_with_sigterm_and_leaves_the_others(make_manager, recorder, socket_dir):
    manager = make_manager()
    kept, removed = _spec(socket_dir, deployment_id=1), _spec(socket_dir, deployment_id=2)
    _ready(manager, {_key(kept): kept, _key(removed): removed})
    kept_pid, removed_pid = (manager.snapshot()[_key(s)].pid for s in (kept, removed))

    _until(manager, {_key(kept): kept}, lambda: recorder.of(_key(removed), "stopped"))

    (stopped,) = recorder.of(_key(removed), "stopped")
    assert stopped.detail == {"pid": removed_pid, "reason": "removed", "exit": "worker exited with code 0"}
    assert not _alive(removed_pid)
    assert set(manager.snapshot()) == {_key(kept)}
    assert manager.snapshot()[_key(kept)].pid == kept_pid and _ping(kept.socket_path)["ok"]


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace_period(make_manager, recorder, socket_dir):
    manager = make_manager(stop_grace_s=0.3)
    spec = _spec(socket_dir, "stubborn")
    _ready(manager, {_key(spec): spec})

    started = time.monotonic()
    manager.reconcile({})
    assert time.monotonic() - started < 0.1
    _until(manager, {}, lambda: recorder.of(_key(spec), "stopped"))

    assert recorder.of(_key(spec), "stopped")[0].detail["exit"] == "worker exited with signal SIGKILL"
    assert time.monotonic() - started >= 0.3


def test_a_knob_change_is_applied_with_configure_without_a_restart(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir)
    _ready(manager, {_key(spec): spec})
    pid = manager.snapshot()[_key(spec)].pid

    tuned = replace(spec, max_batch_size=8, threads=2)
    _until(
        manager,
        {_key(tuned): tuned},
        lambda: manager.collect_stats()[_key(spec)]["stats"]["max_batch_size"] == 8,
    )

    stats = manager.collect_stats()[_key(spec)]["stats"]
    assert (stats["pid"], stats["threads"], stats["configures"]) == (pid, 2, 1)
    assert manager.snapshot()[_key(spec)].pid == pid
    assert [e.kind for e in recorder.of(_key(spec))] == ["ready"]


def test_resetting_a_knob_to_its_default_needs_a_fresh_worker(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir, threads=2)
    _ready(manager, {_key(spec): spec})

    reset = replace(spec, threads=None)
    _until(manager, {_key(spec): reset}, lambda: len(recorder.of(_key(spec), "ready")) == 2)

    assert recorder.of(_key(spec), "stopped")[0].detail["reason"] == "replaced"


def test_a_knob_value_the_worker_refuses_is_reported_and_not_retried(make_manager, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir)
    _ready(manager, {_key(spec): spec})

    refused = replace(spec, max_queue=0)
    _until(manager, {_key(spec): refused}, lambda: manager.snapshot()[_key(spec)].last_error is not None)
    for _ in range(5):
        manager.reconcile({_key(spec): refused})
        time.sleep(0.02)

    assert manager.snapshot()[_key(spec)].last_error == "configure failed: max_queue must be positive"
    assert manager.collect_stats()[_key(spec)]["stats"]["configures"] == 0


def test_a_spec_change_replaces_the_worker(make_manager, recorder, socket_dir):
    manager = make_manager()
    spec = _spec(socket_dir)
    _ready(manager, {_key(spec): spec})
    old_pid = manager.snapshot()[_key(spec)].pid

    changed = replace(spec, members=[replace(spec.members[0], sha256="c" * 64)])
    _until(manager, {_key(spec): changed}, lambda: len(recorder.of(_key(spec), "ready")) == 2)

    assert manager.snapshot()[_key(spec)].pid != old_pid
    assert recorder.of(_key(spec), "stopped")[0].detail["reason"] == "replaced"
    assert not _alive(old_pid)


def test_stats_report_a_worker_that_does_not_answer_without_failing(make_manager, socket_dir):
    manager = make_manager()
    quiet, chatty = _spec(socket_dir, deployment_id=1), _spec(socket_dir, deployment_id=2)
    _ready(manager, {_key(quiet): quiet, _key(chatty): chatty})
    quiet_pid = manager.snapshot()[_key(quiet)].pid

    os.kill(quiet_pid, signal.SIGSTOP)
    try:
        stats = manager.collect_stats(timeout_s=0.2)
    finally:
        os.kill(quiet_pid, signal.SIGCONT)

    assert stats[_key(quiet)] == {"ok": False, "error": {"code": "unreachable", "message": "the worker timed out"}}
    assert stats[_key(chatty)]["ok"] is True
    assert manager.snapshot()[_key(chatty)].memory_mb == 70.0  # refreshed from the stats answer


def test_shutdown_drains_every_worker(make_manager, recorder, socket_dir):
    manager = make_manager()
    specs = [_spec(socket_dir, deployment_id=n) for n in (1, 2, 3)]
    desired = {_key(spec): spec for spec in specs}
    _ready(manager, desired)
    pids = [state.pid for state in manager.snapshot().values()]

    manager.shutdown(grace_s=5)
    manager.reconcile(desired)

    stopped = [e for _, e in recorder.events if e.kind == "stopped"]
    assert sorted(e.detail["pid"] for e in stopped) == sorted(pids)
    assert {(e.detail["reason"], e.detail["exit"]) for e in stopped} == {("shutdown", "worker exited with code 0")}
    assert manager.snapshot() == {} and not any(_alive(pid) for pid in pids)


def test_a_failing_event_handler_does_not_stop_supervision(socket_dir):
    def broken(event):
        raise RuntimeError("status store down")

    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    manager = ProcessManager(worker_cmd=FAKE_WORKER, cwd=REPO, env=env, on_event=broken)
    spec = _spec(socket_dir)
    try:
        _ready(manager, {_key(spec): spec})
    finally:
        manager.shutdown(grace_s=2)


def test_exit_descriptions_and_path_scrubbing():
    assert describe_exit(3) == "worker exited with code 3"
    assert describe_exit(-signal.SIGSEGV) == "worker exited with signal SIGSEGV"
    assert scrub('File "/srv/app/x.py", line 3, in ./load and ~/m.pt') == 'File "<path>", line 3, in <path> and <path>'
    assert scrub("shape 3/4 from https://example.org/a") == "shape 3/4 from https://example.org/a"
