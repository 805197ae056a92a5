import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.invalidation import announce
from core.services import full_clean
from inference.runtime.contract import formats
from registry import storage
from registry.errors import (
    ModelNameTaken,
    ModelVersionInUse,
    PickleNotAllowed,
    UnsupportedArtifact,
    VersionNotUsable,
)
from registry.examples import input_example_check, input_example_read
from registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionStatus
from registry.queue import enqueue_validation
from registry.selectors import model_version_get, model_version_in_use_reasons

logger = logging.getLogger(__name__)

PICKLE_REFUSED = (
    "This artifact is a pickle. Loading a pickle runs arbitrary code, so pickle artifacts are refused "
    "unless the operator sets ALLOW_PICKLE_ARTIFACTS=1. Save scikit-learn models with skops "
    "(skops.io.dump) and torch models with torch.jit.save or torch.export.save instead."
)
# Only scikit-learn's flavor may ever take a pickle (with the operator's opt-in); the others never do.
PICKLE_NEVER = (
    "This artifact is a pickle, which a {flavor} model never is: upload the library's own format "
    "({formats}). Pickles are never loaded for this flavor, whatever ALLOW_PICKLE_ARTIFACTS says."
)
_NATIVE_FORMATS = {"xgboost": "save_model to a .json or .ubj file", "lightgbm": "Booster.save_model to a text file",
                   "onnx": "an .onnx file", "torch": "torch.jit.save or torch.export.save"}


# --- registered models ----------------------------------------------------------------------

def registered_model_create(*, name: str, task: str, description: str = "", tags: dict | None = None,
                            owner=None) -> RegisteredModel:
    model = RegisteredModel(name=name, task=task, description=description, tags=tags or {}, owner=owner)
    full_clean(model, validate_unique=False)
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise ModelNameTaken(f"A model named '{name}' already exists.") from None
    return model


def registered_model_update(*, model: RegisteredModel, data: dict[str, Any]) -> RegisteredModel:
    for field in ("description", "task", "tags"):
        if field in data:
            setattr(model, field, data[field])
    full_clean(model)
    model.save(update_fields=[field for field in ("description", "task", "tags") if field in data] + ["updated_at"])
    return model


def registered_model_delete(*, model: RegisteredModel) -> None:
    versions = list(model.versions.all())
    for version in versions:
        reasons = [r for r in model_version_in_use_reasons(version) if not r.startswith("alias")]
        if reasons:
            raise ModelVersionInUse(f"Cannot delete model '{model.name}': version {version.version} is in use "
                                    f"({'; '.join(reasons)}).", details={"version": version.version})
    paths = [version.artifact_path for version in versions]
    with transaction.atomic():
        ModelAlias.objects.filter(model=model).delete()
        model.delete()
        announce("registry")
        # Files go only once the rows are surely gone; a rollback keeps both.
        transaction.on_commit(lambda: _delete_artifacts(paths))


def _delete_artifacts(paths: list[str]) -> None:
    for path in paths:
        storage.delete_artifact(path)


# --- versions -------------------------------------------------------------------------------

def _detect_format(flavor: str, path: Path) -> str:
    try:
        detected = formats.detect_format(path)
        if formats.is_pickle_format(detected) and flavor in _NATIVE_FORMATS:
            raise PickleNotAllowed(PICKLE_NEVER.format(flavor=flavor, formats=_NATIVE_FORMATS[flavor]),
                                   details={"field": "artifact", "format": detected})
        formats.check_flavor(flavor, detected)
    except (formats.UnknownFormat, formats.FormatMismatch) as exc:
        raise UnsupportedArtifact(f"artifact: {exc}", details={"field": "artifact"}) from None
    if formats.is_pickle_format(detected) and not settings.ALLOW_PICKLE_ARTIFACTS:
        raise PickleNotAllowed(PICKLE_REFUSED, details={"field": "artifact", "format": detected})
    return detected


