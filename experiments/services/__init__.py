"""Writes and state transitions of experiments (validation lives here so the API and the admin agree)."""

from experiments.services.feedback import feedback_record
from experiments.services.lifecycle import (
    deployment_stop_veto,
    deployment_version_veto,
    experiment_check_arms,
    experiment_create,
    experiment_delete,
    experiment_pause,
    experiment_start,
    experiment_stop,
    experiment_update,
    experiments_stop_due,
    invalidate_routing,
)
from experiments.services.promotion import experiment_promote

__all__ = [
    "deployment_stop_veto", "deployment_version_veto", "experiment_check_arms", "experiment_create",
    "experiment_delete", "experiment_pause",
    "experiment_promote", "experiment_start", "experiment_stop", "experiment_update", "experiments_stop_due",
    "feedback_record", "invalidate_routing",
]
