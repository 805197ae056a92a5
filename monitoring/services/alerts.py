"""Alert rules (writes) and their evaluation, which the scheduler runs every ALERT_EVAL_S.

A rule's condition on a deployment opens a `pending` alert the first time it holds; once it has held for
`for_s` the alert fires (notified once); when it stops holding a pending alert is dropped and a firing one
resolves (notified once more). Transitions are conditional updates on the alert's state, so two evaluations
racing (two schedulers) notify once.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.services import full_clean
from inference.models import LIVE, Deployment
from monitoring.errors import InvalidAlertRule
from monitoring.models import OPEN, Alert, AlertKind, AlertRule, AlertState
from monitoring.selectors.alerts import metric_value
from monitoring.services.notify import notifications_create, webhook_url_check

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                  "<=": operator.le}
FIELDS = ("name", "deployment", "metric", "op", "threshold", "for_s", "window_s", "webhook_url", "webhook_secret",
          "email", "enabled", "notify")
HISTORY_LIMIT = 100


# --- rules ----------------------------------------------------------------------------------------------------

def alert_rule_create(**data: Any) -> AlertRule:
    rule = AlertRule()
    return _save(rule, data)


def alert_rule_update(*, rule: AlertRule, data: dict[str, Any]) -> AlertRule:
    return _save(rule, data)


def _save(rule: AlertRule, data: dict[str, Any]) -> AlertRule:
    if "webhook_url" in data:
        webhook_url_check(data["webhook_url"] or "")
    for field in FIELDS:
        if field in data:
            setattr(rule, field, data[field] if data[field] is not None else "")
    full_clean(rule, validate_unique=False)
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        raise InvalidAlertRule("name", f"'{rule.name}' is already the name of another rule") from None
    return rule


def alert_rule_delete(*, rule: AlertRule) -> None:
    """Its alerts stay in the history (without their rule); open ones resolve now, unnotified."""
    now = timezone.now()
    rule.alerts.filter(OPEN).update(state=AlertState.RESOLVED, resolved_at=now, updated_at=now,
                                    message="the rule was deleted")
    rule.delete()


# --- evaluation -----------------------------------------------------------------------------------------------

def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"evaluated": 0, "fired": 0, "resolved": 0}
    live = list(Deployment.objects.filter(LIVE).values_list("endpoint", flat=True))
    for rule in AlertRule.objects.filter(enabled=True):
        endpoints = [rule.deployment] if rule.deployment else live
        endpoints = [endpoint for endpoint in endpoints if endpoint in live]
        for endpoint in endpoints:
            value = metric_value(rule.metric, endpoint, rule.window_s, now=now.timestamp())
            holds = value is not None and OPS[rule.op](value, rule.threshold)
            _step(rule, endpoint, value, holds, now, counts)
            counts["evaluated"] += 1
        for alert in rule.alerts.filter(OPEN).exclude(endpoint__in=endpoints):  # undeployed since it opened
            _step(rule, alert.endpoint, None, False, now, counts)
    return counts


def _step(rule: AlertRule, endpoint: str, value: float | None, holds: bool, now: datetime,
          counts: dict[str, int]) -> None:
    alert = rule.alerts.filter(OPEN, endpoint=endpoint).first()
    if holds:
        alert = alert or _open(rule, endpoint, value, now)
        if alert is None:
            return
        if alert.state == AlertState.PENDING and (now - alert.started_at).total_seconds() >= rule.for_s:
            counts["fired"] += transition(alert, AlertState.FIRING, value, now, message=_message(rule, value))
        else:
            Alert.objects.filter(pk=alert.pk).update(value=value, updated_at=now)
    elif alert is not None and alert.state == AlertState.PENDING:
        Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).delete()  # never fired: nothing to tell
    elif alert is not None:
        counts["resolved"] += transition(alert, AlertState.RESOLVED, value, now,
                                         message=f"resolved: {rule.metric} = {_shown(value)}")


def _open(rule: AlertRule, endpoint: str, value: float | None, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=rule, kind=AlertKind.RULE, name=rule.name, endpoint=endpoint, metric=rule.metric,
                state=AlertState.PENDING, value=value, threshold=rule.threshold, started_at=now, updated_at=now,
                message=_message(rule, value), history=[_entry(now, AlertState.PENDING, value)])
    except IntegrityError:
        return None  # another evaluation opened it a moment ago; it carries on from there


def transition(alert: Alert, state: str, value: float | None, now: datetime, *, message: str) -> bool:
    """Moves an open alert to firing or resolved and notifies, once: True when this call made the move."""
    stamp = {"fired_at": now} if state == AlertState.FIRING else {"resolved_at": now}
    history = [*alert.history, _entry(now, state, value)][-HISTORY_LIMIT:]
    with transaction.atomic():
        moved = Alert.objects.filter(pk=alert.pk, state=alert.state).update(
            state=state, value=value, updated_at=now, message=message, history=history, **stamp)
        if moved:
            alert.refresh_from_db()
            notifications_create(alert=alert, event=state)
    return bool(moved)


def _entry(now: datetime, state: str, value: float | None) -> dict[str, Any]:
    return {"at": now.isoformat(), "state": state, "value": value}


def _message(rule: AlertRule, value: float | None) -> str:
    held = f" for {rule.for_s} s" if rule.for_s else ""
    return f"{rule.metric} = {_shown(value)} {rule.op} {rule.threshold:g}{held} (over the last {rule.window_s} s)"


def _shown(value: float | None) -> str:
    return "no data" if value is None else f"{value:g}"
