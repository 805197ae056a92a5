# The routing table web processes read so that the prediction hot path needs no database query, and
# the control channel through which they ask the model server to wake a scaled-to-zero deployment.
#
# The table is the typed contract between the model server (its only writer) and the web tier: one
# `Route` per endpoint. The supervisor rewrites the file whole (temp file + os.replace) at least every few
# seconds, even without changes, so its `updated_at` doubles as the supervisor's heartbeat. A reader
# therefore sees the old or the new table, never a mix, and parses it only when the file changed.
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from inference.runtime.contract.protocol import FrameError, encode, recv_message

logger = logging.getLogger(__name__)

ENDPOINT_STATUSES = frozenset({"ready", "loading", "failed", "scaled_to_zero"})
_TEMP_PREFIX = ".routes-"
_CONTROL_IO_TIMEOUT_S = 5.0

ControlHandler = Callable[[dict[str, Any]], dict[str, Any]]
_FileIdentity = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Route:
    """How the web tier reaches one endpoint: what it serves, its state and its workers' sockets.

    Shared between the threads of a process once read: never mutated (`dataclasses.replace` makes another).
    """

    endpoint: str
    deployment_id: int
    model: str
    version: int
    model_version_id: int
    sha256: str
    generation: int
    status: str
    sockets: tuple[str, ...]
    task: str = "classification"
    signature: Mapping[str, Any] = field(default_factory=dict)
    classes: list[Any] | None = None
    reason: str = ""
    timeout_ms: int = 5000
    max_rows: int = 1024
    cache: bool = True
    ensemble: bool = False
    # What decided the answers (version, ensemble members and weights, int8): the prediction cache's scope.
    cache_scope: str = ""
    # The share of answered requests the web tier logs (the deployment's log_predictions, 0..1).
    log_predictions: float = 0.0
    # The alias the deployment follows ("" when pinned to its version). The universal route asks by alias, and
    # the alias moves in the database before this route names the new version (it does once that version's
    # generation is ready): until then this route still answers for the alias, with the version it serves.
    alias: str = ""

    def __post_init__(self) -> None:
        if self.status not in ENDPOINT_STATUSES:
            raise ValueError(f"endpoint {self.endpoint!r} has an unknown status {self.status!r}")

    @property
    def scope(self) -> str:
        # A table written before cache_scope existed names the version alone.
        return self.cache_scope or f"{self.model_version_id}:{self.sha256}"

    @property
    def serving(self) -> bool:
        """Whether a request can go to a worker now, without waking the deployment first."""
        return bool(self.sockets) and self.status != "scaled_to_zero"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sockets"], data["signature"] = list(self.sockets), dict(self.signature)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        known = {name: data[name] for name in _ROUTE_FIELDS if name in data}
        known["sockets"] = tuple(known.get("sockets") or ())
        known["reason"] = known.get("reason") or ""
        try:
            return cls(**known)
        except TypeError as exc:  # a required field missing
            raise ValueError(f"not a route: {exc}") from None


_ROUTE_FIELDS = tuple(f.name for f in fields(Route))


@dataclass(frozen=True, slots=True)
class RoutingTable:
    updated_at: float
    supervisor_pid: int
    endpoints: Mapping[str, Route]

    def to_json(self) -> dict[str, Any]:
        return {"updated_at": self.updated_at, "supervisor_pid": self.supervisor_pid,
                "endpoints": {name: route.to_json() for name, route in self.endpoints.items()}}

    @classmethod
    def from_json(cls, data: Any) -> RoutingTable:
        if not isinstance(data, dict) or not isinstance(data.get("endpoints"), dict):
            raise ValueError("not a routing table")
        endpoints = {name: Route.from_json(route) for name, route in data["endpoints"].items()}
        return cls(float(data.get("updated_at") or 0.0), int(data.get("supervisor_pid") or 0), endpoints)


EMPTY_TABLE = RoutingTable(updated_at=0.0, supervisor_pid=0, endpoints={})


class ControlUnavailable(Exception):
    """The model server did not answer on its control socket (not running, or too slow)."""


def ensure_private_dir(path: Path) -> None:
    """Creates `path` as 0700; refuses one that other users can enter rather than chmod it, because
    a shared directory such as /tmp must never be narrowed behind its owner's back."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} is open to other users (mode {mode:o}); make it 0700")


class RoutesWriter:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        ensure_private_dir(self.path.parent)
        # Temp files a killed writer left behind between mkstemp and os.replace.
        for leftover in self.path.parent.glob(f"{_TEMP_PREFIX}*"):
            leftover.unlink(missing_ok=True)

    def write(self, endpoints: Mapping[str, Route], *, updated_at: float | None = None) -> None:
        """Replaces the table, stamped with this process's pid and the time (the heartbeat) unless given."""
        stamp = time.time() if updated_at is None else updated_at
        table = RoutingTable(updated_at=stamp, supervisor_pid=os.getpid(), endpoints=endpoints)
        data = json.dumps(table.to_json(), separators=(",", ":"), allow_nan=False).encode()
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=_TEMP_PREFIX)  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # No fsync: readers see the new inode as soon as os.replace returns, and after a machine
            # crash the supervisor rewrites the table on start anyway.
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


