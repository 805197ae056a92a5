"""A whole platform for the client to talk to, as `make serve` runs it: the web tier (gunicorn + uvicorn
workers), the model server and an RQ worker (validation and jobs), on the test database and Redis.

Reuses the serving tests' harness (tests/inference/live.py, tests/inference/jobs/support.py).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from servingplatform_client import Client

from core.services import api_key_create
from tests.inference.jobs.support import RqWorker
from tests.inference.live import LiveServerTestCase, LiveWebServer

SP = str(Path(sys.executable).with_name("sp"))  # the console script `pip install ./client` puts beside python


class LivePlatformTestCase(LiveServerTestCase):
    """Each test: a model server (from LiveServerTestCase), an RQ worker and gunicorn, plus a manage key and a
    predict key, and `self.sp`, a Client with the manage key."""

    web_env: dict = {}

    def setUp(self):
        super().setUp()
        self.worker = RqWorker().start()
        self.addCleanup(self.worker.stop)
        self.web = LiveWebServer(**self.web_env)
        self.addCleanup(self.web.stop)
        _, self.manage_key = api_key_create(name="client-manage", scope="manage")
        _, self.predict_key = api_key_create(name="client-predict", scope="predict")
        self.sp = Client(self.web.url, self.manage_key, progress=False)
        self.addCleanup(self.sp.close)

    def run_sp(self, *args: str, key: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """The `sp` command in a subprocess, configured through the environment as a script would be."""
        env = {**os.environ, "SERVINGPLATFORM_URL": self.web.url,
               "SERVINGPLATFORM_API_KEY": key if key is not None else self.manage_key}
        return subprocess.run([SP, *args], env=env, capture_output=True, text=True, timeout=timeout)


def churn_data(rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four numeric features, three classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y



def takes_input_examples() -> bool:
    """Whether the version upload takes an `input_example` file (issue 14), read from the app's own OpenAPI
    document: the tests of that feature run as soon as the server has it."""
    from django.test import Client as DjangoClient

    schema = DjangoClient().get("/api/schema/", {"format": "json"}).json()
    upload = schema["paths"]["/api/v1/models/{name}/versions/"]["post"]["requestBody"]["content"]
    name = upload["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    return "input_example" in schema["components"]["schemas"][name]["properties"]
