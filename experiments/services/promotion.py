"""Promote: hand an experiment's public endpoint to the winning variant and stop it."""

from __future__ import annotations

import time
from typing import Any, TypedDict

from django.conf import settings
from django.utils import timezone

from experiments.errors import (
    InvalidExperiment,
    InvalidTransition,
    NoWinner,
    PromotionPending,
)
from experiments.models import ACTIVE, ACTIVE_STATUSES, Experiment, Variant
from experiments.routing import TABLE_TTL_S
from experiments.selectors import experiment_get
from experiments.services.lifecycle import experiment_finish, experiment_results_snapshot, invalidate_routing
from inference.deployments import services as inference_services
from inference.models import LIVE, Deployment, DeploymentStatus
from inference.predict.dispatch import routes
from registry.services import model_alias_set

PRODUCTION_ALIAS = "production"


def experiment_promote(*, experiment: Experiment, variant: str | None = None, target: str = "endpoint",
                       wait_s: float | None = None) -> Experiment:
    """Hands the public endpoint to the winner and stops the experiment, without a failed request:

    1. every process routes all traffic to the winner's deployment (promoting_to, within a second);
    2. the deployment named like the endpoint is created, rolled (same model: the model server swaps
       generations without dropping requests) or replaced (another model: nobody calls it any more)
       to serve the winner's version, or with target="alias" the model's `production` alias moves;
    3. once the model server routes the endpoint to the winner's version, routing stops.
    A winner that takes longer than `wait_s` to load answers 503: traffic stays on the winner and
    calling promote again finishes the hand-over.
    """
    if not experiment.is_active:
        raise InvalidTransition(f"Experiment '{experiment.name}' is {experiment.status}; only a running or paused "
                                "experiment can be promoted.")
    winner = _winner(experiment, variant)
    deployment = _winner_deployment(winner)
    snapshot = experiment_results_snapshot(experiment) if not experiment.promoting_to else experiment.final_results
    handing_over = Experiment.objects.filter(ACTIVE, pk=experiment.pk, promoting_to__in=("", winner.name)).update(
        promoting_to=winner.name, final_results=snapshot, updated_at=timezone.now())
    if not handing_over:
        raise InvalidTransition("The experiment changed meanwhile (or is being promoted to another variant).")
    invalidate_routing()
    _point_endpoint_at(experiment.endpoint, deployment, target)
    if not _wait_serving(experiment.endpoint, deployment.model_version_id, wait_s):
        raise PromotionPending(
            f"Endpoint '{experiment.endpoint}' is still loading version {deployment.model_version.version} of "
            f"'{deployment.model.name}'; all traffic goes to '{winner.name}' meanwhile. Call promote again to finish.",
            retry_after_s=5)
    experiment_finish(experiment, reason=f"promoted '{winner.name}'", statuses=ACTIVE_STATUSES, winner=winner.name,
            snapshot=snapshot)
    return experiment_get(experiment.pk)


def _winner(experiment: Experiment, name: str | None) -> Variant:
    from experiments.results import experiment_results

    name = name or experiment.promoting_to or experiment_results(experiment)["recommended_variant"]
    if not name:
        raise NoWinner("No variant is significantly better than the others yet; name the variant to promote.")
    winner = next((v for v in experiment.variants.all() if v.name == name), None)
    if winner is None:
        raise InvalidExperiment("variant", f"experiment '{experiment.name}' has no variant named '{name}'")
    return winner


def _winner_deployment(winner: Variant) -> Deployment:
    deployment = Deployment.objects.filter(LIVE, endpoint=winner.deployment).select_related(
        "model", "model_version").first()
    if deployment is None or deployment.status != DeploymentStatus.READY:
        state = deployment.status if deployment else "gone"
        raise InvalidExperiment("variant", f"the deployment of '{winner.name}' ('{winner.deployment}') is {state}")
    return deployment


def _knobs(deployment: Deployment) -> dict[str, Any]:
    fields = (*inference_services.LIVE_KNOBS, *inference_services.ROW_KNOBS, *inference_services.RELOAD_FIELDS)
    return {field: getattr(deployment, field) for field in fields if field != "follow_alias"}


class _Target(TypedDict, total=False):
    """Which version the public endpoint serves: the production alias (followed) or a fixed number."""

    alias: str
    version: int
    follow_alias: bool


def _point_endpoint_at(endpoint: str, winner: Deployment, target: str) -> None:
    version = winner.model_version.version
    ref: _Target
    if target == "alias":
        model_alias_set(model=winner.model, alias=PRODUCTION_ALIAS, version_number=version)
        ref = {"alias": PRODUCTION_ALIAS, "follow_alias": True}
    else:
        ref = {"version": version, "follow_alias": False}
    public = Deployment.objects.filter(LIVE, endpoint=endpoint).select_related("model", "model_version").first()
    if public is not None and public.pk == winner.pk:
        return
    if public is not None and public.model_id == winner.model_id:
        changes = {**ref, "ensemble": winner.ensemble} if public.ensemble != winner.ensemble else ref
        if public.model_version_id != winner.model_version_id or "ensemble" in changes or target == "alias":
            inference_services.deployment_update(deployment=public, data=changes)
        return
    if public is not None:
        # Another model cannot roll in place. Every process already routes to the winner (within the
        # routing table's TTL), so the old deployment gets no traffic any more and can go.
        time.sleep(TABLE_TTL_S * 2)
        inference_services.deployment_stop(deployment=public)
    inference_services.deployment_create(endpoint=endpoint, model=winner.model.name, ensemble=winner.ensemble,
                                         **ref, **_knobs(winner))


def _wait_serving(endpoint: str, version_id: int, wait_s: float | None) -> bool:
    if wait_s is None:
        wait_s = float(getattr(settings, "EXPERIMENT_PROMOTE_WAIT_S", 120))
    deadline = time.monotonic() + wait_s
    while True:
        route = routes().endpoint(endpoint)
        if route and route.sockets and route.status == "ready" and route.model_version_id == version_id:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
