# The web side of the worker channel (see protocol.py). Web processes are gunicorn gthread workers,
# so this is plain blocking sockets, one persistent connection per (thread, replica), which needs no lock
# as its thread owns it. `call` keeps one request in flight on it; `call_many` writes several, then reads.
# This is the prediction hot path, so a call does no logging, no thread hand-off and no allocation
# beyond the frame itself.
from __future__ import annotations

import itertools
import os
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from inference.runtime.contract.gateway import is_remote
from inference.runtime.contract.protocol import (
    HEADER,
    MAX_FRAME_BYTES,
    ErrorCode,
    FrameError,
    decode,
    encode,
    recv_exactly,
)

# A worker that died turns a send into EPIPE; never let it become a process-killing SIGPIPE.
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)


class WorkerCallError(Exception):
    code = "worker_error"


class WorkerUnavailable(WorkerCallError):
    """No replica could take the request: none listening, connection lost, or all draining."""

    code = "worker_unavailable"


class DeadlineExceeded(WorkerCallError):
    code = ErrorCode.DEADLINE_EXCEEDED


class QueueFull(WorkerCallError):
    code = ErrorCode.QUEUE_FULL


class WorkerError(WorkerCallError):
    """The worker answered with an error (invalid_input, model_error, unsupported, bad_request)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NotDelivered(WorkerUnavailable):
    """The request never reached a worker (no connection, or it was refused on arrival): safe to send
    to another replica. A connection lost after sending is not: the request itself may be what killed
    the worker, and replaying it would take down a second replica."""


class _ThreadState:
    def __init__(self, offset: int) -> None:
        self.connections: dict[str, socket.socket] = {}
        self.turn = offset
        self.prefix = f"{os.getpid()}.{offset}."
        self.sequence = 0


# Opens an authenticated connection to a replica on another host (remote.py): (address, deadline) -> socket.
RemoteConnector = Callable[[str, float], socket.socket]


class WorkerClient:
    """One per web process, shared by its threads; each thread gets its own connections.

    An address is a local worker socket's path, or another host's replica (contract/gateway.py), which
    `remote` connects to; both then carry the same frames.
    """

    def __init__(self, remote: RemoteConnector | None = None) -> None:
        self._remote = remote
        self._local = threading.local()
        # Threads start their round robin at different replicas, so they do not all pile onto the first.
        self._offsets = itertools.count()
        # Connections opened before a fork would be shared with the parent: the child starts afresh.
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_connections(reference))

    def call(self, socket_paths: Sequence[str], message: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """Send `message` ({"op", "inputs", "params"}) to one replica and return its `ok` answer.

        `deadline` is absolute (time.time()); the client sets the message's "id" and "deadline". Raises
        WorkerUnavailable, DeadlineExceeded, QueueFull or WorkerError(code, message).
        """
        if not socket_paths:
            raise WorkerUnavailable("no worker replica is running")
        state = self._state()
        first = state.turn % len(socket_paths)
        state.turn += 1
        state.sequence += 1
        request_id = f"{state.prefix}{state.sequence}"
        frame = encode({**message, "id": request_id, "deadline": deadline})
        try:
            return self._call_one(state, socket_paths[first], frame, request_id, deadline)
        except NotDelivered as exc:
            if len(socket_paths) == 1 or time.time() >= deadline:
                raise WorkerUnavailable(str(exc)) from None
        second = socket_paths[(first + 1) % len(socket_paths)]
        try:
            return self._call_one(state, second, frame, request_id, deadline)
        except NotDelivered as exc:
            raise WorkerUnavailable(str(exc)) from None

    def call_many(
        self, socket_paths: Sequence[str], messages: list[dict[str, Any]], *, deadline: float
    ) -> list[dict[str, Any] | WorkerCallError]:
        """Each message's `ok` answer, or the exception `call` would raise for it, in order.

        The messages are spread over the replicas, and each replica gets all of its share down one
        connection before any answer is read, so they reach its batcher together and share forward
        passes. The worker answers them by id, in any order. Nothing is replayed here: a message no
        worker took reads as NotDelivered, which the caller may send again.
        """
        if not socket_paths:
            return [WorkerUnavailable("no worker replica is running")] * len(messages)
        state = self._state()
        shares: dict[str, list[tuple[int, str, bytes]]] = {}
        for index, message in enumerate(messages):
            state.sequence += 1
            request_id = f"{state.prefix}{state.sequence}"
            path = socket_paths[(state.turn + index) % len(socket_paths)]
            frame = encode({**message, "id": request_id, "deadline": deadline})
            shares.setdefault(path, []).append((index, request_id, frame))
        state.turn += 1
        results: list[Any] = [None] * len(messages)
        sent = {path: self._send_share(state, path, share, deadline, results) for path, share in shares.items()}
        for path, sock in sent.items():
            if sock is not None:
                self._receive_share(state, path, sock, shares[path], deadline, results)
        return results

    def _send_share(
        self, state: _ThreadState, path: str, share: list[tuple[int, str, bytes]], deadline: float, results: list[Any]
    ) -> socket.socket | None:
        payload = b"".join(frame for _, _, frame in share)
        try:
            sock = state.connections.get(path)
            if sock is not None and sock.family != socket.AF_UNIX and _peer_closed(sock):
                _drop(state, path)
                sock = None
            if sock is None or not _send(sock, payload, deadline):
                if sock is not None:
                    _drop(state, path)
                sock = self._connect(state, path, deadline)
                if not _send(sock, payload, deadline):
                    _drop(state, path)
                    raise NotDelivered("the worker closed the connection")
        except WorkerCallError as exc:
            _drop(state, path)  # a payload cut short by the timeout would garble the next call's frames
            for index, _, _ in share:
                results[index] = exc
            return None
        return sock

    def _receive_share(
        self, state: _ThreadState, path: str, sock: socket.socket, share: list[tuple[int, str, bytes]],
        deadline: float, results: list[Any],
    ) -> None:
        # Keyed by what an answer may carry: one without an id pops nothing and is refused below.
        waiting: dict[str | None, int] = {request_id: index for index, request_id, _ in share}
        try:
            while waiting:
                answer = _receive(sock, deadline)
                index = waiting.pop(answer.get("id"), None)
                if index is None:
                    raise ValueError("an answer that belongs to no request of this call")
                try:
                    results[index] = checked_answer(answer)
                except WorkerCallError as exc:
                    results[index] = exc
        except (TimeoutError, DeadlineExceeded):
            _drop(state, path)
            missing: WorkerCallError = DeadlineExceeded("the worker did not answer before the deadline")
        except (OSError, FrameError, ValueError):
            _drop(state, path)
            missing = WorkerUnavailable("the worker went away during the request")
        else:
            return
        for index in waiting.values():
            results[index] = missing

    def close(self) -> None:
        """Close the calling thread's connections."""
        state = getattr(self._local, "state", None)
        if state is not None:
            for sock in state.connections.values():
                sock.close()
            state.connections.clear()

    def _state(self) -> _ThreadState:
        try:
            state: _ThreadState = self._local.state
        except AttributeError:
            state = self._local.state = _ThreadState(next(self._offsets))
        return state

    def _call_one(
        self, state: _ThreadState, path: str, frame: bytes, request_id: str, deadline: float
    ) -> dict[str, Any]:
        sock = state.connections.get(path)
        if sock is not None and sock.family != socket.AF_UNIX and _peer_closed(sock):
            # Over TCP a send to a peer that closed succeeds, and the request would be lost after sending.
            _drop(state, path)
            sock = None
        try:
            if sock is None or not _send(sock, frame, deadline):
                if sock is not None:
                    _drop(state, path)  # a pooled connection whose worker went away: one fresh try
                sock = self._connect(state, path, deadline)
                if not _send(sock, frame, deadline):
                    _drop(state, path)
                    raise NotDelivered("the worker closed the connection")
        except DeadlineExceeded:
            _drop(state, path)  # a frame cut short by the timeout would garble the next one
            raise
        try:
            answer = _receive(sock, deadline)
        except (TimeoutError, DeadlineExceeded):
            # A late answer would arrive on this connection and be read as the next call's: drop it.
            _drop(state, path)
            raise DeadlineExceeded("the worker did not answer before the deadline") from None
        except (OSError, FrameError, ValueError):
            _drop(state, path)
            raise WorkerUnavailable("the worker went away during the request") from None
        if answer.get("id") != request_id:
            _drop(state, path)
            raise WorkerUnavailable("the worker's answer does not belong to this request")
        try:
            return checked_answer(answer)
        except NotDelivered:
            _drop(state, path)  # it closes its connections once drained anyway
            raise

    def _connect(self, state: _ThreadState, path: str, deadline: float) -> socket.socket:
        if is_remote(path):
            if self._remote is None:
                raise NotDelivered("this process cannot reach other hosts")
            state.connections[path] = self._remote(path, deadline)
            return state.connections[path]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(time_left(deadline))
            sock.connect(path)
        except TimeoutError:
            sock.close()
            raise DeadlineExceeded("no worker accepted the connection before the deadline") from None
        except OSError:
            sock.close()
            raise NotDelivered("no worker is listening") from None
        state.connections[path] = sock
        return sock


