import functools
import io
import os
import tempfile
from pathlib import Path

import django_rq
import pytest
from django.core.cache import cache
from rq import SimpleWorker
from rq.serializers import JSONSerializer


@pytest.fixture(autouse=True)
def _private_model_store(settings, tmp_path):
    """Each test gets its own artifact store, so file assertions see only that test's files."""
    settings.MODEL_STORE_DIR = tmp_path / "models"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache" / "artifacts"


@pytest.fixture(autouse=True)
def _clean_redis():
    """Empty job queues and throttle buckets so tests never see each other's state."""
    for name in ("high", "default", "low"):
        django_rq.get_queue(name).empty()
    cache.clear()
    connection = django_rq.get_queue("default").connection
    for key in connection.scan_iter("sp:throttle:*"):
        connection.delete(key)
    from core.throttling import leases

    leases.forget()  # this process's leased quota belongs to the buckets just deleted
    yield


def run_jobs() -> None:
    """Drains the queues in this process (no fork), so jobs see the test's database transaction."""
    queues = [django_rq.get_queue(name) for name in ("high", "default", "low")]
    worker = SimpleWorker(queues, connection=queues[0].connection, serializer=JSONSerializer)
    worker.work(burst=True)


@functools.cache
def skops_artifact() -> bytes:
    """A real skops artifact: LogisticRegression on 4 features, 3 classes (built once per run)."""
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    model = LogisticRegression(max_iter=500).fit(x, y)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.skops"
        sio.dump(model, path)
        return path.read_bytes()


class MarkerPickle:
    """Unpickling this runs os.system(touch <marker>): proves whether a pickle was ever loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def upload(name: str, data: bytes, filename: str = "model.bin"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(filename, data, content_type="application/octet-stream")


def as_file(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Verified API keys and registry lookups are cached per process; a test must not see another's rows
    (each test's database is rolled back without announcing anything)."""
    from core.invalidation import forget_all

    forget_all()
    yield


@pytest.fixture(scope="session", autouse=True)
def _item_threads_let_go_of_the_test_database(django_db_setup, django_db_blocker):
    """The batch route's item threads keep database connections between requests, which would keep
    PostgreSQL from dropping the test database at the end: they close them first (torn down before it)."""
    yield
    from inference.predict import dispatch

    with django_db_blocker.unblock():
        dispatch.side_by_side_shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (SeaweedFS on free loopback ports, one identity, one bucket) for the session."""
    from tests.s3 import SeaweedS3

    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="class")
def s3_server_for_class(request, s3_server):
    request.cls.s3 = s3_server
