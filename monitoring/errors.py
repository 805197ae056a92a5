"""Monitoring's errors. Feedback answers with the experiments app's (request_not_recorded, feedback_exists,
invalid_feedback): the route was theirs first, and clients match on those codes."""

from core.errors import Conflict, InvalidInput, NotFound


class AlertRuleNotFound(NotFound):
    code = "alert_rule_not_found"


class InvalidAlertRule(InvalidInput):
    code = "invalid_alert_rule"

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}", details={"field": field})


class DriftNotComputed(NotFound):
    code = "drift_not_computed"


class NotEnoughData(Conflict):
    code = "not_enough_data"
