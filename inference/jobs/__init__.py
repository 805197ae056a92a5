"""Async inference jobs and offline batch jobs on RQ, durable in the database.

RQ stores each job's function by dotted name in Redis. Jobs queued before these modules moved name
`inference.jobs.run_inference_job` and the like: those names stay importable from here (lazily, so that
importing a jobs module never imports the job bodies).
"""

from typing import Any

_MOVED = {"run_inference_job", "run_batch_job", "sweep_jobs", "ServingWorker"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from inference.jobs import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
