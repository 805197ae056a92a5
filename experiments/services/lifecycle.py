"""Writes and state transitions of experiments. Validation lives here so the API and the admin agree."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.invalidation import announce
from core.services import full_clean
from experiments import recording
from experiments.errors import (
    DeploymentInExperiment,
    EndpointBusy,
    InvalidExperiment,
    InvalidTransition,
)
from experiments.models import ACTIVE, ACTIVE_STATUSES, Experiment, ExperimentStatus, Outcome, Variant
from experiments.routing import weights_problem
from experiments.selectors import experiment_get, experiments_using_deployment, variants_of
from inference.models import LIVE, Deployment, DeploymentStatus

logger = logging.getLogger(__name__)

EDITABLE = ("name", "description", "higher_is_better", "duration_hours", "ends_at", "guardrails")
DRAFT_ONLY = ("endpoint", "outcome")


def invalidate_routing() -> None:
    """Every process routes by the new state: this one at once, and again once the transaction commits
    (in case a concurrent request reloaded the old state meanwhile), the others when they hear of it."""
    announce("experiments")


# --- validation -----------------------------------------------------------------------------

def _input_shape(signature: dict) -> tuple:
    signature = signature or {}
    kind = signature.get("input_kind") or "tabular"
    types = tuple(c["dtype"] for c in signature.get("columns") or []) or None
    return kind, None if kind == "text" else signature.get("n_features"), signature.get("feature_names") or None, types


def _describe(shape: tuple) -> str:
    kind, width, names, types = shape
    if kind == "text":
        return "text"
    if names and types:
        shown = [f"{name}: {dtype}" for name, dtype in zip(names[:5], types)]
        return f"{width} columns ({', '.join(shown)}{', ...' if len(names) > 5 else ''})"
    return f"{width} features" + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else "")


def _compatible(first: tuple, other: tuple) -> bool:
    if first[0] != other[0]:
        return False
    if first[1] and other[1] and first[1] != other[1]:
        return False
    if first[3] and other[3] and first[3] != other[3]:
        return False  # one typed row cannot be strings for one variant and numbers for another
    return not (first[2] and other[2] and list(first[2]) != list(other[2]))


def _normalise_arms(variants: list[dict], shadows: list[dict]) -> tuple[list[dict], list[dict]]:
    arms = [{"name": v.get("name"), "deployment": v.get("deployment"), "weight": v.get("weight")} for v in variants]
    problem = weights_problem([arm["weight"] for arm in arms])
    if problem:
        index, message = problem
        raise InvalidExperiment("variants" if index is None else f"variants[{index}].weight", message)
    copies = [{"name": s.get("name") or s.get("deployment"), "deployment": s.get("deployment"), "weight": 0.0}
              for s in shadows]
    seen: dict[str, str] = {}
    for field, arm in [(f"variants[{i}]", a) for i, a in enumerate(arms)] + \
                      [(f"shadows[{i}]", s) for i, s in enumerate(copies)]:
        if not arm["name"] or not arm["deployment"]:
            raise InvalidExperiment(field, "needs a name and a deployment")
        if arm["name"] in seen:
            raise InvalidExperiment(f"{field}.name", f"'{arm['name']}' is already the name of {seen[arm['name']]}")
        seen[arm["name"]] = field
    answering = {arm["deployment"] for arm in arms}
    for index, copy in enumerate(copies):
        if copy["deployment"] in answering or [c["deployment"] for c in copies].count(copy["deployment"]) > 1:
            raise InvalidExperiment(f"shadows[{index}].deployment",
                                    f"'{copy['deployment']}' already gets this traffic; a shadow needs a deployment "
                                    "of its own")
    return arms, copies


def _check_deployments(arms: list[dict], copies: list[dict]) -> None:
    fields = [(f"variants[{i}].deployment", a) for i, a in enumerate(arms)] + \
             [(f"shadows[{i}].deployment", s) for i, s in enumerate(copies)]
    live = {d.endpoint: d for d in Deployment.objects.filter(LIVE, endpoint__in={a["deployment"] for _, a in fields})
            .select_related("model_version")}
    control_shape = None
    for field, arm in fields:
        deployment = live.get(arm["deployment"])
        if deployment is None:
            raise InvalidExperiment(field, f"no live deployment named '{arm['deployment']}'")
        if deployment.status != DeploymentStatus.READY:
            raise InvalidExperiment(field, f"deployment '{deployment.endpoint}' is {deployment.status}; only ready "
                                           "deployments can take traffic")
        shape = _input_shape(deployment.model_version.signature)
        if control_shape is None:
            control_shape, control = shape, deployment.endpoint
        elif not _compatible(control_shape, shape):
            raise InvalidExperiment(field, f"deployment '{deployment.endpoint}' takes {_describe(shape)} but the "
                                           f"control '{control}' takes {_describe(control_shape)}; clients send one "
                                           "input format to every variant")


def experiment_check_arms(*, variants: list[dict], shadows: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """Weights, names, deployments (exist, ready, compatible inputs); raises InvalidExperiment naming the field."""
    arms, copies = _normalise_arms(variants, shadows or [])
    _check_deployments(arms, copies)
    return arms, copies


def _replace_variants(experiment: Experiment, arms: list[dict], copies: list[dict]) -> None:
    experiment.variants.all().delete()
    rows = [Variant(experiment=experiment, name=a["name"], deployment=a["deployment"], weight=float(a["weight"]),
                    position=i) for i, a in enumerate(arms)]
    rows += [Variant(experiment=experiment, name=c["name"], deployment=c["deployment"], shadow=True, position=i)
             for i, c in enumerate(copies)]
    for row in rows:
        full_clean(row, validate_unique=False, validate_constraints=False)
    Variant.objects.bulk_create(rows)


# --- create / change / delete ---------------------------------------------------------------

def experiment_create(*, name: str, endpoint: str, variants: list[dict], shadows: list[dict] | None = None,
                      description: str = "", outcome: str = Outcome.ACCURACY, higher_is_better: bool = True,
                      duration_hours: float | None = None, ends_at=None, guardrails: dict | None = None,
                      created_by=None) -> Experiment:
    arms, copies = experiment_check_arms(variants=variants, shadows=shadows)
    experiment = Experiment(name=name, endpoint=endpoint, description=description, outcome=outcome,
                            higher_is_better=higher_is_better, duration_hours=duration_hours, ends_at=ends_at,
                            guardrails=guardrails or {}, created_by=created_by)
    full_clean(experiment, validate_constraints=False)
    with transaction.atomic():
        experiment.save()
        _replace_variants(experiment, arms, copies)
    return experiment_get(experiment.pk)


def experiment_update(*, experiment: Experiment, data: dict[str, Any]) -> Experiment:
    with transaction.atomic():
        # Locked so a concurrent start/stop cannot slip between the status check and the write.
        current = Experiment.objects.select_for_update().get(pk=experiment.pk)
        _check_editable(current, data)
        for field in (*EDITABLE, *DRAFT_ONLY):
            if field in data:
                setattr(current, field, data[field])
        if "duration_hours" in data and current.started_at and "ends_at" not in data:
            hours = data["duration_hours"]
            current.ends_at = current.started_at + timedelta(hours=hours) if hours else None
        full_clean(current, validate_constraints=False)
        current.save()
        if "variants" in data or "shadows" in data:
            existing_arms, existing_copies = variants_of(experiment_get(current.pk))
            arms, copies = experiment_check_arms(
                variants=data.get("variants", [_as_dict(v) for v in existing_arms]),
                shadows=data.get("shadows", [_as_dict(v) for v in existing_copies]),
            )
            if current.status != ExperimentStatus.DRAFT:
                _check_not_repointed([*existing_arms, *existing_copies], [*arms, *copies])
            _replace_variants(current, arms, copies)
    invalidate_routing()
    return experiment_get(current.pk)


def _check_not_repointed(existing: list[Variant], arms: list[dict]) -> None:
    """A started variant keeps its deployment: its statistics so far describe that deployment's model, and
    numbers measured on two models under one name would compare nothing. Weights may change (a ramp-up)."""
    was = {variant.name: variant.deployment for variant in existing}
    for arm in arms:
        if arm["name"] in was and was[arm["name"]] != arm["deployment"]:
            raise InvalidTransition(
                f"Variant '{arm['name']}' runs on deployment '{was[arm['name']]}' and cannot move to "
                f"'{arm['deployment']}' once the experiment has started (its results would mix two models); "
                "stop it and create a new experiment.", details={"field": "variants"})


def _as_dict(variant: Variant) -> dict:
    return {"name": variant.name, "deployment": variant.deployment, "weight": variant.weight}


def _check_editable(current: Experiment, data: dict) -> None:
    if current.status == ExperimentStatus.STOPPED:
        raise InvalidTransition("This experiment is stopped and can no longer change; create a new one.")
    if current.promoting_to:
        raise InvalidTransition(f"This experiment is being promoted to '{current.promoting_to}'.")
    for field in DRAFT_ONLY:
        if field in data and data[field] != getattr(current, field) and current.status != ExperimentStatus.DRAFT:
            raise InvalidTransition(f"{field} can only change while the experiment is a draft (it would mix "
                                    "results measured differently).")


def experiment_delete(*, experiment: Experiment) -> None:
    deleted, _ = Experiment.objects.filter(pk=experiment.pk).exclude(ACTIVE).delete()
    if not deleted:
        raise InvalidTransition(f"Experiment '{experiment.name}' is {experiment.status}; stop it before deleting it.")
    try:
        recording.forget(experiment.pk)
    except Exception:  # the figures expire with Redis's memory policy at worst
        logger.warning("could not delete the figures of experiment %s", experiment.pk, exc_info=True)


# --- transitions ----------------------------------------------------------------------------

def experiment_start(*, experiment: Experiment) -> Experiment:
    """Starts a draft or resumes a paused experiment, validating it against the deployments of now."""
    if experiment.status not in (ExperimentStatus.DRAFT, ExperimentStatus.PAUSED):
        raise InvalidTransition(f"Experiment '{experiment.name}' is {experiment.status}; only a draft or a paused "
                                "experiment can start.")
    arms, copies = variants_of(experiment)
    experiment_check_arms(variants=[_as_dict(v) for v in arms], shadows=[_as_dict(v) for v in copies])
    now = timezone.now()
    ends_at = experiment.ends_at
    if ends_at is None and experiment.duration_hours:
        ends_at = (experiment.started_at or now) + timedelta(hours=experiment.duration_hours)
    if ends_at is not None and ends_at <= now:
        raise InvalidExperiment("ends_at", "the planned end has passed; move it or clear it first")
    try:
        with transaction.atomic():
            started = Experiment.objects.filter(pk=experiment.pk, status=experiment.status, promoting_to="").update(
                status=ExperimentStatus.RUNNING, started_at=Coalesce("started_at", now), ends_at=ends_at,
                updated_at=now)
    except IntegrityError:
        raise _endpoint_busy(experiment) from None
    if not started:
        raise InvalidTransition("The experiment changed meanwhile; reload it and try again.")
    invalidate_routing()
    return experiment_get(experiment.pk)


def _endpoint_busy(experiment: Experiment) -> EndpointBusy:
    other = Experiment.objects.filter(ACTIVE, endpoint=experiment.endpoint).exclude(pk=experiment.pk).first()
    named = f" ('{other.name}', id {other.pk})" if other else ""
    return EndpointBusy(f"endpoint: '{experiment.endpoint}' already has a {other.status if other else 'running'} "
                        f"experiment{named}; only one experiment may run per endpoint.",
                        details={"field": "endpoint", "experiment": other.pk if other else None})


def experiment_pause(*, experiment: Experiment, reason: str = "") -> Experiment:
    """`reason` (a guardrail's breach) is kept in stop_reason; a pause by hand leaves it as it was."""
    fields = {"stop_reason": reason[:200]} if reason else {}
    paused = Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING, promoting_to="").update(
        status=ExperimentStatus.PAUSED, updated_at=timezone.now(), **fields)
    if not paused:
        raise InvalidTransition(f"Experiment '{experiment.name}' is {experiment.status}; only a running experiment "
                                "can pause.")
    invalidate_routing()
    return experiment_get(experiment.pk)


