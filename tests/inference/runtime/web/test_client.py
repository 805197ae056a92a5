"""WorkerClient against real worker processes (toy runtime): replica choice, connection reuse, retries,
deadlines and the mapping of answers and failures to exceptions."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.runtime.web.client import DeadlineExceeded, QueueFull, WorkerClient, WorkerError, WorkerUnavailable
from tests.inference.runtime.toy_runtime import HANG, POISON
from tests.inference.runtime.worker.helpers import (
    computing,
    draining,
    predict_call,
    short_folder,
    spec_for,
    start_worker,
    toy_member,
    toy_worker,
    wait_until,
    worker_pair,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair():
    yield from worker_pair(batch_timeout_ms=0.0)


def test_calls_rotate_over_replicas_on_connections_each_thread_keeps(pair):
    paths = [worker.socket_path for worker in pair]
    client = WorkerClient()
    before = [worker.stats()["requests"] for worker in pair]
    answers = [predict_call(client, paths, [[1, 1, 1]]) for _ in range(6)]
    assert all(answer["predictions"] == [6.0] for answer in answers)
    assert [worker.stats()["requests"] - b for worker, b in zip(pair, before)] == [3, 3]
    connections = dict(client._local.state.connections)
    predict_call(client, paths, [[1, 1, 1]])
    assert client._local.state.connections == connections  # the same sockets, reused
    client.close()
    assert client._local.state.connections == {}


def test_threads_start_their_rotation_at_different_replicas(pair):
    paths = [worker.socket_path for worker in pair]
    client = WorkerClient()
    before = [worker.stats()["requests"] for worker in pair]
    with ThreadPoolExecutor(4) as pool:
        barrier = threading.Barrier(4)

        def first_call():
            barrier.wait()  # four distinct threads, each making its first call
            return predict_call(client, paths, [[0, 0, 1]])

        assert all(f.result()["ok"] for f in [pool.submit(first_call) for _ in range(4)])
    assert [worker.stats()["requests"] - b for worker, b in zip(pair, before)] == [2, 2]


def test_a_missing_replica_is_skipped_and_none_at_all_fails_fast(pair):
    client = WorkerClient()
    missing = str(short_folder() / "gone.sock")
    assert predict_call(client, [missing, pair[0].socket_path], [[1, 0, 0]])["predictions"] == [1.0]
    started = time.perf_counter()
    with pytest.raises(WorkerUnavailable):
        predict_call(client, [missing], [[1, 0, 0]])
    with pytest.raises(WorkerUnavailable):
        client.call([], {"op": "ping"}, deadline=time.time() + 1)
    assert time.perf_counter() - started < 0.5


def test_worker_errors_map_to_exceptions(pair):
    client = WorkerClient()
    paths = [pair[0].socket_path]
    with pytest.raises(WorkerError) as invalid:
        predict_call(client, paths, [[POISON, 0, 0]])
    assert (invalid.value.code, invalid.value.message) == ("invalid_input", "a poison row")
    with pytest.raises(WorkerError) as unsupported:
        predict_call(client, paths, [[1, 0, 0]], uncertainty={"samples": 3})
    assert unsupported.value.code == "unsupported"
    with pytest.raises(DeadlineExceeded):
        client.call(paths, {"op": "ping"}, deadline=time.time() - 1)
    assert client.call(paths, {"op": "ping"}, deadline=time.time() + 1)["ok"]  # the connection survived


def test_deadline_cuts_a_slow_call_short_and_the_connection_stays_in_step():
    worker = toy_worker(toy={"sleep_ms": 800})
    client = WorkerClient()
    try:
        started = time.perf_counter()
        with pytest.raises(DeadlineExceeded):
            predict_call(client, [worker.socket_path], [[1, 0, 0]], within=0.2)
        assert time.perf_counter() - started < 0.4
        # The late answer to the first call must not be taken for this one's.
        assert predict_call(client, [worker.socket_path], [[0, 0, 2]])["predictions"] == [6.0]
    finally:
        worker.stop()


def test_a_full_queue_raises_queue_full():
    worker = toy_worker(toy={"sleep_ms": 400}, max_batch_size=1, max_queue=1, batch_timeout_ms=0.0)
    client = WorkerClient()
    try:
        with ThreadPoolExecutor(2) as pool:
            pending = [pool.submit(predict_call, client, [worker.socket_path], [[1, 0, 0]])]
            wait_until(computing(worker, 0))
            pending.append(pool.submit(predict_call, client, [worker.socket_path], [[1, 0, 0]]))
            wait_until(lambda: worker.stats()["queue_depth"] == 1)
            with pytest.raises(QueueFull):
                predict_call(client, [worker.socket_path], [[1, 0, 0]])
            assert all(f.result()["ok"] for f in pending)
    finally:
        worker.stop()


def test_a_killed_worker_surfaces_as_unavailable_within_two_seconds():
    worker = toy_worker()
    client = WorkerClient()
    try:
        with ThreadPoolExecutor(1) as pool:
            hanging = pool.submit(predict_call, client, [worker.socket_path], [[HANG, 0, 0]], within=30.0)
            wait_until(computing(worker, 0))
            killed_at = time.perf_counter()
            worker.proc.send_signal(signal.SIGKILL)
            with pytest.raises(WorkerUnavailable):
                hanging.result(timeout=5)
            assert time.perf_counter() - killed_at < 2.0
        with pytest.raises(WorkerUnavailable):
            predict_call(client, [worker.socket_path], [[1, 0, 0]])
    finally:
        worker.stop()


def test_a_draining_replica_hands_the_request_to_the_next_one(pair):
    replica = toy_worker(toy={"sleep_ms": 800})
    client = WorkerClient()
    try:
        client.call([replica.socket_path], {"op": "ping"}, deadline=time.time() + 1)  # pools a connection
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(replica.call, "predict", [[1, 0, 0]])
            wait_until(computing(replica, 0))
            replica.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: draining(replica))
            before = pair[0].stats()["requests"]
            # This thread's second call starts at index 1: the draining replica, then the healthy one.
            answer = predict_call(client, [pair[0].socket_path, replica.socket_path], [[0, 1, 0]])
            assert answer["predictions"] == [2.0]
            assert pair[0].stats()["requests"] - before == 1
            assert busy.result()["ok"]
        with pytest.raises(WorkerUnavailable):
            predict_call(client, [replica.socket_path], [[1, 0, 0]])
    finally:
        replica.stop()


def test_a_pooled_connection_to_a_restarted_worker_is_replaced_transparently():
    folder = short_folder()
    spec = spec_for([toy_member(folder)], folder)
    client = WorkerClient()
    first = start_worker(spec)
    assert predict_call(client, [spec.socket_path], [[1, 0, 0]])["predictions"] == [1.0]
    first.stop()
    second = start_worker(spec, folder=folder)
    try:
        assert second.ready, second.event
        assert predict_call(client, [spec.socket_path], [[2, 0, 0]])["predictions"] == [2.0]
    finally:
        second.stop()


def _many(rows_per_message: list[list[list[float]]]) -> list[dict]:
    return [{"op": "predict", "inputs": rows, "params": {}} for rows in rows_per_message]


def test_call_many_answers_each_message_in_order_and_they_share_forward_passes():
    worker = toy_worker(toy={"sleep_ms": 50}, max_batch_size=64, batch_timeout_ms=0.0)
    client = WorkerClient()
    try:
        before = worker.stats()["batches"]
        answers = client.call_many([worker.socket_path], _many([[[i, 0, 0]] for i in range(20)]),
                                   deadline=time.time() + 5)
        assert [answer["predictions"] for answer in answers] == [[float(i)] for i in range(20)]
        # Written before any answer was read, the 20 reach the batcher together: one pass, two at most
        # if the socket split the frames (one call at a time, each would have had its own).
        assert worker.stats()["batches"] - before <= 2
        assert max(answer["batch_size"] for answer in answers) >= 10
        # One bad message fails alone.
        mixed = client.call_many([worker.socket_path], _many([[[1, 0, 0]], [[POISON, 0, 0]], [[1, 1, 1], [2, 2, 2]]]),
                                 deadline=time.time() + 5)
        assert mixed[0]["predictions"] == [1.0] and mixed[2]["predictions"] == [6.0, 12.0]
        assert isinstance(mixed[1], WorkerError) and mixed[1].code == "invalid_input"
        # The connection stays in step for the next call.
        assert predict_call(client, [worker.socket_path], [[0, 0, 3]])["predictions"] == [9.0]
    finally:
        worker.stop()


def test_call_many_spreads_messages_over_replicas(pair):
    paths = [worker.socket_path for worker in pair]
    client = WorkerClient()
    before = [worker.stats()["requests"] for worker in pair]
    answers = client.call_many(paths, _many([[[1, 0, 0]]] * 6), deadline=time.time() + 5)
    assert [answer["predictions"] for answer in answers] == [[1.0]] * 6
    assert [worker.stats()["requests"] - b for worker, b in zip(pair, before)] == [3, 3]


def test_call_many_turns_failures_into_one_exception_per_message():
    client = WorkerClient()
    missing = str(short_folder() / "gone.sock")
    answers = client.call_many([missing], _many([[[1, 0, 0]]] * 2), deadline=time.time() + 1)
    assert all(isinstance(answer, WorkerUnavailable) for answer in answers)
    assert all(isinstance(a, WorkerUnavailable) for a in client.call_many([], _many([[[1, 0, 0]]]), deadline=1e12))
    worker = toy_worker(toy={"sleep_ms": 800})
    try:
        started = time.perf_counter()
        late = client.call_many([worker.socket_path], _many([[[1, 0, 0]]] * 3), deadline=time.time() + 0.2)
        assert all(isinstance(answer, DeadlineExceeded) for answer in late)
        assert time.perf_counter() - started < 0.5
        # Late answers to those must not be taken for this call's.
        assert predict_call(client, [worker.socket_path], [[0, 0, 2]])["predictions"] == [6.0]
    finally:
        worker.stop()
