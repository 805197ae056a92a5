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
from collections import Counter
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


class TreeMeter(serving.CpuMeter):
    """bench_serving's meter, counting also the CPU of children that have exited (/proc's cutime and cstime):
    the RQ worker forks a work horse per job, and the horses that write the log to the database are gone by the
    time the meter looks."""

    def snapshot(self) -> dict[str, Any]:
        taken = super().snapshot()
        groups = Counter()
        table = process_table()
        for pid in serving_tree(table, self.root):
            ppid, ticks, cmd = table[pid]
            groups[self.classify(cmd, pid)] += ticks
        taken["groups"] = groups
        return taken


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, its CPU ticks and its exited children's, command line)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]), cmd)
    return table


def serving_tree(table: dict[int, tuple[int, int, str]], root: int) -> set[int]:
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found & set(table)


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
    meter = TreeMeter(platform.proc.pid, lambda cmd, pid: serving.platform_group(cmd, pid, model_pids))
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
    print_report(info, args, runs)
    return {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}


def print_report(info: dict[str, Any], args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
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
    path = serving.OUT / f"monitoring-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    serving.log(f"done in {time.monotonic() - started:.0f} s; figures in {path.relative_to(serving.ROOT)}")


if __name__ == "__main__":
    main()
