"""Typed-columns benchmark: the platform serving the demo's mixed-type DataFrame pipeline (churn-mixed: country
and plan strings, numbers, missing incomes; one-hot encoding + HistGradientBoostingClassifier) under wrk, against
the same pipeline's predict_proba called in-process, one row at a time and in batches of 32. With --ref, also the
numeric single-row path (churn-logreg, fraud-forest at 16 connections) on a commit and on the working tree in the
same run, both served side by side the way `make serve` serves them, their runs alternating. Run on demand, never in CI.

    .venv/bin/python bench/bench_mixed.py                       # ~3 min after the demo models are trained
    .venv/bin/python bench/bench_mixed.py --ref 9056ec1         # + the numeric path before/after (~+5 min)

Printed (and saved to bench/out/mixed-<time>.json): req/s, p50, p99 and the mean rows per forward pass at 16
and 64 connections; CPU ms per request by process group, the model worker's among them; in-process rows/s and
ms per call of predict_proba on 1-row and 32-row DataFrames; the platform's req/s as a share of each; with --ref,
req/s and CPU ms per request of both trees and their ratios. Reuses bench_serving.py's platform start-up, wrk
accounting and /proc CPU meter (its docstring says how); the platform runs with its own VAR_DIR per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bs  # noqa: E402 - the sibling script, found through the path above

MIXED = "churn-mixed"
LUA = bs.BENCH / "mixed_load.lua"
NUMERIC = ("churn-logreg", "fraud-forest")
# Run inside the platform's own environment (manage.py shell): the served artifact, loaded as the worker loads it.
IN_PROCESS = r"""
import json, time, numpy as np, pandas as pd, skops.io as sio
from registry.models import ModelAlias
from registry.storage import artifact_abspath
from demo.training.mixed import customer_frame
version = ModelAlias.objects.get(model__name="churn-mixed", name="production").version
path = str(artifact_abspath(version.artifact_path))
pipeline = sio.load(path, trusted=sio.get_untrusted_types(file=path))
frame = customer_frame(4096, 11)[0]
singles = [frame.iloc[[i]] for i in range(600)]
batches = [frame.iloc[i:i + 32] for i in range(0, 32 * 80, 32)]
def timed(parts, repeat):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for part in parts:
            pipeline.predict_proba(part)
        best = min(best, time.perf_counter() - started)
    return best
one, many = timed(singles, 3), timed(batches, 3)
print("INPROC " + json.dumps({"single_ms": 1000 * one / len(singles), "single_rows_s": len(singles) / one,
                              "batch32_ms": 1000 * many / len(batches), "batch32_rows_s": 32 * len(batches) / many}))
