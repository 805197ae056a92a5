"""The model worker process, driven through its socket: real processes, a toy runtime for the batching
and failure paths, real skops and TorchScript artifacts for uncertainty, explanations and ensembles."""

import json
import os
import signal
import socket
import stat
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inference.runtime.contract.protocol import encode
from inference.runtime.worker import server
from tests.inference.runtime.toy_runtime import POISON, toy_scores
from tests.inference.runtime.worker.helpers import (
    X,
    batch_records,
    computing,
    draining,
    in_parallel,
    in_process_skops,
    raw_frame,
    short_folder,
    spec_for,
    start_worker,
    toy_member,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy():
    folder = short_folder()
    record = folder / "batches.log"
    spec = spec_for(
        [toy_member(folder, sleep_ms=30, record=str(record))], folder, batch_timeout_ms=20.0, max_batch_size=64
    )
    worker = start_worker(spec, folder=folder)
    assert worker.ready, worker.event
    worker.record = record
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def slow():
    """One row per forward pass, 300 ms each, at most two queued."""
    folder = short_folder()
    spec = spec_for([toy_member(folder, sleep_ms=300)], folder, max_batch_size=1, max_queue=2, batch_timeout_ms=0.0)
    worker = start_worker(spec, folder=folder)
    assert worker.ready, worker.event
    yield worker
    worker.stop()


def _loaded_libtorch(worker) -> bool:
    with open(f"/proc/{worker.proc.pid}/maps") as maps:
        return any("libtorch" in line for line in maps)


def test_skops_workers_never_load_torch_and_torch_workers_do(sklearn_worker, torch_worker):
    # skops would pull torch in through scikit-learn's array API shim: ~300 MB for nothing.
    assert sklearn_worker.call("predict", X[:2].tolist())["ok"]
    assert not _loaded_libtorch(sklearn_worker)
    assert _loaded_libtorch(torch_worker)


def test_it_prints_one_ready_line_then_serves_predictions(toy):
    assert set(toy.event) == {"event", "load_ms", "memory_mb", "pid"}
    assert toy.event["pid"] == toy.proc.pid and toy.event["memory_mb"] > 0
    answer = toy.call("predict", [[1, 2, 3], [0, 0, 1]])
    assert answer["ok"] and answer["id"] == "t"
    assert answer["predictions"] == [14.0, 3.0]
    assert answer["probabilities"] is None and answer["std"] is None
    assert answer["batch_size"] == 2 and answer["compute_ms"] >= 30


def test_socket_is_private_to_the_platform_user(toy):
    assert stat.S_IMODE(os.stat(toy.socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(toy.socket_path)).st_mode) == 0o700


def test_concurrent_requests_ride_one_batch_and_match_unbatched_results(sklearn_worker):
    rows = [[float(v) for v in row] for row in X[:24]]
    answers = in_parallel([lambda row=row: sklearn_worker.call("predict", [row]) for row in rows])
    assert max(answer["batch_size"] for answer in answers) > 1
    alone = in_process_skops(sklearn_worker.path)
    for row, answer in zip(rows, answers):
        expected = alone.predict([row])
        assert answer["predictions"] == expected.predictions
        np.testing.assert_allclose(answer["probabilities"], expected.probabilities, rtol=1e-12)
        assert answer["classes"] == [0, 1]


def test_a_bad_row_fails_only_its_own_request(toy):
    seen = len(batch_records(toy.record))
    good = [[float(i), 1.0, 1.0] for i in range(6)]
    calls = [lambda row=row: toy.call("predict", [row]) for row in good]
    calls.append(lambda: toy.call("predict", [[POISON, 0.0, 0.0]]))
    answers = in_parallel(calls)
    for row, answer in zip(good, answers):
        assert answer["ok"], answer
        assert answer["predictions"] == toy_scores([row], [1, 2, 3]).tolist()
    assert answers[-1]["error"] == {"code": "invalid_input", "message": "a poison row"}
    poisoned_batches = [size for size, poison in batch_records(toy.record)[seen:] if poison]
    assert max(poisoned_batches) > 1  # it did ride a shared batch before being isolated
    assert toy.call("ping")["ok"]


def test_requests_past_their_deadline_are_answered_without_running(slow, toy):
    assert toy.call("predict", [[1, 2, 3]], deadline=time.time() - 1)["error"]["code"] == "deadline_exceeded"
    before = slow.stats()["batches"]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(slow.call, "predict", [[1, 0, 0]])
        wait_until(computing(slow, before))
        late = pool.submit(slow.call, "predict", [[2, 0, 0]], deadline=time.time() + 0.1)
        assert first.result()["ok"]
        assert late.result()["error"]["code"] == "deadline_exceeded"
    assert slow.stats()["batches"] - before == 1  # the late request never reached the model


def test_a_full_queue_answers_queue_full_at_once(slow):
    before = slow.stats()["batches"]
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(slow.call, "predict", [[1, 0, 0]])
        wait_until(computing(slow, before))
        queued = [pool.submit(slow.call, "predict", [[2, 0, 0]]) for _ in range(2)]
        wait_until(lambda: slow.stats()["queue_depth"] == 2)
        started = time.perf_counter()
        refused = slow.call("predict", [[3, 0, 0]])
        assert time.perf_counter() - started < 0.2
        assert refused["error"]["code"] == "queue_full"
        assert running.result()["ok"] and all(f.result()["ok"] for f in queued)


def test_stats_count_model_requests_but_not_health_checks(toy):
    before = toy.stats()
    toy.call("predict", [[1, 2, 3]])
    toy.call("predict", [[1, 2, 3], [3, 2, 1]])
    toy.call("predict", "not rows")
    toy.call("ping")
    after = toy.stats()
    assert after["requests"] - before["requests"] == 3
    assert after["errors"] - before["errors"] == 1
    assert after["rows"] - before["rows"] == 3
    assert after["batches"] - before["batches"] == 2
    assert after["batch_size_sum"] - before["batch_size_sum"] == 3
    assert after["queue_depth"] == 0 and after["pid"] == toy.proc.pid
    assert after["last_request_at"] > (before["last_request_at"] or 0) and after["memory_mb"] > 0
    assert after["started_at"] < after["last_request_at"] and after["load_ms"] == toy.event["load_ms"]


def test_configure_changes_batching_at_runtime_and_refuses_bad_values(toy):
    assert toy.call("configure", params={"max_batch_size": 0})["error"]["code"] == "bad_request"
    assert toy.call("configure", params={"max_queue": True})["error"]["code"] == "bad_request"
    assert toy.call("configure", params={"bogus": 1})["error"]["code"] == "bad_request"
    answer = toy.call("configure", params={"max_batch_size": 1, "threads": 1})
    assert answer["config"] == {"max_batch_size": 1, "batch_timeout_ms": 20.0, "max_queue": 256, "threads": 1}
    try:
        answers = in_parallel([lambda i=i: toy.call("predict", [[i, 0, 0]]) for i in range(6)])
        assert {a["batch_size"] for a in answers} == {1}
    finally:
        toy.call("configure", params={"max_batch_size": 64})


def test_malformed_frames_get_bad_request_and_the_worker_carries_on(toy):
    body = b"{not json"
    assert raw_frame(toy.socket_path, struct.pack(">I", len(body)) + body)["error"]["code"] == "bad_request"
    assert raw_frame(toy.socket_path, encode({"op": "predict"}))["error"]["code"] == "bad_request"
    assert toy.call("teleport")["error"]["code"] == "bad_request"
    assert toy.call("predict", [[1, 2, 3]], params={"uncertainty": {"samples": 0}})["error"]["code"] == "bad_request"
    # A frame too big to read: the framing is lost, so the worker answers once and hangs up.
    oversized = raw_frame(toy.socket_path, struct.pack(">I", 2**31))
    assert oversized["error"]["code"] == "bad_request"
    # Wrong width is the model refusing the data; inf cannot travel as JSON.
    assert toy.call("predict", [[1, 2]])["error"]["code"] == "invalid_input"
    assert toy.call("predict", [[1e308, 1e308, 0]])["error"]["code"] == "model_error"
    assert toy.call("ping") == {"id": "t", "ok": True}


def test_checksum_mismatch_fails_the_load_without_showing_paths():
    folder = short_folder()
    toy = toy_member(folder)
    toy.sha256 = "0" * 64
    worker = start_worker(spec_for([toy], folder))
    assert worker.event["event"] == "failed"
    assert "sha256 mismatch" in worker.event["error"]
    assert worker.proc.wait(10) == 1
    assert str(folder) not in worker.event["error"]
    assert not os.path.exists(worker.socket_path)


def test_load_errors_are_reported_without_paths():
    folder = short_folder()
    worker = start_worker(spec_for([toy_member(folder, fail_load=f"cannot read {folder}/toy.json")], folder))
    assert worker.event == {"event": "failed", "error": "cannot read <artifact>"}
    assert worker.proc.wait(10) == 1


def test_test_runtimes_are_refused_without_the_test_hook_variable():
    folder = short_folder()
    worker = start_worker(spec_for([toy_member(folder)], folder), hooks=False)
    assert worker.event["event"] == "failed" and "no runtime serves" in worker.event["error"]


def test_sigterm_finishes_in_flight_work_refuses_new_work_and_exits_zero():
    folder = short_folder()
    stale = socket.socket(socket.AF_UNIX)  # a socket file left behind by a dead worker
    (folder / "sockets").mkdir(mode=0o700)
    stale.bind(str(folder / "sockets" / "w.sock"))
    stale.close()
    # The pass outlasts the steps below by a wide margin even on a loaded machine: once it ends, the drain
    # closes the idle connection and the late request could no longer be sent.
    worker = start_worker(spec_for([toy_member(folder, sleep_ms=1500)], folder), folder=folder)
    assert worker.ready, worker.event
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(worker.socket_path)  # a pooled connection from a web thread
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(worker.call, "predict", [[1, 1, 1]])
            wait_until(computing(worker, 0))
            started = time.perf_counter()
            worker.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: draining(worker))
            idle.sendall(encode({"id": "late", "op": "predict", "inputs": [[1, 1, 1]], "deadline": time.time() + 5}))
            refused = json.loads(idle.recv(65536)[4:])
            assert refused["error"]["code"] == "draining"
            assert in_flight.result()["predictions"] == [6.0]
        assert worker.proc.wait(5) == 0
        assert time.perf_counter() - started < server.DRAIN_GRACE_S - 1  # done when the work is, not at the grace
    worker.stop()
