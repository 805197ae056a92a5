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


def test_serve_roles_default_to_all_four_in_start_order_and_refuse_unknown_names(serve):
    assert serve.parse_roles(None) == ["model-server", "web", "jobs", "scheduler"]
    assert serve.parse_roles(" scheduler,web ") == ["web", "scheduler"]
    with pytest.raises(ValueError, match="unknown role\\(s\\) model_server, webb; choose among model-server, web"):
        serve.parse_roles("webb,model_server")


def test_only_the_web_role_collects_static_files_and_every_role_sets_up_the_database(serve, monkeypatch):
    monkeypatch.delenv("SEED_DEMO", raising=False)
    monkeypatch.delenv("SERVE_COLLECTSTATIC", raising=False)
    assert serve.setup_steps(["model-server"]) == [["setup_platform"]]
    assert serve.setup_steps(["web", "jobs"]) == [["setup_platform"], ["collectstatic", "--noinput", "-v", "0"]]
    monkeypatch.setenv("SEED_DEMO", "0")
    assert serve.setup_steps(["jobs"]) == [["setup_platform", "--no-demo"]]


def test_a_child_that_exits_is_started_again_after_a_doubling_back_off_and_the_others_are_left_alone(serve):
    launches = []

    def launch(code: str):
        def start():
            launches.append(code)
            return subprocess.Popen([sys.executable, "-c", code])
        return start

    crashing = serve.Child("crashing", launch("raise SystemExit(3)"))
    steady = serve.Child("steady", launch("import time; time.sleep(60)"))
    supervisor = serve.Supervisor([crashing, steady], first_s=1.0, max_s=4.0, healthy_after_s=30.0)
    now = 1000.0
    for child in (crashing, steady):
        child.start(now)
    steady_process = steady.process
    try:
        crashing.process.wait()
        delays = []
        for _ in range(4):
            supervisor.tick(now)  # notices the exit, schedules the restart
            delays.append(crashing.restart_at - now)
            supervisor.tick(now + delays[-1] - 0.01)
            assert crashing.restart_at is not None  # not before its back-off
            now += delays[-1]
            supervisor.tick(now)
            crashing.process.wait()
        assert delays == [1.0, 2.0, 4.0, 4.0]
        assert crashing.restarts == 4 and len(launches) == 6
        # Up for longer than healthy_after_s before it crashed: the back-off starts over.
        supervisor.tick(now + 31)
        assert crashing.restart_at - (now + 31) == 1.0
        assert steady.process is steady_process and steady_process.poll() is None
    finally:
        steady_process.kill()
        steady_process.wait()


def test_an_empty_drain_file_setting_is_unset_and_a_stale_file_is_removed(serve, monkeypatch, tmp_path):
    monkeypatch.setattr(serve, "RUN", tmp_path)
    monkeypatch.setenv("DRAIN_FILE", "")  # docker/.env.example's `DRAIN_FILE=` once crashed the image at start
    path = serve.ensure_drain_file()
    assert path.parent == tmp_path and path.name == f"draining.{os.getpid()}"
    assert os.environ["DRAIN_FILE"] == str(path)

    given = tmp_path / "drain-me"
    given.write_text("left by a previous run")
    monkeypatch.setenv("DRAIN_FILE", str(given))
    assert serve.ensure_drain_file() == given and not given.exists()
