# One worker child process and its pipes: starting it, draining its stdout and stderr, asking it for
# stats or new knobs over its socket, killing it and describing how it ended.
#
# Separate from supervisor.py because this is the code that runs beside reconcile() rather than in it:
# the pipe readers and the configure sender are threads that only write into their own Launch, and
# nothing here decides what a worker should do next. Keeping it apart keeps the state machine's
# single writer, and its policy, in one module that can be read without the plumbing.
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from inference.runtime.contract.protocol import FAILED_EVENT, READY_EVENT, FrameError, WorkerSpec, encode, recv_message

STDERR_LINES = 50
# A child that exited may still have lines in its pipes. Its exit is judged once the reader threads
# reach EOF, or after this long in case a grandchild holds the pipes open.
_DRAIN_S = 1.0
_CONFIGURE_TIMEOUT_S = 2.0
_PATH = re.compile(r"(?<![\w.:/])(?:~|\.{1,2})?/[^\s'\"`:,;()\[\]<>]+")


def spawn(
    spec: WorkerSpec,
    knobs: dict[str, Any],
    *,
    cmd: Sequence[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
) -> Launch:
    """Starts the worker for spec, which runs with knobs until configured otherwise; OSError if it cannot."""
    Path(spec.socket_path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        # Its own session: a Ctrl-C on the supervisor's terminal must not interrupt workers
        # mid-request; the supervisor stops them with SIGTERM so they drain.
        start_new_session=True,
    )
    return Launch(spec, proc, knobs)


class Launch:
    """One child process. A restart is a new Launch, so a late reader thread of a dead child can
    only write into its own, abandoned, launch."""

    def __init__(self, spec: WorkerSpec, proc: subprocess.Popen[bytes], knobs: dict[str, Any]) -> None:
        self.spec = spec
        self.proc = proc
        self.started = time.monotonic()
        self.announcement: dict[str, Any] | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.exited_at: float | None = None
        self.knobs = knobs  # what the process runs with; differs from the desired spec until configured
        # Written once by the configure thread: (knobs sent, error or None, whether worth retrying).
        self.configure_result: tuple[dict[str, Any], str | None, bool] | None = None
        self.configuring, self.configure_after = False, 0.0
        self.refused_knobs: dict[str, Any] | None = None
        label = f"{spec.endpoint} g{spec.generation} r{spec.replica}"
        self.readers = [
            threading.Thread(target=_read_stdout, args=(self, label), daemon=True),
            threading.Thread(target=_read_stderr, args=(self, label), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def finished(self, now: float) -> bool:
        if self.proc.poll() is None:
            return False
        if self.exited_at is None:
            self.exited_at = now
        drained = not any(reader.is_alive() for reader in self.readers)
        return drained or now - self.exited_at >= _DRAIN_S


def _read_stdout(launch: Launch, label: str) -> None:
    proc = launch.proc
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # Written here rather than in reconcile: a child that is slow to read its stdin (importing
        # torch) would block a large spec's write.
        proc.stdin.write(launch.spec.to_json().encode() + b"\n")
        proc.stdin.close()
    except OSError:
        pass  # it died before reading its spec; its exit status tells why
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        event = _parse_announcement(line) if launch.announcement is None else None
        if event is not None:
            launch.announcement = event
        elif line:
            # A library printing to stdout before the announcement must not fail the load, and the
            # pipe has to be drained for the child's whole life or it blocks on a full buffer.
            _echo(label, line)


def _read_stderr(launch: Launch, label: str) -> None:
    assert launch.proc.stderr is not None
    for raw in launch.proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        launch.stderr.append(line)
        _echo(label, line)


def _echo(label: str, line: str) -> None:
    # The parent's stderr may be closed already (interpreter exit); the ring buffer still has the line.
    with suppress(OSError, ValueError):
        sys.stderr.write(f"[{label}] {line}\n")


def _parse_announcement(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("event") in (READY_EVENT, FAILED_EVENT):
        return message
    return None


def ask_stats(socket_path: str, timeout_s: float) -> dict[str, Any]:
    try:
        return _ask(socket_path, "stats", {}, timeout_s)
    except (OSError, FrameError, ValueError) as exc:
        message = "timed out" if isinstance(exc, TimeoutError) else "unreachable"
        return {"ok": False, "error": {"code": "unreachable", "message": f"the worker {message}"}}


def send_configure(launch: Launch, changes: dict[str, Any]) -> None:
    try:
        answer = _ask(launch.spec.socket_path, "configure", changes, _CONFIGURE_TIMEOUT_S)
    except (OSError, FrameError, ValueError) as exc:
        launch.configure_result = (changes, f"the worker did not answer ({type(exc).__name__})", True)
        return
    error = None if answer.get("ok") else scrub(str((answer.get("error") or {}).get("message", "refused")))
    launch.configure_result = (changes, error, False)


def _ask(socket_path: str, op: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    request = {"id": uuid.uuid4().hex, "op": op, "deadline": time.time() + timeout_s, "inputs": [], "params": params}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(socket_path)
        sock.sendall(encode(request))
        return recv_message(sock)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    # Only called while the child is unreaped, so its pid (= its group id) cannot have been reused.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def exit_reason(launch: Launch) -> str:
    reason = describe_exit(launch.proc.returncode if launch.proc.returncode is not None else -1)
    last_line = next((line for line in reversed(launch.stderr) if line.strip()), "")
    return f"{reason}: {scrub(last_line)}" if last_line else reason


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"worker exited with code {returncode}"
    number = -returncode
    name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
    return f"worker exited with signal {name}"


def scrub(text: str, limit: int = 300) -> str:
    """Replaces filesystem paths: error messages reach API clients and must not reveal the layout."""
    return _PATH.sub("<path>", text).strip()[:limit]
