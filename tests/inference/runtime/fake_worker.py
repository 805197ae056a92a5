"""A stand-in for inference.runtime.worker in supervisor tests: same stdin spec, stdout event and socket
ops, no model. The endpoint name picks the behaviour:

  fail-load      announces "failed" and exits 1
  slow-load      never announces (load timeout)
  exit-early     exits 2 before announcing, with a path in its last stderr line
  crash-loop     announces "ready", then exits 3 with a path in its last stderr line
  stubborn       ignores SIGTERM (only SIGKILL stops it)
  anything else  announces "ready" and serves ping/stats/configure until SIGTERM, then exits 0

Before announcing "ready" it prints a stray line on stdout, as chatty libraries do.
A configure with max_queue=0 is refused, as a real worker refuses a bad value.
"""

import json
import os
import signal
import socketserver
import sys
import time
from pathlib import Path

from inference.runtime.contract.protocol import WorkerSpec, encode, recv_message

KNOBS = ("max_batch_size", "batch_timeout_ms", "max_queue", "threads")


def main() -> None:
    spec = WorkerSpec.from_json(sys.stdin.read())
    if spec.endpoint == "fail-load":
        _announce({"event": "failed", "error": "could not load the model: bad weights"})
        sys.exit(1)
    if spec.endpoint == "slow-load":
        time.sleep(60)
    if spec.endpoint == "exit-early":
        print("OSError: cannot open /srv/secret/models/model.pt", file=sys.stderr, flush=True)
        sys.exit(2)
    server = _serve(spec)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if spec.endpoint == "stubborn" else _exit_cleanly)
    print("a library chatting on stdout before the announcement", flush=True)
    _announce({"event": "ready", "load_ms": 12.5, "memory_mb": 64.0, "pid": os.getpid()})
    if spec.endpoint == "crash-loop":
        time.sleep(0.05)
        print("RuntimeError: CUDA error in /opt/models/secret/model.pt", file=sys.stderr, flush=True)
        os._exit(3)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        Path(spec.socket_path).unlink(missing_ok=True)


def _announce(event: dict) -> None:
    print(json.dumps(event), flush=True)


def _exit_cleanly(signum, frame) -> None:
    sys.exit(0)


def _serve(spec: WorkerSpec) -> socketserver.UnixStreamServer:
    state = {"knobs": {name: getattr(spec, name) for name in KNOBS}, "configures": 0}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            request = recv_message(self.request)
            self.request.sendall(encode({"id": request["id"], **_answer(request, state)}))

    Path(spec.socket_path).unlink(missing_ok=True)
    server = socketserver.ThreadingUnixStreamServer(spec.socket_path, Handler)
    server.daemon_threads = True
    return server


def _answer(request: dict, state: dict) -> dict:
    if request["op"] == "ping":
        return {"ok": True}
    if request["op"] == "stats":
        stats = {"pid": os.getpid(), "memory_mb": 70.0, "configures": state["configures"], **state["knobs"]}
        return {"ok": True, "stats": stats}
    if request["op"] == "configure":
        if request["params"].get("max_queue") == 0:
            return {"ok": False, "error": {"code": "bad_request", "message": "max_queue must be positive"}}
        state["knobs"].update(request["params"])
        state["configures"] += 1
        return {"ok": True}
    return {"ok": False, "error": {"code": "bad_request", "message": "unknown op"}}


if __name__ == "__main__":
    main()
