"""The peers under wrk: the HTTP floor, the in-process floor, KServe, PyTriton and MLServer, one at a time,
each in its own virtualenv (bench/.peers/, created on the first run), serving the platform demo's
churn-logreg (LogisticRegression, 10 features) and fraud-forest (RandomForest, 20 features) with single-row
requests. Run on demand, never in CI.

    apt-get install -y wrk                                   # once, as root (Debian's wrk)
    .venv/bin/python bench/bench_peers.py                     # every peer, 16 and 64 connections
    .venv/bin/python bench/bench_peers.py --peers kserve,kserve-v2 --duration 5 --versus kserve

For each peer: start it on a free loopback port, check its answers against the models' own predict_proba,
then for each model and connection count a wrk warm-up (--warmup s, discarded) and a measured run
(--duration s), 2 threads, a fresh random row per request (bench/serving_load.lua in template mode with the
peer's body); stop it. Printed: req/s, p50, p99, CPU ms per request of the server's whole process tree (from
/proc) and the cores busy outside the benchmark ("other load"); the best peer and the floors per cell
(--versus NAME: one peer's ratios to the best of the others and its share of the floors, as bench_serving.py
prints them for the platform). Saved: bench/out/peers-<time>.json.

bench_serving.py calls measure_peer() for each peer into its own table, keyed (who, model, connections)
like its ("platform", model, connections) entries, then print_versus("platform", table, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench_serving import CpuMeter, Runner, machine
from peers import EXTRA_PEERS, FLOORS, PEERS, Peer, peer
from peers.base import OUT, ROOT, Client, free_ports, log
from peers.models import SKLEARN_MODELS, demo_models

Table = dict[tuple[str, str, int], dict[str, Any]]
NOISY_CORES = 0.2  # other load above this lowers every figure on a 2-core machine


def measure_peer(target: Peer, runner: Runner, models_dir: Path, expected: dict[str, Any], names: list[str],
                 connections: list[int], table: Table) -> None:
    """Starts one peer, checks its answers, measures every (model, connections) cell into table[(peer name,
    model, connections)] and stops it, whatever happens."""
    (port,) = free_ports(1)
    server = target.start(port, models_dir, names)
    try:
        target.check(Client(port), {name: expected[name] for name in names})
        log(f"{target.name}: answers checked against the models' predict_proba ({', '.join(names)})")
        meter = CpuMeter(server.proc.pid, lambda cmd, pid: target.cpu_group(cmd))
        for model in names:
            width = expected[model]["n_features"]
            for conns in connections:
                figures = runner.run(f"{target.name} {model}", f"http://127.0.0.1:{port}{target.path(model)}",
                                     meter=meter, mode="template", width=width, connections=conns,
                                     model=target.template(model, width))
                figures.update(peer=target.name, model=model)
                table[(target.name, model, conns)] = figures
    finally:
        server.stop()


def cpu_ms(figures: dict[str, Any]) -> float:
    return sum(figures["cpu_ms_per_request"].values())


def best_peer(table: Table, model: str, conns: int, *, besides: str = "") -> tuple[str, dict[str, Any]] | None:
    """The peer with the most req/s in one cell, floors and `besides` (the subject) left out."""
    cells = [(who, figures) for (who, m, c), figures in table.items()
             if m == model and c == conns and who not in FLOORS and who != besides]
    return max(cells, key=lambda cell: cell[1]["rps"], default=None)


def versus(subject: str, table: Table, model: str, conns: int) -> dict[str, Any] | None:
    """One cell of the comparison: the subject against the best other peer (req/s ratio, p99 ratio) and its
    share of the floors' req/s. None when the subject has no figures there."""
    mine = table.get((subject, model, conns))
    if mine is None:
        return None
    cell: dict[str, Any] = {"model": model, "connections": conns, "rps": mine["rps"], "p99_ms": mine["p99_ms"],
                            "cpu_ms": round(cpu_ms(mine), 3)}
    best = best_peer(table, model, conns, besides=subject)
    if best:
        name, other = best
        cell.update(best_peer=name, best_rps=other["rps"], best_p99_ms=other["p99_ms"],
                    rps_ratio=round(mine["rps"] / other["rps"], 2),
                    p99_ratio=round(mine["p99_ms"] / other["p99_ms"], 2))
    for floor in FLOORS:
        ground = table.get((floor, model, conns))
        if ground and floor != subject:
            cell[f"share_of_{floor}"] = round(mine["rps"] / ground["rps"], 3)
    return cell


def print_table(table: Table, titles: dict[str, str]) -> None:
    print("\n## Peers (single-row requests; CPU ms/req: the server's whole process tree, from /proc)")
    print(f"{'peer':<14} {'model':<13} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} "
          f"{'other load':>11}  CPU by process")
    for (who, model, conns), r in sorted(table.items(), key=lambda item: (item[0][1], item[0][2])):
        groups = ", ".join(f"{name} {ms:.3f}" for name, ms in sorted(r["cpu_ms_per_request"].items(),
                                                                      key=lambda kv: -kv[1]) if ms)
        print(f"{who:<14} {model:<13} {conns:>5} {r['rps']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{cpu_ms(r):>10.3f} {r['other_load_cores']:>7.2f} cores  {groups}")
    for who, title in titles.items():
        print(f"  {who}: {title}")


