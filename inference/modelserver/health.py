"""The model server's part of /health/ready, as the web tier sees it through the routing table.

Readiness means "can serve what it should serve". A deployment that failed (its artifact does not load, its
workers crash-loop) is not something this instance should serve: it shows in its own status, metrics and
alerts, and `/v2/models/{name}/ready` answers for it alone. Pulling the whole instance out of a load balancer
for it would stop every healthy deployment too.

A deployment still starting (pending or loading, served nowhere yet) counts only if it was created before this
process started: a fresh instance waits for what it should serve, but deploying something new later must not
take every web instance out of its load balancer while the new model loads (it is listed under "starting").
"""

from datetime import datetime
from typing import Any

from django.utils import timezone

from inference.models import LIVE, Deployment, DeploymentStatus
from inference.predict.contract import Route
from inference.predict.dispatch import routes


def model_server_check() -> dict[str, Any]:
    """Ready when every live deployment that should be served has at least one worker up."""
    live = list(Deployment.objects.filter(LIVE).values_list("endpoint", "status", "scale_to_zero", "created_at"))
    if not live:
        return {"ok": True, "deployments": 0}
    reader = routes()
    if not reader.supervisor_alive():
        return {"ok": False, "error": "model server not running", "deployments": len(live)}
    failed: list[str] = []
    down: list[str] = []
    starting: list[str] = []
    for endpoint, status, scale_to_zero, created_at in live:
        route = reader.endpoint(endpoint)
        if not should_serve(status, route):
            failed.append(endpoint)
        elif not serving(route, scale_to_zero):
            (starting if new_since_start(status, created_at) else down).append(endpoint)
    return {"ok": not down, "deployments": len(live), "not_serving": down, "failed": failed, "starting": starting}


def should_serve(status: str, route: Route | None) -> bool:
    """Whether this instance is expected to serve the deployment (a per-instance rule can join here)."""
    failed = DeploymentStatus.FAILED
    return status != failed and (route is None or route.status != failed)


def serving(route: Route | None, scale_to_zero: bool) -> bool:
    if route is None:
        return False
    # A scaled-to-zero deployment is healthy while idle: its next request loads it.
    return bool(route.sockets) or (scale_to_zero and route.status == "scaled_to_zero")


STARTED_AT = timezone.now()  # when this process imported the readiness checks, i.e. started serving


def new_since_start(status: str, created_at: datetime) -> bool:
    """A deployment that is not ready yet and was created after this process started."""
    return status != DeploymentStatus.READY and created_at > STARTED_AT
