"""The quality and drift pages of one deployment in the admin (staff only, through admin_view)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from core.errors import ApplicationError
from monitoring.selectors.drift import drift_report_latest
from monitoring.selectors.history import WINDOWS as HISTORY_WINDOWS
from monitoring.selectors.history import timeseries
from monitoring.selectors.logs import endpoint_check
from monitoring.selectors.quality import WINDOWS as QUALITY_WINDOWS
from monitoring.selectors.quality import quality
from monitoring.services.drift import drift_compute


def _context(admin_site, request: HttpRequest, endpoint: str, title: str) -> dict:
    from monitoring.models import PredictionLog

    return {**admin_site.each_context(request), "opts": PredictionLog._meta, "endpoint": endpoint,
            "title": f"{title}: {endpoint}"}


def quality_page(admin_site, request: HttpRequest, endpoint: str) -> HttpResponse:
    asked = request.GET.get("window", "")
    window = asked if asked in QUALITY_WINDOWS else "24h"
    history = window if window in HISTORY_WINDOWS else "7d"
    try:
        endpoint_check(endpoint)
        figures, series, error = quality(endpoint, window), timeseries(endpoint, history), None
    except ApplicationError as exc:
        figures, series, error = None, None, exc.message
    context = {**_context(admin_site, request, endpoint, "Quality"), "window": window, "windows": list(QUALITY_WINDOWS),
               "quality": figures, "series": series, "error": error,
               "page": {"quality": figures, "timeseries": series}}
    return TemplateResponse(request, "admin/monitoring/quality.html", context)


def drift_page(admin_site, request: HttpRequest, endpoint: str) -> HttpResponse:
    if request.method == "POST":
        _compute(request, endpoint)
        return HttpResponseRedirect(request.path)
    report = drift_report_latest(endpoint)
    context = {**_context(admin_site, request, endpoint, "Drift"), "report": report,
               "page": {"features": report.features, "prediction": report.prediction} if report else None}
    return TemplateResponse(request, "admin/monitoring/drift.html", context)


def _compute(request: HttpRequest, endpoint: str) -> None:
    try:
        computed = drift_compute(endpoint=endpoint)
        messages.success(request, f"Drift computed: {computed.drifted_features} feature(s) drifted.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
