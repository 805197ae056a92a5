"""RQ keeps each job's function by dotted name in Redis: jobs queued before the jobs modules moved into
inference/jobs/ name `inference.jobs.run_inference_job` and the like, and must still run."""

from django.test import TestCase
from rq.utils import import_attribute

from inference.jobs import tasks
from inference.jobs.queue import get_queue
from inference.models import InferenceJob, JobStatus
from tests.conftest import run_jobs
from tests.factories import key_client
from tests.inference.jobs.support import toy_deployment

ROWS = [[1.0, 2.0, 3.0]]


class MovedJobNamesTests(TestCase):
    def test_a_job_queued_under_the_old_name_runs_the_moved_function(self):
        toy_deployment("scorer")
        with self.captureOnCommitCallbacks(execute=False):  # the row only: its own RQ job is never pushed
            response = key_client("predict").post("/api/v1/predict/scorer/async", {"inputs": ROWS}, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        pk = response.json()["job_id"]
        InferenceJob.objects.filter(pk=pk).update(status=JobStatus.CANCELLED)  # so the body answers "skipped"
        queue = get_queue("default")
        old = queue.enqueue("inference.jobs.run_inference_job", pk)
        sweep = queue.enqueue("inference.jobs.sweep_jobs")

        run_jobs()

        self.assertEqual((old.get_status().value, old.return_value()), ("finished", "skipped"))
        self.assertEqual(sweep.get_status().value, "finished")
        self.assertEqual(set(sweep.return_value()), {"expired", "pushed", "requeued", "failed", "deleted"})

    def test_the_old_names_resolve_to_the_moved_objects_and_unknown_ones_do_not(self):
        for name in ("run_inference_job", "run_batch_job", "sweep_jobs", "ServingWorker"):
            self.assertIs(import_attribute(f"inference.jobs.{name}"), getattr(tasks, name))
        with self.assertRaises(ValueError):
            import_attribute("inference.jobs.register")  # queue.py's: never a job function under the old name
