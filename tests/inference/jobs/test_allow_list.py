"""The job worker runs only the platform's own job functions: a job written to Redis naming anything else (or
carrying callbacks) fails without being called. Real Redis, real `manage.py rqworker` with ServingWorker."""

import tempfile
from pathlib import Path

import django_rq
from django.test import SimpleTestCase
from rq import Callback
from rq.job import Job
from rq.job import JobStatus as RqStatus

from inference.jobs import queue as jobs
from inference.jobs import tasks
from monitoring.services.notify import DELIVER
from registry.queue import VALIDATE_MODEL_VERSION
from tests.inference.jobs.support import RqWorker


class JobAllowListTests(SimpleTestCase):
    def setUp(self):
        self.queue = django_rq.get_queue("low")
        self.queue.empty()
        self.folder = Path(tempfile.mkdtemp(prefix="sp-allow-"))

    def enqueue(self, func: str, marker: str, **options) -> Job:
        # What anyone able to write to Redis could queue: a JSON job naming any importable function.
        return self.queue.enqueue(func, args=[f"touch {self.folder / marker}"], **options)

    def test_a_job_naming_a_function_off_the_list_fails_without_being_called(self):
        system = self.enqueue("os.system", "system")
        callback = self.enqueue(jobs.RUN_INFERENCE_JOB, "callback",
                                on_failure=Callback("os.system"), on_success=Callback("os.system"))
        worker = RqWorker(burst=True, queues=("low",)).start()
        self.addCleanup(worker.stop)
        self.assertEqual(worker.wait(), 0)
        for job, reason in ((system, "'os.system' is not one of the platform's job functions"),
                            (callback, "carries callbacks or webhooks")):
            job.refresh()
            self.assertEqual(job.get_status(), RqStatus.FAILED)
            self.assertIn(reason, job.latest_result().exc_string)
            self.assertIn(job.id, self.queue.failed_job_registry.get_job_ids())
        self.assertEqual(list(self.folder.iterdir()), [])  # nothing ran: no marker file
        self.assertEqual(len(self.queue), 0)

    def test_the_platform_s_own_jobs_are_allowed(self):
        allowed = tasks.allowed_job_functions()
        for name in (jobs.RUN_INFERENCE_JOB, jobs.RUN_BATCH_JOB, VALIDATE_MODEL_VERSION, DELIVER,
                     "inference.jobs.tasks.sweep_jobs", "monitoring.tasks.evaluate_alerts"):
            self.assertIn(name, allowed)
        own = self.queue.create_job(jobs.RUN_INFERENCE_JOB, args=["00000000-0000-0000-0000-000000000000"])
        self.assertIsNone(tasks.job_refusal(own))
        self.assertIsNotNone(tasks.job_refusal(self.queue.create_job("subprocess.run", args=["true"])))
