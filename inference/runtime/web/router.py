"""The routing table of a web or jobs process when model servers run on many hosts.

Two sources, merged in memory: this host's routes.json (the local model server, reached over Unix sockets)
and the announcements every model server instance publishes each tick (instance name, pool, gateway
address, the endpoints it has ready), which a background thread fetches about once a second. The prediction
hot path only reads the merged table; it is rebuilt when a source changes, an instance is marked down, or
an announcement's heartbeat lapses.

Per endpoint: the local route when its workers are ready (the Unix socket is the fast path), else every
ready replica of every live remote instance, interleaved so that the clients' round robin spreads requests
over instances; an instance whose connection failed is left out for `down_for_s`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.runtime.contract.gateway import remote_address
from inference.runtime.contract.routes import Route, RoutesReader, RoutingTable

logger = logging.getLogger(__name__)

# The instances' announcements as published (JSON objects); raises when the store cannot be read.
Fetch = Callable[[], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one model server instance says about itself (see inference/modelserver/announce.py)."""

    name: str
    pool: str
    address: str
    tls: bool
    heartbeat_at: float
    # endpoint -> its route as in routes.json (without sockets) plus "replicas": ready replicas there.
    endpoints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Announcement:
        endpoints = data.get("endpoints")
        if not isinstance(data.get("name"), str) or not isinstance(endpoints, dict):
            raise ValueError("not an instance announcement")
        return cls(name=data["name"], pool=str(data.get("pool") or ""), address=str(data.get("address") or ""),
                   tls=bool(data.get("tls")), heartbeat_at=float(data.get("heartbeat_at") or 0.0),
                   endpoints=endpoints)


def merge(local: RoutingTable, local_fresh: bool, instances: Iterable[Announcement], *, local_name: str,
          down: Iterable[str] = ()) -> RoutingTable:
    """The table a process routes by: local ready routes first, else the live remote instances' replicas."""
    unreachable = set(down)
    remote = [a for a in instances if a.name != local_name and a.address and a.address not in unreachable]
    names = set(local.endpoints) | {name for a in remote for name in a.endpoints}
    endpoints = {name: _route(name, local.endpoints.get(name), local_fresh, remote) for name in sorted(names)}
    return RoutingTable(updated_at=local.updated_at, supervisor_pid=local.supervisor_pid,
                        endpoints={name: route for name, route in endpoints.items() if route is not None})


def _route(name: str, local: Route | None, local_fresh: bool, remote: list[Announcement]) -> Route | None:
    if local is not None and local.sockets and (local_fresh or not remote):
        return local
    ready = [(a, a.endpoints[name]) for a in remote
             if name in a.endpoints and a.endpoints[name].get("status") == "ready"
             and int(a.endpoints[name].get("replicas") or 0) > 0]
    if not ready:
        if local is not None:
            return local
        others = [a.endpoints[name] for a in remote if name in a.endpoints]
        return _from_info(others[0], ()) if others else None
    newest = max(ready, key=lambda pair: int(pair[1].get("generation") or 0))[1]
    most = max(int(info["replicas"]) for _, info in ready)
    # Replica 0 of each instance, then replica 1 of each...: round robin alternates between instances.
    sockets = tuple(remote_address(a.address, name, replica, tls=a.tls)
                    for replica in range(most) for a, info in ready if replica < int(info["replicas"]))
    return _from_info(newest, sockets)


def _from_info(info: Mapping[str, Any], sockets: tuple[str, ...]) -> Route | None:
    try:
        return Route.from_json({**info, "sockets": sockets, "status": info.get("status") or "loading"})
    except ValueError:
        return None  # an announcement from a newer or garbled writer: not routable here


