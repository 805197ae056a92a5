"""core.pools.ProcessLocalPool: one executor per process, a working one in a forked child."""

import os

from core.pools import ProcessLocalPool


def test_a_process_reuses_its_executor_until_it_is_detached():
    pool = ProcessLocalPool(2, "test-pool")
    first = pool.get()
    assert pool.get() is first
    assert first.submit(lambda: 21 * 2).result(timeout=5) == 42
    assert pool.detach() is first
    assert pool.detach() is None
    assert pool.get() is not first
    first.shutdown()


def test_a_forked_child_gets_an_executor_of_its_own_that_runs_work():
    pool = ProcessLocalPool(2, "test-pool")
    inherited = pool.get()
    inherited.submit(lambda: None).result(timeout=5)  # the parent's threads exist
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, running none of the parent's cleanup
        fresh = pool.get()
        answer = fresh.submit(lambda: "ran").result(timeout=5)
        os.write(write_end, f"{fresh is not inherited} {answer}".encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100).decode() == "True ran"
    os.close(read_end)
    assert pool.get() is inherited
