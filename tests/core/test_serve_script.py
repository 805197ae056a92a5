"""scripts/serve.py (`make serve`): stopping the platform's processes."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.inference.live import serve_script

# A child that ignores SIGTERM, as a worker stuck in a long call would.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
            "time.sleep(120)")


@pytest.fixture(scope="module")
def serve():
    return serve_script()


def _stubborn() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "up"  # its SIGTERM handler is in place
    return process


def test_children_that_ignore_sigterm_are_killed_after_the_grace_period(serve):
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    stubborn = _stubborn()
    started = time.monotonic()
    serve.stop_all([("polite", polite), ("stubborn", stubborn)], grace_s=1.0)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - started < 10


def test_a_second_signal_during_the_stop_kills_at_once_and_leaves_no_child(serve):
    stubborn = _stubborn()
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # the user's second Ctrl-C
    started = time.monotonic()
    timer.start()
    try:
        serve.stop_all([("stubborn", stubborn)], grace_s=60)  # must not raise KeyboardInterrupt half-way
    finally:
        timer.cancel()
        if stubborn.poll() is None:
            stubborn.kill()
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handlers are back
