"""The history section of the admin's overview and of each deployment's page (monitoring/admin.py hooks it into
serving's pages): charts of traffic, errors and latency over the last hour and day (drawn by
static/monitoring/history.js from the embedded data), and the same windows' figures as a table with units."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.urls import reverse

from core import figures
from inference.deployments.admin_display import PageSection
from inference.models import Deployment
from monitoring.selectors.charts import history_charts

logger = logging.getLogger(__name__)
TEMPLATE = "admin/monitoring/history.html"
# The page still opens without Redis (where the open minutes are): it is where one goes to see what is wrong.
UNAVAILABLE = "The history is unavailable: Redis, which holds the latest minutes, does not answer."
TRAFFIC = {"name": "traffic", "title": "Traffic", "unit": "req/min"}
ERROR_RATE = {"name": "error_rate", "title": "Error rate", "unit": "%"}
# The overview draws one line per deployment, so each quantile has a chart of its own.
OVERVIEW_CHARTS = [TRAFFIC, ERROR_RATE, {"name": "p50", "title": "Latency p50", "unit": "ms"},
                   {"name": "p99", "title": "Latency p99", "unit": "ms"}]
DEPLOYMENT_CHARTS = [TRAFFIC, ERROR_RATE, {"name": "latency", "title": "Latency p50 / p99", "unit": "ms"}]


def overview_section(deployments: list[Deployment]) -> PageSection | None:
    if not deployments:
        return None  # the page says that nothing is deployed
    data = _charts([deployment.endpoint for deployment in deployments])
    if data is None:
        return PageSection(TEMPLATE, {"mode": "overview", "error": UNAVAILABLE})
    totals = {name: {series["endpoint"]: series["total"] for series in window["series"]}
              for name, window in data["windows"].items()}
    rows = [{"endpoint": deployment.endpoint, "url": reverse("admin:inference_deployment_change", args=[deployment.pk]),
             "windows": [_formatted(by_endpoint[deployment.endpoint]) for by_endpoint in totals.values()]}
            for deployment in deployments]
    return PageSection(TEMPLATE, {"mode": "overview", "charts": OVERVIEW_CHARTS, "data": data, "rows": rows})


def deployment_section(deployment: Deployment) -> PageSection:
    data = _charts([deployment.endpoint])
    if data is None:
        return PageSection(TEMPLATE, {"mode": "deployment", "error": UNAVAILABLE})
    hour, day = (_formatted(data["windows"][name]["series"][0]["total"]) for name in ("1h", "24h"))
    rows = [(label, hour[key], day[key]) for key, label in (
        ("requests", "Requests"), ("traffic", "Traffic (mean)"), ("errors", "Errors"), ("p50", "Latency p50"),
        ("p99", "Latency p99"))]
    return PageSection(TEMPLATE, {"mode": "deployment", "charts": DEPLOYMENT_CHARTS, "data": data, "rows": rows})


def _charts(endpoints: list[str]) -> dict[str, Any] | None:
    try:
        return history_charts(endpoints)
    except redis.RedisError:
        logger.warning("monitoring: the admin's history charts could not read Redis", exc_info=True)
        return None


def _formatted(total: dict[str, Any]) -> dict[str, str]:
    errors = figures.number(total["errors"])
    return {
        "requests": figures.number(total["requests"]),
        "traffic": f"{figures.number(total['requests_per_min'])} req/min",
        "errors": f"{errors} ({figures.percent(total['error_rate'])})" if total["requests"] else errors,
        "error_rate": figures.percent(total["error_rate"]),
        "p50": figures.ms(total["p50_ms"]), "p99": figures.ms(total["p99_ms"]),
    }