def _next_version_number(model: RegisteredModel) -> int:
    # The UPDATE takes the row lock (Postgres) or the write lock (SQLite, IMMEDIATE), so a concurrent
    # upload waits here until this transaction commits and then reads the bumped counter.
    RegisteredModel.objects.filter(pk=model.pk).update(last_version=F("last_version") + 1)
    return RegisteredModel.objects.values_list("last_version", flat=True).get(pk=model.pk)


def model_version_create(*, model: RegisteredModel, artifact, flavor: str, signature: dict | None = None,
                         metrics: dict | None = None, params: dict | None = None, tags: dict | None = None,
                         description: str = "", input_example=None, created_by=None,
                         created_by_key=None) -> ModelVersion:
    """`input_example`: an uploaded file (CSV or JSON) or an already parsed list of rows."""
    example = _input_example(input_example, signature)
    with storage.artifact_upload(artifact, model_id=model.pk) as staged:
        # Detected on the local copy, before anything reaches the store.
        detected = _detect_format(flavor, staged.local_path)
        stored = staged.commit()
    try:
        with transaction.atomic():
            version = ModelVersion(
                model=model, version=_next_version_number(model), flavor=flavor, format=detected,
                description=description, artifact_path=stored.relative_path, sha256=stored.sha256,
                size_bytes=stored.size_bytes, signature=signature or {}, metrics=metrics or {},
                params=params or {}, tags=tags or {}, input_example=example, created_by=created_by,
                created_by_key=created_by_key,
            )
            full_clean(version, validate_unique=False, validate_constraints=False)
            version.save()
            transaction.on_commit(lambda: _enqueue_validation(version.pk))
    except BaseException:
        storage.delete_artifact(stored.relative_path)
        raise
    return version


def _input_example(given, signature: dict | None) -> list | None:
    if given is None:
        return None
    if isinstance(given, list):
        input_example_check(given, signature=signature)
        return given
    return input_example_read(given, signature=signature)


def model_version_update(*, version: ModelVersion, data: dict[str, Any]) -> ModelVersion:
    """Corrects a version's signature, description, metrics or tags while no deployment serves it (409 naming the
    endpoint otherwise). A new signature is checked against the input example at once and against the model
    by validating the version again."""
    reasons = [reason for reason in model_version_in_use_reasons(version) if not reason.startswith("alias")]
    if reasons:
        raise ModelVersionInUse(f"Version {version.version} of '{version.model.name}' is {'; '.join(reasons)}: "
                                "its signature, description, metrics and tags can be corrected only while it is "
                                "not deployed (undeploy it, or upload a new version).", details={"reasons": reasons})
    changed = [field for field in ("signature", "description", "metrics", "tags") if field in data]
    if "signature" in data:
        input_example_check(version.input_example, signature=data["signature"])
    for field in changed:
        setattr(version, field, data[field])
    full_clean(version, validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        version.save(update_fields=[*changed, "updated_at"])
        if "signature" in data:
            announce("registry")
    if "signature" in data:
        return model_version_request_validation(version=version)
    return version


def _enqueue_validation(version_id: int) -> None:
    try:
        enqueue_validation(version_id)
    except Exception:  # Redis down: the row stays pending with a reason and can be re-requested
        logger.warning("could not enqueue validation of version %s", version_id, exc_info=True)
        ModelVersion.objects.filter(pk=version_id, status=VersionStatus.PENDING).update(
            status_reason="Validation could not be queued (job queue unavailable); request it again "
                          "with POST .../validate/."
        )


def model_version_request_validation(*, version: ModelVersion) -> ModelVersion:
    updated = ModelVersion.objects.filter(pk=version.pk).exclude(status=VersionStatus.VALIDATING).update(
        status=VersionStatus.PENDING, status_reason="", updated_at=timezone.now()
    )
    if updated:
        transaction.on_commit(lambda: _enqueue_validation(version.pk))
    version.refresh_from_db()
    return version


def model_version_validate(*, version_id: int) -> ModelVersion | None:
    """Runs the validation of one version (RQ job body). Loads the artifact only in a sandboxed child."""
    from inference.runtime.sandbox.run import run_validation

    claimed = ModelVersion.objects.filter(pk=version_id, status=VersionStatus.PENDING).update(
        status=VersionStatus.VALIDATING, status_reason="", updated_at=timezone.now()
    )
    version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
    if not claimed or version is None:
        return version  # deleted, or another worker already took it
    try:
        # The sandbox gets a file on this host whose bytes were checked against the recorded sha256 (it checks
        # again): it never talks to the store, and holds none of its credentials.
        local = storage.local_artifact(version.artifact_path, version.sha256)
    except storage.ArtifactRefused as exc:
        return _record_validation(version, {"ok": False, "error": str(exc)})
    except storage.ArtifactUnavailable as exc:
        return _validation_postponed(version, str(exc))
    report = run_validation(_validation_request(version, local), timeout_s=settings.VALIDATION_TIMEOUT_S,
                            memory_mb=settings.VALIDATION_MEMORY_MB)
    return _record_validation(version, report)


def _validation_postponed(version: ModelVersion, reason: str) -> ModelVersion:
    # A store that is away for a while is no verdict on the model: the version waits to be validated again.
    ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.VALIDATING).update(
        status=VersionStatus.PENDING, updated_at=timezone.now(),
        status_reason=f"Validation could not start: {reason}; request it again with POST .../validate/.")
    version.refresh_from_db()
    return version


