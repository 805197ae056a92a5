"""A long request past its deadline vs the one-row requests behind it, against a real worker process.

The scenario of the issue "Survive faults and hostile input" (item 4): a torch MLP (demand-mlp's shape), timeout
1000 ms, max_queue 4, a 40,000-row Monte Carlo dropout request, then a one-row request every 100 ms for 6 s,
each with its own 1 s deadline. Prints what the one-row requests got and how long they waited, and the worker's
passes, expired and abandoned counts. `--ref COMMIT` runs the same against that commit's worker (git archive) in
the same run, the baseline.

    .venv/bin/python bench/bench_deadlines.py --ref 20d6985      # ~1 min on 2 cores
"""

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.runtime.contract.protocol import HEADER, recv_message  # noqa: E402

FEATURES = 8


class MLP(torch.nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def start(root: Path, folder: Path, artifact: Path) -> tuple[subprocess.Popen, str]:
    sock = str(folder / "w.sock")
    spec = {"socket_path": sock, "deployment_id": 1, "endpoint": "bench", "generation": 1, "replica": 0,
            "task": "classification", "max_batch_size": 32, "batch_timeout_ms": 0.0, "max_queue": 4, "threads": 1,
            "members": [{"path": str(artifact), "format": "torchscript",
                         "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}]}
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "inference.runtime.worker"], cwd=root, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdin.write(json.dumps(spec).encode() + b"\n")
    proc.stdin.close()
    event = json.loads(proc.stdout.readline())
    assert event["event"] == "ready", event
    return proc, sock


def call(sock_path: str, op: str, rows=None, params=None, *, within: float = 1.0) -> dict:
    # The rows are encoded before the deadline is set, as the web tier does (it checks and encodes them first):
    # encoding 40,000 rows on a loaded machine must not eat the request's own second.
    inputs = json.dumps(rows, separators=(",", ":"))
    head = json.dumps({"id": "b", "op": op, "params": params or {}}, separators=(",", ":"))[:-1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(sock_path)
        body = f'{head},"deadline":{time.time() + within},"inputs":{inputs}}}'.encode()
        sock.sendall(HEADER.pack(len(body)) + body)
        return recv_message(sock)


def scenario(sock: str, rows: int, samples: int) -> None:
    row = [[0.1] * FEATURES]
    outcomes: list[tuple[int, float, str]] = []

    def timed(index: int, payload, params, within: float) -> None:
        started = time.perf_counter()
        answer = call(sock, "predict", payload, params, within=within)
        outcomes.append((index, time.perf_counter() - started, "ok" if answer["ok"] else answer["error"]["code"]))

    threads = [threading.Thread(target=timed, args=(-1, row * rows, {"uncertainty": {"samples": samples}}, 1.0))]
    threads[0].start()
    time.sleep(0.05)
    for index in range(60):
        threads.append(threading.Thread(target=timed, args=(index, row, None, 1.0)))
        threads[-1].start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    big = next(o for o in outcomes if o[0] == -1)
    small = sorted(o for o in outcomes if o[0] >= 0)
    waits = sorted(o[1] for o in small)
    print(f"  {rows}-row MC dropout ({samples} samples): {big[2]} after {big[1]:.2f} s")
    print(f"  one-row requests: {dict(Counter(o[2] for o in small))}; waited p50 {waits[len(waits) // 2]:.3f} s, "
          f"max {waits[-1]:.3f} s")
    time.sleep(0.5)
    stats = call(sock, "stats", within=5)["stats"]
    print("  worker:", {key: stats.get(key) for key in ("batches", "expired", "abandoned", "errors")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", help="also run this commit's worker, the baseline")
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bd-", dir="/tmp") as tmp:
        folder = Path(tmp)
        artifact = folder / "mlp.pt"
        torch.jit.save(torch.jit.script(MLP(args.hidden).eval()), str(artifact))
        roots = [("working tree", ROOT)]
        if args.ref:
            baseline = folder / "ref"
            baseline.mkdir()
            archive = subprocess.run(["git", "archive", args.ref], cwd=ROOT, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            roots.append((f"baseline {args.ref}", baseline))
        for name, root in roots:
            run = folder / name.split()[0]
            run.mkdir()
            proc, sock = start(root, run, artifact)
            print(f"{name}:")
            try:
                scenario(sock, args.rows, args.samples)
            finally:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
