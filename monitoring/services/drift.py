"""Drift of each live deployment's inputs (and predictions) against its version's reference.

The reference is, in order: a training sample uploaded for the version (PUT .../reference), else the first
DRIFT_REFERENCE_ROWS rows logged for the version, kept once that many exist (so retention cannot move it; the
window then starts after them). Every report says which it used and how large it is.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput
from inference.errors import EndpointNotFound
from inference.models import LIVE, Deployment
from inference.predict.dispatch import call_worker, route_for
from inference.runtime.web.inputs import InputError, normalize_inputs
from monitoring import logwriter
from monitoring.drift_stats import column_drift
from monitoring.errors import NotEnoughData
from monitoring.models import DriftReport, PredictionLog, ReferenceSample, ReferenceSource
from registry.models import ModelVersion

logger = logging.getLogger(__name__)

CATEGORICAL_DTYPES = {"string", "str", "bool", "object", "category"}
MAX_REFERENCE_ROWS = 100_000


def columns_of(signature: dict[str, Any], sample: Any) -> list[tuple[str, str]]:
    """(name, "numeric" | "categorical") per feature: typed columns when the signature has them (string and
    bool columns are categories), else the feature names (or x0, x1, ...) as numbers; text as its length."""
    if signature.get("columns"):
        return [(column["name"], "categorical" if column.get("dtype") in CATEGORICAL_DTYPES else "numeric")
                for column in signature["columns"]]
    if signature.get("input_kind") == "text" or isinstance(sample, str):
        return [("text_length", "numeric")]
    names = signature.get("feature_names")
    if not names:
        width = signature.get("n_features") or (len(sample) if isinstance(sample, (list, dict)) else 1)
        names = [f"x{i}" for i in range(width)]
    return [(name, "numeric") for name in names]


def column_values(rows: list[Any], columns: list[tuple[str, str]]) -> list[list[Any]]:
    if columns == [("text_length", "numeric")]:
        return [[len(row) if isinstance(row, str) else None for row in rows]]
    values: list[list[Any]] = [[] for _ in columns]
    for row in rows:
        for index, (name, _) in enumerate(columns):
            if isinstance(row, dict):
                values[index].append(row.get(name))
            else:
                values[index].append(row[index] if isinstance(row, list) and index < len(row) else None)
    return values


# --- the reference --------------------------------------------------------------------------------------------

def reference_upload(*, model_version: ModelVersion, inputs: Any, predictions: list[Any] | None = None
                     ) -> ReferenceSample:
    """A training sample for the version, checked against its signature like a prediction's inputs."""
    try:
        rows = normalize_inputs(inputs, model_version.signature or {}, max_rows=MAX_REFERENCE_ROWS)
    except InputError as exc:
        raise InvalidInput(exc.message, details={"field": exc.field, "row": exc.row}) from None
    if predictions is not None and len(predictions) != len(rows):
        raise InvalidInput(f"predictions: {len(predictions)} given for {len(rows)} rows; give one per row or none.",
                           details={"field": "predictions"})
    sample, _ = ReferenceSample.objects.update_or_create(
        model_version=model_version, defaults={"source": ReferenceSource.TRAINING_SAMPLE, "rows": rows,
                                               "predictions": predictions, "last_log_id": None})
    return sample


def reference_for(model_version: ModelVersion) -> ReferenceSample | None:
    """An uploaded training sample, else the version's input example, else its first logged rows."""
    found = ReferenceSample.objects.filter(model_version=model_version).first()
    return found or _reference_from_example(model_version) or _reference_from_log(model_version)


def _reference_from_example(model_version: ModelVersion) -> ReferenceSample | None:
    example = model_version.input_example or []
    if len(example) < settings.DRIFT_MIN_ROWS:
        return None  # a handful of rows shows a model's columns, not a distribution to test against
    try:
        rows = normalize_inputs(example, model_version.signature or {}, max_rows=MAX_REFERENCE_ROWS)
    except InputError:  # an example the version's signature no longer takes (corrected since)
        logger.warning("the input example of version %s does not fit its signature", model_version.pk)
        return None
    with transaction.atomic():
        sample, _ = ReferenceSample.objects.get_or_create(
            model_version=model_version, defaults={"source": ReferenceSource.INPUT_EXAMPLE, "rows": rows,
                                                   "predictions": None, "last_log_id": None})
    return sample


def _reference_from_log(model_version: ModelVersion) -> ReferenceSample | None:
    wanted = settings.DRIFT_REFERENCE_ROWS
    rows: list[Any] = []
    predictions: list[Any] = []
    last_id = None
    logged = PredictionLog.objects.filter(model_version=model_version).order_by("id")
    for entry in logged.only("id", "inputs", "outputs").iterator(chunk_size=500):
        rows += entry.inputs
        predictions += (entry.outputs or {}).get("predictions") or [None] * len(entry.inputs)
        last_id = entry.id
        if len(rows) >= wanted:
            with transaction.atomic():
                sample, _ = ReferenceSample.objects.get_or_create(
                    model_version=model_version, defaults={"source": ReferenceSource.LOGGED, "rows": rows,
                                                           "predictions": predictions, "last_log_id": last_id})
            return sample
    return None


