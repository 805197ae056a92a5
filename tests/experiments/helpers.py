"""Deployment rows in the states the experiment checks look at, without a model server."""

from inference.models import Deployment, DeploymentStatus
from registry.models import ModelVersion, RegisteredModel, VersionStatus
from tests.factories import make_model


def tabular_signature(width: int = 4, names=None) -> dict:
    return {"input_kind": "tabular", "n_features": width, "feature_names": names, "classes": [0, 1],
            "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, width]}]}


def version_of(model: RegisteredModel, signature: dict | None = None) -> ModelVersion:
    model.last_version += 1
    model.save(update_fields=["last_version"])
    return ModelVersion.objects.create(
        model=model, version=model.last_version, flavor="sklearn", format="skops", artifact_path=f"x/{model.pk}",
        sha256="0" * 64, size_bytes=1, signature=signature or tabular_signature(), status=VersionStatus.READY,
    )


def deployment(endpoint: str, *, model: str = "churn", status: str = DeploymentStatus.READY,
               signature: dict | None = None) -> Deployment:
    registered = RegisteredModel.objects.filter(name=model).first() or make_model(model)
    version = version_of(registered, signature)
    return Deployment.objects.create(endpoint=endpoint, model=registered, model_version=version, status=status)


def arms(*pairs) -> list[dict]:
    return [{"name": name, "deployment": endpoint, "weight": weight} for name, endpoint, weight in pairs]
