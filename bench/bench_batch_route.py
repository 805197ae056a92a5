"""POST /api/v1/predict/batch: the working tree against a baseline commit. By default 4eebd54, whose items
ran side by side in threads; 27f0023 ran them one after another. The working tree writes each deployment's
items down one worker connection before reading any answer. Run on demand, never in CI (~3 minutes).

    .venv/bin/python bench/bench_batch_route.py [--baseline 4eebd54] [--items 64] [--calls 30]

Each side is the platform as `make serve` starts it (bench_serving.start_platform: scripts/serve.py, its own
private Redis, VAR_DIR=bench/out/var), prediction cache off. One keep-alive connection sends --calls batch
requests of --items single-row items to one demo endpoint (churn-logreg, then fraud-forest), one request at
a time, after one warm-up request; every item must succeed. Prints p50/p99 of the round trip, items per
second, the mean rows of the forward pass each item rode (/metrics' sp_batch_size_rows), and the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as serving_bench  # noqa: E402 - the bench folder is not a package

ENDPOINTS = ("churn-logreg", "fraud-forest")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="4eebd54", help="the commit to compare with")
    parser.add_argument("--items", type=int, default=64, help="single-row items per batch request (at most 256)")
    parser.add_argument("--calls", type=int, default=30, help="measured batch requests per endpoint")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--python", default=str(serving_bench.ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--var-dir", type=Path, default=serving_bench.OUT / "var")
    args = parser.parse_args()
    args.fresh = False
    return args


def batch_body(endpoint: str, items: int) -> dict[str, Any]:
    width = serving_bench.WIDTHS[endpoint]
    return {"requests": [{"endpoint": endpoint, "inputs": [[random.uniform(-2, 2) for _ in range(width)]]}
                         for _ in range(items)]}


def measure_endpoint(client: serving_bench.Client, endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    client.ok("POST", "/api/v1/predict/batch", batch_body(endpoint, args.items))  # warm-up
    counters = serving_bench.batch_counters(client, endpoint)
    before = counters()
    seconds = []
    for _ in range(args.calls):
        body = batch_body(endpoint, args.items)
        started = time.perf_counter()
        answer = client.ok("POST", "/api/v1/predict/batch", body)
        seconds.append(time.perf_counter() - started)
        if answer["succeeded"] != args.items:
            raise SystemExit(f"{endpoint}: {args.items - answer['succeeded']} items failed: {answer['results'][:3]}")
    after = counters()
    ordered = sorted(seconds)
    p50 = statistics.median(ordered)
    return {"p50_ms": p50 * 1000, "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "items_per_s": args.items / p50, "rows_per_pass": rows_per_pass(before, after)}


def rows_per_pass(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    # sp_batch_size_rows (sum, count): the rows of the forward pass each request rode, over its requests.
    if after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def measure(args: argparse.Namespace, ref: str | None) -> dict[str, Any]:
    args.tree = serving_bench.source_tree(ref)
    server, port, env = serving_bench.start_platform(args)
    try:
        client = serving_bench.Client(port, serving_bench.create_key(args, env))
        serving_bench.wait_for_endpoints(client, server)
        serving_bench.reset_deployments(client, server)
        serving_bench.set_cache(client, False)
        return {endpoint: measure_endpoint(client, endpoint, args) for endpoint in ENDPOINTS}
    finally:
        server.stop()


def report(args: argparse.Namespace, tree: dict[str, Any], baseline: dict[str, Any]) -> None:
    print(f"\n## POST /api/v1/predict/batch, {args.items} single-row items, one request at a time, cache off")
    print(f"{'endpoint':<14}{'working tree':>46}{f'baseline ({args.baseline})':>46}{'ratio':>9}")
    for endpoint in ENDPOINTS:
        new, old = tree[endpoint], baseline[endpoint]
        cells = [f"p50 {run['p50_ms']:.1f} ms, {run['items_per_s']:.0f} items/s, "
                 f"{run['rows_per_pass'] or 0:.1f} rows/pass" for run in (new, old)]
        print(f"{endpoint:<14}{cells[0]:>46}{cells[1]:>46}{old['p50_ms'] / new['p50_ms']:>8.2f}x")
    print("ratio: the baseline's p50 round trip over the tree's (higher is better)")


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # see bench_serving.main
    serving_bench.OUT.mkdir(parents=True, exist_ok=True)
    serving_bench.log(f"machine: {json.dumps(serving_bench.machine())}")
    tree = measure(args, None)
    baseline = measure(args, args.baseline)
    report(args, tree, baseline)
    path = serving_bench.OUT / f"batch-route-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "tree": tree,
                                "baseline": baseline}, indent=2))
    serving_bench.log(f"figures in {path.relative_to(serving_bench.ROOT)}")


if __name__ == "__main__":
    main()
