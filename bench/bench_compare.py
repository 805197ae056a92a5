"""Before and after in one run: two trees of the platform (two commits, or a commit and the working tree)
served one at a time, as `make serve` serves them, under the same wrk load, in alternating rounds (A B B A ...)
so that drift in the machine's other load falls on both alike. Prints req/s, p50, p99 and CPU ms per request
per cell and the after/before ratios. Run on demand, never in CI.

    .venv/bin/python bench/bench_compare.py --before 17feab4                 # that commit vs the working tree
    .venv/bin/python bench/bench_compare.py --before 17feab4 --after HEAD --rounds 3 --connections 16,64

Each tree runs from a clean `git archive` export (the working tree as it is when --after is omitted) with its
own VAR_DIR under bench/out/compare/, so their databases and demo models never mix (the first round of each
trains the demo models, ~2 min). Figures go to bench/out/compare-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import (  # noqa: E402
    OUT,
    ROOT,
    WIDTHS,
    Client,
    CpuMeter,
    Runner,
    Server,
    create_key,
    log,
    machine,
    model_worker_pid,
    platform_group,
    predict_path,
    reset_deployments,
    set_cache,
    start_platform,
    wait_for_endpoints,
)

MODELS = ("churn-logreg", "fraud-forest")
COMPARE = OUT / "compare"


def export(ref: str | None) -> tuple[Path, str]:
    """A clean export of `ref`, or of the working tree as it is now (tracked and untracked files)."""
    name = ref or "working-tree"
    tree = COMPARE / f"tree-{name.replace('/', '_')}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    if ref:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        label = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True,
                               text=True, check=True).stdout.strip()
        return tree, label
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.split(b"\0")
    for relative in filter(None, (f.decode() for f in files)):
        source = ROOT / relative
        if source.is_file():
            (tree / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / relative)
    return tree, "working tree"


def measure(args: argparse.Namespace, tree: Path, var_dir: Path, connections: list[int]) -> dict[str, Any]:
    """One round of one tree: start it, measure every cell, stop it."""
    run_args = argparse.Namespace(**vars(args), tree=tree, var_dir=var_dir, fresh=False)
    platform, port, env = start_platform(run_args)
    try:
        client = Client(port, create_key(run_args, env))
        wait_for_endpoints(client, platform)
        reset_deployments(client, platform)
        set_cache(client, False)
        return _cells(args, client, platform, port, connections)
    finally:
        platform.stop()


def _cells(args: argparse.Namespace, client: Client, platform: Server, port: int,
           connections: list[int]) -> dict[str, Any]:
    runner, model_pids = Runner(args), set()
    meter = CpuMeter(platform.proc.pid, lambda cmd, pid: platform_group(cmd, pid, model_pids))
    cells = {}
    for model in MODELS:
        model_pids.clear()
        model_pids.update(model_worker_pid(client, model))
        for conns in connections:
            cells[f"{model} c={conns}"] = runner.run(
                model, f"http://127.0.0.1:{port}{predict_path(model)}", meter=meter, mode="platform",
                width=WIDTHS[model], connections=conns, key=client.key)
    return cells


def summarize(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per cell, the median over rounds (robust to one disturbed round)."""
    summary = {}
    for cell in rounds[0]:
        runs = [r[cell] for r in rounds]
        summary[cell] = {
            "rps": statistics.median(r["rps"] for r in runs), "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "cpu_ms": statistics.median(sum(r["cpu_ms_per_request"].get(g, 0) for g in ("web", "model worker"))
                                        for r in runs),
            "other_load": statistics.median(r["other_load_cores"] for r in runs),
        }
    return summary


def print_table(labels: tuple[str, str], before: dict, after: dict) -> None:
    log(f"before = {labels[0]}, after = {labels[1]}; medians over rounds; CPU = web + model worker ms/request")
    header = f"{'cell':<24}{'req/s before':>14}{'after':>10}{'ratio':>8}{'p99 before':>12}{'after':>8}" \
             f"{'CPU before':>12}{'after':>8}{'other load':>12}"
    print(header)
    for cell in before:
        b, a = before[cell], after[cell]
        print(f"{cell:<24}{b['rps']:>14.0f}{a['rps']:>10.0f}{a['rps'] / b['rps']:>8.3f}{b['p99_ms']:>12.1f}"
              f"{a['p99_ms']:>8.1f}{b['cpu_ms']:>12.3f}{a['cpu_ms']:>8.3f}"
              f"{max(b['other_load'], a['other_load']):>12.2f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the baseline commit")
    parser.add_argument("--after", help="the commit to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per tree, alternating A B B A ...")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's venv python")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian), then run this again")
    connections = [int(c) for c in args.connections.split(",")]
    (before_tree, before_label), (after_tree, after_label) = export(args.before), export(args.after)
    info = machine()
    log(f"machine: {info['nproc']} x {info['cpu']}, load average {' '.join(info['loadavg'])}")
    trees = {"before": (before_tree, COMPARE / "var-before"), "after": (after_tree, COMPARE / "var-after")}
    rounds: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    order = [("before", "after") if n % 2 == 0 else ("after", "before") for n in range(args.rounds)]
    for n, pair in enumerate(order, 1):
        for which in pair:
            log(f"round {n}/{args.rounds}: {which}")
            rounds[which].append(measure(args, *trees[which], connections))
    before, after = summarize(rounds["before"]), summarize(rounds["after"])
    print_table((before_label, after_label), before, after)
    path = OUT / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": info, "before": before_label, "after": after_label, "rounds": rounds,
                                "summary": {"before": before, "after": after}}, indent=2, default=str))
    log(f"figures in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
