"""The async job API against real Redis/RQ, without workers: submission, validation, idempotency, access,
listing, cancelling, and what happens when Redis is down."""

import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import django_rq
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
from rest_framework.test import APIClient
from rq.job import Job

from core.embedded_redis import start_private_redis
from core.services import api_key_create
from inference.jobs import tasks
from inference.models import BatchJob, InferenceJob, JobStatus
from tests.factories import key_client, user_client
from tests.inference.jobs.support import PrivateBatchDir, toy_deployment

ROWS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def rq_job(job_id: str) -> Job:
    queue = django_rq.get_queue("default")
    return Job.fetch(InferenceJob.objects.get(pk=job_id).rq_job_id, connection=queue.connection,
                     serializer=queue.serializer)


class SubmitTests(TestCase):
    def setUp(self):
        self.deployment = toy_deployment("scorer", max_rows=4)
        self.client = key_client("predict", "submitter")

    def submit(self, body, endpoint="scorer", **extra):
        return self.client.post(f"/api/v1/predict/{endpoint}/async", body, format="json", **extra)

    def test_a_submission_stores_the_job_and_queues_its_id_once_the_transaction_commits(self):
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.submit({"inputs": ROWS, "request_id": "r-1"}, HTTP_X_SUBJECT_ID="user-7")
        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        self.assertEqual(set(body), {"job_id", "status", "eta_seconds", "status_url"})
        self.assertEqual(body["status"], "queued")
        self.assertIsNone(body["eta_seconds"])  # no worker listens
        self.assertTrue(body["status_url"].endswith(f"/api/v1/jobs/{body['job_id']}"))
        self.assertEqual(response["Location"], body["status_url"])
        job = InferenceJob.objects.get(pk=body["job_id"])
        self.assertEqual((job.endpoint, job.model_version_id, job.rows, job.priority, job.request_id, job.subject_id),
                         ("scorer", self.deployment.model_version_id, 2, "normal", "r-1", "user-7"))
        self.assertTrue(job.owner.startswith("key:") and job.api_key is not None)
        queue = django_rq.get_queue("default")
        # Stored (so Redis is known to be up) but queued only after the commit.
        self.assertEqual(rq_job(job.pk).get_status().value, "created")
        self.assertEqual(len(queue), 0)
        for callback in callbacks:
            callback()
        self.assertEqual(queue.job_ids, [f"predict-{job.pk}"])
        stored = rq_job(job.pk)
        self.assertEqual((stored.func_name, stored.args), ("inference.jobs.tasks.run_inference_job", [str(job.pk)]))
        raw = queue.connection.hget(stored.key, "data")
        self.assertEqual(json.loads(zlib.decompress(raw))[2], [str(job.pk)])  # JSON, not pickle

    def test_priority_picks_the_queue_and_timeout_ms_the_job_timeout(self):
        with self.captureOnCommitCallbacks(execute=True):
            high = self.submit({"inputs": ROWS, "priority": "high", "timeout_ms": 1500}).json()
            low = self.submit({"inputs": ROWS, "priority": "low"}).json()
        self.assertEqual(django_rq.get_queue("high").job_ids, [f"predict-{high['job_id']}"])
        self.assertEqual(django_rq.get_queue("low").job_ids, [f"predict-{low['job_id']}"])
        self.assertEqual(InferenceJob.objects.get(pk=high["job_id"]).timeout_s, 2)
        self.assertEqual(rq_job(high["job_id"]).timeout, 2)
        self.assertEqual(rq_job(low["job_id"]).timeout, 300)

    def test_bad_requests_are_refused_before_anything_is_stored(self):
        cases = [
            ({"request_id": "x"}, 400, "validation_error"),
            ({"inputs": ROWS, "priority": "urgent"}, 400, "validation_error"),
            ({"inputs": ROWS, "timeout_ms": 0}, 400, "validation_error"),
            ({"inputs": ROWS, "timeout_ms": 3_600_001}, 400, "validation_error"),
            ({"inputs": ROWS, "parameters": {"uncertainty": {"samples": 1}}}, 400, "validation_error"),
            ({"inputs": [[1.0, 2.0]]}, 400, "invalid_input"),
            ({"inputs": [[1, "x", 3]]}, 400, "invalid_input"),
            ({"inputs": [[1, 2, 3]] * 5}, 413, "too_many_rows"),
        ]
        for body, status, code in cases:
            with self.subTest(body=body):
                response = self.submit(body)
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response.json()["error"]["code"], code)
        missing = self.submit({"inputs": ROWS}, endpoint="nowhere")
        self.assertEqual((missing.status_code, missing.json()["error"]["code"]), (404, "endpoint_not_found"))
        not_object = self.client.post("/api/v1/predict/scorer/async", [1, 2], format="json")
        self.assertEqual(not_object.status_code, 400)
        form = self.client.post("/api/v1/predict/scorer/async", {"inputs": "1"})
        self.assertEqual(form.status_code, 415)
        spaced = self.submit({"inputs": ROWS}, HTTP_IDEMPOTENCY_KEY="has spaces")
        self.assertEqual(spaced.status_code, 400)
        self.assertFalse(InferenceJob.objects.exists())
        self.assertEqual(sum(len(django_rq.get_queue(name)) for name in ("high", "default", "low")), 0)

    def test_a_repeated_idempotency_key_returns_the_first_job_for_the_same_caller_only(self):
        with self.captureOnCommitCallbacks(execute=True):
            first = self.submit({"inputs": ROWS}, HTTP_IDEMPOTENCY_KEY="order-42")
            again = self.submit({"inputs": ROWS}, HTTP_IDEMPOTENCY_KEY="order-42")
            other_caller = key_client("predict", "someone-else").post(
                "/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
        self.assertEqual((first.status_code, again.status_code, other_caller.status_code), (202, 202, 202))
        self.assertEqual(again.json()["job_id"], first.json()["job_id"])
        self.assertEqual(again["Idempotent-Replayed"], "true")
        self.assertNotIn("Idempotent-Replayed", first)
        self.assertNotEqual(other_caller.json()["job_id"], first.json()["job_id"])
        self.assertEqual(InferenceJob.objects.count(), 2)
        self.assertEqual(len(django_rq.get_queue("default")), 2)
        changed = self.submit({"inputs": [[9, 9, 9]]}, HTTP_IDEMPOTENCY_KEY="order-42")
        self.assertEqual((changed.status_code, changed.json()["error"]["code"]), (409, "idempotency_key_reused"))

    def test_cancelling_a_queued_job_takes_it_off_the_queue_and_its_body_skips_it(self):
        with self.captureOnCommitCallbacks(execute=True):
            job_id = self.submit({"inputs": ROWS}).json()["job_id"]
        response = self.client.delete(f"/api/v1/jobs/{job_id}")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["status"], "cancelled")
        self.assertEqual(len(django_rq.get_queue("default")), 0)
        self.assertEqual(tasks.run_inference_job(job_id), "skipped")
        self.assertEqual(InferenceJob.objects.get(pk=job_id).attempts, 0)
        again = self.client.delete(f"/api/v1/jobs/{job_id}")
        self.assertEqual((again.status_code, again.json()["error"]["code"]), (409, "job_not_cancellable"))
        InferenceJob.objects.filter(pk=job_id).update(status=JobStatus.RUNNING)
        self.assertEqual(self.client.delete(f"/api/v1/jobs/{job_id}").status_code, 409)