def print_best(table: Table, models: list[str], connections: list[int]) -> list[dict[str, Any]]:
    print("\n## Best peer per cell (floors left out) and the floors")
    rows = []
    for model in models:
        for conns in connections:
            best = best_peer(table, model, conns)
            if not best:
                continue
            cell = versus(best[0], table, model, conns)
            rows.append(cell)
            floors = "  ".join(f"{floor} {table[(floor, model, conns)]['rps']:.0f} req/s "
                               f"(best = {cell[f'share_of_{floor}']:.0%})"
                               for floor in FLOORS if (floor, model, conns) in table)
            print(f"  {model:<13} c={conns:<3} {best[0]:<10} {cell['rps']:>7.0f} req/s, p99 {cell['p99_ms']:.1f} ms, "
                  f"{cell['cpu_ms']:.3f} CPU ms/req   {floors}")
    return rows


def print_versus(subject: str, table: Table, models: list[str], connections: list[int]) -> list[dict[str, Any]]:
    """The issue's comparison for one subject (the platform in bench_serving.py): its req/s over the best
    other peer's per cell, its p99 over that peer's, its share of the HTTP floor and its ratio to the
    in-process floor."""
    print(f"\n## {subject} vs the best peer per cell, and its share of the floors")
    print(f"{'model':<13} {'conns':>5} {'req/s':>8} {'p99 ms':>7} {'best peer':<10} {'req/s':>8} {'p99 ms':>7} "
          f"{'req/s ratio':>11} {'p99 ratio':>9} {'of HTTP floor':>13} {'/ in-process':>12}")
    rows = []
    for model in models:
        for conns in connections:
            cell = versus(subject, table, model, conns)
            if cell is None:
                continue
            rows.append(cell)
            best = (f"{cell['best_peer']:<10} {cell['best_rps']:>8.0f} {cell['best_p99_ms']:>7.1f} "
                    f"{cell['rps_ratio']:>10.2f}x {cell['p99_ratio']:>8.2f}x" if "best_peer" in cell
                    else f"{'-':<10} {'':>8} {'':>7} {'':>11} {'':>9}")
            http, local = cell.get("share_of_floor-http"), cell.get("share_of_floor-predict")
            http_text = "-" if http is None else f"{http:.1%}"
            local_text = "-" if local is None else f"{local:.2f}x"
            print(f"{model:<13} {conns:>5} {cell['rps']:>8.0f} {cell['p99_ms']:>7.1f} {best} "
                  f"{http_text:>13} {local_text:>12}")
    print("req/s ratio: higher is better; p99 ratio: lower is better; '/ in-process': req/s over the in-process "
          "floor's (predict_proba per request, no batching)")
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated, run in this order (also: {', '.join(EXTRA_PEERS)})")
    parser.add_argument("--models", default=",".join(SKLEARN_MODELS), help="comma-separated model names")
    parser.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (whole: wrk's unit)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each measured run")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's venv python")
    parser.add_argument("--models-dir", type=Path, default=OUT / "peer-models",
                        help="<name>/model.joblib + expected.json; built from registry.demo_models when missing")
    parser.add_argument("--fresh-models", action="store_true", help="retrain the models into --models-dir")
    parser.add_argument("--versus", help="also print this peer's ratios to the best of the others")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # see bench_serving.main
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian), then run this again")
    targets = [peer(name) for name in args.peers.split(",") if name]
    names = [name for name in args.models.split(",") if name]
    connections = [int(c) for c in args.connections.split(",")]
    unknown = set(names) - set(SKLEARN_MODELS)
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(sorted(unknown))}: choose from {', '.join(SKLEARN_MODELS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    venvs = {target.name: target.ensure_venv(args.python) for target in targets}  # pip never runs under wrk
    expected = demo_models(args.models_dir, fresh=args.fresh_models)
    info = machine()
    log(f"machine: {info['nproc']} x {info['cpu']}, load average {' '.join(info['loadavg'])}")
    runner, table, failures = Runner(args), {}, {}
    for target in targets:
        try:
            measure_peer(target, runner, args.models_dir, expected, names, connections, table)
        except SystemExit as exc:  # one peer that cannot start or answers wrong does not stop the others
            failures[target.name] = str(exc)
            log(f"{target.name} FAILED: {exc}")
    titles = {target.name: target.title.format(version=venvs[target.name]["version"]) for target in targets}
    report = summarize(args, info, venvs, titles, table, failures, names, connections)
    report["runs"] = runner.results
    path = OUT / f"peers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    log(f"done in {time.monotonic() - started:.0f} s; figures in {path.relative_to(ROOT)}")
    if failures:
        sys.exit(1)


def summarize(args: argparse.Namespace, info: dict[str, Any], venvs: dict[str, Any], titles: dict[str, str],
              table: Table, failures: dict[str, str], names: list[str], connections: list[int]) -> dict[str, Any]:
    print(f"\n# Peers — {info['nproc']} CPUs ({info['cpu']}), load average before {' '.join(info['loadavg'])}, "
          f"wrk {args.duration:g} s after {args.warmup:g} s warm-up, 2 threads")
    print_table(table, titles)
    best = print_best(table, names, connections)
    compared = print_versus(args.versus, table, names, connections) if args.versus else []
    print("\n## Virtualenvs (bench/.peers/)")
    for name, venv in venvs.items():
        print(f"  {name:<14} {venv['venv']:<30} {venv['size_mb']:>7.0f} MB, installed in {venv['install_s']:.0f} s")
    for name, error in failures.items():
        print(f"\nFAILED {name}: {error}")
    noisy = [r for r in table.values() if r["other_load_cores"] > NOISY_CORES]
    if noisy:
        print(f"\nWARNING: {len(noisy)} runs shared the machine with other load (up to "
              f"{max(r['other_load_cores'] for r in noisy):.2f} cores busy outside the benchmark): figures are low")
    return {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
            "peers": {name: {**venvs[name], "title": titles[name]} for name in venvs}, "failures": failures,
            "best": best, "versus": compared}


if __name__ == "__main__":
    main()
