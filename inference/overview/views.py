"""The overview page (/admin/overview/, linked from the admin's index). Charts of latency and traffic over
time slot into its `history` block once the platform records a history per minute."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from core import figures
from inference.deployments.admin_display import badge
from inference.overview import selectors
from inference.overview.selectors import DeploymentHealth


def overview(request: HttpRequest) -> TemplateResponse:
    health = selectors.deployment_health_list()
    context = {
        **admin.site.each_context(request), "title": "Overview",
        "totals": _totals(health), "rows": [_row(item) for item in health],
        "failures": selectors.recent_failures(health),
    }
    return TemplateResponse(request, "admin/inference/overview.html", context)


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
