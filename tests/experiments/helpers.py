"""Deployment rows in the states the experiment checks look at, without a model server."""

from django.test import TestCase

from inference.models import Deployment, DeploymentStatus
from registry.models import ModelVersion, RegisteredModel, VersionStatus
from tests.factories import key_client, make_model


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


BASE = "/api/v1/experiments/"


class ExperimentApiTestCase(TestCase):
    def setUp(self):
        self.manage = key_client("manage")
        self.predict = key_client("predict")
        deployment("churn-a")
        deployment("churn-b")

    def create(self, expect: int = 201, **fields):
        body = {"name": "Churn v2", "endpoint": "churn",
                "variants": arms(("control", "churn-a", 50), ("treatment", "churn-b", 50)), **fields}
        response = self.manage.post(BASE, body, format="json")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def act(self, pk: int, action: str, expect: int = 200, body=None):
        response = self.manage.post(f"{BASE}{pk}/{action}/", body or {}, format="json")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def refused(self, response, status: int = 400) -> str:
        self.assertEqual(response.status_code, status, response.content)
        error = response.json()["error"]
        self.assertEqual(set(error), {"code", "message", "details"})
        return error["message"]
