from django.db.models import QuerySet

from inference.errors import EndpointNotFound
from inference.models import LIVE, Deployment, PlatformConfig


def deployment_list(*, include_stopped: bool = False) -> QuerySet[Deployment]:
    deployments = Deployment.objects.select_related("model", "model_version", "created_by")
    return deployments if include_stopped else deployments.filter(LIVE)


def deployment_get_live(endpoint: str) -> Deployment:
    try:
        return deployment_list().get(endpoint=endpoint)
    except Deployment.DoesNotExist:
        raise EndpointNotFound(f"No live deployment at endpoint '{endpoint}'.") from None


def deployments_using_version(version) -> list[str]:
    """In-use reasons for the registry: live deployments serving a version (directly or in an ensemble)."""
    reasons = []
    for deployment in Deployment.objects.filter(LIVE, model=version.model).select_related("model_version"):
        members = {deployment.model_version.version} | {m.get("version") for m in deployment.ensemble}
        if version.version in members:
            reasons.append(f"deployed at endpoint '{deployment.endpoint}'")
    return reasons


def serving_replicas(deployment: Deployment) -> list[dict] | None:
    """The replicas of the generation that serves, as the model server last reported them (None before its first
    report). While a new generation loads, the old one's replicas are the ones answering."""
    runtime = deployment.runtime or {}
    if "replicas" not in runtime:
        return None
    replicas = runtime["replicas"] or []
    return [r for r in replicas if r.get("generation") == runtime.get("serving_generation")] or replicas


def platform_config_get() -> PlatformConfig:
    config, _ = PlatformConfig.objects.get_or_create(pk=1)
    return config