def _peer_closed(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: only a close (or garbage) can be waiting there."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _send(sock: socket.socket, frame: bytes, deadline: float) -> bool:
    try:
        sock.settimeout(time_left(deadline))
        if isinstance(sock, ssl.SSLSocket):
            sock.sendall(frame)  # takes no flags; its writes go through OpenSSL, which Python keeps from SIGPIPE
        else:
            sock.sendall(frame, _NO_SIGPIPE)
    except TimeoutError:
        raise DeadlineExceeded("the worker did not take the request before the deadline") from None
    except OSError:
        return False
    return True


def _receive(sock: socket.socket, deadline: float) -> dict[str, Any]:
    # The timeout is set before each part, so a slow body cannot stretch the call past the deadline.
    sock.settimeout(time_left(deadline))
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise FrameError("the answer exceeds the frame limit")
    sock.settimeout(time_left(deadline))
    return decode(recv_exactly(sock, size))


def checked_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """An `ok` answer as is; an error answer as the exception the caller gets."""
    if answer.get("ok") is True:
        return answer
    error = answer.get("error")
    code, message = (str(error.get("code")), str(error.get("message"))) if isinstance(error, dict) else ("", "")
    if code == ErrorCode.DRAINING:
        raise NotDelivered("the worker is shutting down")
    raise _error_for(code, message)


def _error_for(code: str, message: str) -> WorkerCallError:
    if code == ErrorCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message)
    if code == ErrorCode.QUEUE_FULL:
        return QueueFull(message)
    return WorkerError(code or "unknown", message)


def time_left(deadline: float) -> float:
    left = deadline - time.time()
    if left <= 0:
        raise DeadlineExceeded("the deadline passed")
    return left


def _drop(state: _ThreadState, path: str) -> None:
    sock = state.connections.pop(path, None)
    if sock is not None:
        sock.close()


def _forget_connections(reference: weakref.ref[WorkerClient]) -> None:
    client = reference()
    if client is not None:
        client._local = threading.local()
