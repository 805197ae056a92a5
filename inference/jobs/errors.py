"""What can go wrong with a job, as the client sees it."""

from core.errors import ApplicationError, Conflict, InvalidInput, NotFound, ServiceUnavailable


class JobNotFound(NotFound):
    code = "job_not_found"


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class ResultNotReady(Conflict):
    code = "result_not_ready"


class QueueUnavailable(ServiceUnavailable):
    code = "queue_unavailable"


class InvalidBatchFile(InvalidInput):
    code = "invalid_batch_file"


class TooManyBatchJobs(ApplicationError):
    status_code = 429
    code = "too_many_batch_jobs"
    headers = {"Retry-After": "30"}
