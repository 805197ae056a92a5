"""scripts/serve.py (`make serve`) as a whole: a child that dies is started again while the rest keep serving, the
private Redis asks for its password, and SIGTERM drains (readiness first, then the web tier, then the workers)."""

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.core.platform_live import Platform, wait_until

# The platform's start (migrations, four processes) takes minutes on a busy machine.
pytestmark = pytest.mark.timeout(900)

# Every prediction of the slow deployment takes this long in the model's worker (toy runtime's sleep_ms).
SLOW_MS = 500


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    serving = Platform(tmp_path_factory.mktemp("platform", numbered=False), SHUTDOWN_DRAIN_DELAY_S="1",
                       SHUTDOWN_GRACE_S="30")
    serving.start()
    try:
        serving.wait_log("[platform] roles model-server, web, jobs, scheduler up", timeout=600)
        serving.seed({"fast": {}, "slow": {"sleep_ms": SLOW_MS}})
        for endpoint in ("fast", "slow"):
            wait_until(lambda endpoint=endpoint: serving.predicts(endpoint), timeout=180,
                       message=f"{endpoint} to answer")
        yield serving
    finally:
        serving.stop()


def _kill_and_watch(platform: Platform, name: str) -> list[int]:
    """SIGKILLs the child `name`; the statuses of /health and a prediction while it is away and back."""
    before = platform.children()[name]
    os.killpg(before, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 60
    while platform.children().get(name) == before and time.monotonic() < deadline:
        statuses += [platform.get("/health")[0], platform.predict("fast")[0]]
        time.sleep(0.2)
    assert platform.children()[name] != before, platform.log()[-2000:]
    assert platform.process.poll() is None
    return statuses


def test_a_killed_job_worker_is_started_again_after_a_back_off_while_the_rest_serves(platform):
    statuses = _kill_and_watch(platform, "jobs")
    assert statuses and set(statuses) == {200}
    assert re.search(r"jobs exited with code -9; restarting it in 1 s \(back-off\)", platform.log())
    assert "stopping the platform" not in platform.log()
    # The new worker runs jobs: an async prediction is done.
    status, job = platform.request("POST", "/api/v1/predict/fast/async", {"inputs": [[1.0, 0.0, 0.0]]})
    assert status == 202, job
    wait_until(lambda: platform.get(f"/api/v1/jobs/{job['job_id']}")[1].get("status") == "succeeded", timeout=90,
               message="the job to succeed")


def test_a_killed_private_redis_is_started_again_and_predictions_keep_answering(platform):
    statuses = _kill_and_watch(platform, "redis")
    assert statuses and set(statuses) == {200}  # predictions and liveness never needed Redis
    assert "redis exited with code -9; restarting it in" in platform.log()
    wait_until(lambda: platform.answers("/health/ready"), timeout=30, message="readiness with the new Redis")
    assert platform.predict("fast")[0] == 200


def test_the_private_redis_refuses_a_connection_without_its_password(platform):
    url = (platform.var_dir / "run" / "redis.url").read_text().strip()
    assert oct((platform.var_dir / "run" / "redis.url").stat().st_mode & 0o777) == "0o600"
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, socket_timeout=2).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, password="guess", socket_timeout=2).ping()
    assert redis.Redis.from_url(url, socket_timeout=2).ping()
    assert "***@" in platform.log() and url.split("@")[0].split(":")[-1] not in platform.log()


def test_sigterm_drains_readiness_first_and_loses_no_request_in_flight(platform):
    ready_seen: list[tuple[float, int]] = []
    stop_watching = threading.Event()

    def watch_readiness():
        while not stop_watching.is_set():
            try:
                ready_seen.append((time.monotonic(), platform.get("/health/ready", timeout=2)[0]))
            except OSError:
                ready_seen.append((time.monotonic(), 0))  # refused: the web tier has stopped accepting
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_readiness, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(10) as pool:
        in_flight = [pool.submit(platform.predict, "slow", 60) for _ in range(10)]
        time.sleep(0.3)  # all ten sent and waiting on the slow model
        signalled = time.monotonic()
        platform.process.send_signal(signal.SIGTERM)
        answers = [future.result() for future in in_flight]
    platform.process.wait(timeout=90)
    stop_watching.set()
    watcher.join()

    assert [status for status, _ in answers] == [200] * 10, answers
    after = [status for at, status in ready_seen if at > signalled]
    first_503 = after.index(503)
    assert 0 not in after[:first_503], after  # not ready before anything was refused
    assert platform.process.returncode == 0
    drained = re.search(r"drained in ([\d.]+) s", platform.log())
    web = re.search(r"web tier stopped ([\d.]+) s after readiness turned 503", platform.log())
    assert drained and web, platform.log()[-2000:]
    print(f"\ndrain: web tier {web.group(1)} s, whole platform {drained.group(1)} s, "
          f"10 requests of {SLOW_MS} ms in flight")
    lines = [line for line in platform.log().splitlines() if line.startswith("[platform]")]
    assert any(line.startswith("[platform] draining: readiness answers 503") for line in lines)
