"""Starting real worker processes for tests, and talking to them without the client."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.contract.protocol import MemberSpec, WorkerSpec, encode, recv_message
from inference.runtime.flavors.sklearn import SkopsRuntime
from tests.inference.runtime.toy_runtime import FORMAT as TOY_FORMAT
from tests.inference.runtime.toy_runtime import write_toy
from tests.paths import REPO_ROOT

READY_TIMEOUT_S = 60.0
_CREATED: list[Path] = []


def short_folder() -> Path:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer than that.
    folder = Path(tempfile.mkdtemp(prefix="spw-", dir="/tmp"))
    _CREATED.append(folder)
    return folder


def remove_created_files() -> None:
    while _CREATED:
        shutil.rmtree(_CREATED.pop(), ignore_errors=True)


def member(path: Path, fmt: str, *, weight: float = 1.0) -> MemberSpec:
    return MemberSpec(str(path), fmt, hashlib.sha256(path.read_bytes()).hexdigest(), weight)


def toy_member(folder: Path, name: str = "toy.json", *, weight: float = 1.0, **config: Any) -> MemberSpec:
    return member(write_toy(folder / name, **config), TOY_FORMAT, weight=weight)


def spec_for(members: list[MemberSpec], folder: Path, *, task: str = "regression", **overrides: Any) -> WorkerSpec:
    socket_path = str(folder / "sockets" / "w.sock")
    return WorkerSpec(
        socket_path=socket_path,
        deployment_id=1,
        endpoint="test",
        generation=1,
        replica=0,
        task=task,
        members=members,
        **overrides,
    )


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    event: dict[str, Any]
    socket_path: str
    stderr_path: Path
    folder: Path | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.event.get("event") == "ready"

    def call(
        self, op: str, inputs: Any = None, params: dict[str, Any] | None = None, *, timeout: float = 10.0, **extra: Any
    ) -> dict[str, Any]:
        """One request on a fresh connection, with a long socket timeout: what the worker itself answers."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            message = {"id": "t", "op": op, "deadline": time.time() + timeout, **extra}
            if inputs is not None:
                message["inputs"] = inputs
            if params is not None:
                message["params"] = params
            sock.sendall(encode(message))
            return recv_message(sock)

    def stats(self) -> dict[str, Any]:
        return self.call("stats")["stats"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def toy_worker(**overrides: Any) -> Worker:
    """A started toy-runtime worker; `toy={...}` configures the toy model, the rest the spec."""
    folder = short_folder()
    config = overrides.pop("toy", {})
    worker = start_worker(spec_for([toy_member(folder, **config)], folder, **overrides), folder=folder)
    assert worker.ready, worker.event
    return worker


def worker_pair(**overrides: Any) -> Iterator[list[Worker]]:
    """Two replicas of the toy worker, for a module-scoped fixture to `yield from`; stopped afterwards."""
    workers = [toy_worker(**overrides), toy_worker(**overrides)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def predict_call(client: Any, paths: list[str], rows: Any, *, within: float = 5.0, **params: Any) -> Any:
    """A predict through either worker client: the answer, or for the async client an awaitable of it."""
    return client.call(paths, {"op": "predict", "inputs": rows, "params": params}, deadline=time.time() + within)


def start_worker(spec: WorkerSpec, *, folder: Path | None = None, hooks: bool = True) -> Worker:
    stderr_path = short_folder() / "stderr.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    env.pop("SERVINGPLATFORM_TEST_HOOKS", None)
    if hooks:
        env["SERVINGPLATFORM_TEST_HOOKS"] = "1"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inference.runtime.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=env,
        )
    assert proc.stdin is not None
    proc.stdin.write(spec.to_json().encode() + b"\n")
    proc.stdin.close()
    event = _read_event(proc)
    return Worker(proc, event, spec.socket_path, stderr_path, folder)


def _read_event(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    if not readable:
        proc.kill()
        raise AssertionError("the worker printed nothing before the timeout")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"the worker exited ({proc.wait()}) without an event")
    return json.loads(line)


def raw_frame(socket_path: str, frame: bytes, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send bytes as they are; the answer, or None when the worker hung up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(frame)
        try:
            return recv_message(sock)
        except ConnectionResetError:
            return None


def wait_until(predicate: Any, *, timeout: float = 5.0) -> None:
    """Poll instead of sleeping a guessed time: these tests share the machine with others."""
    give_up_at = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up_at:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.005)


def computing(worker: Worker, batches_before: int) -> Any:
    """A predicate: the worker has started another forward pass since `batches_before`."""
    return lambda: worker.stats()["batches"] > batches_before


def draining(worker: Worker) -> bool:
    try:
        return worker.call("ping", timeout=1.0)["ok"] is False
    except OSError:
        return True  # the listener is already closed


# --- artifacts and calls shared by the worker tests ---------------------------------------------------

RNG = np.random.default_rng(11)
X = RNG.normal(size=(200, 4))


class DropoutNet(torch.nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(4, 32)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.body(x))))


def torchscript_artifact(folder: Path, name: str, *, dropout: float = 0.5, trace: bool = False) -> Path:
    module = DropoutNet(dropout).eval()
    scripted = torch.jit.trace(module, torch.zeros(2, 4)) if trace else torch.jit.script(module)
    path = folder / name
    torch.jit.save(scripted, str(path))
    return path


def skops_artifact(folder: Path, name: str, y: np.ndarray) -> Path:
    path = folder / name
    sio.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    return path


def in_process_skops(path: Path) -> SkopsRuntime:
    runtime = SkopsRuntime()
    runtime.load(str(path), task="classification", options=RuntimeOptions())
    return runtime


def batch_records(path: Path) -> list[tuple[int, bool]]:
    if not path.exists():
        return []
    return [(int(size), poison == "1") for size, poison in (line.split() for line in path.read_text().splitlines())]


def in_parallel(calls: list, *, workers: int | None = None) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(workers or len(calls)) as pool:
        return list(pool.map(run, calls))
