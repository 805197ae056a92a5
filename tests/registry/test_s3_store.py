"""The artifact store on S3 (MODEL_STORE_URL=s3://bucket/prefix), against a real SeaweedFS server: uploads land
in the bucket, validation loads a copy fetched into the cache and checked against the recorded sha256, a changed
object is refused, the admin's download streams from the bucket; the local folder stays the default."""

import hashlib
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, override_settings

from core.env import S3Location, s3_location
from registry import storage
from registry.models import ModelVersion, VersionStatus
from tests.conftest import run_jobs, skops_artifact, upload
from tests.factories import key_client, make_model, user_client
from tests.inference.live import wait_for
from tests.s3 import S3StoreMixin

URL = "/api/v1/models/churn/versions/"


def test_model_store_url_takes_a_folder_or_an_s3_url_and_refuses_anything_else():
    assert s3_location("") is None
    assert s3_location("/srv/models") is None
    assert s3_location("file:///srv/models") is None
    assert s3_location("s3://models/team/a/") == S3Location(bucket="models", prefix="team/a")
    assert s3_location("s3://models") == S3Location(bucket="models", prefix="")
    for bad in ("gs://models/x", "s3://Models/x", "s3://m/x", "s3://models/a//b", "s3://models/../x"):
        with pytest.raises(ImproperlyConfigured, match="MODEL_STORE_URL"):
            s3_location(bad)


class StoreTestCase(TestCase):
    def setUp(self):
        super().setUp()
        self.client = key_client("manage")
        self.model = make_model("churn")

    def post_version(self, data: bytes):
        body = {"artifact": upload("artifact", data, "model.skops"), "flavor": "sklearn"}
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(URL, body, format="multipart")


