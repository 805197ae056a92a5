from core.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class InvalidExperiment(InvalidInput):
    """A variant set, weight, deployment or setting that cannot run; the message names the field."""

    code = "invalid_experiment"

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}", details={"field": field})


class EndpointBusy(InvalidInput):
    code = "endpoint_in_experiment"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class DeploymentInExperiment(Conflict):
    code = "deployment_in_experiment"


class NoWinner(Conflict):
    code = "no_winner"


class PromotionPending(ServiceUnavailable):
    code = "promotion_pending"


class RequestNotRecorded(NotFound):
    code = "request_not_recorded"


class FeedbackExists(Conflict):
    code = "feedback_exists"


class InvalidFeedback(InvalidInput):
    code = "invalid_feedback"
