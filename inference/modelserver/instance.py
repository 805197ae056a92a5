"""This model server as one instance among many (README "Many hosts"): its own rows in the database (heartbeat,
and per deployment its status and runtime), its TCP gateway for other hosts (MODEL_SERVER_LISTEN), and its
announcement in Redis, which other hosts' web and jobs tiers route by.

It writes only what is its own; the deployment's status is summed up from every live instance's rows
(inference/deployments/instances.py), so instances never overwrite each other.
"""

import logging
import os
import socket
import time
from typing import Any

import redis
from django.conf import settings

from inference.deployments import instances
from inference.models import Deployment
from inference.predict import announcements
from inference.runtime.contract.gateway import GatewayAuth, server_tls, split_host_port
from inference.runtime.contract.routes import Route
from inference.runtime.supervisor.gateway import Gateway, SocketLookup

logger = logging.getLogger(__name__)
ANNOUNCE_EVERY_S = 1.0


class Instance:
    def __init__(self, lookup: SocketLookup) -> None:
        self.name, self.pool = settings.INSTANCE_NAME, settings.MODEL_SERVER_POOL
        self.id = 0
        self.gateway = _gateway(lookup) if settings.MODEL_SERVER_LISTEN else None
        self.last_announced = 0.0

    def start(self) -> None:
        """Listens (binding fails the start, not later) and registers, forgetting what a previous run reported."""
        if self.gateway is not None:
            self.gateway.start()
        self.id = instances.instance_register(name=self.name, pool=self.pool, address=self.address,
                                              host=socket.gethostname(), pid=os.getpid()).pk

    @property
    def address(self) -> str:
        """host:port other hosts reach the gateway at ("" without a listener)."""
        if self.gateway is None:
            return ""
        if settings.MODEL_SERVER_ADVERTISE:
            return str(settings.MODEL_SERVER_ADVERTISE)
        host = self.gateway.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.getfqdn()
        port = self.gateway.bound_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # --- the database: its own rows, then the sums --------------------------------------------------

    def record_status(self, deployment: Deployment, status: str, reason: str) -> None:
        instances.instance_record_status(instance_id=self.id, deployment_id=deployment.pk,
                                         generation=deployment.generation, status=status, reason=reason)
        instances.deployment_sum_up(deployment_id=deployment.pk)

    def record_runtime(self, deployment_id: int, runtime: dict[str, Any]) -> None:
        instances.instance_record_runtime(instance_id=self.id, deployment_id=deployment_id, runtime=runtime)
        instances.deployment_sum_up(deployment_id=deployment_id)

    def heartbeat(self, memory_mb: float) -> None:
        instances.instance_heartbeat(instance_id=self.id, memory_mb=round(memory_mb, 1))
        # Deployments of a pool with no live instance: nobody else would mark them pending.
        instances.deployments_sum_up_orphaned()

    def forget(self, *, keep: set[int]) -> None:
        """Drops its rows for deployments it no longer holds (undeployed, moved to another pool)."""
        if self.id:
            for deployment_id in instances.instance_forget(instance_id=self.id, keep=keep):
                instances.deployment_sum_up(deployment_id=deployment_id)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.close()
        if self.id:
            for deployment_id in instances.instance_stop(instance_id=self.id):
                instances.deployment_sum_up(deployment_id=deployment_id)

    # --- Redis: where other hosts route -------------------------------------------------------------

    def announce(self, routes: dict[str, Route]) -> None:
        """At most every ANNOUNCE_EVERY_S; only with a listener (nothing elsewhere could reach it otherwise)."""
        if self.gateway is None or time.monotonic() - self.last_announced < ANNOUNCE_EVERY_S:
            return
        endpoints = {}
        for endpoint, route in routes.items():
            info = route.to_json()
            info["replicas"] = len(info.pop("sockets"))  # the gateway picks the socket: only the count travels
            endpoints[endpoint] = info
        try:
            announcements.announce({"name": self.name, "pool": self.pool, "address": self.address,
                                    "tls": self.gateway.auth.tls is not None, "heartbeat_at": time.time(),
                                    "endpoints": endpoints})
        except redis.RedisError as exc:
            logger.warning("could not announce this instance in Redis (other hosts cannot route here): %s", exc)
            return
        self.last_announced = time.monotonic()

    def withdraw(self) -> None:
        """Off other hosts' routes at once, before the workers drain."""
        if self.gateway is None:
            return
        try:
            announcements.withdraw(self.name)
        except redis.RedisError:
            pass  # its key expires within seconds anyway


def _gateway(lookup: SocketLookup) -> Gateway:
    """The TCP listener for other hosts; run_model_server refused to start without a secret already."""
    host, port = split_host_port(settings.MODEL_SERVER_LISTEN)
    tls = server_tls(settings.MODEL_SERVER_TLS_CERT, settings.MODEL_SERVER_TLS_KEY, settings.MODEL_SERVER_TLS_CA)
    return Gateway(host, port, GatewayAuth(settings.MODEL_SERVER_SECRET.encode(), tls), lookup)
