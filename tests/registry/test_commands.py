import io
import json
import pickle
import shutil
import tempfile
from pathlib import Path

import django_rq
import pytest
import skops.io as sio
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionStatus
from registry.queue import VALIDATION_QUEUE
from tests.conftest import skops_artifact

DEMO_NAMES = {"churn-logreg", "fraud-forest", "sentiment-text", "demand-mlp", "router-scorer", "churn-mixed",
              "churn-lightgbm"}


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


class RegisterModelCommandTests(TestCase):
    def setUp(self):
        folder = Path(tempfile.mkdtemp(prefix="sp-register-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.skops_path = folder / "model.skops"
        self.skops_path.write_bytes(skops_artifact())
        self.pickle_path = folder / "model.pkl"
        self.pickle_path.write_bytes(pickle.dumps({"a": 1}))

    def register(self, path: Path, *extra: str) -> tuple[str, str]:
        return run("register_model", str(path), "--name", "churn", "--flavor", "sklearn", *extra)

    def test_it_prints_the_version_last_and_validates_in_process_without_a_worker(self):
        stdout, stderr = self.register(self.skops_path, "--wait", "--task", "classification")
        self.assertEqual(last_line(stdout), "1")
        model = RegisteredModel.objects.get(name="churn")
        self.assertEqual(model.task, "classification")
        version = ModelVersion.objects.get(model=model)
        self.assertEqual((version.version, version.status), (1, VersionStatus.READY), version.status_reason)
        self.assertEqual(version.signature["n_features"], 4)
        self.assertIsNotNone(version.validated_at)
        self.assertIn("no job worker is running; validating here", stderr)
        self.assertEqual(django_rq.get_queue(VALIDATION_QUEUE).count, 0)

    def test_it_points_the_alias_at_the_new_version(self):
        self.register(self.skops_path)
        stdout, stderr = self.register(self.skops_path, "--alias", "production")
        self.assertEqual(last_line(stdout), "2")
        alias = ModelAlias.objects.get(model__name="churn", name="production")
        self.assertEqual(alias.version.version, 2)
        self.assertIn("churn@production -> v2", stderr)

    def test_a_second_call_adds_version_two_to_the_same_model(self):
        self.register(self.skops_path)
        stdout, _ = self.register(self.skops_path)
        self.assertEqual(last_line(stdout), "2")
        self.assertEqual(RegisteredModel.objects.count(), 1)
        self.assertEqual(sorted(ModelVersion.objects.values_list("version", flat=True)), [1, 2])

    def test_without_wait_it_leaves_the_version_pending(self):
        stdout, stderr = self.register(self.skops_path)
        self.assertEqual(stdout.strip(), "1")
        self.assertEqual(ModelVersion.objects.get().status, VersionStatus.PENDING)
        self.assertNotIn("validating here", stderr)

    def test_it_refuses_a_pickle_and_names_the_setting(self):
        with self.assertRaisesMessage(CommandError, "ALLOW_PICKLE_ARTIFACTS"):
            self.register(self.pickle_path, "--wait")
        self.assertFalse(ModelVersion.objects.exists())

    def test_it_takes_an_input_example_a_signature_metrics_and_tags(self):
        example = self.skops_path.with_name("rows.csv")
        example.write_text("a,b,c,d\n0.5,-1.0,2.0,0.1\n1.5,,0.5,0.2\n")
        names = [{"name": name, "dtype": "float64", "nullable": name == "b"} for name in "abcd"]
        signature = self.skops_path.with_name("signature.json")
        signature.write_text(json.dumps({"columns": names}))
        # The LogisticRegression does not take NaN: the smoke prediction on the example says so.
        with self.assertRaisesMessage(CommandError, "the smoke prediction on the input example failed"):
            self.register(self.skops_path, "--input-example", str(example), "--signature", f"@{signature}",
                          "--metrics", '{"accuracy": 0.9}', "--tags", '{"team": "growth"}', "--wait")
        version = ModelVersion.objects.get()
        self.assertEqual(version.status, VersionStatus.FAILED)
        self.assertEqual((version.metrics, version.tags), ({"accuracy": 0.9}, {"team": "growth"}))
        self.assertEqual(version.input_example, [{"a": 0.5, "b": -1.0, "c": 2.0, "d": 0.1},
                                                 {"a": 1.5, "b": None, "c": 0.5, "d": 0.2}])
        self.assertEqual(version.signature["columns"], names)  # as given (a failed validation keeps it)
        example.write_text("a,b,c,d\n0.5,-1.0,2.0,0.1\n")
        stdout, _ = self.register(self.skops_path, "--input-example", str(example), "--wait")
        self.assertEqual(last_line(stdout), "2")
        ready = ModelVersion.objects.get(version=2)
        self.assertEqual((ready.status, ready.validation["smoke"]["from"]), (VersionStatus.READY, "input_example"))

    def test_bad_json_options_and_contradicting_examples_are_refused_naming_them(self):
        with self.assertRaisesMessage(CommandError, "--tags: Tag 'team' must map to a string"):
            self.register(self.skops_path, "--tags", '{"team": 1}')
        with self.assertRaisesMessage(CommandError, "--signature: columns"):
            self.register(self.skops_path, "--signature", '{"columns": [{"name": "a", "dtype": "complex"}]}')
        example = self.skops_path.with_name("rows.json")
        example.write_text('[{"a": "x"}]')
        with self.assertRaisesMessage(CommandError, "input_example[0].a: expected a number, got string"):
            self.register(self.skops_path, "--input-example", str(example),
                          "--signature", '{"columns": [{"name": "a", "dtype": "float64"}]}')
        self.assertFalse(ModelVersion.objects.exists())

    def test_it_refuses_a_missing_path(self):
        missing = self.skops_path.with_name("nope.skops")
        with self.assertRaisesMessage(CommandError, "is not a file"):
            self.register(missing)
        self.assertFalse(RegisteredModel.objects.exists())

    def test_it_reports_a_version_that_fails_validation_and_sets_no_alias(self):
        sio.dump({"not": "a model"}, self.skops_path)  # a valid skops file with nothing to predict with
        with self.assertRaisesMessage(CommandError, "failed validation") as raised:
            self.register(self.skops_path, "--wait", "--alias", "production")
        self.assertIn("fitted scikit-learn estimator", str(raised.exception))
        self.assertEqual(ModelVersion.objects.get().status, VersionStatus.FAILED)
        self.assertFalse(ModelAlias.objects.exists())


@pytest.mark.slow
# TorchScript is deprecated in torch 2.13.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
class SeedDemoCommandTests(TestCase):
    """Trains and validates the seven demo models once for the class; every test reads that result."""

    @classmethod
    def setUpTestData(cls):
        store = tempfile.mkdtemp(prefix="sp-seed-demo-")
        cls.addClassCleanup(shutil.rmtree, store, ignore_errors=True)
        with override_settings(MODEL_STORE_DIR=Path(store) / "models"):
            cls.first_stdout, cls.first_stderr = run("seed_demo")
            cls.versions_after_first = sorted(ModelVersion.objects.values_list("pk", flat=True))
            cls.second_stdout, cls.second_stderr = run("seed_demo")

    def production(self, name: str) -> ModelVersion:
        return ModelAlias.objects.select_related("version").get(model__name=name, name="production").version

    def test_it_registers_the_seven_demo_models(self):
        self.assertEqual(set(RegisteredModel.objects.values_list("name", flat=True)), DEMO_NAMES)
        self.assertEqual(last_line(self.first_stdout), "seeded 7 demo models")

    def test_it_points_production_at_a_ready_version_of_each(self):
        for name in DEMO_NAMES:
            with self.subTest(name):
                version = self.production(name)
                self.assertEqual(version.model.name, name)
                self.assertEqual(version.status, VersionStatus.READY, version.status_reason)
                self.assertEqual(version.version, 1)

    def test_it_records_signatures_that_match_each_model(self):
        churn = self.production("churn-logreg").signature
        self.assertEqual(churn["n_features"], 10)
        self.assertEqual(churn["feature_names"], [f"f{i}" for i in range(10)])
        self.assertEqual(self.production("fraud-forest").signature["n_features"], 20)
        self.assertEqual(self.production("sentiment-text").signature["input_kind"], "text")
        demand = self.production("demand-mlp")
        self.assertEqual(demand.signature["classes"], ["low", "medium", "high"])
        self.assertEqual(demand.flavor, "torch")
        self.assertEqual(self.production("router-scorer").model.task, "scoring")
        for name in ("churn-mixed", "churn-lightgbm"):
            version = self.production(name)
            columns = {c["name"]: c for c in version.signature["columns"]}
            self.assertEqual((columns["plan"]["dtype"], columns["income"]["nullable"]), ("string", True), name)
            self.assertEqual(version.validation["smoke"]["from"], "input_example", name)
        self.assertEqual(self.production("churn-lightgbm").format, "lightgbm_text")

    def test_it_keeps_the_training_metrics_and_tags(self):
        churn = self.production("churn-logreg")
        self.assertGreater(churn.metrics["accuracy"], 0.8)
        self.assertEqual(churn.tags["demo"], "true")
        self.assertEqual(churn.params["n_features"], 10)

    def test_churn_logreg_has_a_ready_candidate_version_two_at_staging(self):
        staging = ModelAlias.objects.select_related("version").get(model__name="churn-logreg", name="staging").version
        self.assertEqual((staging.version, staging.status), (2, VersionStatus.READY), staging.status_reason)
        self.assertEqual(staging.params["C"], 0.05)
        self.assertEqual(staging.signature["n_features"], 10)
        self.assertEqual(self.production("churn-logreg").version, 1)

    def test_a_second_run_creates_no_new_versions(self):
        self.assertEqual(len(self.versions_after_first), 8)  # the seven, and churn-logreg's candidate
        self.assertEqual(sorted(ModelVersion.objects.values_list("pk", flat=True)), self.versions_after_first)
        self.assertEqual(self.second_stderr.count("already seeded"), 7)
        self.assertNotIn("registered v", self.second_stderr)
        self.assertEqual(last_line(self.second_stdout), "seeded 7 demo models")

