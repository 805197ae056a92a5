"""The prediction log as readers see it: filtered lists, exports, and which principals may read inputs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from core.models import ApiKey, Scope
from inference.errors import EndpointNotFound
from inference.models import Deployment
from monitoring.models import PredictionLog
from monitoring.sink import caught_up

EXPORT_FIELDS = ("request_id", "created_at", "endpoint", "version", "variant", "subject_id", "latency_ms", "cached",
                 "inputs", "outputs")


def endpoint_check(endpoint: str) -> None:
    """404 unless a deployment (live or undeployed) ever had this endpoint."""
    if not Deployment.objects.filter(endpoint=endpoint).exists():
        raise EndpointNotFound(f"No deployment has ever served endpoint '{endpoint}'.")


def prediction_log_list(endpoint: str, *, since: datetime | None = None, until: datetime | None = None,
                        version: int | None = None, variant: str | None = None) -> QuerySet[PredictionLog]:
    endpoint_check(endpoint)
    caught_up()  # what every web process logged so far is part of the answer
    rows = PredictionLog.objects.filter(endpoint=endpoint)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if version is not None:
        rows = rows.filter(version=version)
    if variant:
        rows = rows.filter(variant=variant)
    return rows.order_by("-created_at", "-id")


def may_read_inputs(request: Any) -> bool:
    """What clients sent is readable by manage keys and staff only (a user with the manage permission sees the
    rest of the log, not the inputs)."""
    if isinstance(request.auth, ApiKey):
        return request.auth.scope == Scope.MANAGE
    return bool(getattr(request.user, "is_staff", False))


def as_record(row: PredictionLog, *, inputs: bool) -> dict[str, Any]:
    return {
        "request_id": row.request_id, "created_at": row.created_at.isoformat(), "endpoint": row.endpoint,
        "version": row.version, "variant": row.variant or None, "subject_id": row.subject_id or None,
        "latency_ms": row.latency_ms, "cached": row.cached, "inputs": row.inputs if inputs else None,
        "outputs": row.outputs,
    }


def export_lines(rows: QuerySet[PredictionLog], *, kind: str, inputs: bool) -> Iterator[str]:
    """The rows as CSV (inputs and outputs as JSON cells) or JSON Lines, a chunk at a time."""
    if kind == "jsonl":
        for row in rows.iterator(chunk_size=1000):
            yield json.dumps(as_record(row, inputs=inputs), separators=(",", ":")) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for row in rows.iterator(chunk_size=1000):
        record = as_record(row, inputs=inputs)
        writer.writerow([json.dumps(record[name], separators=(",", ":")) if name in ("inputs", "outputs")
                         else record[name] for name in EXPORT_FIELDS])
        if buffer.tell() > 64 * 1024:
            yield _take(buffer)
    yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