@pytest.mark.usefixtures("s3_server_for_class")
class S3StoreTests(S3StoreMixin, StoreTestCase):
    def key(self, version: ModelVersion) -> str:
        return f"{self.prefix}/{version.artifact_path}"

    def test_an_upload_lands_in_the_bucket_and_validation_loads_a_verified_cached_copy(self):
        data = skops_artifact()
        response = self.post_version(data)
        self.assertEqual(response.status_code, 201, response.content)
        version = ModelVersion.objects.get(model=self.model, version=1)
        self.assertEqual(self.s3.read(self.key(version)), data)
        self.assertEqual(version.sha256, hashlib.sha256(data).hexdigest())
        # Nothing kept on the web host: no local store file, no staged or cached copy.
        self.assertEqual([p for p in Path(settings.MODEL_STORE_DIR).rglob("*") if p.is_file()], [])
        self.assertEqual([p for p in Path(settings.ARTIFACT_CACHE_DIR).rglob("*") if p.is_file()], [])
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.READY, version.status_reason)
        self.assertEqual(version.signature["n_features"], 4)
        cached = Path(settings.ARTIFACT_CACHE_DIR) / version.sha256
        self.assertEqual(cached.read_bytes(), data)
        self.assertEqual([p.name for p in Path(settings.ARTIFACT_CACHE_DIR).iterdir()], [version.sha256])

    def test_an_object_changed_in_the_bucket_is_refused_with_a_sha256_reason_and_never_cached(self):
        self.assertEqual(self.post_version(skops_artifact()).status_code, 201)
        version = ModelVersion.objects.get(model=self.model, version=1)
        tampered = bytearray(skops_artifact())
        tampered[100:110] = b"X" * 10
        self.s3.write(self.key(version), bytes(tampered))
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.FAILED)
        self.assertIn("sha256 mismatch", version.status_reason)
        self.assertIn("not loaded", version.status_reason)
        self.assertNotIn(self.prefix, version.status_reason)  # no key, bucket or host in a reason
        self.assertEqual([p for p in Path(settings.ARTIFACT_CACHE_DIR).rglob("*") if p.is_file()], [])
        with self.assertRaises(storage.ArtifactRefused):
            storage.local_artifact(version.artifact_path, version.sha256)

    def test_a_background_fetch_answers_fetching_then_the_verified_copy_or_the_refusal(self):
        data = skops_artifact()
        good = storage.store_artifact(io.BytesIO(data), model_id=1)
        bad = storage.store_artifact(io.BytesIO(data + b"!"), model_id=1)
        self.s3.write(f"{self.prefix}/{bad.relative_path}", data + b"?")  # same size, other bytes
        outcomes = {}
        for stored in (good, bad):
            with self.assertRaises(storage.ArtifactFetching):
                storage.local_artifact(stored.relative_path, stored.sha256, background=True)

            def settled(stored=stored):
                try:
                    return storage.local_artifact(stored.relative_path, stored.sha256, background=True)
                except storage.ArtifactFetching:
                    return None
                except storage.ArtifactRefused as exc:
                    return exc

            outcomes[stored.sha256] = wait_for(settled, timeout=30, message="the background fetch")
        self.assertEqual(outcomes[good.sha256], Path(settings.ARTIFACT_CACHE_DIR) / good.sha256)
        self.assertEqual(outcomes[good.sha256].read_bytes(), data)
        self.assertIn("sha256 mismatch", str(outcomes[bad.sha256]))
        self.assertEqual(sorted(p.name for p in Path(settings.ARTIFACT_CACHE_DIR).iterdir()), [good.sha256])

    def test_a_missing_object_leaves_the_version_pending_with_a_reason(self):
        self.assertEqual(self.post_version(skops_artifact()).status_code, 201)
        version = ModelVersion.objects.get(model=self.model, version=1)
        self.s3.client().delete_object(Bucket=self.s3.bucket, Key=self.key(version))
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.PENDING)
        self.assertIn("missing from the store", version.status_reason)

    def test_the_admin_download_streams_the_artifact_from_the_bucket(self):
        data = skops_artifact()
        self.post_version(data)
        version = ModelVersion.objects.get(model=self.model, version=1)
        client = user_client("keeper", staff=True)
        from django.contrib.auth import get_user_model

        keeper = get_user_model().objects.get(username="keeper")
        keeper.user_permissions.add(Permission.objects.get(codename="download_artifact"))
        response = client.get(f"/admin/registry/modelversion/{version.pk}/artifact/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Length"], str(len(data)))
        self.assertEqual(response["X-Content-SHA256"], version.sha256)
        self.assertEqual(b"".join(response.streaming_content), data)

    def test_deleting_a_version_deletes_its_object(self):
        self.post_version(skops_artifact())
        version = ModelVersion.objects.get(model=self.model, version=1)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(self.client.delete(URL + "1/").status_code, 204)
        self.assertEqual(self.s3.keys(f"{self.prefix}/"), {})
        self.assertFalse(ModelVersion.objects.filter(pk=version.pk).exists())

    def test_a_store_refusing_our_credentials_is_a_503_and_nothing_is_recorded(self):
        wrong = self.s3.settings(self.prefix, secret_key="not-the-secret")
        with override_settings(**wrong):
            response = self.post_version(skops_artifact())
        self.assertEqual(response.status_code, 503, response.content)
        self.assertEqual(response.json()["error"]["code"], "store_unavailable")
        self.assertFalse(ModelVersion.objects.exists())
        self.assertEqual(self.s3.keys(f"{self.prefix}/"), {})


class LocalStoreTests(StoreTestCase):
    def test_the_default_store_is_the_local_folder_and_loaders_get_its_file_itself(self):
        self.assertEqual(settings.MODEL_STORE_URL, "")
        data = skops_artifact()
        self.assertEqual(self.post_version(data).status_code, 201)
        version = ModelVersion.objects.get(model=self.model, version=1)
        stored = Path(settings.MODEL_STORE_DIR) / version.artifact_path
        self.assertEqual(stored.read_bytes(), data)
        self.assertEqual(storage.local_artifact(version.artifact_path, version.sha256), stored.resolve())
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.READY, version.status_reason)
        self.assertFalse(Path(settings.ARTIFACT_CACHE_DIR).exists())