class VisibilityTests(TestCase):
    def setUp(self):
        toy_deployment("scorer")
        self.owner = key_client("predict", "owner")
        self.outsider = key_client("predict", "outsider")
        with self.captureOnCommitCallbacks(execute=True):
            self.job_id = self.owner.post("/api/v1/predict/scorer/async", {"inputs": ROWS},
                                          format="json").json()["job_id"]
            self.other_id = self.outsider.post("/api/v1/predict/scorer/async", {"inputs": ROWS, "priority": "low"},
                                               format="json").json()["job_id"]

    def ids(self, client, query="") -> list[str]:
        response = client.get(f"/api/v1/jobs{query}")
        self.assertEqual(response.status_code, 200, response.content)
        return [job["job_id"] for job in response.json()["results"]]

    def test_a_key_sees_only_its_own_jobs(self):
        self.assertEqual(self.owner.get(f"/api/v1/jobs/{self.job_id}").status_code, 200)
        self.assertEqual(self.outsider.get(f"/api/v1/jobs/{self.job_id}").status_code, 404)
        self.assertEqual(self.outsider.delete(f"/api/v1/jobs/{self.job_id}").status_code, 404)
        self.assertEqual(InferenceJob.objects.get(pk=self.job_id).status, JobStatus.QUEUED)
        self.assertEqual(self.ids(self.owner), [self.job_id])
        self.assertEqual(self.ids(self.outsider), [self.other_id])

    def test_manage_keys_and_staff_see_every_job_and_users_their_own(self):
        for client in (key_client("manage", "ops"), user_client("admin", staff=True)):
            self.assertEqual(set(self.ids(client)), {self.job_id, self.other_id})
            self.assertEqual(client.get(f"/api/v1/jobs/{self.job_id}").status_code, 200)
        member = get_user_model().objects.create_user("member", password="pw-member-1")
        member.user_permissions.add(Permission.objects.get(codename="use_predict"))
        client = APIClient()
        client.force_login(member)
        with self.captureOnCommitCallbacks(execute=True):
            mine = client.post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json").json()["job_id"]
        self.assertEqual(self.ids(client), [mine])
        self.assertEqual(InferenceJob.objects.get(pk=mine).submitted_by, member)
        self.assertEqual(client.get(f"/api/v1/jobs/{self.job_id}").status_code, 404)

    def test_the_list_filters_and_limits(self):
        manage = key_client("manage", "ops")
        self.assertEqual(self.ids(manage, "?priority=low"), [self.other_id])
        self.assertEqual(self.ids(manage, "?status=queued&endpoint=scorer&limit=1"), [self.other_id])  # newest
        self.assertEqual(self.ids(manage, "?endpoint=other"), [])
        InferenceJob.objects.filter(pk=self.job_id).update(status=JobStatus.SUCCEEDED, result={"predictions": [1]})
        self.assertEqual(self.ids(manage, "?status=succeeded"), [self.job_id])
        body = manage.get("/api/v1/jobs").json()
        self.assertEqual((body["count"], body["limit"]), (2, 20))
        self.assertNotIn("result", body["results"][0])  # results only on the detail route
        detail = self.owner.get(f"/api/v1/jobs/{self.job_id}").json()
        self.assertEqual(detail["result"], {"predictions": [1]})
        for query in ("?limit=0", "?limit=101", "?limit=x", "?status=done", "?priority=urgent"):
            with self.subTest(query=query):
                self.assertEqual(manage.get(f"/api/v1/jobs{query}").status_code, 400)