class RoutesReader:
    """Thread-safe; the tables and routes it returns are immutable and shared between callers."""

    def __init__(self, path: str | os.PathLike[str], *, stale_after_s: float = 10.0, recheck_s: float = 0.0) -> None:
        self.path = Path(path)
        self.stale_after_s = stale_after_s
        # A stat per call is ~6% of a prediction's CPU in the web tier; a caller that can wait recheck_s for
        # a change (the model server applies changes within seconds anyway) skips it in between.
        self.recheck_s = recheck_s
        self._checked_at = float("-inf")
        # One tuple, swapped whole, so lock-free readers never pair one file's identity with
        # another file's table.
        self._cached: tuple[_FileIdentity | None, RoutingTable] = (None, EMPTY_TABLE)
        self._reload_lock = threading.Lock()

    def table(self, *, fresh: bool = False) -> RoutingTable:
        """The current table; within recheck_s of the last look, the one seen then unless `fresh`."""
        now = time.monotonic()
        if not fresh and now - self._checked_at < self.recheck_s and self._cached[0] is not None:
            return self._cached[1]
        try:
            identity = _identity(os.stat(self.path))
        except FileNotFoundError:
            return EMPTY_TABLE
        self._checked_at = now
        cached_identity, table = self._cached
        if identity == cached_identity:
            return table
        with self._reload_lock:
            return self._reload()

    def endpoint(self, name: str, *, fresh: bool = False) -> Route | None:
        return self.table(fresh=fresh).endpoints.get(name)

    def supervisor_alive(self) -> bool:
        return time.time() - self.table().updated_at <= self.stale_after_s

    def _reload(self) -> RoutingTable:
        try:
            with open(self.path, "rb") as handle:
                # The identity of the file actually opened: it may be newer than the one stat saw.
                identity = _identity(os.fstat(handle.fileno()))
                if identity == self._cached[0]:
                    return self._cached[1]  # another thread reloaded it while this one waited
                data = handle.read()
        except FileNotFoundError:
            return EMPTY_TABLE
        try:
            table = RoutingTable.from_json(json.loads(data))
        except ValueError:
            # Only a foreign writer can produce this (ours replaces atomically); keep serving the
            # last good table rather than failing every request until the next rewrite.
            logger.warning("the routing table is not a valid table; keeping the previous one")
            table = self._cached[1]
        self._cached = (identity, table)
        return table


def _identity(info: os.stat_result) -> _FileIdentity:
    # Every write is a new inode (os.replace), which catches a rewrite within one mtime tick on
    # filesystems with coarse timestamps; mtime and size catch a recycled inode number.
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class ControlServer:
    """Serves one length-prefixed JSON request per connection, e.g. {"op": "wake", "endpoint": str},
    on a thread per connection: `handler` must be thread-safe and quick (record the wish, return)."""

    def __init__(self, socket_path: str | os.PathLike[str], handler: ControlHandler) -> None:
        self.socket_path = Path(socket_path)
        self.handler = handler
        self._server: _ControlSocketServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ControlServer:
        ensure_private_dir(self.socket_path.parent)
        _remove_stale_socket(self.socket_path)
        server = _ControlSocketServer(str(self.socket_path), _ControlRequestHandler)
        server.respond = self._respond
        # Bound with the umask's mode for an instant; the 0700 directory keeps others out meanwhile.
        os.chmod(self.socket_path, 0o600)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.2,), name="control", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _respond(self, request: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(request.get("op"), str):
            return _control_error("bad_request", "a request needs an 'op' string")
        try:
            response = self.handler(request)
            encode(response)  # fail here, with an answer, rather than after a half-sent frame
        except Exception:
            logger.exception("control request %r failed", request.get("op"))
            return _control_error("internal", "the model server could not handle the request")
        return response


def _remove_stale_socket(path: Path) -> None:
    # Taking over a live socket would leave two supervisors loading the same models.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            path.unlink(missing_ok=True)
            return
        except OSError:
            pass
    raise RuntimeError(f"another model server is listening on {path}")


def _control_error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class _ControlSocketServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False
    respond: ControlHandler


class _ControlRequestHandler(socketserver.BaseRequestHandler):
    server: _ControlSocketServer

    def handle(self) -> None:
        self.request.settimeout(_CONTROL_IO_TIMEOUT_S)
        try:
            request = recv_message(self.request)
        except (OSError, FrameError, ValueError):
            return  # a client that hung up or sent garbage gets nothing; the server carries on
        with suppress(OSError):
            self.request.sendall(encode(self.server.respond(request)))


def control_request(
    socket_path: str | os.PathLike[str], message: Mapping[str, Any], timeout_s: float
) -> dict[str, Any]:
    """Raises ControlUnavailable when the model server cannot be reached or does not answer in time."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(socket_path))
            sock.sendall(encode(dict(message)))
            return recv_message(sock)
    except (OSError, FrameError, ValueError) as exc:
        raise ControlUnavailable("the model server did not answer") from exc
