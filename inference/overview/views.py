"""The overview page (/admin/overview/, linked from the admin's index). Other apps add sections below the
deployments (OVERVIEW_SECTIONS): the monitoring app's charts of traffic, errors and latency over time."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from core import figures
from inference.deployments.admin_display import PageSection, badge
from inference.models import Deployment
from inference.overview import selectors
from inference.overview.selectors import DeploymentHealth

# Made from the deployments the page lists (None: nothing to add); monitoring/admin.py adds its history. Serving
# shows them without knowing them, as a deployment's page shows PAGE_LINKS.
OVERVIEW_SECTIONS: list[Callable[[list[Deployment]], PageSection | None]] = []


def overview(request: HttpRequest) -> TemplateResponse:
    health = selectors.deployment_health_list()
    context = {
        **admin.site.each_context(request), "title": "Overview",
        "totals": _totals(health), "rows": [_row(item) for item in health],
        "failures": selectors.recent_failures(health), "sections": _sections(health),
    }
    return TemplateResponse(request, "admin/inference/overview.html", context)


def _sections(health: list[DeploymentHealth]) -> list[PageSection]:
    deployments = [item.deployment for item in health]
    return [section for make in OVERVIEW_SECTIONS if (section := make(deployments)) is not None]


def _row(item: DeploymentHealth) -> dict[str, Any]:
    deployment, summary = item.deployment, item.summary
    replicas = "\u2013" if item.replicas_ready is None else f"{item.replicas_ready}"
    return {
        "endpoint": deployment.endpoint, "healthy": item.healthy,
        "url": reverse("admin:inference_deployment_change", args=[deployment.pk]),
        "model": deployment.model.name, "version": deployment.model_version.version, "alias": deployment.alias,
        "status": badge(deployment.status, deployment.status_reason), "reason": deployment.status_reason,
        "instances": f"{replicas} of {deployment.replicas}", "traffic": figures.per_second(item.throughput_rps),
        "requests": figures.number(summary["requests"]), "error_rate": figures.percent(summary["error_rate"]),
        "p50": figures.ms(summary["latency_ms"]["p50"]), "p99": figures.ms(summary["latency_ms"]["p99"]),
        "restarts": item.restarts, "last_error": item.last_error,
    }


def _totals(health: list[DeploymentHealth]) -> dict[str, str]:
    requests = sum(item.summary["requests"] for item in health)
    errors = sum(item.summary["errors"] for item in health)
    return {
        "deployments": figures.number(len(health)),
        "healthy": figures.number(sum(item.healthy for item in health)),
        "requests": figures.number(requests), "error_rate": figures.percent(errors / requests if requests else 0.0),
        "traffic": figures.per_second(sum(item.throughput_rps or 0.0 for item in health)),
    }