class IdempotencyRaceTests(TransactionTestCase):
    def test_concurrent_repeats_with_one_key_create_one_job(self):
        toy_deployment("scorer")
        _, secret = api_key_create(name="racer", scope="predict")
        barrier = threading.Barrier(8)

        def submit(_):
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=secret)
            try:
                barrier.wait()
                response = client.post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json",
                                       HTTP_IDEMPOTENCY_KEY="same-order")
                return response.status_code, response.json().get("job_id")
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(8)))
        self.assertEqual({status for status, _ in answers}, {202})
        self.assertEqual(len({job_id for _, job_id in answers}), 1)
        self.assertEqual(InferenceJob.objects.count(), 1)
        self.assertEqual(django_rq.get_queue("default").job_ids, [f"predict-{answers[0][1]}"])


class RedisDownTests(TransactionTestCase):
    def test_a_submission_while_redis_is_down_answers_503_and_stores_nothing(self):
        toy_deployment("scorer")
        client = key_client("predict", "unlucky")
        private = start_private_redis()
        queues = {name: {"URL": private.url, "DEFAULT_TIMEOUT": 600, "SERIALIZER": "rq.serializers.JSONSerializer"}
                  for name in ("high", "default", "low")}
        with override_settings(RQ_QUEUES=queues):
            accepted = client.post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json")
            self.assertEqual(accepted.status_code, 202, accepted.content)
            private.stop()
            refused = client.post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json",
                                  HTTP_IDEMPOTENCY_KEY="try-1")
        self.assertEqual(refused.status_code, 503, refused.content)
        self.assertEqual(refused.json()["error"]["code"], "queue_unavailable")
        self.assertIn("Retry-After", refused)
        job_id = accepted.json()["job_id"]
        self.assertEqual([str(pk) for pk in InferenceJob.objects.values_list("pk", flat=True)], [job_id])
        # The job accepted before the outage was lost with that Redis: the sweeper queues it again.
        counts = tasks.sweep_jobs(now=time.time() + 600)
        self.assertEqual(counts["requeued"], 1, counts)
        self.assertEqual(django_rq.get_queue("default").job_ids, [f"predict-{job_id}"])
        self.assertEqual(InferenceJob.objects.get(pk=job_id).status, JobStatus.QUEUED)


class BatchRedisDownTests(PrivateBatchDir, TransactionTestCase):
    def test_a_batch_upload_while_redis_is_down_answers_503_and_leaves_no_row_or_file(self):
        toy_deployment("scorer")
        private = start_private_redis()
        queues = {name: {"URL": private.url, "DEFAULT_TIMEOUT": 600, "SERIALIZER": "rq.serializers.JSONSerializer"}
                  for name in ("high", "default", "low")}
        private.stop()
        with override_settings(RQ_QUEUES=queues):
            response = key_client("predict", "unlucky").post(
                "/api/v1/batch-jobs/", {"file": SimpleUploadedFile("rows.csv", b"a,b,c\n1,2,3\n"),
                                        "endpoint": "scorer"}, format="multipart")
        self.assertEqual((response.status_code, response.json()["error"]["code"]), (503, "queue_unavailable"))
        self.assertFalse(BatchJob.objects.exists())
        self.assertEqual(list(self.batch_dir.iterdir()), [])