def experiment_stop(*, experiment: Experiment, force: bool = False, reason: str = "stopped") -> Experiment:
    """Ends the experiment. Refuses (409) to leave its public endpoint with nothing to answer unless forced."""
    if experiment.status == ExperimentStatus.STOPPED:
        raise InvalidTransition(f"Experiment '{experiment.name}' is already stopped.")
    if experiment.is_active and not force and not _endpoint_has_deployment(experiment.endpoint):
        raise InvalidTransition(
            f"No deployment is named '{experiment.endpoint}', so stopping would leave its clients with 404s; "
            "promote a variant, deploy to that endpoint, or stop with {\"force\": true}.",
            details={"endpoint": experiment.endpoint})
    experiment_finish(experiment, reason=reason, statuses=(ExperimentStatus.DRAFT, *ACTIVE_STATUSES))
    return experiment_get(experiment.pk)


def _endpoint_has_deployment(endpoint: str) -> bool:
    return Deployment.objects.filter(LIVE, endpoint=endpoint).exists()


def experiment_finish(experiment: Experiment, *, reason: str, statuses, winner: str = "",
                      snapshot: dict | None = None) -> bool:
    if snapshot is None:
        snapshot = experiment_results_snapshot(experiment)
    now = timezone.now()
    stopped = Experiment.objects.filter(pk=experiment.pk, status__in=statuses).update(
        status=ExperimentStatus.STOPPED, stopped_at=now, stop_reason=reason[:200], winner=winner, promoting_to="",
        final_results=snapshot, updated_at=now)
    if not stopped and experiment.status != ExperimentStatus.STOPPED:
        raise InvalidTransition("The experiment changed meanwhile; reload it and try again.")
    invalidate_routing()
    return bool(stopped)


