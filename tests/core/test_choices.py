"""Invalid choices name the valid ones, everywhere a choice is validated: one mechanism (core/choices.py), and
no serializer or filter set of the project uses DRF's or django-filter's plain choice fields."""

import importlib
from collections.abc import Iterator

import django_filters
from django.test import TestCase
from rest_framework import serializers

from core.choices import ChoiceField, ChoiceFilter, invalid_choice_message
from tests.conftest import skops_artifact, upload
from tests.factories import key_client, make_model
from tests.paths import REPO_ROOT

APPS = ("core", "registry", "inference", "experiments")


def _import_app_modules() -> None:
    """Every module that may define a serializer or a filter set (the runtime holds none: no Django there)."""
    for app in APPS:
        for path in sorted((REPO_ROOT / app).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            if {"migrations", "management", "runtime"} & set(parts):
                continue
            importlib.import_module(".".join(parts).removesuffix(".__init__"))


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _ours(cls: type) -> bool:
    abstract = issubclass(cls, serializers.ModelSerializer) and not hasattr(cls, "Meta")  # a base, no fields yet
    return cls.__module__.split(".")[0] in APPS and not abstract


def _fields(field, path: str) -> Iterator[tuple[str, serializers.Field]]:
    yield path, field
    if isinstance(field, serializers.ListSerializer):
        yield from _fields(field.child, f"{path}[]")
    elif isinstance(field, serializers.Serializer):
        for name, child in field.fields.items():
            yield from _fields(child, f"{path}.{name}")
    elif isinstance(field, (serializers.ListField, serializers.DictField)) and field.child is not None:
        yield from _fields(field.child, f"{path}[]")


def plain_choice_fields() -> list[str]:
    _import_app_modules()
    found = []
    for cls in {c for c in _subclasses(serializers.Serializer) if _ours(c)}:
        for path, field in _fields(cls(), cls.__name__):
            if isinstance(field, serializers.ChoiceField) and not isinstance(field, ChoiceField):
                found.append(f"{cls.__module__}.{path}: {type(field).__name__}")
    for cls in {c for c in _subclasses(django_filters.FilterSet) if _ours(c)}:
        for name, filter_ in cls.base_filters.items():
            if isinstance(filter_, django_filters.ChoiceFilter) and not isinstance(filter_, ChoiceFilter):
                found.append(f"{cls.__module__}.{cls.__name__}.{name}: {type(filter_).__name__}")
    return sorted(found)


class OneMechanismTests(TestCase):
    def test_no_serializer_or_filter_set_uses_a_plain_choice_field(self):
        self.assertEqual(plain_choice_fields(), [])

    def test_the_check_sees_a_plain_choice_field(self):
        class Sneaky(serializers.Serializer):
            colour = serializers.ChoiceField(choices=["red"])
            nested = serializers.ListField(child=serializers.ChoiceField(choices=["blue"]))

        Sneaky.__module__ = "registry.sneaky"
        try:
            self.assertEqual([hit for hit in plain_choice_fields() if "Sneaky" in hit],
                             ["registry.sneaky.Sneaky.colour: ChoiceField",
                              "registry.sneaky.Sneaky.nested[]: ChoiceField"])
        finally:
            Sneaky.__module__ = __name__  # out of the project's modules again

    def test_model_serializers_generate_our_choice_fields(self):
        from inference.deployments.serializers import DeploymentOut

        self.assertIsInstance(DeploymentOut().fields["device"], ChoiceField)

    def test_a_long_refused_value_is_cut_in_the_message(self):
        message = invalid_choice_message("x" * 500, ["a", "b"])
        self.assertEqual(message, f'"{"x" * 64}..." is not a valid choice; expected one of a, b.')


class InvalidChoiceMessageTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")

    def assert_refused(self, response, field: str, message: str) -> None:
        self.assertEqual(response.status_code, 400, response.content)
        error = response.json()["error"]
        self.assertEqual(error["code"], "validation_error")
        self.assertEqual(error["details"]["fields"][field], [message])
        self.assertIn(f"{field}: {message}", error["message"])

    def test_an_upload_with_an_unknown_flavor_lists_the_flavors(self):
        make_model("churn")
        response = self.client.post("/api/v1/models/churn/versions/",
                                    {"artifact": upload("a", skops_artifact()), "flavor": "scikit-learn"},
                                    format="multipart")
        self.assert_refused(response, "flavor", '"scikit-learn" is not a valid choice; expected one of sklearn, '
                                                'torch, xgboost, lightgbm, onnx.')

    def test_a_model_with_an_unknown_task_lists_the_tasks(self):
        response = self.client.post("/api/v1/models/", {"name": "churn", "task": "classify"}, format="json")
        self.assert_refused(response, "task", '"classify" is not a valid choice; expected one of classification, '
                                              'regression, scoring, other.')

    def test_a_deployment_with_an_unknown_device_lists_the_devices(self):
        make_model("churn")
        response = self.client.post("/api/v1/deployments/", {"endpoint": "e", "model": "churn", "version": 1,
                                                             "device": "gpu"}, format="json")
        self.assert_refused(response, "device", '"gpu" is not a valid choice; expected one of cpu, cuda, auto.')

    def test_a_list_filter_with_an_unknown_status_lists_the_statuses(self):
        make_model("churn")
        response = self.client.get("/api/v1/models/churn/versions/", {"status": "done"})
        self.assert_refused(response, "status", '"done" is not a valid choice; expected one of pending, validating, '
                                                'ready, failed.')
