"""What alert rules compare (one figure per metric and deployment), and the alerts as readers see them."""

from __future__ import annotations

import time

from django.db.models import QuerySet

from inference.models import LIVE, Deployment, DeploymentStatus
from monitoring.errors import AlertRuleNotFound
from monitoring.models import Alert, AlertRule, AlertState, DriftReport, Metric
from monitoring.selectors.history import window_figures
from monitoring.selectors.quality import quality_value


def metric_value(metric: str, endpoint: str, window_s: int, *, now: float | None = None) -> float | None:
    """The figure `metric` of the deployment at `endpoint` over the last `window_s`; None without data (no
    requests, no feedback, no drift report, no live deployment), which never makes a condition hold."""
    if metric == Metric.HEALTH:
        deployment = Deployment.objects.filter(LIVE, endpoint=endpoint).first()
        return None if deployment is None else float(deployment.status != DeploymentStatus.FAILED)
    if metric == Metric.DRIFT_FEATURES:
        return _drifted_features(endpoint)
    if metric == Metric.QUALITY:
        return quality_value(endpoint, window_s)
    figures = window_figures(endpoint, window_s, now=time.time() if now is None else now)
    if metric == Metric.REQUESTS_PER_S:
        return round(figures.requests / window_s, 4)
    if metric == Metric.ERROR_RATE:
        return figures.error_rate
    if metric == Metric.CACHE_MISS_RATE:
        return figures.cache_miss_rate
    return figures.quantile_ms(0.95 if metric == Metric.P95_MS else 0.99)


def _drifted_features(endpoint: str) -> float | None:
    deployment = Deployment.objects.filter(LIVE, endpoint=endpoint).first()
    if deployment is None:
        return None
    report = DriftReport.objects.filter(endpoint=endpoint, model_version_id=deployment.model_version_id).first()
    return None if report is None else float(report.drifted_features)


def alert_rule_list() -> QuerySet[AlertRule]:
    return AlertRule.objects.all()


def alert_rule_get(pk: int) -> AlertRule:
    try:
        return AlertRule.objects.get(pk=pk)
    except AlertRule.DoesNotExist:
        raise AlertRuleNotFound(f"No alert rule with id {pk}.") from None


def alert_list(*, state: str | None = None, endpoint: str | None = None, rule: int | None = None,
               kind: str | None = None) -> QuerySet[Alert]:
    """Firing and resolved alerts, newest first; pending ones (a condition not yet held for its for_s) only when
    asked for by state."""
    alerts = Alert.objects.select_related("rule").prefetch_related("notifications")
    alerts = alerts.filter(state=state) if state else alerts.exclude(state=AlertState.PENDING)
    if endpoint:
        alerts = alerts.filter(endpoint=endpoint)
    if rule is not None:
        alerts = alerts.filter(rule_id=rule)
    if kind:
        alerts = alerts.filter(kind=kind)
    return alerts
