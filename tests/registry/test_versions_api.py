import pickle
from pathlib import Path

from django.conf import settings
from django.test import TestCase, override_settings

from registry.models import ModelVersion, VersionStatus
from tests.conftest import MarkerPickle, run_jobs, upload
from tests.factories import key_client, make_model

URL = "/api/v1/models/churn/versions/"


class VersionTestCase(TestCase):
    def setUp(self):
        self.client = key_client("manage")
        self.model = make_model("churn")

    def post_version(self, data: bytes, filename="model.skops", **fields):
        body = {"artifact": upload("artifact", data, filename), "flavor": "sklearn", **fields}
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(URL, body, format="multipart")

    def store_files(self) -> list[Path]:
        return [p for p in Path(settings.MODEL_STORE_DIR).rglob("*") if p.is_file()]


class VersionUploadTests(VersionTestCase):
    def test_upload_answers_201_pending_then_the_job_marks_it_ready(self):
        response = self.post_version(self.skops)
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual((body["version"], body["status"], body["format"]), (1, "pending", "skops"))
        self.assertEqual(len(body["sha256"]), 64)
        run_jobs()
        version = self.client.get(URL + "1/").json()
        self.assertEqual(version["status"], "ready", version["status_reason"])
        self.assertEqual(version["signature"]["n_features"], 4)
        self.assertEqual(version["signature"]["classes"], [0, 1, 2])

    def test_numbers_increase_per_model(self):
        self.post_version(self.skops)
        self.assertEqual(self.post_version(self.skops).json()["version"], 2)

    def test_a_contradicting_signature_fails_validation_with_its_reason(self):
        response = self.post_version(self.skops, signature='{"n_features": 7}')
        self.assertEqual(response.status_code, 201)
        run_jobs()
        version = ModelVersion.objects.get(model=self.model, version=1)
        self.assertEqual(version.status, VersionStatus.FAILED)
        self.assertIn("7", version.status_reason)
        self.assertIn("4", version.status_reason)

    def test_a_corrupted_artifact_fails_validation_without_leaking_paths(self):
        broken = bytearray(self.skops)
        broken[len(broken) // 2: len(broken) // 2 + 64] = b"\0" * 64
        response = self.post_version(bytes(broken))
        if response.status_code == 400:  # detection may already refuse it; both are safe outcomes
            return
        run_jobs()
        version = ModelVersion.objects.get(model=self.model, version=1)
        self.assertEqual(version.status, VersionStatus.FAILED)
        self.assertNotIn(str(settings.MODEL_STORE_DIR), version.status_reason)

    def test_sha256_mismatch_on_disk_fails_validation(self):
        self.post_version(self.skops)
        version = ModelVersion.objects.get(model=self.model, version=1)
        ModelVersion.objects.filter(pk=version.pk).update(sha256="0" * 64)
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.FAILED)
        self.assertIn("sha256", version.status_reason)

    def test_validate_again_requeues_and_revalidates(self):
        self.post_version(self.skops)
        run_jobs()
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(URL + "1/validate/")
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.json()["status"], "pending")
        run_jobs()
        self.assertEqual(ModelVersion.objects.get(model=self.model).status, VersionStatus.READY)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tests.conftest import skops_artifact

        cls.skops = skops_artifact()