class InstanceRouter:
    """Thread-safe, with RoutesReader's read interface (table, endpoint, supervisor_alive)."""

    def __init__(self, local: RoutesReader, fetch: Fetch | None, *, local_name: str, refresh_s: float = 1.0,
                 heartbeat_ttl_s: float = 5.0, down_for_s: float = 5.0) -> None:
        self.local = local
        self.fetch = fetch
        self.local_name = local_name
        self.refresh_s = refresh_s
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.down_for_s = down_for_s
        self._instances: tuple[Announcement, ...] = ()
        self._down: dict[str, float] = {}  # instance address -> monotonic time it may be tried again
        self._version = 0
        # (local table, version, monotonic time it goes stale, merged table), swapped whole.
        self._merged: tuple[RoutingTable | None, int, float, RoutingTable] = (None, -1, 0.0, local.table())
        self._lock = threading.Lock()
        self._refreshing = False
        # The refresh thread does not survive a fork (gunicorn's workers, RQ's work horses): the child starts its own.
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(reference))

    # --- reads (the hot path) -------------------------------------------------------------------

    def table(self, *, fresh: bool = False) -> RoutingTable:
        self._ensure_refreshing()
        local = self.local.table(fresh=fresh)
        seen, version, stale_at, merged = self._merged
        if seen is local and version == self._version and time.monotonic() < stale_at:
            return merged
        return self._remerge(local)

    def endpoint(self, name: str, *, fresh: bool = False) -> Route | None:
        return self.table(fresh=fresh).endpoints.get(name)

    def supervisor_alive(self) -> bool:
        """Whether any model server can be reached: this host's, or a live instance elsewhere."""
        return self.local.supervisor_alive() or bool(self.live_instances())

    def live_instances(self) -> list[Announcement]:
        now, down = time.time(), self._down_now()
        return [a for a in self._instances
                if a.name != self.local_name and now - a.heartbeat_at <= self.heartbeat_ttl_s and a.address not in down]

    # --- what the callers report ------------------------------------------------------------------

    def mark_down(self, address: str) -> None:
        """A connection to the instance at `address` failed: route around it for a while."""
        with self._lock:
            self._down[address] = time.monotonic() + self.down_for_s
            self._version += 1
        logger.warning("model server instance %s unreachable; not routing to it for %.0f s", address, self.down_for_s)

    def refresh(self) -> None:
        """Fetches the announcements once; on failure keeps the last ones, which their heartbeats expire."""
        if self.fetch is None:
            return
        try:
            announcements = tuple(self._parse(self.fetch()))
        except Exception as exc:  # noqa: BLE001 - the store being down must not stop routing to local workers
            logger.debug("instance announcements unavailable: %s", exc)
            return
        with self._lock:
            if announcements != self._instances:
                self._instances = announcements
                self._version += 1

    # --- inside ---------------------------------------------------------------------------------

    def _remerge(self, local: RoutingTable) -> RoutingTable:
        with self._lock:
            version = self._version
            instances = self.live_instances()
            down = self._down_now()
        merged = merge(local, self.local.supervisor_alive(), instances, local_name=self.local_name, down=down)
        self._merged = (local, version, self._stale_at(instances), merged)
        return merged

    def _stale_at(self, instances: list[Announcement]) -> float:
        """When the merge must be redone although nothing was reported: a heartbeat lapses, a down mark ends,
        or the local table's own heartbeat may lapse (checked each second)."""
        now_wall, now = time.time(), time.monotonic()
        times = [now + 1.0, *(until for until in list(self._down.values()) if until > now)]
        times += [now + (a.heartbeat_at + self.heartbeat_ttl_s - now_wall) for a in instances]
        return min(times)

    def _down_now(self) -> set[str]:
        now = time.monotonic()
        # A copy first: mark_down may add an entry meanwhile (ended marks are few and simply stay).
        return {address for address, until in list(self._down.items()) if until > now}

    def _parse(self, raw: Iterable[Mapping[str, Any]]) -> Iterable[Announcement]:
        for data in raw:
            try:
                yield Announcement.from_json(data)
            except (ValueError, TypeError):
                logger.warning("ignoring a malformed model server announcement")

    def _ensure_refreshing(self) -> None:
        # Started on first use, in the process that uses it.
        if self._refreshing or self.fetch is None:
            return
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        self.refresh()
        threading.Thread(target=self._refresh_forever, name="instance-routes", daemon=True).start()

    def _refresh_forever(self) -> None:
        while self._refreshing:
            time.sleep(self.refresh_s)
            self.refresh()

    def close(self) -> None:
        """Stops the refresh thread (within refresh_s)."""
        self._refreshing = False

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._refreshing = False


def _forked(reference: weakref.ref[InstanceRouter]) -> None:
    router = reference()
    if router is not None:
        router.after_fork()
