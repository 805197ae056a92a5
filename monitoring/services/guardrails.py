"""Rollout guardrails, judged with the alert rules every ALERT_EVAL_S.

An experiment's guardrails hold each treatment (every answering variant but the control: its deployment's
per-minute figures) to a highest error rate and p99 once it has answered `min_requests`; a breach pauses the
experiment (the control answers everyone), with the reason in its stop_reason. A follow_alias deployment's
guardrails watch each roll to a new version for GUARDRAIL_WATCH_S: a breach by the new version rolls the
deployment back to the previous one and stops it following its alias. Either raises a guardrail alert, resolved
once the experiment runs again or stops, or the deployment follows its alias again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from experiments import services as experiments
from experiments.errors import InvalidTransition
from experiments.models import Experiment, ExperimentStatus
from experiments.selectors import variants_of
from inference.deployments.services import deployment_roll_back
from inference.models import LIVE, Deployment
from monitoring.minutes import MINUTE_S, minute_of
from monitoring.models import OPEN, Alert, AlertKind, AlertState, Rollout, RolloutState
from monitoring.selectors.history import window_figures
from monitoring.services.alerts import transition

logger = logging.getLogger(__name__)


def breach(guardrails: dict[str, Any], *, requests: int, error_rate: float | None, p99_ms: float | None) -> str:
    """Why these figures break the guardrails ("" when they do not, or too few requests to judge)."""
    if not guardrails or requests < guardrails.get("min_requests", 1):
        return ""
    limit = guardrails.get("max_error_rate")
    if limit is not None and error_rate is not None and error_rate > limit:
        return f"error rate {error_rate:.4g} > {limit:g} over {requests} requests"
    limit = guardrails.get("max_p99_ms")
    if limit is not None and p99_ms is not None and p99_ms > limit:
        return f"p99 {p99_ms:g} ms > {limit:g} ms over {requests} requests"
    return ""


def guardrails_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"paused": 0, "rolled_back": 0}
    for experiment in Experiment.objects.filter(status=ExperimentStatus.RUNNING, promoting_to=""):
        if experiment.guardrails:
            counts["paused"] += _judge_experiment(experiment, now)
    for deployment in Deployment.objects.filter(LIVE, follow_alias=True).select_related("model_version"):
        if deployment.guardrails:
            counts["rolled_back"] += _judge_rollout(deployment, now)
    _resolve_settled(now)
    return counts


def _judge_experiment(experiment: Experiment, now: datetime) -> bool:
    since = _judging_since(experiment)
    arms, _ = variants_of(experiment)
    for variant in arms[1:]:
        # The treatment deployment's own per-minute figures, since the experiment started or since the minute
        # after its last guardrail pause: a resumed experiment is judged on what happened after the resume.
        figures = window_figures(variant.deployment, 0, since=since, now=now.timestamp())
        why = breach(experiment.guardrails, requests=figures.requests, error_rate=figures.error_rate,
                     p99_ms=figures.quantile_ms(0.99))
        if not why:
            continue
        reason = f"guardrail: variant '{variant.name}' {why}"
        try:
            experiments.experiment_pause(experiment=experiment, reason=reason)
        except InvalidTransition:
            return False  # paused or stopped meanwhile
        raise_alert(f"guardrail: experiment '{experiment.name}'", experiment.endpoint, reason, now,
                    value=figures.error_rate, context={"experiment": experiment.pk, "variant": variant.name})
        return True
    return False


def _judging_since(experiment: Experiment) -> float:
    start = (experiment.started_at or timezone.now()).timestamp()
    last = Alert.objects.filter(kind=AlertKind.GUARDRAIL, context__experiment=experiment.pk).order_by("-fired_at") \
        .values_list("fired_at", flat=True).first()
    return max(start, minute_of(last.timestamp()) + MINUTE_S) if last else start


def _judge_rollout(deployment: Deployment, now: datetime) -> bool:
    rollout = _rollout(deployment, now)
    previous = rollout.from_version
    if rollout.state != RolloutState.WATCHING or previous is None:
        return False
    version = rollout.to_version.version
    figures = window_figures(deployment.endpoint, 0, version=version, since=rollout.started_at.timestamp(),
                             now=now.timestamp())
    why = breach(deployment.guardrails, requests=figures.requests, error_rate=figures.error_rate,
                 p99_ms=figures.quantile_ms(0.99))
    if not why:
        if (now - rollout.started_at).total_seconds() >= settings.GUARDRAIL_WATCH_S:
            Rollout.objects.filter(pk=rollout.pk, state=RolloutState.WATCHING).update(
                state=RolloutState.PASSED, judged_at=now)
        return False
    reason = (f"guardrail: version {version} {why}; rolled back to version {previous.version} "
              f"and stopped following alias '{deployment.alias}'")
    if not deployment_roll_back(deployment=deployment, to_version=previous, reason=reason):
        return False
    Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.ROLLED_BACK, reason=reason, judged_at=now)
    raise_alert(f"guardrail: rollout of '{deployment.endpoint}'", deployment.endpoint, reason, now,
                value=figures.error_rate, context={"rollout": rollout.pk})
    return True


def _rollout(deployment: Deployment, now: datetime) -> Rollout:
    """The deployment's current rollout, a new one when its version moved since the last look (the first look
    only records where it stands)."""
    last = Rollout.objects.filter(deployment=deployment).select_related("to_version", "from_version").first()
    if last is not None and last.to_version_id == deployment.model_version_id:
        return last
    state = RolloutState.PASSED if last is None else RolloutState.WATCHING
    return Rollout.objects.create(deployment=deployment, from_version=last.to_version if last else None,
                                  to_version=deployment.model_version, state=state, started_at=now)


def raise_alert(name: str, endpoint: str, message: str, now: datetime, *, value: float | None,
                context: dict[str, Any]) -> Alert:
    logger.warning("%s: %s", name, message)
    return Alert.objects.create(
        kind=AlertKind.GUARDRAIL, name=name[:200], endpoint=endpoint, metric="guardrail", state=AlertState.FIRING,
        value=value, message=message, started_at=now, fired_at=now, updated_at=now, context=context,
        history=[{"at": now.isoformat(), "state": AlertState.FIRING, "value": value}])


def _resolve_settled(now: datetime) -> None:
    for alert in Alert.objects.filter(OPEN, kind=AlertKind.GUARDRAIL):
        if _settled(alert.context):
            transition(alert, AlertState.RESOLVED, alert.value, now, message=f"resolved: {alert.message}")


def _settled(context: dict[str, Any]) -> bool:
    if "experiment" in context:
        status = Experiment.objects.filter(pk=context["experiment"]).values_list("status", flat=True).first()
        return status != ExperimentStatus.PAUSED
    rollout = Rollout.objects.filter(pk=int(context.get("rollout") or 0)).select_related("deployment").first()
    return rollout is None or rollout.deployment.follow_alias or not rollout.deployment.is_live
