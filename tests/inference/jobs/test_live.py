"""Async inference jobs end to end: real model server, real RQ workers (subprocesses), real Redis."""

import os
import shutil
import tempfile
import time

import django_rq
from django.test import override_settings
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from rq.exceptions import NoSuchJobError
from rq.job import Job

from core import invalidation
from inference.jobs import queue as jobs
from inference.jobs import tasks
from inference.models import InferenceJob, JobStatus
from tests.factories import key_client
from tests.inference.jobs.support import RqWorker, deploy_toy, wait_running
from tests.inference.live import LiveServerTestCase, wait_for

ROWS = [[1.0, 2.0, 3.0], [-1.5, 0.25, 4.0]]


def invalidation_listeners() -> int:
    connection = django_rq.get_connection()
    return dict(connection.pubsub_numsub(invalidation._channel()))[invalidation._channel().encode()]


class AsyncPredictionTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.client = key_client("predict", "async-client")

    def submit(self, endpoint: str, body: dict, **headers):
        response = self.client.post(f"/api/v1/predict/{endpoint}/async", body, format="json", **headers)
        self.assertEqual(response.status_code, 202, response.content)
        return response.json()

    def poll(self, status_url: str, timeout: float = 120.0) -> dict:
        def done():
            body = self.client.get(status_url).json()
            return body if body["status"] not in ("queued", "running") else None

        return wait_for(done, timeout=timeout, interval=0.1, message=f"{status_url} to finish")

    def test_each_priority_is_served_and_high_goes_before_low_under_a_backlog(self):
        deploy_toy(self, "scorer")
        sync = self.client.post("/api/v1/predict/scorer", {"inputs": ROWS, "parameters": {"cache": False}},
                                format="json").json()
        submitted = {priority: [self.submit("scorer", {"inputs": ROWS, "priority": priority,
                                                        "parameters": {"cache": False}})
                                for _ in range(3)]
                     for priority in ("low", "normal", "high")}
        for accepted in submitted["low"]:
            self.assertEqual(accepted["status"], "queued")
            self.assertIsNone(accepted["eta_seconds"])  # nobody listens yet
        self.assertEqual([len(django_rq.get_queue(name)) for name in ("high", "default", "low")], [3, 3, 3])
        metrics_dir = tempfile.mkdtemp(prefix="sp-metrics-")
        self.addCleanup(shutil.rmtree, metrics_dir, True)
        worker = RqWorker(burst=True, PROMETHEUS_MULTIPROC_DIR=metrics_dir).start()
        self.addCleanup(worker.stop)
        results = {priority: [self.poll(job["status_url"]) for job in accepted]
                   for priority, accepted in submitted.items()}
        self.assertEqual(worker.wait(), 0)
        for priority, bodies in results.items():
            for body in bodies:
                self.assertEqual(body["status"], "succeeded", body)
                self.assertEqual(body["priority"], priority)
                self.assertEqual((body["model"], body["version"], body["attempts"]), ("scorer", 1, 1))
                # The same deployment as the sync path, so the same answer.
                for field in ("endpoint", "model", "version", "predictions", "probabilities", "classes"):
                    self.assertEqual(body["result"][field], sync[field], field)
        started = {priority: [InferenceJob.objects.get(pk=body["job_id"]).started_at for body in bodies]
                   for priority, bodies in results.items()}
        self.assertLess(max(started["high"]), min(started["normal"]))
        self.assertLess(max(started["normal"]), min(started["low"]))
        # Nine jobs ran in nine work horses; their metrics share the worker's files (no file per horse's pid:
        # the only pid is the worker's own, from start-up) and are all counted.
        owners = {name.rsplit("_", 1)[-1] for name in os.listdir(metrics_dir)}
        self.assertIn(f"rqworker-{worker.name}.db", owners)
        self.assertLessEqual(owners, {f"rqworker-{worker.name}.db", f"{worker.process.pid}.db"})
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics_dir)
        self.assertEqual(registry.get_sample_value("sp_prediction_requests_total", {
            "endpoint": "scorer", "model": "scorer", "version": "1", "outcome": "ok"}), 9)

    def test_a_worker_killed_mid_job_is_retried_and_writes_one_result(self):
        deploy_toy(self, "slow", toy={"sleep_ms": 1500}, timeout_ms=30000)
        accepted = self.submit("slow", {"inputs": ROWS})
        worker = RqWorker(burst=True).start()
        self.addCleanup(worker.stop)
        wait_running(accepted["job_id"])
        time.sleep(0.3)  # well inside the model call
        worker.kill_horse()
        body = self.poll(accepted["status_url"])
        self.assertEqual(worker.wait(), 0)
        self.assertEqual((body["status"], body["attempts"]), ("succeeded", 2), body)
        sync = self.client.post("/api/v1/predict/slow", {"inputs": ROWS}, format="json").json()
        self.assertEqual(body["result"]["predictions"], sync["predictions"])
        job = InferenceJob.objects.get(pk=accepted["job_id"])
        self.assertEqual(InferenceJob.objects.count(), 1)
        # The body is idempotent: running it again (a duplicate delivery) changes nothing.
        self.assertEqual(tasks.run_inference_job(str(job.pk)), "skipped")
        again = InferenceJob.objects.get(pk=job.pk)
        self.assertEqual((again.status, again.attempts, again.finished_at, again.result),
                         (job.status, job.attempts, job.finished_at, job.result))

    @override_settings(JOB_MAX_ATTEMPTS=1)
    def test_a_work_horse_killed_on_the_last_attempt_fails_the_job_at_once(self):
        deploy_toy(self, "slow", toy={"sleep_ms": 3000}, timeout_ms=30000)
        accepted = self.submit("slow", {"inputs": ROWS})
        subscribers = invalidation_listeners()
        worker = RqWorker(burst=True, JOB_MAX_ATTEMPTS="1").start()
        self.addCleanup(worker.stop)
        wait_running(accepted["job_id"])
        time.sleep(0.5)  # the horse is in the model call, past every cache it consults
        # A horse lives for one job: it never opens a listener (a thread and a Redis connection) of its own.
        self.assertEqual(invalidation_listeners(), subscribers)
        worker.kill_horse()
        # No sweep runs here: the worker itself records the death (a sweep would come a minute later).
        body = self.poll(accepted["status_url"], timeout=20)
        self.assertEqual((body["status"], body["attempts"]), ("failed", 1), body)
        self.assertEqual(body["error"]["code"], "lost")
        self.assertIn("signal 9", body["error"]["message"])
        self.assertEqual(worker.wait(), 0)

    def test_a_whole_worker_killed_mid_job_is_recovered_through_the_sweeper(self):
        deploy_toy(self, "slow", toy={"sleep_ms": 2000}, timeout_ms=30000)
        accepted = self.submit("slow", {"inputs": ROWS, "priority": "high"})
        first = RqWorker().start()
        self.addCleanup(first.stop)
        wait_running(accepted["job_id"])
        first.kill_all()
        self.assertEqual(InferenceJob.objects.get(pk=accepted["job_id"]).status, JobStatus.RUNNING)
        # RQ notices a dead worker once its heartbeat lapses (a minute or more): move the clock past that.
        counts = tasks.sweep_jobs(now=time.time() + 600)
        self.assertEqual(counts["failed"], 0, counts)
        self.assertEqual(len(django_rq.get_queue("high")), 1)
        second = RqWorker(burst=True).start()
        self.addCleanup(second.stop)
        body = self.poll(accepted["status_url"])
        self.assertEqual((body["status"], body["attempts"]), ("succeeded", 2), body)
        self.assertEqual(len(body["result"]["predictions"]), 2)

    def test_a_job_past_its_timeout_or_refused_by_the_model_fails_with_the_reason(self):
        deploy_toy(self, "slow", task="regression", toy={"sleep_ms": 2500}, timeout_ms=30000)
        worker = RqWorker().start()
        self.addCleanup(worker.stop)
        wait_for(lambda: jobs.backlog("normal")[1] >= 1, message="the worker to register")
        late = self.submit("slow", {"inputs": ROWS, "timeout_ms": 1000})
        self.assertGreaterEqual(late["eta_seconds"], 1)
        body = self.poll(late["status_url"])
        self.assertEqual((body["status"], body["attempts"], body["result"]), ("failed", 1, None), body)
        self.assertEqual(body["error"]["code"], "job_timeout")
        self.assertIn("timeout of 1 s", body["error"]["message"])
        refused = self.poll(self.submit("slow", {"inputs": [[-999.0, 0, 0]]})["status_url"])
        # The sync route refuses this row with a 400 invalid_input; the job records the same.
        self.assertEqual((refused["status"], refused["error"]["code"]), ("failed", "invalid_input"), refused)
        self.assertEqual(refused["error"]["message"], "a poison row")

    @override_settings(JOB_RESULT_TTL_S=1)
    def test_the_result_stays_readable_after_redis_dropped_its_copy(self):
        deploy_toy(self, "scorer")
        accepted = self.submit("scorer", {"inputs": ROWS, "request_id": "mine-1"})
        worker = RqWorker(burst=True).start()
        self.addCleanup(worker.stop)
        first = self.poll(accepted["status_url"])
        self.assertEqual(first["status"], "succeeded")
        queue = django_rq.get_queue("default")
        rq_id = InferenceJob.objects.get(pk=accepted["job_id"]).rq_job_id

        def dropped():
            try:
                Job.fetch(rq_id, connection=queue.connection, serializer=queue.serializer)
            except NoSuchJobError:
                return True
            return False

        wait_for(dropped, timeout=30, message="RQ to drop the job")
        later = self.client.get(accepted["status_url"]).json()
        self.assertEqual(later["result"], first["result"])
        self.assertEqual(later["result"]["request_id"], "mine-1")
