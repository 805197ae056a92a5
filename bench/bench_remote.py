"""Remote (TCP, through a model server's authenticated gateway) against local (Unix socket) worker calls.

    .venv/bin/python bench/bench_remote.py [--seconds 3] [--threads 16] [--model toy|logreg] [--tls]

One real worker process holds the model. The web side is this process with the platform's blocking client
(as gunicorn threads use it): "local" calls the worker's Unix socket, as a web process on the model server's
host does; "remote" calls the same worker through the gateway (inference/runtime/supervisor/gateway.py),
which runs in a process of its own as in the model server, over loopback TCP after the secret handshake, as
a web process on another host does. Loopback has no wire latency: the difference is the relay's CPU and the
extra hop, what a real network adds comes on top.

Prints, for each path: p50/p99 of sequential 1-row predictions, and req/s with p99 at --threads threads,
then the remote/local ratios, and the load the machine carried meanwhile (other processes included).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ipc import ROWS, _artifact, _start_worker  # noqa: E402
from inference.runtime.contract.gateway import (  # noqa: E402
    GatewayAuth,
    client_tls,
    parse_remote,
    remote_address,
    server_tls,
)
from inference.runtime.contract.protocol import MemberSpec, WorkerSpec  # noqa: E402
from inference.runtime.web import remote  # noqa: E402
from inference.runtime.web.client import WorkerClient  # noqa: E402

SECRET = b"bench-secret-bench-secret-bench!"


def serve_gateway(socket_path: str, port_file: str, cert: str, key: str) -> None:
    """The gateway alone in this process (the model server's thread, without the model server)."""
    from inference.runtime.supervisor.gateway import Gateway

    gateway = Gateway("127.0.0.1", 0, GatewayAuth(SECRET, server_tls(cert, key, "")), lambda _: (socket_path,))
    gateway.start()
    Path(port_file).write_text(str(gateway.bound_port))
    threading.Event().wait()


def start_gateway(socket_path: str, folder: Path, cert: str, key: str) -> tuple[subprocess.Popen[bytes], int]:
    port_file = folder / "port"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-gateway", socket_path, str(port_file), cert, key],
                            cwd=ROOT)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the gateway did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def certificate(folder: Path) -> tuple[str, str]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def sequential(call: Callable[[], object], seconds: float) -> list[float]:
    for _ in range(100):
        call()
    samples, stop_at = [], time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def concurrent(call: Callable[[], object], threads: int, seconds: float) -> tuple[float, list[float]]:
    samples: list[list[float]] = [[] for _ in range(threads)]
    stop_at = time.perf_counter() + seconds

    def run(index: int) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            call()
            samples[index].append((time.perf_counter() - started) * 1000)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    flat = [s for per_thread in samples for s in per_thread]
    return len(flat) / (time.perf_counter() - started), flat


def p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


def cpu_load() -> tuple[float, float]:
    """(1-minute load average, cores), to judge the figures by."""
    return os.getloadavg()[0], float(os.cpu_count() or 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--model", choices=("logreg", "toy"), default="toy")
    parser.add_argument("--tls", action="store_true", help="the remote path over TLS too")
    parser.add_argument("--serve-gateway", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        serve_gateway(*args.serve_gateway)
        return
    os.environ["SERVINGPLATFORM_TEST_HOOKS"] = "1"  # the toy runtime lives in the tests

    folder = Path(tempfile.mkdtemp(prefix="sp-bench-remote-", dir="/tmp"))
    path, fmt, task = _artifact(folder, args.model)
    member = MemberSpec(str(path), fmt, hashlib.sha256(path.read_bytes()).hexdigest())
    spec = WorkerSpec(socket_path=str(folder / "sockets" / "w.sock"), deployment_id=1, endpoint="bench",
                      generation=1, replica=0, task=task, members=[member], threads=1, max_batch_size=64,
                      batch_timeout_ms=0.0)  # no added wait: the channel alone
    worker = _start_worker(spec)
    cert, key = certificate(folder) if args.tls else ("", "")
    gateway, port = start_gateway(spec.socket_path, folder, cert, key)
    auth = GatewayAuth(SECRET, client_tls("", "", cert))
    client = WorkerClient(remote=lambda address, until: remote.connect_blocking(
        parse_remote(address), auth, until, lambda _: None))
    paths = {"local (Unix socket)": spec.socket_path,
             f"remote (TCP{'+TLS' if args.tls else ''} via gateway)": remote_address(f"127.0.0.1:{port}", "bench", 0,
                                                                                   tls=args.tls)}
    message = {"op": "predict", "inputs": ROWS[:1], "params": {}}
    results = {}
    load_before = cpu_load()[0]
    try:
        for name, address in paths.items():
            def call(address: str = address) -> object:
                return client.call([address], message, deadline=time.time() + 10)

            one = sequential(call, args.seconds)
            rate, many = concurrent(call, args.threads, args.seconds)
            results[name] = (one, rate, many)
            print(f"{name:<32} 1 thread: p50 {p(one, 50):6.3f} ms  p99 {p(one, 99):6.3f} ms | {args.threads} threads: "
                  f"{rate:8,.0f} req/s  p99 {p(many, 99):7.3f} ms", flush=True)
    finally:
        gateway.terminate()
        worker.terminate()
        worker.wait(10)
        gateway.wait(10)
    (local_one, local_rate, local_many), (remote_one, remote_rate, remote_many) = results.values()
    print(f"remote / local: p50 x{p(remote_one, 50) / p(local_one, 50):.2f}, 1-thread p99 "
          f"x{p(remote_one, 99) / p(local_one, 99):.2f}, req/s x{remote_rate / local_rate:.2f}, "
          f"{args.threads}-thread p99 x{p(remote_many, 99) / p(local_many, 99):.2f}")
    load, cores = cpu_load()
    print(f"machine: {cores:.0f} cores, load average {load_before:.1f} before, {load:.1f} after "
          f"(above ~{cores:.0f} other processes take CPU from the measurement)")


if __name__ == "__main__":
    main()
