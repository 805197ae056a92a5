"""The checks every prediction body gets, in Django's views and in the fast lane (inference/fastlane.py).

Hand-checked rather than through DRF serializers: this is the hot path. A key the route does not know is
a 400, as in core.apis.parse: `"parameter": {"cache": false}` or `"instances"` must not answer 200 as if
it had been understood.
"""

from rest_framework.exceptions import ValidationError

from core.apis import unknown_message
from inference.predict.contract import PredictRequest

PREDICT_FIELDS = frozenset({"inputs", "request_id", "subject_id", "parameters"})
UNIVERSAL_FIELDS = PREDICT_FIELDS | {"model", "version", "alias"}
BATCH_ITEM_FIELDS = UNIVERSAL_FIELDS | {"endpoint"}
PREDICT_PARAMETERS = frozenset({"cache", "uncertainty", "timeout_ms"})
EXPLAIN_PARAMETERS = frozenset({"baseline", "timeout_ms"})
TIMEOUT_MS_MESSAGE = "Must be a whole number of milliseconds from 1 (the deployment's timeout_ms is the most it takes)."


def predict_request(endpoint: str, data: dict, *, subject: str | None, default_id: str | None,
                    fields: frozenset | None = PREDICT_FIELDS, parameters: frozenset = PREDICT_PARAMETERS
                    ) -> PredictRequest:
    """The request a body asks for; `fields` and `parameters` are the keys its route accepts.

    `fields` None: the caller checked them already (a universal body, before looking its model up).
    """
    if fields is not None:
        only_known(data, fields)
    if "inputs" not in data:
        raise ValidationError({"inputs": ["This field is required."]})
    params = data.get("parameters")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise ValidationError({"parameters": ["Must be a JSON object."]})
    if errors := parameter_errors(params, parameters):
        raise ValidationError({"parameters": errors})
    request_id = _optional_string(data, "request_id", 128)
    subject_id = subject or _optional_string(data, "subject_id", 256)
    return PredictRequest(endpoint=endpoint, inputs=data["inputs"], params=params,
                          request_id=request_id or default_id, subject_id=subject_id)


def only_known(data: dict, known: frozenset) -> None:
    if errors := _unknown(data, known):
        raise ValidationError(errors)


def _unknown(data: dict, known: frozenset) -> dict:
    unknown = data.keys() - known
    return {key: [unknown_message(key, known)] for key in sorted(unknown)}


def _optional_string(data: dict, key: str, max_length: int) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > max_length):
        raise ValidationError({key: [f"Must be a string of at most {max_length} characters."]})
    return value


def parameter_errors(params: dict, known: frozenset = PREDICT_PARAMETERS) -> dict:
    """{name: [message]} for a prediction's `parameters`; empty when they are fine."""
    if errors := _unknown(params, known):
        return errors
    if "cache" in params and not isinstance(params["cache"], bool):
        return {"cache": ["Must be true or false."]}
    if "timeout_ms" in params and not timeout_ms_valid(params["timeout_ms"]):
        return {"timeout_ms": [TIMEOUT_MS_MESSAGE]}
    spec = params.get("uncertainty")
    if spec is None:
        return {}
    samples = spec.get("samples") if isinstance(spec, dict) else None
    if not isinstance(samples, int) or isinstance(samples, bool) or not 2 <= samples <= 100:
        return {"uncertainty": {"samples": ["Must be an integer from 2 to 100."]}}
    return {}


def timeout_ms_valid(value) -> bool:
    """A client's own deadline (parameters.timeout_ms): a positive integer; one above the deployment's is clamped."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def universal_ref(data: dict) -> tuple[str, str | int]:
    """The model and the version number or alias a universal prediction body names (`production` by default)."""
    model_name = data.get("model")
    if model_name is None:
        raise ValidationError({"model": ["This field is required."]})
    if not isinstance(model_name, str) or not model_name:
        raise ValidationError({"model": ["Must be a model's name (a non-empty string)."]})
    version, alias = data.get("version"), data.get("alias")
    if version is not None and alias is not None:
        raise ValidationError({"version": ["Give at most one of 'version' or 'alias'."]})
    if version is not None:
        return model_name, _version_number(version)
    if alias is not None and (not isinstance(alias, str) or not alias):
        raise ValidationError({"alias": ["Must be an alias's name (a non-empty string)."]})
    return model_name, alias if alias is not None else "production"


def _version_number(version) -> int:
    # "3" is accepted as DRF's IntegerField would; an alias goes in "alias", never in "version".
    if isinstance(version, str) and version.isdecimal():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError({"version": ["Must be a version number (an integer from 1)."]})
    return version
