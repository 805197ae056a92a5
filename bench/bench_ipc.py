"""Overhead of the worker channel: WorkerClient -> Unix socket -> worker process, against calling the
same runtime in-process.

    .venv/bin/python bench/bench_ipc.py [--requests 2000] [--model logreg|toy] [--batch-timeout-ms 0]

Prints p50/p99 of a `ping` round trip and of a 1-row `predict` through the channel next to the in-process
`runtime.predict`, with ratios, then rows/s for 32 rows: one 32-row request, and 32 threads sending one
row each (the worker's dynamic batcher joins them). `--batch-timeout-ms 0` (the default here) measures
the channel alone; a deployment's batch timeout adds up to that much queueing to a lone request.
"""

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.runtime.contract.base import ModelRuntime, RuntimeOptions  # noqa: E402
from inference.runtime.contract.flavor_table import create_runtime  # noqa: E402
from inference.runtime.contract.protocol import MemberSpec, WorkerSpec  # noqa: E402
from inference.runtime.web.client import WorkerClient  # noqa: E402
from inference.runtime.worker.model import make_runtime  # noqa: E402

ROWS = np.random.default_rng(0).normal(size=(32, 4)).tolist()


def _artifact(folder: Path, model: str) -> tuple[Path, str, str]:
    if model == "toy":
        from tests.inference.runtime.toy_runtime import FORMAT, write_toy

        return write_toy(folder / "toy.json", weights=[1.0, 2.0, 3.0, 4.0]), FORMAT, "regression"
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(500, 4))
    path = folder / "logreg.skops"
    sio.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), path)
    return path, "skops", "classification"


def _start_worker(spec: WorkerSpec) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SERVINGPLATFORM_TEST_HOOKS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "inference.runtime.worker"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(spec.to_json().encode() + b"\n")
    proc.stdin.close()
    event = proc.stdout.readline().decode()
    if '"ready"' not in event:
        raise SystemExit(f"the worker did not start: {event}")
    return proc


def _time(call: Callable[[], object], requests: int) -> list[float]:
    for _ in range(min(200, requests)):
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


def _row(name: str, samples: list[float], baseline: list[float] | None = None) -> str:
    p50, p99 = _p(samples, 50), _p(samples, 99)
    ratio = "" if baseline is None else f"  x{p50 / _p(baseline, 50):5.1f} p50  x{p99 / _p(baseline, 99):5.1f} p99"
    return f"{name:<34} p50 {p50:8.1f} us   p99 {p99:8.1f} us{ratio}"


def _rows_per_s(call: Callable[[], object], rows: int, seconds: float = 2.0) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        done += rows
    return done / (time.perf_counter() - started)


def _threads_rows_per_s(call: Callable[[], object], threads: int, seconds: float = 2.0) -> float:
    counts = [0] * threads
    stop_at = time.perf_counter() + seconds

    def run(index: int) -> None:
        while time.perf_counter() < stop_at:
            call()
            counts[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--model", choices=("logreg", "toy"), default="logreg")
    parser.add_argument("--batch-timeout-ms", type=float, default=0.0)
    args = parser.parse_args()
    os.environ["SERVINGPLATFORM_TEST_HOOKS"] = "1"  # lets this process load the toy runtime too

    folder = Path(tempfile.mkdtemp(prefix="sp-bench-ipc-", dir="/tmp"))
    path, fmt, task = _artifact(folder, args.model)
    member = MemberSpec(str(path), fmt, hashlib.sha256(path.read_bytes()).hexdigest())
    spec = WorkerSpec(
        socket_path=str(folder / "sockets" / "w.sock"),
        deployment_id=1,
        endpoint="bench",
        generation=1,
        replica=0,
        task=task,
        members=[member],
        threads=1,
        batch_timeout_ms=args.batch_timeout_ms,
        max_batch_size=64,
    )
    runtime: ModelRuntime = make_runtime(fmt) if ":" in fmt else create_runtime(fmt)
    runtime.load(str(path), task=task, options=RuntimeOptions(threads=1))
    proc = _start_worker(spec)
    client = WorkerClient()
    paths = [spec.socket_path]

    def channel(op: str, rows: list[list[float]] | None = None) -> Callable[[], object]:
        message = {"op": op} if rows is None else {"op": op, "inputs": rows}
        return lambda: client.call(paths, message, deadline=time.time() + 5.0)

    try:
        print(f"model={args.model} requests={args.requests} batch_timeout_ms={args.batch_timeout_ms:g}")
        local = _time(lambda: runtime.predict(ROWS[:1]), args.requests)
        ping = _time(channel("ping"), args.requests)
        remote = _time(channel("predict", ROWS[:1]), args.requests)
        print(_row("in-process predict, 1 row", local))
        print(_row("channel ping", ping, local))
        print(_row("channel predict, 1 row", remote, local))
        print(f"{'channel overhead, 1-row predict':<34} p50 {_p(remote, 50) - _p(local, 50):8.1f} us")
        local_rate = _rows_per_s(lambda: runtime.predict(ROWS), 32)
        remote_rate = _rows_per_s(channel("predict", ROWS), 32)
        fan_in = _threads_rows_per_s(channel("predict", ROWS[:1]), 32)
        print(f"{'in-process, 32-row batch':<34} {local_rate:12,.0f} rows/s")
        print(f"{'channel, one 32-row request':<34} {remote_rate:12,.0f} rows/s  x{remote_rate / local_rate:.2f}")
        print(f"{'channel, 32 threads x 1 row':<34} {fan_in:12,.0f} rows/s  x{fan_in / local_rate:.2f}")
        stats = client.call(paths, {"op": "stats"}, deadline=time.time() + 5.0)["stats"]
        mean_batch = stats["batch_size_sum"] / stats["batches"]
        print(f"worker: {stats['batches']} forward passes, mean batch {mean_batch:.1f} rows")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
