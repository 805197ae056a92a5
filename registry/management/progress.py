import itertools
import sys
import time

from django_rq import get_queue
from rq import Worker

from registry.models import ModelVersion, VersionStatus
from registry.queue import VALIDATION_QUEUE
from registry.services import model_version_validate

_SPINNER = "|/-\\"
_DONE = (VersionStatus.READY, VersionStatus.FAILED)


def _workers_listening() -> bool:
    try:
        queue = get_queue(VALIDATION_QUEUE)
        return any(VALIDATION_QUEUE in worker.queue_names() for worker in Worker.all(connection=queue.connection))
    except Exception:  # no Redis: nobody can be listening
        return False


def wait_for_validation(version: ModelVersion, *, timeout_s: float, stream=sys.stderr) -> ModelVersion:
    """Waits for a background worker, or validates here (still in a sandboxed child) when none runs."""
    if not _workers_listening():
        stream.write(f"{version}: no job worker is running; validating here\n")
        return model_version_validate(version_id=version.pk) or version
    deadline = time.monotonic() + timeout_s
    for frame in itertools.cycle(_SPINNER):
        version.refresh_from_db()
        if version.status in _DONE or time.monotonic() > deadline:
            break
        stream.write(f"\r{frame} {version}: {version.status}   ")
        stream.flush()
        time.sleep(0.2)
    stream.write(f"\r{version}: {version.status}      \n")
    return version
