"""Serving and jobs from an S3 store (a real SeaweedFS server), with processes that share no folder but the
model server's sockets: the model server fetches an artifact into its own cache and checks its sha256 before a
worker loads it (a changed object is refused, never loaded); an RQ worker with a VAR_DIR and BATCH_DIR of its own
runs async and batch jobs whose files live in the bucket, and any web process serves the result from there."""

import csv
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import TestCase

from inference.jobs import files
from inference.models import BatchJob, InferenceJob, JobStatus
from registry.models import ModelVersion
from tests.factories import key_client, make_model
from tests.inference.jobs.support import RqWorker, deploy_toy, wait_job
from tests.inference.live import LiveServerTestCase, toy_version
from tests.s3 import S3StoreMixin

WEIGHTS = (0.5, -0.25, 1.0)


def private_folder(test, prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    test.addCleanup(shutil.rmtree, folder, True)
    return folder


class S3LiveTestCase(S3StoreMixin, LiveServerTestCase):
    def setUp(self):
        # The model server is another host: its own cache and an empty local store it must not need.
        self.server_cache = private_folder(self, "sp-ms-cache-")
        self.server_store = private_folder(self, "sp-ms-store-")
        super().setUp()
        self.client = key_client("predict", "s3-client")

    @property
    def server_env(self) -> dict:
        return {**self.s3_env, "ARTIFACT_CACHE_DIR": str(self.server_cache), "MODEL_STORE_DIR": str(self.server_store)}


@pytest.mark.usefixtures("s3_server_for_class")
class S3ServingTests(S3LiveTestCase):
    def test_a_deployment_serves_a_model_the_server_fetched_into_its_cache(self):
        deploy_toy(self, "scorer", weights=WEIGHTS)
        version = ModelVersion.objects.get(model__name="scorer")
        self.assertIn(f"{self.prefix}/{version.artifact_path}", self.s3.keys(f"{self.prefix}/"))
        self.assertEqual([p.name for p in self.server_cache.iterdir()], [version.sha256])
        self.assertEqual(list(Path(settings.MODEL_STORE_DIR).rglob("*.artifact")), [])
        response = self.client.post("/api/v1/predict/scorer", {"inputs": [[1.0, 2.0, 3.0]]}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["predictions"], [1])

    def test_an_object_changed_in_the_bucket_is_refused_on_load_with_a_sha256_reason(self):
        model = make_model("scorer", task="classification")
        version = toy_version(model, weights=WEIGHTS, task_classes=[0, 1])
        self.s3.write(f"{self.prefix}/{version.artifact_path}", b'{"weights": [9.0, 9.0, 9.0]}')
        response = key_client("manage", "deployer").post(
            "/api/v1/deployments/", {"endpoint": "scorer", "model": "scorer", "version": 1}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        deployment = self.wait_status("scorer", "failed")
        self.assertIn("sha256 mismatch", deployment.status_reason)
        self.assertIn("not loaded", deployment.status_reason)
        self.assertEqual(list(self.server_cache.iterdir()), [])
        answer = self.client.post("/api/v1/predict/scorer", {"inputs": [[1.0, 2.0, 3.0]]}, format="json")
        self.assertEqual(answer.status_code, 503, answer.content)


@pytest.mark.usefixtures("s3_server_for_class")
class S3JobTests(S3LiveTestCase):
    def start_worker(self) -> RqWorker:
        # Another host: its own VAR_DIR and BATCH_DIR (empty), no local model store; the bucket has the files.
        var_dir = private_folder(self, "sp-worker-var-")
        worker = RqWorker(burst=True, VAR_DIR=str(var_dir), BATCH_DIR=str(var_dir / "batch"),
                          MODEL_STORE_DIR=str(var_dir / "models"), ARTIFACT_CACHE_DIR=str(var_dir / "cache"),
                          **self.s3_env).start()
        self.addCleanup(worker.stop)
        self.worker_var = var_dir
        return worker

    def test_a_batch_job_and_an_async_job_run_on_a_worker_that_shares_no_folder_with_the_web_tier(self):
        # The web side's batch folder of its own (empty): other tests' local batch files must not count here.
        web_batch = private_folder(self, "sp-web-batch-")
        web_settings = self.settings(BATCH_DIR=str(web_batch))
        web_settings.enable()
        self.addCleanup(web_settings.disable)
        deploy_toy(self, "scorer", weights=WEIGHTS)
        rows = ["a,b,c"] + [f"{i % 7 - 3},{i % 11 - 5},{i % 5 - 2}" for i in range(250)]
        from django.core.files.uploadedfile import SimpleUploadedFile

        with self.settings(BATCH_CHUNK_SIZE=100):
            accepted = self.client.post("/api/v1/batch-jobs/", {
                "file": SimpleUploadedFile("rows.csv", ("\n".join(rows) + "\n").encode()), "endpoint": "scorer"},
                format="multipart")
        self.assertEqual(accepted.status_code, 202, accepted.content)
        batch_id = accepted.json()["id"]
        asynchronous = self.client.post("/api/v1/predict/scorer/async", {"inputs": [[1.0, 2.0, 3.0]]}, format="json")
        self.assertEqual(asynchronous.status_code, 202, asynchronous.content)
        self.assertEqual(list(web_batch.rglob("*")), [])
        self.assertEqual(self.s3.read(f"{self.prefix}/batch/{batch_id}/input.csv"), ("\n".join(rows) + "\n").encode())

        worker = self.start_worker()
        batch = wait_job(batch_id, model=BatchJob, timeout=180)
        job = wait_job(asynchronous.json()["job_id"], model=InferenceJob, timeout=60)
        self.assertEqual(worker.wait(timeout=60), 0)
        self.assertEqual((batch.status, batch.rows_done, batch.rows_failed), (JobStatus.SUCCEEDED, 250, 0), batch.error)
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        self.assertEqual(job.result["predictions"], [1])

        parts = sorted(key for key in self.s3.keys(f"{self.prefix}/batch/{batch_id}/") if ".parts/" in key)
        self.assertEqual(len(parts), 3)  # one object per chunk of 100 rows, named by its offset
        self.assertEqual(sum(self.s3.keys(f"{self.prefix}/batch/{batch_id}/")[key] for key in parts),
                         batch.result_bytes)
        self.assertEqual([p for p in (self.worker_var / "batch").rglob("*") if p.is_file()]
                         if (self.worker_var / "batch").exists() else [], [])
        response = self.client.get(f"/api/v1/batch-jobs/{batch_id}/result")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Length"], str(batch.result_bytes))
        result = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual([[r["a"], r["b"], r["c"]] for r in result], [line.split(",") for line in rows[1:]])
        self.assertTrue(all(r["error"] == "" and r["prediction"] in ("0", "1") for r in result))


@pytest.mark.usefixtures("s3_server_for_class")
class S3ResultPartsTests(S3StoreMixin, TestCase):
    """What a retried execution meets in the bucket: parts past the recorded offset (written by an execution that
    died before recording them) are dropped, never served, and the sweeper's purge removes a job's objects."""

    def test_parts_past_the_recorded_offset_are_dropped_and_a_purge_removes_the_job(self):
        job = BatchJob.objects.create(endpoint="scorer", input_format="csv", input_path="j1/input.csv",
                                      result_path="j1/result.csv", owner="key:x", status=JobStatus.RUNNING)
        with files.result_sink(job) as sink:
            sink.write(b"a,prediction\n1,0\n")
            job.result_bytes = sink.commit()
            sink.write(b"2,1\n")
            sink.commit()  # the execution dies before recording this chunk
        self.assertEqual(len(self.s3.keys(f"{self.prefix}/batch/j1/")), 2)
        self.assertEqual(b"".join(files.result_chunks(job)), b"a,prediction\n1,0\n")
        with files.result_sink(job) as sink:  # the retry resumes at result_bytes
            sink.write(b"2,0\n")
            job.result_bytes = sink.commit()
        self.assertEqual(b"".join(files.result_chunks(job)), b"a,prediction\n1,0\n2,0\n")
        self.assertTrue(files.result_exists(job))
        files.files_delete("j1")
        self.assertEqual(self.s3.keys(f"{self.prefix}/batch/"), {})
