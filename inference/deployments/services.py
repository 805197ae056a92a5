"""Writes for deployments and platform configuration. The model server applies them within seconds."""

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import InvalidInput
from core.invalidation import announce
from core.services import full_clean
from inference.deployments.selectors import platform_config_get
from inference.errors import EndpointTaken, VersionNotDeployable
from inference.models import LIVE, Deployment, DeploymentStatus, PlatformConfig
from registry import selectors as registry_selectors
from registry.models import ModelVersion, RegisteredModel, VersionStatus

# Knobs the running workers take over the socket ("configure"); nothing restarts.
LIVE_KNOBS = ("max_batch_size", "batch_timeout_ms", "max_queue", "torch_threads")
# Changes the web/supervisor pick up from the row itself.
ROW_KNOBS = ("timeout_ms", "max_rows", "cache_enabled", "scale_to_zero", "idle_ttl_s", "replicas", "follow_alias",
             "log_predictions", "guardrails", "pool")
# Changes that need freshly loaded worker processes (a new generation; the old one serves until then).
RELOAD_FIELDS = ("device", "torch_compile", "quantize", "warmup_requests")


def _deployable_version(model: RegisteredModel, ref: str | int) -> ModelVersion:
    version = registry_selectors.model_version_get(model, ref)
    if version.status != VersionStatus.READY:
        reason = f": {version.status_reason}" if version.status_reason else ""
        raise VersionNotDeployable(
            f"Version {version.version} of '{model.name}' is {version.status}{reason}; only ready versions deploy.",
            details={"field": "version"},
        )
    return version


def _check_ensemble(model: RegisteredModel, primary: ModelVersion, ensemble: list[dict]) -> list[dict]:
    members = []
    for index, member in enumerate(ensemble):
        version = _deployable_version(model, member["version"])
        if (version.signature or {}).get("classes") != (primary.signature or {}).get("classes"):
            raise VersionNotDeployable(
                f"ensemble[{index}]: version {version.version} predicts other classes than version {primary.version}.",
                details={"field": f"ensemble[{index}]"},
            )
        members.append({"version": version.version, "weight": float(member.get("weight", 1.0))})
    return members


def _resolve(model_name: str, version: int | None, alias: str | None) -> tuple[RegisteredModel, ModelVersion]:
    model = registry_selectors.registered_model_get(model_name)
    ref = version if version is not None else alias
    if ref is None:  # the APIs and the command ask for one; a caller that gives neither is told so
        raise InvalidInput("Give exactly one of 'version' or 'alias'.", details={"field": "version"})
    return model, _deployable_version(model, ref)


def deployment_prepare(*, endpoint: str, model: str, version: int | None = None, alias: str | None = None,
                       ensemble: list[dict] | None = None, created_by=None, **knobs: Any) -> Deployment:
    """The deployment deployment_create would save, checked but unsaved: a form shows what is wrong (a version
    not ready, a taken endpoint...) beside its fields before anything is written."""
    registered, target = _resolve(model, version, alias)
    deployment = Deployment(
        endpoint=endpoint, model=registered, model_version=target, alias=alias or "",
        ensemble=_check_ensemble(registered, target, ensemble or []), created_by=created_by, **knobs,
    )
    if deployment.follow_alias and not deployment.alias:
        raise VersionNotDeployable("follow_alias needs an alias to follow.", details={"field": "follow_alias"})
    full_clean(deployment, validate_constraints=False, validate_unique=False)
    if Deployment.objects.filter(LIVE, endpoint=endpoint).exists():
        raise _endpoint_taken(endpoint)
    return deployment


def _endpoint_taken(endpoint: str) -> EndpointTaken:
    return EndpointTaken(f"Endpoint '{endpoint}' already has a live deployment; update or undeploy it.",
                         details={"field": "endpoint"})


def deployment_create(*, endpoint: str, model: str, version: int | None = None, alias: str | None = None,
                      ensemble: list[dict] | None = None, created_by=None, **knobs: Any) -> Deployment:
    """Saves a deployment; the model server loads it within seconds."""
    deployment = deployment_prepare(endpoint=endpoint, model=model, version=version, alias=alias, ensemble=ensemble,
                                    created_by=created_by, **knobs)
    try:
        with transaction.atomic():
            deployment.save()
    except IntegrityError:  # deployed by someone else since the check: the database lets one win
        raise _endpoint_taken(deployment.endpoint) from None
    return deployment


