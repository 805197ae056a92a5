"""The model server's part of /health/ready, as the web tier sees it through the routing table."""

from typing import Any

from inference.models import LIVE, Deployment
from inference.predict.contract import Route
from inference.predict.dispatch import routes


def model_server_check() -> dict[str, Any]:
    """Ready when every live deployment that should be loaded has at least one worker up."""
    live = list(Deployment.objects.filter(LIVE).values_list("endpoint", "scale_to_zero"))
    if not live:
        return {"ok": True, "deployments": 0}
    reader = routes()
    if not reader.supervisor_alive():
        return {"ok": False, "error": "model server not running", "deployments": len(live)}
    down = [endpoint for endpoint, scale_to_zero in live if not _serving(reader.endpoint(endpoint), scale_to_zero)]
    return {"ok": not down, "deployments": len(live), "not_serving": down}


def _serving(route: Route | None, scale_to_zero: bool) -> bool:
    if route is None:
        return False
    # A scaled-to-zero deployment is healthy while idle: its next request loads it.
    return bool(route.sockets) or (scale_to_zero and route.status == "scaled_to_zero")
