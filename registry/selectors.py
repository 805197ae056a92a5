from django.conf import settings
from django.db.models import Prefetch, QuerySet

from core.invalidation import GenerationCache
from registry.errors import ModelVersionNotFound, RegisteredModelNotFound
from registry.models import ModelAlias, ModelVersion, RegisteredModel


def registered_model_list() -> QuerySet[RegisteredModel]:
    return RegisteredModel.objects.select_related("owner").prefetch_related(
        Prefetch("aliases", queryset=ModelAlias.objects.select_related("version"))
    )


def registered_model_get(name: str) -> RegisteredModel:
    try:
        return registered_model_list().get(name=name)
    except RegisteredModel.DoesNotExist:
        raise RegisteredModelNotFound(f"No registered model named '{name}'.") from None


def model_version_list(model: RegisteredModel) -> QuerySet[ModelVersion]:
    return (
        ModelVersion.objects.filter(model=model)
        .select_related("model", "created_by")
        .prefetch_related("aliases")
        .order_by("-version")
    )


def model_version_get(model: RegisteredModel, ref: str | int) -> ModelVersion:
    """A version by number ('3', 3) or by alias ('production')."""
    versions = model_version_list(model)
    text = str(ref)
    try:
        if text.isdigit():
            return versions.get(version=int(text))
        return versions.get(aliases__name=text)
    except ModelVersion.DoesNotExist:
        raise _no_such_version(model, text) from None


def _no_such_version(model: RegisteredModel, text: str) -> ModelVersionNotFound:
    kind = "version" if text.isdigit() else "alias"
    return ModelVersionNotFound(f"Model '{model.name}' has no {kind} '{text}'.")


def model_version_id_resolve(model_name: str, ref: str | int) -> int:
    """The id of a model's version by number or alias, as model_version_get finds it, in one narrow query.

    The selectors above load the model, its aliases and the version with their relations (four queries,
    ~3 ms of CPU) for pages that show them; the universal prediction route needs only the id.
    """
    text = str(ref)
    if text.isdigit():
        by_number = ModelVersion.objects.filter(model__name=model_name, version=int(text))
        version_id = by_number.values_list("pk", flat=True).first()
    else:
        by_alias = ModelAlias.objects.filter(model__name=model_name, name=text)
        version_id = by_alias.values_list("version_id", flat=True).first()
    if version_id is None:
        # The model's own 404 first, as callers of model_version_get see it.
        raise _no_such_version(registered_model_get(model_name), text)
    return version_id


# The universal route asks the same (model, ref) on every request. Every write that can change an
# answer (alias set or deleted, version or model deleted) announces "registry", which drops these in
# every process at once; REGISTRY_CACHE_S bounds one if an announcement is lost, and while a process
# cannot hear announcements (Redis down) it keeps none.
_version_ids = GenerationCache("registry", lambda: settings.REGISTRY_CACHE_S, while_deaf=False)


def model_version_id_cached(model_name: str, ref: str | int) -> int:
    """model_version_id_resolve, answered from this process's memory while the registry is unchanged."""
    return _version_ids.cached((model_name, str(ref)), lambda: model_version_id_resolve(model_name, ref))


def model_version_id_known(model_name: str, ref: str | int) -> int | None:
    """The cached answer only (no query), for callers that must not touch the database in line."""
    return _version_ids.get((model_name, str(ref)))


def model_version_get_by_id(version_id: int) -> ModelVersion | None:
    return ModelVersion.objects.select_related("model").filter(pk=version_id).first()


def model_version_in_use_reasons(version: ModelVersion) -> list[str]:
    """Why a version may not be deleted; the serving app adds its live deployments."""
    reasons = [f"alias '{alias.name}' points at it" for alias in version.aliases.all()]
    for provider in IN_USE_PROVIDERS:
        reasons.extend(provider(version))
    return reasons


# Other apps (inference: live deployments) register callables here instead of registry importing them.
IN_USE_PROVIDERS: list = []
