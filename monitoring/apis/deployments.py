"""A deployment's monitoring over the REST API: its prediction log (list and export), live quality, history
for charts and drift; a version's drift reference."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import parse, parse_query
from core.openapi import errors
from core.pagination import Pagination
from monitoring.selectors import logs
from monitoring.selectors.drift import drift_report_get, reference_get
from monitoring.selectors.history import timeseries
from monitoring.selectors.logs import as_record, endpoint_check, export_lines, may_read_inputs
from monitoring.selectors.quality import quality
from monitoring.serializers import (
    DriftOut,
    DriftQueryIn,
    ExportQueryIn,
    PredictionOut,
    PredictionQueryIn,
    QualityOut,
    ReferenceIn,
    ReferenceOut,
    TimeseriesIn,
    TimeseriesOut,
    WindowIn,
)
from monitoring.services.drift import drift_compute, reference_upload
from registry import selectors as registry_selectors

TAGS = ["monitoring"]
FILTERS = [OpenApiParameter("since", OpenApiTypes.DATETIME), OpenApiParameter("until", OpenApiTypes.DATETIME),
           OpenApiParameter("version", int), OpenApiParameter("variant", str)]


class LogPagination(Pagination):
    page_size_query_param = "limit"
    max_page_size = 1000


def _filters(query: dict) -> dict:
    return {name: query[name] for name in ("since", "until", "version", "variant") if name in query}


class PredictionListApi(APIView):
    @extend_schema(tags=TAGS, operation_id="predictions_list",
                   parameters=[*FILTERS, OpenApiParameter("limit", {"type": "integer", "minimum": 1,
                                                                    "maximum": LogPagination.max_page_size},
                                                          description="rows per page (max 1000)"),
                               OpenApiParameter("page", int)],
                   responses={200: PredictionOut(many=True), **errors(400, 404)},
                   description="Logged predictions of the endpoint, newest first (the deployment's `log_predictions` "
                               "is the share it logs). `inputs` are shown to manage keys and staff only.")
    def get(self, request, endpoint: str):
        query = parse_query(PredictionQueryIn, request)
        rows = logs.prediction_log_list(endpoint, **_filters(query))
        paginator = LogPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        inputs = may_read_inputs(request)
        return paginator.get_paginated_response([as_record(row, inputs=inputs) for row in page or []])


class _PredictionExportApi(APIView):
    kind = "jsonl"

    def get(self, request, endpoint: str):
        query = parse_query(ExportQueryIn, request)
        rows = logs.prediction_log_list(endpoint, **_filters(query))
        if "limit" in query:
            rows = rows[: query["limit"]]
        lines = export_lines(rows, kind=self.kind, inputs=may_read_inputs(request))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8" if self.kind == "csv"
                                         else "application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{endpoint}-predictions.{self.kind}"'
        return response


_EXPORT_PARAMETERS = [*FILTERS, OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                                                 description="at most this many rows")]


class PredictionCsvExportApi(_PredictionExportApi):
    kind = "csv"

    @extend_schema(tags=TAGS, operation_id="predictions_export_csv", parameters=_EXPORT_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, newest first: "
                                                               "one row per logged request, inputs and outputs as "
                                                               "JSON cells"),
                              **errors(400, 404)})
    def get(self, request, endpoint: str):
        return super().get(request, endpoint)


class PredictionJsonlExportApi(_PredictionExportApi):
    kind = "jsonl"

    @extend_schema(tags=TAGS, operation_id="predictions_export_jsonl", parameters=_EXPORT_PARAMETERS,
                   responses={(200, "application/x-ndjson"): OpenApiResponse(
                                  OpenApiTypes.STR, description="JSON Lines, newest first: one object per logged "
                                                                "request, as the list's items"),
                              **errors(400, 404)})
    def get(self, request, endpoint: str):
        return super().get(request, endpoint)


class QualityApi(APIView):
    @extend_schema(tags=TAGS, operation_id="deployments_quality", parameters=[OpenApiParameter("window", str,
                   enum=["1h", "24h", "7d", "30d"])], responses={200: QualityOut, **errors(400, 404)},
                   description="Logged predictions with feedback, per version: accuracy (and precision/recall of "
                               "binary classifiers) or MAE/RMSE for regressors, with counts.")
    def get(self, request, endpoint: str):
        query = parse_query(WindowIn, request)
        return Response(quality(endpoint, query["window"]))


class TimeseriesApi(APIView):
    @extend_schema(tags=TAGS, operation_id="deployments_timeseries",
                   parameters=[OpenApiParameter("window", str, enum=["1h", "24h", "7d"]),
                               OpenApiParameter("version", int)],
                   responses={200: TimeseriesOut, **errors(400, 404)},
                   description="Requests, errors, cache hits, latency quantiles and batch sizes per step (1 min "
                               "over 1h, 5 min over 24h, 1 h over 7d), summed over every web process and instance.")
    def get(self, request, endpoint: str):
        query = parse_query(TimeseriesIn, request)
        endpoint_check(endpoint)
        return Response(timeseries(endpoint, query["window"], version=query.get("version")))


class DriftApi(APIView):
    @extend_schema(tags=TAGS, operation_id="deployments_drift", parameters=[OpenApiParameter("version", int)],
                   responses={200: DriftOut, **errors(400, 404)},
                   description="The latest drift report: per feature PSI with a KS (numeric) or chi-square "
                               "(categorical) test, prediction drift, the thresholds, the window and the reference.")
    def get(self, request, endpoint: str):
        query = parse_query(DriftQueryIn, request)
        report = drift_report_get(endpoint, version=query.get("version"))
        return Response(DriftOut(report).data)


class DriftComputeApi(APIView):
    @extend_schema(tags=TAGS, operation_id="deployments_drift_compute", request=None,
                   responses={200: DriftOut, **errors(404, 409)},
                   description="Computes drift now (409 while there is no reference or too few logged rows).")
    def post(self, request, endpoint: str):
        return Response(DriftOut(drift_compute(endpoint=endpoint)).data)


class ReferenceApi(APIView):
    @extend_schema(tags=TAGS, operation_id="models_versions_reference_retrieve",
                   responses={200: ReferenceOut, **errors(404)})
    def get(self, request, name: str, version: str):
        model_version = registry_selectors.model_version_get(registry_selectors.registered_model_get(name), version)
        sample = reference_get(model_version)
        return Response(ReferenceOut(sample).data)

    @extend_schema(tags=TAGS, operation_id="models_versions_reference_update", request=ReferenceIn,
                   responses={200: ReferenceOut, **errors(400, 404, 413, 415)},
                   description="A training sample for drift (replaces the version's reference).")
    def put(self, request, name: str, version: str):
        model_version = registry_selectors.model_version_get(registry_selectors.registered_model_get(name), version)
        data = parse(ReferenceIn, request.data)
        return Response(ReferenceOut(reference_upload(model_version=model_version, **data)).data)
