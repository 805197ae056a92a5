from core.errors import ApplicationError, Conflict, InvalidInput, NotFound, ServiceUnavailable


class EndpointNotFound(NotFound):
    code = "endpoint_not_found"


class DeploymentNotReady(ServiceUnavailable):
    code = "deployment_not_ready"


class EndpointTaken(Conflict):
    code = "endpoint_taken"


class VersionNotDeployable(InvalidInput):
    code = "version_not_deployable"


class Overloaded(ServiceUnavailable):
    code = "overloaded"


class DeadlineExceeded(ApplicationError):
    status_code = 504
    code = "deadline_exceeded"


class ModelFailed(ApplicationError):
    status_code = 500
    code = "model_error"


class NoDeploymentForVersion(NotFound):
    code = "no_live_deployment"


class TooManyRows(ApplicationError):
    status_code = 413
    code = "too_many_rows"