def deployment_update(*, deployment: Deployment, data: Mapping[str, Any]) -> Deployment:
    reload = any(field in data and data[field] != getattr(deployment, field) for field in RELOAD_FIELDS)
    if "version" in data or "alias" in data:
        _, target = _resolve(deployment.model.name, data.get("version"), data.get("alias"))
        reload |= target.pk != deployment.model_version_id
        deployment.model_version = target
        deployment.alias = data.get("alias") or ("" if "version" in data else deployment.alias)
    if "ensemble" in data:
        deployment.ensemble = _check_ensemble(deployment.model, deployment.model_version, data["ensemble"])
        reload = True
    for field in (*LIVE_KNOBS, *ROW_KNOBS, *RELOAD_FIELDS):
        if field in data:
            setattr(deployment, field, data[field])
    if deployment.follow_alias and not deployment.alias:
        raise VersionNotDeployable("follow_alias needs an alias to follow.", details={"field": "follow_alias"})
    full_clean(deployment, validate_constraints=False, validate_unique=False)
    if reload:
        deployment.generation = F("generation") + 1
        deployment.status_reason = "rolling out a new generation"
    deployment.save()
    deployment.refresh_from_db()
    return deployment


def deployment_stop(*, deployment: Deployment) -> Deployment:
    """Undeploys; the row stays as history. Other apps may veto (an experiment routing here -> 409)."""
    for veto in STOP_VETOES:
        veto(deployment)
    Deployment.objects.filter(pk=deployment.pk).filter(LIVE).update(
        status=DeploymentStatus.STOPPED, status_reason="undeployed", stopped_at=timezone.now(),
        updated_at=timezone.now(),
    )
    deployment.refresh_from_db()
    return deployment


# Callables raising a Conflict when a deployment must not stop (registered by the experiments app).
STOP_VETOES: list = []


def deployment_restart(*, deployment: Deployment) -> Deployment:
    Deployment.objects.filter(pk=deployment.pk).filter(LIVE).update(
        generation=F("generation") + 1, status_reason="restart requested", updated_at=timezone.now()
    )
    deployment.refresh_from_db()
    return deployment


# --- written by the model server -------------------------------------------------------------

def deployment_record_status(*, deployment_id: int, generation: int, status: str, reason: str = "") -> bool:
    """Conditional on the generation still being current and the deployment live: a late event from
    an old generation, or one for an undeployed endpoint, changes nothing."""
    updated = Deployment.objects.filter(LIVE, pk=deployment_id, generation=generation).update(
        status=status, status_reason=reason[:2000], updated_at=timezone.now()
    )
    return bool(updated)


def deployment_record_runtime(*, deployment_id: int, runtime: dict) -> None:
    Deployment.objects.filter(pk=deployment_id).update(runtime=runtime)


def deployment_follow_alias(*, deployment: Deployment) -> bool:
    """Points a follow_alias deployment at the alias's current version; True when it moved."""
    try:
        target = registry_selectors.model_version_get(deployment.model, deployment.alias)
    except Exception:  # alias deleted: keep serving what we have
        return False
    if target.pk == deployment.model_version_id or target.status != VersionStatus.READY:
        return False
    moved = Deployment.objects.filter(LIVE, pk=deployment.pk, model_version_id=deployment.model_version_id).update(
        model_version=target, generation=F("generation") + 1,
        status_reason=f"following alias '{deployment.alias}' to version {target.version}", updated_at=timezone.now(),
    )
    return bool(moved)


def deployment_roll_back(*, deployment: Deployment, to_version: ModelVersion, reason: str) -> bool:
    """Points the deployment back at `to_version` and stops it following its alias (the alias still names the
    version that was rolled back from, so following it would roll forward again); True when it changed.
    Conditional on the deployment still serving the version that was judged."""
    moved = Deployment.objects.filter(LIVE, pk=deployment.pk, model_version_id=deployment.model_version_id).update(
        model_version=to_version, follow_alias=False, generation=F("generation") + 1,
        status_reason=reason[:2000], updated_at=timezone.now(),
    )
    return bool(moved)


def platform_config_update(*, data: dict[str, Any]) -> PlatformConfig:
    config = platform_config_get()
    for field, value in data.items():
        setattr(config, field, value)
    full_clean(config)
    config.save()
    announce("config")  # every process reads the row again (inference/platform_config.py)
    return config
