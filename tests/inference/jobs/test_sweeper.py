"""The sweeper: expiry past JOB_TTL_SECONDS, reconciliation of active rows RQ no longer runs, retention,
and its schedule on RQ's cron scheduler. Real Redis; jobs run in-process (tests/conftest.py run_jobs)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from unittest import mock

import django_rq
from django.conf import settings
from django.core.management import call_command
from django.test import TestCase, override_settings
from django.utils import timezone
from rq.job import Job
from rq.job import JobStatus as RqStatus

from inference.jobs import services as job_services
from inference.jobs import tasks
from inference.models import BatchJob, InferenceJob, JobStatus
from tests.conftest import run_jobs
from tests.factories import key_client
from tests.inference.jobs.support import PrivateBatchDir, toy_deployment
from tests.inference.live import ROOT, wait_for

ROWS = [[1.0, 2.0, 3.0]]
LATER = 10_000  # seconds: past the reconcile grace, well within the TTL


class SweeperTests(PrivateBatchDir, TestCase):
    def setUp(self):
        super().setUp()
        toy_deployment("scorer")
        self.client = key_client("predict", "sweeper-test")
        self.queue = django_rq.get_queue("default")

    def submit(self, *, push: bool = True) -> InferenceJob:
        with self.captureOnCommitCallbacks(execute=push):
            response = self.client.post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        return InferenceJob.objects.get(pk=response.json()["job_id"])

    def forget_in_redis(self, job: InferenceJob) -> None:
        """What a Redis restart without persistence does to a queued job."""
        self.queue.remove(job.rq_job_id)
        self.queue.connection.delete(f"rq:job:{job.rq_job_id}")

    def sweep(self, after: float = 0.0) -> dict:
        # A re-queued job is pushed when the sweep's transaction commits (the test's never does).
        with self.captureOnCommitCallbacks(execute=True):
            return tasks.sweep_jobs(now=time.time() + after)

    def test_jobs_not_started_within_their_ttl_expire(self):
        stale, running, fresh = self.submit(), self.submit(), self.submit()
        long_ago = timezone.now() - timedelta(seconds=86_400 + 5)
        InferenceJob.objects.filter(pk__in=[stale.pk, running.pk]).update(created_at=long_ago)
        InferenceJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, started_at=timezone.now(),
                                                          attempts=1)
        self.assertEqual(self.sweep()["expired"], 1)
        stale.refresh_from_db()
        self.assertEqual((stale.status, stale.error_code), (JobStatus.EXPIRED, "expired"))
        self.assertIn("JOB_TTL_SECONDS (86400 s)", stale.error)
        self.assertEqual(InferenceJob.objects.get(pk=running.pk).status, JobStatus.RUNNING)
        # The claim refuses a job past its TTL too, in case a worker reaches it before the sweeper.
        InferenceJob.objects.filter(pk=fresh.pk).update(created_at=long_ago)
        self.assertEqual(tasks.run_inference_job(str(fresh.pk)), "skipped")
        self.assertEqual(InferenceJob.objects.get(pk=fresh.pk).status, JobStatus.EXPIRED)

    def test_a_dead_work_horse_fails_the_row_at_once_only_on_its_last_attempt(self):
        last, earlier, finished = self.submit(), self.submit(), self.submit()
        InferenceJob.objects.filter(pk=last.pk).update(status=JobStatus.RUNNING, attempts=settings.JOB_MAX_ATTEMPTS)
        InferenceJob.objects.filter(pk=earlier.pk).update(status=JobStatus.RUNNING, attempts=1)
        InferenceJob.objects.filter(pk=finished.pk).update(status=JobStatus.SUCCEEDED,
                                                           attempts=settings.JOB_MAX_ATTEMPTS)
        for job in (last, earlier, finished):
            job_services.job_worker_died(rq_job_id=job.rq_job_id, detail="signal 9")
        last.refresh_from_db()
        self.assertEqual((last.status, last.error_code), (JobStatus.FAILED, "lost"))
        self.assertEqual(last.error, f"The process running it died (signal 9) on the last of "
                                     f"{settings.JOB_MAX_ATTEMPTS} attempts.")
        self.assertIsNotNone(last.finished_at)
        # RQ retries the earlier attempt itself (or the sweeper queues it): the row is left to them.
        self.assertEqual(InferenceJob.objects.get(pk=earlier.pk).status, JobStatus.RUNNING)
        self.assertEqual(InferenceJob.objects.get(pk=finished.pk).status, JobStatus.SUCCEEDED)

    @override_settings(JOB_UNAVAILABLE_RETRY_S=0)
    def test_a_queued_job_redis_lost_is_queued_again_and_runs(self):
        job = self.submit()
        self.forget_in_redis(job)
        self.assertEqual(self.sweep()["requeued"], 0)  # too young: its push might still be on its way
        self.assertEqual(self.sweep(LATER)["requeued"], 1)
        self.assertEqual(self.queue.job_ids, [job.rq_job_id])
        self.assertEqual(self.queue.fetch_job(job.rq_job_id).args, [str(job.pk)])
        run_jobs()
        job.refresh_from_db()
        # It ran (no model server in this test, so the deployment is unavailable): never left hanging.
        self.assertEqual((job.status, job.attempts, job.error_code), (JobStatus.FAILED, 1, "deployment_not_ready"))

    def test_a_job_whose_push_never_happened_is_pushed(self):
        job = self.submit(push=False)
        rq_job = Job.fetch(job.rq_job_id, connection=self.queue.connection, serializer=self.queue.serializer)
        self.assertEqual(rq_job.get_status(), RqStatus.CREATED)
        self.assertEqual(self.sweep(LATER)["pushed"], 1)
        self.assertEqual(self.queue.job_ids, [job.rq_job_id])
        self.assertEqual(InferenceJob.objects.get(pk=job.pk).status, JobStatus.QUEUED)

    def test_a_running_job_rq_gave_up_on_is_requeued_while_attempts_are_left_then_failed(self):
        job = self.submit()
        self.queue.remove(job.rq_job_id)
        rq_job = Job.fetch(job.rq_job_id, connection=self.queue.connection, serializer=self.queue.serializer)
        rq_job.set_status(RqStatus.FAILED)
        InferenceJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=1)
        self.assertEqual(self.sweep(LATER)["requeued"], 1)
        self.assertEqual(InferenceJob.objects.get(pk=job.pk).status, JobStatus.QUEUED)
        self.assertEqual(self.queue.job_ids, [job.rq_job_id])
        self.forget_in_redis(job)
        InferenceJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=3)
        self.assertEqual(self.sweep(2 * LATER)["failed"], 1)
        job.refresh_from_db()
        self.assertEqual((job.status, job.error_code), (JobStatus.FAILED, "lost"))
        self.assertEqual(job.error, "Lost by the job queue after 3 attempts: the job queue no longer knows it.")
        self.assertEqual(len(self.queue), 0)

    def test_jobs_rq_is_still_running_or_holding_are_left_alone(self):
        queued = self.submit()
        InferenceJob.objects.filter(pk=queued.pk).update(updated_at=timezone.now() - timedelta(hours=1))
        counts = self.sweep(LATER)
        self.assertEqual({name: count for name, count in counts.items() if count}, {})
        self.assertEqual(self.queue.job_ids, [queued.rq_job_id])

    @override_settings(JOB_RETENTION_DAYS=1)
    def test_finished_jobs_past_retention_are_deleted_with_their_files(self):
        old, recent = self.submit(), self.submit()
        InferenceJob.objects.filter(pk=old.pk).update(status=JobStatus.SUCCEEDED,
                                                      finished_at=timezone.now() - timedelta(days=2))
        InferenceJob.objects.filter(pk=recent.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
        folder = self.batch_dir / "b"
        folder.mkdir()
        batch = BatchJob.objects.create(endpoint="scorer", input_format="csv", input_path="x/input.csv",
                                        result_path="x/result.csv", owner="key:x", status=JobStatus.FAILED,
                                        finished_at=timezone.now() - timedelta(days=3))
        shutil.move(folder, self.batch_dir / str(batch.pk))
        self.assertEqual(self.sweep()["deleted"], 2)
        self.assertEqual(list(InferenceJob.objects.values_list("pk", flat=True)), [recent.pk])
        self.assertFalse(BatchJob.objects.exists())
        self.assertFalse((self.batch_dir / str(batch.pk)).exists())

    # An hour: the second look must find nothing due however slowly a loaded machine runs the first sweep.
    @override_settings(JOB_SWEEP_INTERVAL_S=3600)
    def test_rqs_cron_scheduler_queues_the_sweep_as_json_for_the_workers(self):
        stale = self.submit()
        InferenceJob.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
        with mock.patch.object(tasks, "PERIODIC", []):  # other apps' jobs: their own tests
            scheduler = tasks.sweep_scheduler()
        enqueued = scheduler.enqueue_jobs()
        self.assertEqual([cron.name for cron in enqueued], ["sweep_jobs"])
        high = django_rq.get_queue("high")
        self.assertEqual(len(high), 1)
        self.assertEqual(high.fetch_job(high.job_ids[0]).func_name, "inference.jobs.tasks.sweep_jobs")
        run_jobs()  # a JSON-only worker: a pickled job would fail here
        self.assertEqual(InferenceJob.objects.get(pk=stale.pk).status, JobStatus.EXPIRED)
        self.assertEqual(scheduler.enqueue_jobs(), [])  # not due again before JOB_SWEEP_INTERVAL_S

    def test_the_command_sweeps_once_and_reports(self):
        stale = self.submit()
        InferenceJob.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
        out = StringIO()
        call_command("sweep_jobs", stdout=out)
        self.assertEqual(out.getvalue().strip(), "expired=1 pushed=0 requeued=0 failed=0 deleted=0")


class SweepScheduleTests(TestCase):
    def test_the_schedule_command_keeps_queueing_the_sweep_until_stopped(self):
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "JOB_SWEEP_INTERVAL_S": "5"}
        process = subprocess.Popen([sys.executable, "manage.py", "sweep_jobs", "--schedule"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(lambda: process.poll() is None and os.killpg(process.pid, signal.SIGKILL))
        high = django_rq.get_queue("high")
        # An interval job runs at once, then every JOB_SWEEP_INTERVAL_S (other apps' periodic jobs beside them).
        sweeps = lambda: [job_id for job_id in high.job_ids if job_id.startswith("sweep-jobs-")]  # noqa: E731
        wait_for(lambda: len(sweeps()) >= 2, timeout=60, message="two sweeps to be queued")
        self.assertEqual({high.fetch_job(job_id).func_name for job_id in sweeps()},
                         {"inference.jobs.tasks.sweep_jobs"})
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=30), 0)
