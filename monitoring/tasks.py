"""What RQ runs for monitoring, by dotted name: the periodic jobs the scheduler queues (monitoring/apps.py adds
them to inference.jobs.tasks.PERIODIC) and notification deliveries. Interfaces only: they call services."""

from __future__ import annotations

from monitoring import logwriter
from monitoring.services.alerts import alerts_evaluate
from monitoring.services.drift import drift_compute_all
from monitoring.services.guardrails import guardrails_evaluate
from monitoring.services.history import history_trim, metric_minutes_roll_up
from monitoring.services.logs import prediction_log_trim
from monitoring.services.notify import notification_deliver


def write_log() -> int:
    return logwriter.drain()


def evaluate_alerts() -> dict:
    """Guardrails first: a breach they act on (a pause, a roll-back) shows in the rules' figures next time."""
    rolled_up = metric_minutes_roll_up()
    return {"minutes_rolled_up": rolled_up, **guardrails_evaluate(), **alerts_evaluate()}


def compute_drift() -> dict:
    return drift_compute_all()


def enforce_retention() -> dict:
    return {**prediction_log_trim(), **history_trim()}


def deliver_notification(notification_id: int) -> str:
    return notification_deliver(notification_id=notification_id)