"""


def wrk_mixed(url: str, *, connections: int, seconds: float, key: str) -> dict[str, Any]:
    threads = min(2, connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
           "--latency", "-s", str(LUA), url, "--", key]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line[len("BENCH "):])


def measured(args, label: str, run, meter: bs.CpuMeter, metrics) -> dict[str, Any]:
    run(args.warmup)
    before, rows_before = meter.snapshot(), metrics()
    figures = run(args.duration)
    figures.update(bs.CpuMeter.delta(before, meter.snapshot(), figures["requests"]))
    rows, count = (a - b for a, b in zip(metrics(), rows_before))
    figures["batch_per_request"] = round(rows / count, 2) if count else None
    figures["label"] = label
    bs.log(f"{label}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
           f"model worker {figures['cpu_ms_per_request'].get('model worker', 0):.3f} CPU ms/req"
           + (f"  ({figures['non2xx'] + figures['socket_errors']} errors!)" if figures["non2xx"] else ""))
    return figures


def serve(args, tree: Path, var_dir: Path):
    args.tree, args.var_dir = tree, var_dir
    server, port, env = bs.start_platform(args)
    try:
        key = bs.create_key(args, env)
        client = bs.Client(port, key)
        for endpoint, body in ((MIXED, {"inputs": [{"country": "fr", "plan": "basic", "age": 30, "tenure_months": 3,
                                                    "income": None}]}),
                               *((name, {"inputs": [[0.5] * bs.WIDTHS[name]]}) for name in NUMERIC)):
            if endpoint == MIXED and tree != bs.ROOT:
                continue  # a commit before the typed demo models
            bs.wait_until(f"{endpoint} to answer", lambda e=endpoint, b=body: client.call(
                "POST", bs.predict_path(e), b)[0] == 200, server, 600)
        bs.set_cache(client, False)
        return server, port, env, key, client
    except BaseException:
        server.stop()
        raise


def mixed_figures(args, port: int, env: dict[str, str], key: str, client: bs.Client, server: bs.Server) -> dict:
    model_pids: set[int] = set(bs.model_worker_pid(client, MIXED))
    meter = bs.CpuMeter(server.proc.pid, lambda cmd, pid: bs.platform_group(cmd, pid, model_pids))
    metrics = bs.batch_counters(client, MIXED)
    url = f"http://127.0.0.1:{port}{bs.predict_path(MIXED)}"
    runs = {conns: measured(args, f"platform {MIXED} c={conns}",
                            lambda seconds, c=conns: wrk_mixed(url, connections=c, seconds=seconds, key=key),
                            meter, metrics) for conns in (16, 64)}
    # One thread, as the platform's worker runs the model (threadpoolctl); the machine's other load would
    # otherwise make OpenMP's threads wait on each other.
    done = subprocess.run([args.python, "manage.py", "shell", "-c", IN_PROCESS], cwd=bs.ROOT,
                          env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("INPROC "))
    return {"platform": runs, "in_process": json.loads(line[len("INPROC "):])}


def numeric_figures(args, port: int, key: str, client: bs.Client, server: bs.Server) -> dict:
    runner = bs.Runner(args)
    figures = {}
    for endpoint in NUMERIC:
        pids = set(bs.model_worker_pid(client, endpoint))
        meter = bs.CpuMeter(server.proc.pid, lambda cmd, pid, pids=pids: bs.platform_group(cmd, pid, pids))
        figures[endpoint] = runner.run(f"platform {endpoint}", f"http://127.0.0.1:{port}{bs.predict_path(endpoint)}",
                                       meter=meter, metrics=bs.batch_counters(client, endpoint), mode="platform",
                                       width=bs.WIDTHS[endpoint], connections=16, key=key)
    return figures


def report(result: dict[str, Any]) -> None:
    mixed, inproc = result["mixed"], result["mixed"]["in_process"]
    print(f"\n# Mixed-type pipeline ({MIXED}: 2 string columns, 3 numeric, missing incomes) — load average before "
          f"{result['machine']['loadavg']}")
    print("| conns | req/s | p50 ms | p99 ms | rows/pass | CPU ms/req web | model worker | redis |")
    print("|---|---|---|---|---|---|---|---|")
    for conns, run in mixed["platform"].items():
        cpu = run["cpu_ms_per_request"]
        print(f"| {conns} | {run['rps']:,.0f} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | "
              f"{run['batch_per_request']} | {cpu.get('web', 0):.3f} | {cpu.get('model worker', 0):.3f} | "
              f"{cpu.get('redis', 0):.3f} |")
    print(f"\nin-process predict_proba: 1 row {inproc['single_ms']:.2f} ms ({inproc['single_rows_s']:,.0f} rows/s), "
          f"32 rows {inproc['batch32_ms']:.2f} ms ({inproc['batch32_rows_s']:,.0f} rows/s)")
    for conns, run in mixed["platform"].items():
        print(f"platform @{conns}: {run['rps'] / inproc['single_rows_s']:.2f}x in-process one row at a time, "
              f"{run['rps'] / inproc['batch32_rows_s']:.2f}x in batches of 32")
    if "numeric" in result:
        before, after = result["numeric"]["ref"], result["numeric"]["working"]
        print(f"\n# Numeric single-row path, 16 connections: {result['ref']} vs the working tree")
        print("| model | req/s before | req/s after | ratio | CPU ms/req before | after |")
        print("|---|---|---|---|---|---|")
        for endpoint in NUMERIC:
            b, a = before[endpoint], after[endpoint]
            cpu_b, cpu_a = sum(b["cpu_ms_per_request"].values()), sum(a["cpu_ms_per_request"].values())
            print(f"| {endpoint} | {b['rps']:,.0f} | {a['rps']:,.0f} | {a['rps'] / b['rps']:.2f}x | {cpu_b:.3f} | "
                  f"{cpu_a:.3f} |")
    noisy = [r for r in _runs(result) if r.get("other_load_cores", 0) > 0.2]
    if noisy:
        print(f"\nWARNING: {len(noisy)} runs shared the machine with other load (up to "
              f"{max(r['other_load_cores'] for r in noisy):.2f} cores): figures are indicative only.")


def _runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    runs = list(result["mixed"]["platform"].values())
    for side in result.get("numeric", {}).values():
        runs += list(side.values())
    return runs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--python", default=str(bs.ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--ref", help="also measure the numeric single-row path on this commit (a clean export)")
    parser.add_argument("--fresh", action="store_true", help="wipe the VAR_DIRs first (retrains the demo models)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each tree with --ref")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bs.OUT.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": bs.machine(), "ref": args.ref}
    sides = [("working", bs.ROOT, bs.OUT / "var-mixed")]
    if args.ref:
        sides.insert(0, ("ref", bs.source_tree(args.ref), bs.OUT / "var-ref"))
    served: dict[str, tuple] = {}
    try:
        # Both trees serve side by side (the idle one costs nothing): their runs alternate, so a change in the
        # machine's other load hits both alike.
        for side, tree, var_dir in sides:
            served[side] = serve(args, tree, var_dir)
        if args.ref:
            result["numeric"] = alternating(args, served)
        server, port, env, key, client = served["working"]
        result["mixed"] = mixed_figures(args, port, env, key, client, server)
    finally:
        for server, *_ in served.values():
            server.stop()
    path = bs.OUT / f"mixed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    report(result)
    bs.log(f"figures in {path.relative_to(bs.ROOT)}")


def alternating(args, served: dict[str, tuple]) -> dict[str, dict[str, Any]]:
    """ref, working, ref, working...: --rounds runs of each; the figures of each side are their means."""
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in served}
    for _ in range(args.rounds):
        for side, (server, port, _env, key, client) in served.items():
            rounds[side].append(numeric_figures(args, port, key, client, server))
    return {side: {endpoint: _mean([run[endpoint] for run in runs]) for endpoint in NUMERIC}
            for side, runs in rounds.items()}


def _mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    groups = {name for run in runs for name in run["cpu_ms_per_request"]}
    return {"rps": sum(r["rps"] for r in runs) / len(runs),
            "other_load_cores": max(r["other_load_cores"] for r in runs),
            "cpu_ms_per_request": {name: round(sum(r["cpu_ms_per_request"].get(name, 0) for r in runs) / len(runs), 3)
                                   for name in groups},
            "runs": [{"rps": r["rps"], "other_load_cores": r["other_load_cores"]} for r in runs]}


if __name__ == "__main__":
    main()
