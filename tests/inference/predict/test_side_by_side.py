"""dispatch.map_side_by_side: how POST /api/v1/predict/batch runs its items (the live test is in test_serving_live)."""

import threading

import pytest

from core.logging import request_id_var
from inference.predict import dispatch

# The pool's threads close stale database connections after each item, as Django does after a request.
pytestmark = pytest.mark.django_db


def test_items_run_side_by_side_and_answer_in_order_in_the_callers_context():
    barrier = threading.Barrier(4, timeout=10)  # passes only when four items run at the same time

    def work(item):
        barrier.wait()
        return item * 10, request_id_var.get(), threading.current_thread().name

    token = request_id_var.set("req-7")
    try:
        results = dispatch.map_side_by_side(work, [1, 2, 3, 4])
    finally:
        request_id_var.reset(token)
    assert [result[0] for result in results] == [10, 20, 30, 40]
    assert {result[1] for result in results} == {"req-7"}
    assert all(result[2].startswith("predict-batch") for result in results)


def test_a_single_item_runs_in_the_calling_thread_and_errors_reach_the_caller():
    assert dispatch.map_side_by_side(lambda item: threading.current_thread().name, ["x"]) == [
        threading.current_thread().name]

    def fail_on_two(item):
        if item == 2:
            raise ValueError("two")
        return item

    with pytest.raises(ValueError, match="two"):
        dispatch.map_side_by_side(fail_on_two, [1, 2, 3])
