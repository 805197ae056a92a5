"""AsyncWorkerClient against real worker processes (toy runtime), on uvloop as under uvicorn: many requests
in flight on one connection, answers matched by id, and the blocking client's failure contract."""

import asyncio
import signal
import time

import pytest
import uvloop

from inference.runtime.web.aioclient import AsyncWorkerClient
from inference.runtime.web.client import DeadlineExceeded, QueueFull, WorkerError, WorkerUnavailable
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
    yield from worker_pair(batch_timeout_ms=5.0)


def test_many_requests_in_flight_share_one_connection_and_get_their_own_answers(pair):
    path = pair[0].socket_path

    async def scenario():
        client = AsyncWorkerClient()
        answers = await asyncio.gather(*(predict_call(client, [path], [[n, 0, 0]]) for n in range(40)))
        return answers, len(client._channels)

    answers, channels = uvloop.run(scenario())
    assert [answer["predictions"] for answer in answers] == [[float(n)] for n in range(40)]
    assert max(answer["batch_size"] for answer in answers) > 1  # they rode shared forward passes
    assert channels == 1


def test_calls_rotate_a_missing_replica_is_skipped_and_none_at_all_fails_fast(pair):
    paths = [worker.socket_path for worker in pair]
    missing = str(short_folder() / "gone.sock")

    async def scenario():
        client = AsyncWorkerClient()
        before = [worker.stats()["requests"] for worker in pair]
        for _ in range(4):
            await predict_call(client, paths, [[1, 1, 1]])
        rotated = [worker.stats()["requests"] - b for worker, b in zip(pair, before)]
        skipped = await predict_call(client, [missing, paths[0]], [[1, 0, 0]])
        started = time.perf_counter()
        failures = []
        nowhere = client.call([], {"op": "ping"}, deadline=time.time() + 1)
        for call in (predict_call(client, [missing], [[1, 0, 0]]), nowhere):
            try:
                await call
            except WorkerUnavailable as exc:
                failures.append(exc)
        return rotated, skipped, failures, time.perf_counter() - started

    rotated, skipped, failures, seconds = uvloop.run(scenario())
    assert rotated == [2, 2]
    assert skipped["predictions"] == [1.0]
    assert len(failures) == 2 and seconds < 0.5


def test_worker_errors_and_deadlines_map_to_the_blocking_clients_exceptions(pair):
    path = pair[0].socket_path

    async def scenario():
        client = AsyncWorkerClient()
        with pytest.raises(WorkerError) as invalid:
            await predict_call(client, [path], [[POISON, 0, 0]])
        with pytest.raises(DeadlineExceeded):
            await client.call([path], {"op": "ping"}, deadline=time.time() - 1)
        return invalid.value, await client.call([path], {"op": "ping"}, deadline=time.time() + 1)

    invalid, pong = uvloop.run(scenario())
    assert (invalid.code, invalid.message) == ("invalid_input", "a poison row")
    assert pong["ok"]


def test_a_deadline_cuts_a_slow_call_short_and_the_late_answer_is_dropped():
    worker = toy_worker(toy={"sleep_ms": 600}, batch_timeout_ms=0.0, max_batch_size=1)

    async def scenario():
        client = AsyncWorkerClient()
        started = time.perf_counter()
        with pytest.raises(DeadlineExceeded):
            await predict_call(client, [worker.socket_path], [[1, 0, 0]], within=0.2)
        cut_after = time.perf_counter() - started
        return cut_after, await predict_call(client, [worker.socket_path], [[0, 0, 2]])

    try:
        cut_after, answer = uvloop.run(scenario())
        assert cut_after < 0.4
        assert answer["predictions"] == [6.0]
    finally:
        worker.stop()


def test_a_full_queue_raises_queue_full():
    worker = toy_worker(toy={"sleep_ms": 400}, max_batch_size=1, max_queue=1, batch_timeout_ms=0.0)

    async def scenario():
        client = AsyncWorkerClient()
        first = asyncio.ensure_future(predict_call(client, [worker.socket_path], [[1, 0, 0]]))
        await asyncio.to_thread(wait_until, computing(worker, 0))
        second = asyncio.ensure_future(predict_call(client, [worker.socket_path], [[1, 0, 0]]))
        await asyncio.to_thread(wait_until, lambda: worker.stats()["queue_depth"] == 1)
        with pytest.raises(QueueFull):
            await predict_call(client, [worker.socket_path], [[1, 0, 0]])
        return await first, await second

    try:
        assert all(answer["ok"] for answer in uvloop.run(scenario()))
    finally:
        worker.stop()


