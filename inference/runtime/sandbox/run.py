# Runs inference.runtime.sandbox.validate in a child process with resource limits: loading an untrusted
# artifact can crash, hang or exhaust memory, and none of that may reach the calling worker.
from __future__ import annotations

import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.runtime.supervisor.launch import kill_group

logger = logging.getLogger(__name__)

# The folder that holds the `inference` package (repo/inference/runtime/sandbox/run.py): the child imports from it.
REPO_ROOT = Path(__file__).resolve().parents[3]
VALIDATE_COMMAND = [sys.executable, "-m", "inference.runtime.sandbox.validate"]
TEST_HOOKS_ENV = "SERVINGPLATFORM_TEST_HOOKS"

# Forwarded from the parent; everything else (database URLs, secret keys, tokens) stays behind.
_FORWARDED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TORCH_HOME",
)
_CHILD_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    # Validation runs on CPU: no CUDA context (hundreds of MB and GPU memory) for a smoke test.
    "CUDA_VISIBLE_DEVICES": "",
}
_SIGNAL_REASONS: dict[int, str] = {
    signal.SIGKILL: "it was killed, most likely for running out of memory",
    signal.SIGXCPU: "it used up its CPU time limit",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted, often a failed memory allocation",
}


def run_validation(request: dict[str, Any], *, timeout_s: float, memory_mb: int) -> dict[str, Any]:
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError("timeout_s and memory_mb must be positive")
    proc = subprocess.Popen(
        VALIDATE_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=child_environment(),
        preexec_fn=_limits(timeout_s, memory_mb),  # noqa: PLW1509 (see _limits)
        # Own process group, so a timeout kills anything the child started too.
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(json.dumps(request).encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()  # reaps it and closes the pipes
        return _failure(f"validation timed out after {timeout_s:g}s")
    return _answer(proc.returncode, stdout, stderr)


def child_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _FORWARDED_ENV if name in os.environ}
    for name, value in _CHILD_DEFAULTS.items():
        env.setdefault(name, value)
    if TEST_HOOKS_ENV in os.environ:
        env[TEST_HOOKS_ENV] = os.environ[TEST_HOOKS_ENV]
    return env


def _limits(timeout_s: float, memory_mb: int) -> Callable[[], None]:
    cpu_s = math.ceil(timeout_s) + 1
    data_limit = _within_hard_limit(resource.RLIMIT_DATA, memory_mb * 1024 * 1024, 0)
    cpu_limit = _within_hard_limit(resource.RLIMIT_CPU, cpu_s, 2)

    # Runs in the forked child before exec; it only calls setrlimit, which takes no locks that
    # another parent thread could hold at fork time.
    def apply() -> None:
        # RLIMIT_DATA, not RLIMIT_AS: since Linux 4.7 DATA counts private writable mappings (heap,
        # anonymous mmap, numpy/torch buffers), which is what a model really uses. AS also counts
        # every mapped shared library and reserved-but-untouched range: torch maps ~0.8 GB of address
        # space with ~0.3 GB resident (CPU build, measured), a CUDA build also maps its multi-GB CUDA
        # libraries, so an AS limit tight enough to matter breaks `import torch`. Measured here:
        # torchscript validation peaks ~230 MB RSS, skops ~320 MB; skops fails at 250 MB of DATA.
        resource.setrlimit(resource.RLIMIT_DATA, data_limit)
        # CPU seconds are a backstop for the wall-clock timeout (threads are pinned to 1 anyway).
        resource.setrlimit(resource.RLIMIT_CPU, cpu_limit)
        # cwd is the repository: a crashing untrusted model must not leave a core file there.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _within_hard_limit(kind: int, soft: int, headroom: int) -> tuple[int, int]:
    # An unprivileged process cannot raise its hard limit; a container may already have set one.
    _, hard = resource.getrlimit(kind)
    if hard == resource.RLIM_INFINITY:
        return soft, soft + headroom
    return min(soft, hard), min(soft + headroom, hard)


def _answer(returncode: int, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    if returncode < 0:
        _log_stderr(stderr)
        reason = _SIGNAL_REASONS.get(-returncode, f"it was stopped by signal {-returncode}")
        return _failure(f"validation failed: {reason}")
    try:
        answer = json.loads(stdout)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        _log_stderr(stderr)
        return _failure(f"validation produced no valid answer (exit status {returncode})")
    return answer


def _log_stderr(stderr: bytes) -> None:
    # Kept for operators only: the tail may contain paths, so it never goes into the answer.
    logger.warning("validation child stderr: %s", stderr[-4000:].decode(errors="replace"))


def _failure(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}
