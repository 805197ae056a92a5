"""Readiness of a web or jobs process when model servers run on many hosts: can it reach, for every live
deployment, at least one model server instance that serves it? Answered from its routing table (this host's
routes.json merged with the instances' announcements, minus those it found unreachable), so no connection
is opened per check."""

from typing import Any

from inference.models import LIVE, Deployment, DeploymentStatus
from inference.modelserver.health import new_since_start, serving
from inference.predict.dispatch import routes


def instances_check() -> dict[str, Any]:
    """ok unless a live deployment has no reachable instance; names those it cannot reach.

    A deployment that failed to load everywhere is listed apart: no web process could serve it, so it says
    nothing about this process. So is one deployed after this process started and not ready anywhere yet
    (inference/modelserver/health.py says why).
    """
    router = routes()
    instances = sorted(a.name for a in router.live_instances())
    if router.local.supervisor_alive():
        instances.insert(0, "local")
    live = Deployment.objects.filter(LIVE).values_list("endpoint", "status", "scale_to_zero", "created_at")
    unreachable: list[str] = []
    failed: list[str] = []
    starting: list[str] = []
    for endpoint, status, scale_to_zero, created_at in live:
        route = router.endpoint(endpoint)
        if serving(route, scale_to_zero):
            continue
        if status == DeploymentStatus.FAILED:
            failed.append(endpoint)
        else:
            (starting if new_since_start(status, created_at) else unreachable).append(endpoint)
    return {"ok": not unreachable, "instances": instances, "unreachable": unreachable, "failed": failed,
            "starting": starting}
