"""What prediction logging costs: the platform under wrk on the LogisticRegression (`churn-logreg`, 10 features,
single rows, prediction cache off) with the deployment's `log_predictions` at 0 and at 1.0, in the same run.

    .venv/bin/python bench/bench_monitoring.py                  # ~3 min after the platform is up
    .venv/bin/python bench/bench_monitoring.py --rounds 5 --connections 16,64

The platform is started as bench_serving.py starts it (scripts/serve.py, WEB_WORKERS=2, its own VAR_DIR under
bench/out/var: the demo models are trained on the first run and kept). Each round measures both rates, in
alternating order so that drift on a shared machine hits both alike, each a warm-up then a measured wrk run;
between runs it waits for the web processes to flush what they buffered (their work would otherwise land in the
next run). At rate 1.0 every request is logged: the hot path encodes the row and appends it to a buffer, a
thread of each web process pushes the buffer to Redis every second (monitoring/sink.py), and the scheduler's job
writes the rows to the database every 5 s in an RQ work horse (monitoring/logwriter.py), whose CPU is counted
("other", exited work horses included). At rate 0 the per-minute figures are still counted: the baseline is the
platform as it runs with monitoring installed. Prints req/s, p50, p99 and CPU ms per request by process group for
both, the ratio, and how many rows each run logged; figures also in bench/out/monitoring-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as serving  # noqa: E402 - the serving benchmark's harness, from this folder

ENDPOINT = "churn-logreg"
RATES = (0.0, 1.0)
FLUSH_WAIT_S = 2.5  # past the web processes' flush interval (PREDICTION_LOG_FLUSH_MS, 1 s by default)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per rate")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--connections", default="16", help="comma-separated wrk connection counts")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--python", default=str(serving.ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--var-dir", type=Path, default=serving.OUT / "var", help="the platform's VAR_DIR")
    parser.add_argument("--fresh", action="store_true", help="wipe --var-dir first (retrains the demo models)")
    return parser.parse_args()


def logged_rows(client: serving.Client) -> int:
    return client.ok("GET", f"/api/v1/deployments/{ENDPOINT}/predictions?limit=1")["count"]


def set_rate(client: serving.Client, rate: float) -> None:
    client.ok("PATCH", f"/api/v1/deployments/{ENDPOINT}/", {"log_predictions": rate})
    time.sleep(serving.KNOB_SETTLE_S)  # the model server rewrites the routing table on its next tick


def benchmark(args: argparse.Namespace, servers: list) -> dict[str, Any]:
    info = serving.machine()
    serving.log(f"machine: {info['nproc']} x {info['cpu']}, load average {' '.join(info['loadavg'])}")
    platform, port, env = serving.start_platform(args)
    servers.append(platform)
    key = serving.create_key(args, env)
    client = serving.Client(port, key)
    serving.wait_for_endpoints(client, platform)
    serving.set_cache(client, False)
    model_pids = serving.model_worker_pid(client, ENDPOINT)
    # Exited children counted: the RQ worker forks a work horse per job, and those that wrote the log are gone.
    meter = serving.CpuMeter(platform.proc.pid, lambda cmd, pid: serving.platform_group(cmd, pid, model_pids),
                             exited_children=True)
    runner = serving.Runner(args)
    url = f"http://127.0.0.1:{port}{serving.predict_path(ENDPOINT)}"
    runs: list[dict[str, Any]] = []
    try:
        for conns in [int(c) for c in args.connections.split(",")]:
            for round_ in range(args.rounds):
                for rate in (RATES if round_ % 2 == 0 else RATES[::-1]):
                    set_rate(client, rate)
                    before = logged_rows(client)
                    figures = runner.run(f"log_predictions={rate:g}", url, meter=meter, mode="platform",
                                         width=serving.WIDTHS[ENDPOINT], connections=conns, key=key)
                    time.sleep(FLUSH_WAIT_S)
                    figures.update(rate=rate, round=round_, logged=logged_rows(client) - before)
                    runs.append(figures)
    finally:
        set_rate(client, 0.0)
    return {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}


def in_process_costs(requests: int = 20_000) -> dict[str, float]:
    """CPU microseconds a request of churn-logreg's shape costs the web process's sink at each rate (the hot path
    plus its share of the flush to Redis), and a row costs the database write (logwriter.write, into a fresh
    SQLite table), measured in this process: figures a loaded machine moves far less than wrk's."""
    import tempfile

    sys.path.insert(0, str(serving.ROOT))  # the project's packages, for Django in this process
    os.environ.update(SECRET_KEY="bench-monitoring-" + "k" * 40, VAR_DIR=tempfile.mkdtemp(prefix="sp-bench-mon-"),
                      MODEL_SERVER_DIR=tempfile.mkdtemp(prefix="spm-", dir="/tmp"), PREDICTION_LOG_FLUSH_MS="0",
                      LOG_LEVEL="ERROR", DJANGO_SETTINGS_MODULE="servingplatform.settings")
    private = None
    if not os.environ.get("REDIS_URL"):
        from core.embedded_redis import start_private_redis

        private = start_private_redis()
        os.environ["REDIS_URL"] = private.url
    try:
        return _measure(requests)
    finally:
        if private is not None:
            private.stop()