def experiment_results_snapshot(experiment: Experiment) -> dict:
    from experiments.results import experiment_results

    if experiment.status == ExperimentStatus.DRAFT:
        return {}
    try:
        return experiment_results(experiment)
    except Exception:  # Redis down: the experiment still stops; only the frozen copy is missing
        logger.warning("could not snapshot the results of experiment %s", experiment.pk, exc_info=True)
        return {}


def experiments_stop_due() -> int:
    """Running experiments past their planned end stop; one whose endpoint has no deployment of its own
    pauses instead (the control answers everyone) so that a schedule never takes an endpoint offline."""
    count = 0
    for experiment in Experiment.objects.filter(status=ExperimentStatus.RUNNING, promoting_to="",
                                                ends_at__lte=timezone.now()):
        if _endpoint_has_deployment(experiment.endpoint):
            count += experiment_finish(experiment, reason="planned end reached", statuses=(ExperimentStatus.RUNNING,))
        else:
            count += Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
                status=ExperimentStatus.PAUSED, stop_reason="planned end reached; paused because no deployment is "
                f"named '{experiment.endpoint}': promote a variant or deploy to that endpoint",
                updated_at=timezone.now())
    if count:
        invalidate_routing()
    return count


# --- the deployments' side ------------------------------------------------------------------

def deployment_stop_veto(deployment: Deployment) -> None:
    """Registered in inference.deployments.services.STOP_VETOES: a deployment an active experiment routes to stays."""
    _veto(deployment, "")


def deployment_version_veto(deployment: Deployment) -> None:
    """Registered in inference.deployments.services.VERSION_VETOES: the deployment of an active experiment's
    variant keeps its version, or the variant's statistics would mix two models under one name."""
    _veto(deployment, " keeps its version while")


def _veto(deployment: Deployment, action: str) -> None:
    for experiment in experiments_using_deployment(deployment.endpoint).prefetch_related("variants"):
        variant = next(v for v in experiment.variants.all() if v.deployment == deployment.endpoint)
        if experiment.promoting_to and experiment.promoting_to != variant.name:
            continue  # promote is handing the endpoint to another variant; this one gets no traffic now
        role = "a shadow of" if variant.shadow else f"variant '{variant.name}' of"
        raise DeploymentInExperiment(
            f"Deployment '{deployment.endpoint}'{action or ''} {'it ' if action else ''}serves {role} the "
            f"{experiment.status} experiment '{experiment.name}' (id {experiment.pk}); stop or promote the "
            "experiment first.", details={"experiment": experiment.pk})
