# Entry point of a model worker process (see __init__.py). Loading, warm-up and every model call run
# on ONE dedicated thread: runtimes are not assumed thread-safe, MC dropout flips module state, and
# torch / OpenMP thread settings are per calling thread, so the thread that loads is the one that serves.
# Heavy modules are imported inside `main`, after stdout is claimed, so that even an import failure
# becomes a `failed` event rather than a traceback.
from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from inference.runtime.contract.formats import TORCHLESS_FORMATS
from inference.runtime.contract.protocol import FAILED_EVENT, READY_EVENT, WorkerSpec
from inference.runtime.flavors.torchless import refuse_torch

if TYPE_CHECKING:
    from inference.runtime.worker.model import ServedModel

_MAX_ERROR_CHARS = 1000
_UNLOAD_TIMEOUT_S = 2.0


class SpecInvalid(Exception):
    pass


ORPHAN_CHECK_S = 1.0


def main() -> int:
    announce = _claim_stdout()
    started, started_at = time.perf_counter(), time.time()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    spec: WorkerSpec | None = None
    try:
        spec = read_spec(sys.stdin.readline())
        keep_torch_out(spec)
        model = executor.submit(prepare_model, spec).result()
        listener = bind_socket(spec.socket_path)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the one failed event
        _announce(announce, {"event": FAILED_EVENT, "error": describe(exc, spec)})
        return 1
    load_ms = (time.perf_counter() - started) * 1000.0
    # The loaded model and the libraries live as long as the worker: frozen out of the cyclic collector, a full
    # collection no longer walks them between two batches (a pause every request in the queue would wait out).
    gc.collect()
    gc.freeze()
    timing = {"load_ms": load_ms, "started_at": started_at}
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve(spec, model, executor, listener, timing=timing, announce=announce))
    unloading = executor.submit(model.unload)
    try:
        unloading.result(timeout=_UNLOAD_TIMEOUT_S)
    except Exception:  # noqa: BLE001, S110 - the process exits either way
        pass
    sys.stderr.flush()
    # A forward pass still stuck after draining cannot be interrupted, and a normal interpreter exit
    # would wait for its thread forever.
    os._exit(0)


def read_spec(line: str) -> WorkerSpec:
    from inference.runtime.worker.server import BadRequest, validate_settings

    try:
        spec = WorkerSpec.from_json(line)
        limits = {"max_batch_size": spec.max_batch_size, "batch_timeout_ms": spec.batch_timeout_ms}
        limits["max_queue"] = spec.max_queue
        if spec.threads is not None:
            limits["threads"] = spec.threads
        validate_settings(limits)
    except (ValueError, TypeError, KeyError, BadRequest) as exc:
        raise SpecInvalid(f"the worker spec is invalid: {exc}") from None
    return spec


def keep_torch_out(spec: WorkerSpec) -> None:
    """Refuses `import torch` in a worker whose artifacts never need it (see runtime/torchless.py)."""
    if spec.members and all(member.format in TORCHLESS_FORMATS for member in spec.members):
        refuse_torch("in workers that serve only skops, XGBoost, LightGBM or ONNX artifacts")


def prepare_model(spec: WorkerSpec) -> ServedModel:
    """Runs on the model thread: load, apply the thread limit, warm up."""
    from inference.runtime.worker.model import load_model, warm_up

    model = load_model(spec)
    try:
        set_threads(spec.threads)
        warm_up(model, spec.warmup_requests)
    except BaseException:
        model.unload()
        raise
    return model


# Threads per replica when the deployment sets none. Each replica is a process and the platform scales out
# with replicas; torch's own default (a thread per core in every replica) oversubscribes the cores that
# the other replicas and the web tier share: demand-mlp served 1.4x the requests with 1 (bench_serving.py).
DEFAULT_THREADS = 1


def set_threads(threads: int | None) -> None:
    threads = threads or DEFAULT_THREADS
    torch = sys.modules.get("torch")  # only a torch model imported it; never import it for sklearn
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    # BLAS and OpenMP pools that numpy / sklearn loaded; they read no setting after they start.
    threadpool_limits(limits=threads)


def bind_socket(path: str) -> socket.socket:
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # makedirs' mode passes through the umask
    _remove_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Born 0600 under this umask, so there is no moment at which another user could connect.
    previous = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    # Every thread of every web process may connect at once.
    listener.listen(socket.SOMAXCONN)
    return listener


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SpecInvalid("the socket path is taken by a file that is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left behind by a worker that died
    else:
        raise SpecInvalid("another worker is already serving on this socket")
    finally:
        probe.close()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (it comes with uvicorn[standard], as in the web processes): the
    worker's loop turns every request's socket reads, frame hand-offs and answers, and under asyncio's own
    loop that was ~40% of the worker's CPU per prediction (bench/bench_serving.py --profile). None: asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(
    spec: WorkerSpec,
    model: ServedModel,
    executor: Executor,
    listener: socket.socket,
    *,
    timing: dict[str, float],
    announce: IO[str],
) -> None:
    from inference.runtime.worker.batcher import BatchSettings
    from inference.runtime.worker.server import WorkerServer, rss_mb

    settings = BatchSettings(spec.max_batch_size, spec.batch_timeout_ms, spec.max_queue)
    server = WorkerServer(model, executor, settings, **timing, threads=spec.threads, set_threads=set_threads)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.drain)
    await server.start(listener)
    ready = {"event": READY_EVENT, "load_ms": timing["load_ms"], "memory_mb": rss_mb(), "pid": os.getpid()}
    _announce(announce, ready)
    watch = asyncio.ensure_future(_drain_when_orphaned(server, os.getppid()))
    await server.stopped()
    watch.cancel()


async def _drain_when_orphaned(server: Any, parent: int) -> None:
    # A supervisor killed with SIGKILL cannot stop its workers; a worker whose parent is gone would hold
    # its model (and memory) forever, so it drains and exits by itself.
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_S)
    server.drain()


def describe(exc: BaseException, spec: WorkerSpec | None) -> str:
    from inference.runtime.contract.base import scrub_paths
    from inference.runtime.contract.errors import ModelRuntimeError
    from inference.runtime.contract.formats import UnknownFormat
    from inference.runtime.worker.model import LoadFailed

    message = str(exc).strip()
    if isinstance(exc, MemoryError):
        message = "the model needs more memory than the worker has"
    elif isinstance(exc, FileNotFoundError):
        message = "a file the model needs is missing"
    elif not isinstance(exc, (LoadFailed, SpecInvalid, ModelRuntimeError, UnknownFormat)) or not message:
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return scrub_paths(message, *_known_paths(spec))[:_MAX_ERROR_CHARS]


def _known_paths(spec: WorkerSpec | None) -> list[str]:
    if spec is None:
        return []
    paths = [member.path for member in spec.members] + [spec.socket_path]
    # Longest first, so a file's full path is replaced before its folder is.
    return sorted({*paths, *(os.path.dirname(path) for path in paths)} - {""}, key=len, reverse=True)


def _announce(stream: IO[str], event: dict[str, Any]) -> None:
    stream.write(json.dumps(event) + "\n")
    stream.flush()


def _claim_stdout() -> IO[str]:
    # Libraries print while loading and serving (warnings, C++ logs). fd 1 carries the one event line
    # only: everything else written to "stdout" from here on lands on stderr.
    event_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(event_fd, "w")