def _measure(requests: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command

    from inference.predict.contract import PredictRequest, Route
    from monitoring import logwriter
    from monitoring.sink import MonitoringSink
    from registry.models import ModelVersion, RegisteredModel

    call_command("migrate", verbosity=0)
    model = RegisteredModel.objects.create(name="bench")
    version = ModelVersion.objects.create(model=model, version=1, flavor="sklearn", format="skops", artifact_path="x",
                                          sha256="0" * 64, size_bytes=1)
    costs: dict[str, float] = {}
    for rate in RATES:
        route = Route(endpoint="bench", deployment_id=1, model="bench", version=1, model_version_id=version.pk,
                      sha256="0", generation=1, status="ready", sockets=(), log_predictions=rate)
        sink = MonitoringSink()
        sink._pid = os.getpid()  # noqa: SLF001 - no flusher thread: this loop flushes
        started = time.process_time()
        for n in range(requests):
            row = [[n / 7, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]]
            request = PredictRequest(endpoint="bench", inputs=row, params={}, request_id=f"r{n}")
            response = {"request_id": f"r{n}", "predictions": [1], "probabilities": [[0.25, 0.75]], "classes": [0, 1]}
            sink.served(route, request, response, row, 0.002, cached=False, cache_used=False, batch_size=1)
            if n % 2000 == 1999:
                sink.flush()
        costs[f"web_us_per_request_at_{rate:g}"] = (time.process_time() - started) / requests * 1e6
    started = time.process_time()
    written = logwriter.drain()
    costs["write_us_per_row"] = (time.process_time() - started) / max(written, 1) * 1e6
    return costs


def print_table(info: dict[str, Any], args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    print(f"\n# Prediction logging overhead — {ENDPOINT}, {info['nproc']} CPUs ({info['cpu']}), load average before "
          f"{' '.join(info['loadavg'])}, WEB_WORKERS={args.web_workers}, {args.rounds} rounds of wrk "
          f"{args.duration:g} s after {args.warmup:g} s warm-up, prediction cache off")
    print("\n| conns | log_predictions | req/s (median) | p50 ms | p99 ms | web CPU ms/req | all CPU ms/req | "
          "rows logged per request | other load |")
    print("|---|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[int, float], float] = {}
    for conns in sorted({run["connections"] for run in runs}):
        for rate in RATES:
            chosen = [run for run in runs if run["connections"] == conns and run["rate"] == rate]
            rps = statistics.median(run["rps"] for run in chosen)
            medians[(conns, rate)] = rps
            cpu = [run["cpu_ms_per_request"] for run in chosen]
            web = statistics.median(c.get("web", 0.0) for c in cpu)
            total = statistics.median(sum(c.values()) for c in cpu)
            per_request = sum(run["logged"] for run in chosen) / max(sum(run["requests"] for run in chosen), 1)
            print(f"| {conns} | {rate:g} | {rps:,.0f} | {statistics.median(r['p50_ms'] for r in chosen):.2f} | "
                  f"{statistics.median(r['p99_ms'] for r in chosen):.1f} | {web:.3f} | {total:.3f} | "
                  f"{per_request:.2f} | {max(r['other_load_cores'] for r in chosen):.2f} |")
    for conns in sorted({conns for conns, _ in medians}):
        ratio = medians[(conns, 1.0)] / medians[(conns, 0.0)]
        print(f"\nc={conns}: logging every request keeps {ratio:.3f}x the throughput of logging none "
              f"({(1 - ratio) * 100:+.1f}% lost; target: under 2%)")
    noisy = [run for run in runs if run["other_load_cores"] > 0.2]
    if noisy:
        print(f"\nWARNING: {len(noisy)} runs shared the machine with other load (up to "
              f"{max(r['other_load_cores'] for r in noisy):.2f} cores busy outside the benchmark): figures are "
              "indicative only")


def print_in_process(runs: list[dict[str, Any]], costs: dict[str, float]) -> None:
    web = statistics.median(run["cpu_ms_per_request"].get("web", 0.0) for run in runs if run["rate"] == 0.0) * 1000
    extra = costs["web_us_per_request_at_1"] - costs["web_us_per_request_at_0"]
    at_0, at_1 = costs["web_us_per_request_at_0"], costs["web_us_per_request_at_1"]
    print(f"\nIn process (CPU time, 20,000 requests of churn-logreg's shape a rate): the sink costs a web process "
          f"{at_0:.1f} us a request at rate 0 and {at_1:.1f} us at rate 1.0 (+{extra:.1f} us, "
          f"{100 * extra / web:.1f}% of the web tier's {web:.0f} us a request measured above); writing a row to the "
          f"database costs {costs['write_us_per_row']:.1f} us in the scheduler's worker (a fresh SQLite table; more "
          "as the request-id index outgrows SQLite's page cache)")


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian), then run this again")
    serving.OUT.mkdir(parents=True, exist_ok=True)
    args.tree = serving.ROOT
    started, servers = time.monotonic(), []
    try:
        report = benchmark(args, servers)
    finally:
        for server in reversed(servers):
            server.stop()
    print_table(report["machine"], args, report["runs"])
    report["in_process"] = in_process_costs()
    print_in_process(report["runs"], report["in_process"])
    path = serving.OUT / f"monitoring-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    serving.log(f"done in {time.monotonic() - started:.0f} s; figures in {path.relative_to(serving.ROOT)}")


if __name__ == "__main__":
    main()
