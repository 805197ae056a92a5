"""Shared by the job tests: real RQ workers (`manage.py rqworker` subprocesses) against the test database
and Redis, and a toy endpoint served by the real model server. Defines no tests itself."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.test import override_settings

from inference.models import InferenceJob, JobStatus
from tests.factories import key_client, make_model
from tests.inference.live import ROOT, database_url, toy_version, wait_for

QUEUES = ("high", "default", "low")
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)
# Settings the worker processes must share with the test process when a test overrides them.
SHARED_SETTINGS = ("JOB_MAX_ATTEMPTS", "JOB_UNAVAILABLE_RETRY_S", "JOB_TTL_SECONDS", "JOB_RESULT_TTL_S")


class RqWorker:
    """`manage.py rqworker high default low` with RQ's JSON serializer, as `make serve` runs it."""

    def __init__(self, *, burst: bool = False, queues=QUEUES, **env: str):
        self.burst = burst
        self.queues = queues
        self.env = env
        self.name = f"test-worker-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RqWorker":
        shared = {name: str(getattr(settings, name)) for name in SHARED_SETTINGS}
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
               "MODEL_STORE_DIR": str(settings.MODEL_STORE_DIR), "MODEL_SERVER_DIR": str(settings.MODEL_SERVER_DIR),
               "BATCH_DIR": str(settings.BATCH_DIR), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING", **shared,
               **self.env}
        args = [sys.executable, "manage.py", "rqworker", *self.queues, "--serializer",
                "rq.serializers.JSONSerializer", "--name", self.name,
                "--worker-class", "inference.jobs.tasks.ServingWorker", "-v", os.environ.get("TEST_RQ_VERBOSITY", "0")]
        if self.burst:
            args.append("--burst")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)
        return self

    def wait(self, timeout: float = 120.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def horse_pids(self) -> list[int]:
        """The work horse: the child the worker forks for each job (in a process group of its own)."""
        assert self.process is not None
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def kill_horse(self) -> int:
        pid = wait_for(lambda: (self.horse_pids() or [None])[0], timeout=30, message="a work horse")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_all(self) -> None:
        """The whole worker dies at once (OOM killer, a lost container): the parent first, so it cannot
        react to its horse's death, then the horse."""
        horses = self.horse_pids()
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        for pid in horses:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            for pid in self.horse_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def deploy_toy(test, endpoint: str, *, task: str = "classification", weights=(0.5, -0.25, 1.0),
               toy: dict | None = None, **knobs):
    """A toy model (tests/inference/runtime/toy_runtime.py) deployed at `endpoint`, ready to serve."""
    model = make_model(endpoint, task=task)
    toy_version(model, weights=weights, task_classes=[0, 1] if task == "classification" else None, **(toy or {}))
    response = key_client("manage", f"deployer-{endpoint}").post(
        "/api/v1/deployments/", {"endpoint": endpoint, "model": endpoint, "version": 1, **knobs}, format="json")
    test.assertEqual(response.status_code, 201, response.content)
    return test.wait_ready(endpoint)


def wait_job(pk, *, model=InferenceJob, timeout: float = 120.0, statuses=FINISHED):
    def reached():
        job = model.objects.filter(pk=pk).first()
        return job if job and job.status in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.05, message=f"{model.__name__} {pk} to reach {statuses}")


def wait_running(pk, *, model=InferenceJob, timeout: float = 60.0):
    return wait_job(pk, model=model, timeout=timeout, statuses=(JobStatus.RUNNING,))


def toy_deployment(endpoint: str = "scorer", *, feature_names=None, task: str = "classification", **knobs):
    """A deployment row serving a toy version, without a model server: enough to submit jobs."""
    from inference.deployments.services import deployment_create

    model = make_model(endpoint, task=task)
    weights = tuple(0.5 for _ in feature_names) if feature_names else (0.5, -0.25, 1.0)
    version = toy_version(model, weights=weights, task_classes=[0, 1] if task == "classification" else None)
    if feature_names:
        version.signature = {**version.signature, "feature_names": list(feature_names)}
        version.save(update_fields=["signature"])
    return deployment_create(endpoint=endpoint, model=endpoint, version=version.version, **knobs)


class PrivateBatchDir:
    """Each test gets its own BATCH_DIR, so file assertions see only that test's files."""

    def setUp(self):
        super().setUp()
        folder = tempfile.mkdtemp(prefix="sp-batch-")
        self.addCleanup(shutil.rmtree, folder, True)
        self.enterContext(override_settings(BATCH_DIR=Path(folder)))
        self.batch_dir = Path(folder)