def _reference_predictions(endpoint: str, reference: ReferenceSample) -> list[Any] | None:
    """A training sample's predictions by its version, asked of the deployment's worker once (never logged)."""
    if reference.predictions is not None:
        return reference.predictions
    try:
        route = route_for(endpoint)
        if route.model_version_id != reference.model_version_id:
            return None
        predictions: list[Any] = []
        for start in range(0, len(reference.rows), route.max_rows):
            predictions += call_worker(route, "predict", reference.rows[start:start + route.max_rows], {})[
                "predictions"]
    except Exception:  # the deployment is loading or down: prediction drift waits for the next computation
        logger.info("no reference predictions for %s yet", endpoint, exc_info=True)
        return None
    ReferenceSample.objects.filter(pk=reference.pk).update(predictions=predictions)
    return predictions


# --- computing ------------------------------------------------------------------------------------------------

def drift_compute(*, endpoint: str) -> DriftReport:
    logwriter.drain()  # the rows the web processes pushed are part of the window
    deployment = Deployment.objects.filter(LIVE, endpoint=endpoint).select_related("model", "model_version").first()
    if deployment is None:
        raise EndpointNotFound(f"No live deployment at endpoint '{endpoint}'.")
    version = deployment.model_version
    reference = reference_for(version)
    if reference is None:
        raise NotEnoughData(
            f"Version {version.version} has no drift reference yet: upload a training sample (PUT /api/v1/models/"
            f"{deployment.model.name}/versions/{version.version}/reference) or log {settings.DRIFT_REFERENCE_ROWS} "
            "rows (the deployment's log_predictions).", details={"reference_rows": settings.DRIFT_REFERENCE_ROWS})
    window = _window(endpoint, version, reference)
    rows = [row for entry in window for row in entry.inputs]
    if len(rows) < settings.DRIFT_MIN_ROWS:
        raise NotEnoughData(f"{len(rows)} rows logged for version {version.version} since the reference; drift "
                            f"needs {settings.DRIFT_MIN_ROWS}.", details={"rows": len(rows)})
    columns = columns_of(version.signature or {}, reference.rows[0] if reference.rows else rows[0])
    thresholds = {"psi": settings.DRIFT_PSI_THRESHOLD, "p_value": settings.DRIFT_P_VALUE}
    features = [column_drift(name, kind, ref, cur, psi_threshold=thresholds["psi"],
                             p_threshold=thresholds["p_value"]).as_dict()
                for (name, kind), ref, cur in zip(columns, column_values(reference.rows, columns),
                                                  column_values(rows, columns))]
    prediction = _prediction_drift(deployment, reference, window, thresholds)
    return DriftReport.objects.create(
        endpoint=endpoint, model_version=version, computed_at=timezone.now(), reference_source=reference.source,
        reference_size=len(reference.rows), window_size=len(rows),
        window_start=min(entry.created_at for entry in window), window_end=max(entry.created_at for entry in window),
        thresholds=thresholds, features=features, prediction=prediction,
        drifted_features=sum(feature["drifted"] for feature in features),
    )


def _window(endpoint: str, version: ModelVersion, reference: ReferenceSample) -> list[PredictionLog]:
    logged = PredictionLog.objects.filter(endpoint=endpoint, model_version=version).order_by("-id")
    if reference.last_log_id is not None:
        logged = logged.filter(id__gt=reference.last_log_id)
    window, count = [], 0
    for entry in logged.only("id", "inputs", "outputs", "created_at").iterator(chunk_size=500):
        window.append(entry)
        count += len(entry.inputs)
        if count >= settings.DRIFT_WINDOW_ROWS:
            break
    return window


def _prediction_drift(deployment: Deployment, reference: ReferenceSample, window: list[PredictionLog],
                      thresholds: dict[str, float]) -> dict[str, Any] | None:
    expected = _reference_predictions(deployment.endpoint, reference)
    current = [p for entry in window for p in (entry.outputs or {}).get("predictions") or []]
    if not expected or not current:
        return None
    kind = "numeric" if deployment.model.task == "regression" else "categorical"
    return column_drift("prediction", kind, expected, current, psi_threshold=thresholds["psi"],
                        p_threshold=thresholds["p_value"]).as_dict()


def drift_compute_all() -> dict[str, str]:
    """Every live deployment that logs: a report each, or why not."""
    outcomes = {}
    for endpoint in Deployment.objects.filter(LIVE, log_predictions__gt=0).values_list("endpoint", flat=True):
        try:
            report = drift_compute(endpoint=endpoint)
            outcomes[endpoint] = f"{report.drifted_features} drifted"
        except NotEnoughData as exc:
            outcomes[endpoint] = exc.message
    return outcomes
