"""The private channel between web processes and model worker processes.

Transport: a Unix domain socket per worker replica, in a directory only the platform's user can enter
(0700; sockets 0600). Framing: a 4-byte big-endian length, then one UTF-8 JSON object. JSON (never
pickle) because the payload carries client data. The worker answers each frame by its id as soon as it is
done, in any order: the blocking client (client.py, web threads) keeps one request in flight per connection
(or, for the batch route, writes several before reading), the event-loop client (aioclient.py, the fast
lane) many on one connection per replica.

Request  {"id": str, "op": str, "deadline": float (time.time() seconds), "inputs": list, "params": dict}
  A request still queued at its deadline is answered deadline_exceeded then; a long one (explain, uncertainty,
  more rows than max_batch_size) runs alone in short passes, taking turns with batches, and is abandoned
  before its next pass once the deadline has passed.
  ops: "predict"   inputs = validated rows (lists of numbers, or strings for text models)
                   params: {"uncertainty": {"samples": N}} for Monte Carlo dropout (torch with dropout)
       "explain"   inputs = rows; params: {"baseline": row | None}; answers per-feature importances
                   (typed rows: strings, numbers, booleans and nulls in the signature's column order)
       "ping"      liveness; answers {"ok": true}
       "stats"     answers {"ok": true, "stats": WorkerStats} (requests, errors, rows, batches, queue_depth,
                   expired: answered deadline_exceeded without running, abandoned: long requests stopped
                   between two passes past their deadline, ...)
       "configure" params: {"max_batch_size", "batch_timeout_ms", "max_queue", "threads"} (any subset)
Response {"id": str, "ok": true, ...op-specific fields} or {"id": str, "ok": false, "error": {"code", "message"}}
  predict  -> "predictions": [...], "probabilities": [[...]] | null, "classes": [...] | null,
              "std": [...] | null (uncertainty only), "batch_size": int (rows in the forward pass it rode),
              "queue_ms": float, "compute_ms": float
  explain  -> "importances": [[float per feature] per row], "baseline": row, "baseline_prediction": value,
              "predictions": [...], "builtin_importances": [float] | null,
              "skipped": {column: reason} (typed columns with no baseline value)
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class ErrorCode:
    QUEUE_FULL = "queue_full"  # -> 503 + Retry-After
    DEADLINE_EXCEEDED = "deadline_exceeded"  # -> 504
    INVALID_INPUT = "invalid_input"  # -> 400 (the model refused this request's data)
    MODEL_ERROR = "model_error"  # -> 500-class, message safe to show
    DRAINING = "draining"  # -> retry on another replica / 503
    UNSUPPORTED = "unsupported"  # -> 400 (e.g. uncertainty on a model without dropout)
    BAD_REQUEST = "bad_request"  # malformed message


class FrameError(Exception):
    pass


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return HEADER.pack(len(body)) + body


def pop_frames(buffer: bytearray) -> Iterator[bytes]:
    """The complete frame bodies at the front of `buffer`, each removed as it is yielded.

    Raises FrameError at a header announcing more than MAX_FRAME_BYTES: the stream's framing is lost.
    """
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if size > MAX_FRAME_BYTES:
            raise FrameError(f"frames are limited to {MAX_FRAME_BYTES} bytes")
        end = HEADER.size + size
        if len(buffer) < end:
            return
        body = bytes(buffer[HEADER.size : end])
        del buffer[:end]
        yield body


class Outbox:
    """The frames one side of an event-loop connection writes during one pass of its loop, sent in one write at
    the end of that pass: the answers of one batch (worker side) and the requests that arrived together (web
    side) then cost one syscall per connection instead of one each (~10 us apiece, a tenth of a prediction's
    CPU here, measured by bench/bench_serving.py --profile). Frames leave in the order they were put.

    Each frame may carry a tag (the web side's request id): `discard` hands back the tags of frames that were
    never written, so their callers learn that nothing was sent and may try another replica.
    """

    __slots__ = ("transport", "_frames", "_tags")

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self._frames: list[bytes] = []
        self._tags: list[Any] = []

    def put(self, frame: bytes, tag: Any = None) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self._frames.append(frame)
        self._tags.append(tag)

    def flush(self) -> None:
        frames, self._frames, self._tags = self._frames, [], []
        transport = self.transport
        if frames and transport is not None and not transport.is_closing():
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def discard(self) -> list[Any]:
        """Drops the frames not yet written (the connection is gone) and returns their tags."""
        tags, self._frames, self._tags = self._tags, [], []
        return tags


def decode(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict):
        raise FrameError("a frame must hold a JSON object")
    return message


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionResetError("the worker closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any]:
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes exceeds the limit")
    return decode(recv_exactly(sock, size))


@dataclass
class MemberSpec:
    """One model a worker loads; several with weights make an ensemble (averaged outputs)."""

    path: str
    format: str
    sha256: str
    weight: float = 1.0
    version_id: int | None = None


@dataclass
class WorkerSpec:
    """Everything a worker process needs; written as JSON to the worker's stdin by the supervisor."""

    socket_path: str
    deployment_id: int
    endpoint: str
    generation: int
    replica: int
    task: str
    members: list[MemberSpec]
    signature: dict[str, Any] = field(default_factory=dict)
    classes: list[Any] | None = None
    device: str = "cpu"
    threads: int | None = None
    compile: bool = False
    quantize: bool = False
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    max_queue: int = 256
    warmup_requests: int = 1
    # The version's input example (records): real rows for warm-up, categorical baselines for explain.
    input_example: list[Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        data["members"] = [MemberSpec(**member) for member in data["members"]]
        return cls(**data)


# The worker announces itself on stdout with ONE JSON line, then keeps stdout quiet:
#   {"event": "ready", "load_ms": float, "memory_mb": float, "pid": int}
#   {"event": "failed", "error": "reason safe to show"}   (then exits non-zero)
READY_EVENT = "ready"
FAILED_EVENT = "failed"
