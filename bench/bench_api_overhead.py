"""Per-request cost of the API stack, measured in-process with Django's test client.

Baseline: GET /health (a plain Django view). Compared: an authenticated API read with an API key
(key lookup + hash check, throttle bucket in Redis, DRF, JSON). Prints p50/p99 and the ratio.
Uses a throwaway SQLite database and the configured (or a private) Redis.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup() -> None:
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="sp-bench-")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("THROTTLE_RATE_MANAGE", "1000000/min")
    if not os.environ.get("REDIS_URL"):
        from core.embedded_redis import start_private_redis

        os.environ["REDIS_URL"] = start_private_redis().url
    os.environ["DJANGO_SETTINGS_MODULE"] = "servingplatform.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _time(client, path: str, requests: int, **headers) -> list[float]:
    for _ in range(50):
        client.get(path, **headers)
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, **headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    return samples


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]
    return f"{name:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {1000 / statistics.mean(ordered):8.0f} req/s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    _setup()
    from django.test import Client

    from core.services import api_key_create
    from registry.services import registered_model_create

    registered_model_create(name="bench", task="classification")
    _, key = api_key_create(name="bench", scope="manage")
    client = Client()
    baseline = _time(client, "/health", args.requests)
    keyed = _time(client, "/api/v1/models/bench/", args.requests, HTTP_X_API_KEY=key)
    print(_row("baseline GET /health", baseline))
    print(_row("GET /api/v1/models/{name}/ + key", keyed))
    print(f"ratio api/baseline (p50): {statistics.median(keyed) / statistics.median(baseline):.1f}x")


if __name__ == "__main__":
    main()
