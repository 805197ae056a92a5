"""What an A/B experiment adds to a prediction: p50 of experiment-routed requests vs direct ones.

Setup: a throwaway VAR_DIR (SQLite, model store), the configured or a private Redis, a real model server
(`manage.py run_model_server`) serving one scikit-learn LogisticRegression (skops, validated in the
sandbox) at three endpoints: `direct`, and `ab-a` / `ab-b`, the variants of a running experiment that
owns the public endpoint `ab` (50/50, a fresh subject per request). Requests go through Django's test
client in this process: API-key auth, throttling, DRF, the hooks, the worker round trip.

Interleaved (direct, routed, direct, routed, ...) so drift on a shared machine hits both equally, for two
cases: cache misses (`"cache": false`, the worker answers) and cache hits (the same row, Redis answers),
where the fixed cost of routing and recording weighs most. Prints p50/p99 of both, the ratios (target:
routed p50 < 1.10 x direct), and the cost of the alternative recording design: one pipelined Redis write
per request instead of the in-process buffer that a background thread flushes.

    .venv/bin/python bench/bench_experiments.py --requests 2000
"""

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup() -> None:
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="sp-bench-exp-")
    # Unix socket paths are limited to ~100 bytes: the model server's folder stays short.
    os.environ["MODEL_SERVER_DIR"] = tempfile.mkdtemp(prefix="spx-", dir="/tmp")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["THROTTLE_RATE_PREDICT"] = "10000000/min"
    os.environ["MODEL_SERVER_POLL_MS"] = "100"
    if not os.environ.get("REDIS_URL"):
        from core.embedded_redis import start_private_redis

        os.environ["REDIS_URL"] = start_private_redis().url
    os.environ["DJANGO_SETTINGS_MODULE"] = "servingplatform.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _register_model() -> None:
    import numpy as np
    import skops.io as sio
    from django.core.files.uploadedfile import SimpleUploadedFile
    from sklearn.linear_model import LogisticRegression

    from registry import services as registry_services

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 10))
    model = LogisticRegression(max_iter=500).fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    buffer = io.BytesIO()
    sio.dump(model, buffer)
    registered = registry_services.registered_model_create(name="bench", task="classification")
    version = registry_services.model_version_create(
        model=registered, artifact=SimpleUploadedFile("m.skops", buffer.getvalue()), flavor="sklearn")
    registry_services.model_version_validate(version_id=version.pk)


def _start_model_server() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "run_model_server"], cwd=ROOT, env=dict(os.environ),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _deploy_and_start_experiment() -> None:
    from experiments import services as experiment_services
    from inference.deployments import services
    from inference.predict.dispatch import routes

    for endpoint in ("direct", "ab-a", "ab-b"):
        services.deployment_create(endpoint=endpoint, model="bench", version=1)
    deadline = time.monotonic() + 180
    while not all(getattr(routes().endpoint(e), "sockets", None) for e in ("direct", "ab-a", "ab-b")):
        if time.monotonic() > deadline:
            raise SystemExit("the model server did not load the deployments within 180 s")
        time.sleep(0.2)
    experiment = experiment_services.experiment_create(
        name="bench", endpoint="ab", outcome="accuracy",
        variants=[{"name": "a", "deployment": "ab-a", "weight": 50}, {"name": "b", "deployment": "ab-b",
                                                                      "weight": 50}])
    experiment_services.experiment_start(experiment=experiment)


def _timed(client, key: str, endpoint: str, body: dict) -> float:
    started = time.perf_counter()
    response = client.post(f"/api/v1/predict/{endpoint}", body, content_type="application/json",
                           HTTP_X_API_KEY=key, HTTP_X_SUBJECT_ID=uuid.uuid4().hex)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.content
    assert ("variant" in response.json()) == (endpoint == "ab")
    return elapsed


def _interleaved(client, key: str, body: dict, requests: int) -> tuple[list[float], list[float]]:
    for _ in range(100):
        _timed(client, key, "direct", body)
        _timed(client, key, "ab", body)
    direct, routed = [], []
    for index in range(requests):
        pair = (("direct", direct), ("ab", routed)) if index % 2 else (("ab", routed), ("direct", direct))
        for endpoint, samples in pair:
            samples.append(_timed(client, key, endpoint, body))
    return direct, routed


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _row(name: str, samples: list[float]) -> str:
    return f"  {name:<40} p50 {statistics.median(samples):7.3f} ms   p99 {_p(samples, 0.99):7.3f} ms"


def _per_request_redis_write(requests: int) -> list[float]:
    """The alternative design: the same figures written in one pipelined round trip inside each request."""
    from experiments import recording

    samples = []
    for index in range(requests):
        event = recording.Event(999_999, "a", False, None, False, 0.002, time.time(), f"bench-{index}", [1])
        started = time.perf_counter()
        recording._write([event])
        samples.append((time.perf_counter() - started) * 1000)
    recording.forget(999_999)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per endpoint and case")
    args = parser.parse_args()
    _setup()
    server = None
    try:
        _register_model()
        server = _start_model_server()
        _deploy_and_start_experiment()
        from django.test import Client

        from core.services import api_key_create

        _, key = api_key_create(name="bench", scope="predict")
        client = Client()
        row = [0.1 * i for i in range(10)]
        print(f"{args.requests} interleaved requests per endpoint and case (p50 target: routed < 1.10 x direct)\n")
        for case, body in (("cache misses (worker answers)", {"inputs": [row], "parameters": {"cache": False}}),
                           ("cache hits (Redis answers)", {"inputs": [row]})):
            direct, routed = _interleaved(client, key, body, args.requests)
            ratio = statistics.median(routed) / statistics.median(direct)
            print(case)
            print(_row("direct  POST /predict/direct", direct))
            print(_row("routed  POST /predict/ab (experiment)", routed))
            print(f"  ratio routed/direct (p50): {ratio:.3f}  ({(ratio - 1) * 100:+.1f}%)\n")
        writes = _per_request_redis_write(args.requests)
        print("recording design")
        print(_row("one pipelined Redis write / request", writes))
        print("  (what the in-process buffer flushed every 0.1 s by a background thread keeps off the request path)")
    finally:
        if server and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