class ArtifactSafetyTests(VersionTestCase):
    def test_a_malicious_pickle_is_refused_and_never_loaded(self):
        marker = Path(settings.MODEL_STORE_DIR).parent / f"pwned-{self.id()}"
        payload = pickle.dumps(MarkerPickle(marker))
        response = self.post_version(payload, filename="model.skops")
        self.assertEqual(response.status_code, 400)
        error = response.json()["error"]
        self.assertEqual(error["code"], "pickle_not_allowed")
        self.assertIn("ALLOW_PICKLE_ARTIFACTS", error["message"])
        run_jobs()
        self.assertFalse(marker.exists())
        self.assertEqual(ModelVersion.objects.count(), 0)
        self.assertEqual(self.store_files(), [])

    @override_settings(ALLOW_PICKLE_ARTIFACTS=True)
    def test_with_pickle_allowed_a_pickle_is_accepted_and_only_loaded_in_the_sandbox(self):
        import io

        import joblib
        from sklearn.dummy import DummyClassifier

        buffer = io.BytesIO()
        joblib.dump(DummyClassifier().fit([[0, 1], [1, 0]], [0, 1]), buffer)
        response = self.post_version(buffer.getvalue(), filename="model.joblib")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["format"], "pickle")
        run_jobs()
        self.assertEqual(ModelVersion.objects.get(model=self.model).status, VersionStatus.READY)

    def test_unrecognized_content_is_refused_whatever_its_name(self):
        for filename, data in [("model.skops", b"a,b,c\n1,2,3\n"), ("model.pt", b"\x00" * 100)]:
            response = self.post_version(data, filename=filename)
            self.assertEqual(response.status_code, 400, filename)
            self.assertEqual(response.json()["error"]["code"], "unsupported_artifact")
        self.assertEqual(self.store_files(), [])

    def test_a_flavor_that_does_not_match_the_content_is_refused(self):
        response = self.post_version(self.skops, flavor="torch")
        self.assertEqual(response.status_code, 400)
        self.assertIn("torch", response.json()["error"]["message"])

    def test_an_empty_file_is_refused(self):
        response = self.post_version(b"")
        self.assertEqual(response.status_code, 400)
        self.assertIn("artifact", response.json()["error"]["message"])

    def test_paths_in_request_fields_never_reach_the_filesystem(self):
        outside = Path(settings.MODEL_STORE_DIR).parent / "escaped.txt"
        response = self.post_version(
            self.skops, filename="../../../escaped.txt", description="../../escaped.txt",
            tags='{"path": "../../escaped.txt"}', metrics='{"file": "/etc/passwd"}',
        )
        self.assertEqual(response.status_code, 201)
        self.assertFalse(outside.exists())
        version = ModelVersion.objects.get(model=self.model)
        self.assertRegex(version.artifact_path, rf"^{self.model.pk}/[0-9a-f]{{32}}\.artifact$")
        stored = self.store_files()
        self.assertEqual(len(stored), 1)
        self.assertTrue(stored[0].resolve().is_relative_to(Path(settings.MODEL_STORE_DIR).resolve()))
        self.assertNotIn("escaped", str(stored[0]))

    def test_bad_json_fields_name_the_field(self):
        response = self.post_version(self.skops, metrics="{not json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("metrics", response.json()["error"]["message"])
        response = self.post_version(self.skops, signature='{"n_features": -3}')
        self.assertEqual(response.status_code, 400)
        self.assertIn("signature", response.json()["error"]["message"])
        self.assertEqual(self.store_files(), [])

    def test_a_misspelt_field_is_refused_and_nothing_is_stored(self):
        response = self.post_version(self.skops, metric='{"accuracy": 0.9}')
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json()["error"]["message"], "metric: Unknown field; did you mean 'metrics'?")
        self.assertEqual(self.store_files(), [])
        self.assertFalse(ModelVersion.objects.exists())

    def test_json_bodies_are_refused_with_415(self):
        response = self.client.post(URL, {"flavor": "sklearn"}, format="json")
        self.assertEqual(response.status_code, 415)
        self.assertEqual(response.json()["error"]["code"], "unsupported_media_type")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tests.conftest import skops_artifact

        cls.skops = skops_artifact()


class VersionLookupAndDeleteTests(VersionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tests.conftest import skops_artifact

        cls.skops = skops_artifact()

    def setUp(self):
        super().setUp()
        self.post_version(self.skops)
        self.post_version(self.skops)

    def test_a_version_resolves_by_number_and_by_alias(self):
        self.assertEqual(self.client.put("/api/v1/models/churn/aliases/production/", {"version": 1},
                                         format="json").status_code, 200)
        self.assertEqual(self.client.get(URL + "production/").json()["version"], 1)
        self.assertEqual(self.client.get(URL + "2/").json()["version"], 2)
        missing = self.client.get(URL + "staging/")
        self.assertEqual(missing.status_code, 404)
        self.assertIn("staging", missing.json()["error"]["message"])

    def test_a_version_behind_an_alias_cannot_be_deleted(self):
        self.client.put("/api/v1/models/churn/aliases/production/", {"version": 1}, format="json")
        response = self.client.delete(URL + "1/")
        self.assertEqual(response.status_code, 409)
        self.assertIn("production", response.json()["error"]["message"])
        self.assertTrue(ModelVersion.objects.filter(model=self.model, version=1).exists())

    def test_deleting_a_version_removes_its_file_and_keeps_numbers_unique(self):
        self.assertEqual(len(self.store_files()), 2)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(self.client.delete(URL + "2/").status_code, 204)
        self.assertEqual(len(self.store_files()), 1)
        self.assertEqual(self.post_version(self.skops).json()["version"], 3)

    def test_list_filters_by_status(self):
        ModelVersion.objects.filter(model=self.model, version=2).update(status=VersionStatus.READY)
        results = self.client.get(URL + "?status=ready").json()["results"]
        self.assertEqual([v["version"] for v in results], [2])
