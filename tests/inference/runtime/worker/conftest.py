"""Workers that several test modules use: started once per session (each start loads a model)."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inference.runtime.worker.helpers import (
    X,
    member,
    skops_artifact,
    spec_for,
    start_worker,
    torchscript_artifact,
)


@pytest.fixture(scope="session")
def session_folder() -> Iterator[Path]:
    # Not short_folder(): those are removed after each module, and these workers outlive modules.
    folder = Path(tempfile.mkdtemp(prefix="spw-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sklearn_worker(session_folder):
    """LogisticRegression whose label depends on feature 0 only."""
    folder = Path(tempfile.mkdtemp(prefix="sk-", dir=session_folder))
    path = skops_artifact(folder, "feature0.skops", (X[:, 0] > 0).astype(int))
    worker = start_worker(spec_for([member(path, "skops")], folder, task="classification", batch_timeout_ms=20.0))
    assert worker.ready, worker.event
    worker.path = path
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def torch_worker(session_folder):
    folder = Path(tempfile.mkdtemp(prefix="pt-", dir=session_folder))
    path = torchscript_artifact(folder, "dropout.pt")
    worker = start_worker(spec_for([member(path, "torchscript")], folder, task="classification", device="auto"))
    assert worker.ready, worker.event
    yield worker
    worker.stop()