def _validation_request(version: ModelVersion, local: Path) -> dict:
    return {
        "path": str(local),
        "format": version.format,
        "sha256": version.sha256,
        "task": version.model.task,
        "allow_pickle": settings.ALLOW_PICKLE_ARTIFACTS,
        "signature": version.signature or None,
        "classes": (version.signature or {}).get("classes"),
        "input_example": version.input_example,
    }


def _record_validation(version: ModelVersion, report: dict) -> ModelVersion:
    fields: dict[str, Any] = {"validated_at": timezone.now(), "updated_at": timezone.now()}
    if report.get("ok"):
        fields |= {"status": VersionStatus.READY, "status_reason": "", "signature": report.get("signature") or {},
                   "validation": {k: report.get(k) for k in ("load_ms", "memory_mb", "smoke")}}
    else:
        fields |= {"status": VersionStatus.FAILED, "status_reason": str(report.get("error") or "unknown error")}
    # Only the claim holder finishes: a version deleted or re-requested meanwhile is left alone.
    ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.VALIDATING).update(**fields)
    version.refresh_from_db()
    return version


def model_version_delete(*, version: ModelVersion) -> None:
    reasons = model_version_in_use_reasons(version)
    if reasons:
        raise ModelVersionInUse(
            f"Version {version.version} of '{version.model.name}' is in use: {'; '.join(reasons)}.",
            details={"reasons": reasons},
        )
    path = version.artifact_path
    with transaction.atomic():
        version.delete()
        announce("registry")
        transaction.on_commit(lambda: storage.delete_artifact(path))


# --- aliases --------------------------------------------------------------------------------

def model_alias_set(*, model: RegisteredModel, alias: str, version_number: int) -> ModelAlias:
    version = model_version_get(model, int(version_number))
    if version.status == VersionStatus.FAILED:
        raise VersionNotUsable(f"Version {version.version} failed validation and cannot carry an alias: "
                               f"{version.status_reason}", details={"field": "version"})
    candidate = ModelAlias(model=model, name=alias, version=version)
    full_clean(candidate, validate_unique=False, validate_constraints=False)
    # One INSERT .. ON CONFLICT DO UPDATE: readers see the old target or the new one, never neither.
    ModelAlias.objects.bulk_create(
        [candidate], update_conflicts=True, unique_fields=["model", "name"], update_fields=["version", "updated_at"]
    )
    announce("registry")  # universal predictions by this alias now go to the new version
    return ModelAlias.objects.select_related("version", "model").get(model=model, name=alias)


def model_alias_delete(*, model: RegisteredModel, alias: str) -> None:
    deleted, _ = ModelAlias.objects.filter(model=model, name=alias).delete()
    if not deleted:
        from registry.errors import ModelVersionNotFound

        raise ModelVersionNotFound(f"Model '{model.name}' has no alias '{alias}'.")
    announce("registry")
