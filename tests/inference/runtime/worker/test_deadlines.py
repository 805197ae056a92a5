"""Deadlines in the worker process (real processes, a toy model slow per row): a request whose deadline passes
in the queue leaves it then, and a long request runs in passes that take turns with short requests and stop
once its deadline has passed."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.inference.runtime.toy_runtime import toy_scores
from tests.inference.runtime.worker.helpers import (
    X,
    computing,
    short_folder,
    spec_for,
    start_worker,
    toy_member,
    wait_until,
)

pytestmark = pytest.mark.slow

ROW_MS = 1.0  # the toy model's time per row (per row and sample for Monte Carlo dropout)
DEADLINE_S = 1.0  # the timeout_ms of 1000
LONG = {  # each would take 3 s in one pass: three times its deadline
    "rows": {"rows": 3000, "params": None},
    "mc dropout": {"rows": 300, "params": {"uncertainty": {"samples": 10}}},
}


@pytest.fixture(scope="module")
def per_row():
    folder = short_folder()
    member = toy_member(folder, row_ms=ROW_MS, dropout=True)
    spec = spec_for([member], folder, max_batch_size=32, max_queue=4, batch_timeout_ms=2.0)
    worker = start_worker(spec, folder=folder)
    assert worker.ready, worker.event
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def one_second():
    """One row per forward pass, a second each, at most two queued."""
    folder = short_folder()
    spec = spec_for([toy_member(folder, sleep_ms=1000)], folder, max_batch_size=1, max_queue=2, batch_timeout_ms=0.0)
    worker = start_worker(spec, folder=folder)
    assert worker.ready, worker.event
    yield worker
    worker.stop()


def _timed(worker, rows, *, params=None, within=DEADLINE_S):
    started = time.perf_counter()
    answer = worker.call("predict", rows, params, deadline=time.time() + within)
    return answer, time.perf_counter() - started


@pytest.mark.parametrize("kind", sorted(LONG))
def test_a_long_request_past_its_deadline_does_not_hold_back_short_ones(per_row, kind):
    long = LONG[kind]
    rows = [[float(i % 7), 1.0, 0.0] for i in range(long["rows"])]
    before = per_row.stats()
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(_timed, per_row, rows, params=long["params"])
        wait_until(computing(per_row, before["batches"]))
        # One-row requests sent one after another while the long one computes, each with the same deadline.
        short = [_timed(per_row, [[1.0, 2.0, 3.0]]) for _ in range(5)]
        answer, waited = running.result()
    assert answer["error"]["code"] == "deadline_exceeded"
    for reply, took in short:
        assert reply["ok"], reply
        assert reply["predictions"] == [14.0]
        # Within its own deadline (one pass of the long request, ~50 ms, on an idle machine).
        assert took < DEADLINE_S, f"a one-row request waited {took:.3f} s behind the long one"
    wait_until(lambda: per_row.stats()["queue_depth"] == 0 and per_row.call("ping")["ok"])
    settled = per_row.stats()
    time.sleep(0.3)
    after = per_row.stats()
    assert after["batches"] == settled["batches"], "the long request kept computing after its deadline"
    assert after["abandoned"] - before["abandoned"] == 1
    assert after["batch_size_sum"] - before["batch_size_sum"] < long["rows"]  # it stopped part way


def test_a_long_request_in_passes_answers_as_one_pass_would(per_row):
    rows = X[:100, :3].tolist()
    before = per_row.stats()["batches"]
    answer = per_row.call("predict", rows)
    assert answer["ok"], answer
    assert per_row.stats()["batches"] - before >= 2  # more rows than max_batch_size: several passes
    np.testing.assert_allclose(answer["predictions"], toy_scores(rows, [1, 2, 3]), rtol=1e-12)
    uncertain = per_row.call("predict", rows, {"uncertainty": {"samples": 2}})
    assert uncertain["ok"], uncertain
    np.testing.assert_allclose(uncertain["predictions"], toy_scores(rows, [1, 2, 3]), rtol=1e-12)
    assert uncertain["std"] == [0.0] * len(rows)


def test_mc_dropout_in_passes_answers_every_row(torch_worker):
    rows = X[:300].tolist()
    before = torch_worker.stats()["batches"]
    answer = torch_worker.call("predict", rows, {"uncertainty": {"samples": 20}})
    assert answer["ok"], answer
    assert torch_worker.stats()["batches"] - before >= 2
    assert len(answer["predictions"]) == len(answer["probabilities"]) == len(answer["std"]) == len(rows)
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == np.array(answer["std"]).shape == (len(rows), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert answer["predictions"] == [answer["classes"][i] for i in probabilities.argmax(axis=1)]


def test_requests_whose_deadline_passes_in_the_queue_leave_it_then(one_second):
    before = one_second.stats()
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(one_second.call, "predict", [[1.0, 0.0, 0.0]])
        wait_until(computing(one_second, before["batches"]))
        late = [pool.submit(one_second.call, "predict", [[2.0, 0.0, 0.0]], deadline=time.time() + 0.2)
                for _ in range(2)]
        wait_until(lambda: all(future.done() for future in late), timeout=5.0)
        # Answered while the first request still computes: they left the queue at their deadline.
        assert not running.done()
        stats = one_second.stats()
        assert stats["expired"] - before["expired"] == 2
        assert stats["queue_depth"] == 0
        # Their places are free again: a new request is queued, not refused queue_full.
        queued = pool.submit(one_second.call, "predict", [[3.0, 0.0, 0.0]])
        assert running.result()["ok"] and queued.result()["ok"]
    assert [future.result()["error"]["code"] for future in late] == ["deadline_exceeded"] * 2
    assert one_second.stats()["batches"] - before["batches"] == 2  # the expired requests never reached the model