def test_a_killed_worker_fails_its_callers_within_two_seconds():
    worker = toy_worker()

    async def scenario():
        client = AsyncWorkerClient()
        hanging = asyncio.ensure_future(predict_call(client, [worker.socket_path], [[HANG, 0, 0]], within=30.0))
        await asyncio.to_thread(wait_until, computing(worker, 0))
        killed_at = time.perf_counter()
        worker.proc.send_signal(signal.SIGKILL)
        with pytest.raises(WorkerUnavailable):
            await hanging
        noticed_after = time.perf_counter() - killed_at
        with pytest.raises(WorkerUnavailable):
            await predict_call(client, [worker.socket_path], [[1, 0, 0]])
        return noticed_after

    try:
        assert uvloop.run(scenario()) < 2.0
    finally:
        worker.stop()


def test_a_draining_replica_hands_the_request_to_the_next_one(pair):
    replica = toy_worker(toy={"sleep_ms": 800})

    async def scenario():
        client = AsyncWorkerClient()
        await client.call([replica.socket_path], {"op": "ping"}, deadline=time.time() + 1)  # opens the channel
        busy = asyncio.ensure_future(predict_call(client, [replica.socket_path], [[1, 0, 0]]))
        await asyncio.to_thread(wait_until, computing(replica, 0))
        replica.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_until, lambda: draining(replica))
        before = pair[0].stats()["requests"]
        client._turn = 1  # start at the draining replica
        answer = await predict_call(client, [pair[0].socket_path, replica.socket_path], [[0, 1, 0]])
        return answer, pair[0].stats()["requests"] - before, await busy

    try:
        answer, served_by_healthy, busy = uvloop.run(scenario())
        assert answer["predictions"] == [2.0]
        assert served_by_healthy == 1
        assert busy["ok"]  # the draining replica still finished what it had
    finally:
        replica.stop()


def test_a_channel_to_a_restarted_worker_is_replaced_transparently():
    folder = short_folder()
    spec = spec_for([toy_member(folder)], folder)

    async def scenario(first_stopped, second_started):
        client = AsyncWorkerClient()
        one = await predict_call(client, [spec.socket_path], [[1, 0, 0]])
        await asyncio.to_thread(first_stopped)
        second = await asyncio.to_thread(second_started)
        two = await predict_call(client, [spec.socket_path], [[2, 0, 0]])
        return one, two, second

    first = start_worker(spec)
    workers = []
    try:
        one, two, second = uvloop.run(scenario(first.stop, lambda: workers.append(start_worker(spec, folder=folder))
                                               or workers[-1]))
        assert second.ready, second.event
        assert (one["predictions"], two["predictions"]) == ([1.0], [2.0])
    finally:
        for worker in workers:
            worker.stop()


def test_a_request_lost_before_its_write_goes_to_the_next_replica(pair):
    """Frames leave at the end of the loop pass (protocol.Outbox); a connection lost before then never carried
    them, so they are NotDelivered and tried on another replica, unlike a request already written."""
    first, second = (worker.socket_path for worker in pair)

    async def scenario():
        client = AsyncWorkerClient()
        await client.call([first], {"op": "ping"}, deadline=time.time() + 1)  # opens the channel to `first`
        channel = client._channels[first]
        before = [worker.stats()["requests"] for worker in pair]
        client._turn = 0  # the next call starts at `first`
        call = asyncio.ensure_future(predict_call(client, [first, second], [[0, 0, 1]]))
        await asyncio.sleep(0)  # the call has put its frame; the write is due at the end of the next pass
        channel.connection_lost(None)
        answer = await call
        return answer, [worker.stats()["requests"] - b for worker, b in zip(pair, before)]

    answer, served = uvloop.run(scenario())
    assert answer["predictions"] == [3.0]
    assert served == [0, 1]
