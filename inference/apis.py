import time

import redis
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import parse, request_user
from core.errors import ApplicationError, InvalidInput, ServiceUnavailable, error_body, to_application_error
from core.openapi import errors
from core.pagination import Pagination
from core.parsers import SafeJSONParser
from core.permissions import PredictScope
from inference import config as runtime_config
from inference import metrics, selectors, services, serving
from inference.bodies import (
    BATCH_ITEM_FIELDS,
    EXPLAIN_PARAMETERS,
    UNIVERSAL_FIELDS,
    json_object,
    only_known,
    predict_request,
    universal_ref,
)
from inference.serializers import (
    BatchPredictIn,
    BatchPredictOut,
    CacheStatsOut,
    ConfigSerializer,
    DeploymentCreateIn,
    DeploymentOut,
    DeploymentUpdateIn,
    ExplainIn,
    ExplainOut,
    PredictIn,
    PredictOut,
    UniversalPredictIn,
)
from inference.serving_many import predict_many
from registry import selectors as registry_selectors

PREDICT_ERRORS = errors(400, 404, 413, 415, 503, 504)


class DeploymentListCreateApi(APIView):
    @extend_schema(tags=["deployments"], operation_id="deployments_list",
                   parameters=[OpenApiParameter("include_stopped", bool), OpenApiParameter("page", int),
                               OpenApiParameter("page_size", int)],
                   responses={200: DeploymentOut(many=True), **errors()})
    def get(self, request):
        include_stopped = request.query_params.get("include_stopped") in ("1", "true")
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.deployment_list(include_stopped=include_stopped), request, self)
        return paginator.get_paginated_response(DeploymentOut(page, many=True).data)

    @extend_schema(tags=["deployments"], operation_id="deployments_create", request=DeploymentCreateIn,
                   responses={201: DeploymentOut, **errors(400, 404, 409, 415)},
                   description="Deploys a ready version (by number or alias). The model server loads it within "
                               "seconds; poll the deployment until `status` is `ready`.")
    def post(self, request):
        data = parse(DeploymentCreateIn, request.data)
        deployment = services.deployment_create(**data, created_by=request_user(request))
        return Response(DeploymentOut(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(APIView):
    @extend_schema(tags=["deployments"], operation_id="deployments_retrieve",
                   responses={200: DeploymentOut, **errors(404)})
    def get(self, request, endpoint: str):
        return Response(DeploymentOut(selectors.deployment_get_live(endpoint)).data)

    @extend_schema(tags=["deployments"], operation_id="deployments_update", request=DeploymentUpdateIn,
                   responses={200: DeploymentOut, **errors(400, 404, 415)},
                   description="Batching, timeouts, threads and cache settings apply to running workers without a "
                               "restart; a new version, device or torch options roll out a new generation first.")
    def patch(self, request, endpoint: str):
        deployment = selectors.deployment_get_live(endpoint)
        data = parse(DeploymentUpdateIn, request.data)
        return Response(DeploymentOut(services.deployment_update(deployment=deployment, data=data)).data)

    @extend_schema(tags=["deployments"], operation_id="deployments_destroy",
                   responses={200: DeploymentOut, **errors(404, 409)})
    def delete(self, request, endpoint: str):
        deployment = services.deployment_stop(deployment=selectors.deployment_get_live(endpoint))
        return Response(DeploymentOut(deployment).data)


class _PredictApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeJSONParser]


def _body(request) -> dict:
    return json_object(request.data)


def _predict_request(endpoint: str, data: dict, request, *, suffix: str = "", **accepts) -> serving.PredictRequest:
    default_id = f"{getattr(request, 'request_id', '')}{suffix}" or None
    return predict_request(endpoint, data, subject=request.headers.get("X-Subject-Id"), default_id=default_id,
                           **accepts)


class PredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict", request=PredictIn,
                   responses={200: PredictOut, **PREDICT_ERRORS})
    def post(self, request, endpoint: str):
        return Response(serving.predict(_predict_request(endpoint, _body(request), request)))


class ExplainApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_explain", request=ExplainIn,
                   responses={200: ExplainOut, **PREDICT_ERRORS},
                   description="Per-feature importance by ablation: each feature replaced by the baseline row's "
                               "value (zeros unless `parameters.baseline` is given); tree and linear models also "
                               "report their built-in importances.")
    def post(self, request, endpoint: str):
        data = _body(request)
        return Response(serving.explain(_predict_request(endpoint, data, request, parameters=EXPLAIN_PARAMETERS)))


def universal_endpoint(data: dict) -> str:
    """The live endpoint serving the body's model version."""
    return serving.endpoint_for_version(registry_selectors.model_version_id_cached(*universal_ref(data)))


class UniversalPredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_universal", request=UniversalPredictIn,
                   responses={200: PredictOut, **PREDICT_ERRORS},
                   description="Predicts with a model version (default: the `production` alias) through any live "
                               "deployment that serves it.")
    def post(self, request):
        data = _body(request)
        only_known(data, UNIVERSAL_FIELDS)
        endpoint = universal_endpoint(data)
        return Response(serving.predict(_predict_request(endpoint, data, request, fields=None)))


def _batch_request(index: int, item, request) -> serving.PredictRequest | ApplicationError:
    try:
        if not isinstance(item, dict):
            raise InvalidInput("Each request must be a JSON object.", details={"field": f"requests[{index}]"})
        only_known(item, BATCH_ITEM_FIELDS)
        return _predict_request(_batch_item_endpoint(item), item, request, suffix=f"-{index}", fields=None)
    except Exception as exc:  # one bad item never fails the rest; each carries its own error
        return to_application_error(exc) or ApplicationError("Internal server error.")


def _batch_outcomes(items: list, request) -> list[dict | ApplicationError]:
    parsed = [_batch_request(index, item, request) for index, item in enumerate(items)]
    predicted = iter(predict_many([entry for entry in parsed if isinstance(entry, serving.PredictRequest)]))
    return [next(predicted) if isinstance(entry, serving.PredictRequest) else entry for entry in parsed]


def _batch_result(index: int, outcome: dict | ApplicationError) -> dict:
    if isinstance(outcome, ApplicationError):
        return {"index": index, "ok": False, "status": outcome.status_code,
                **error_body(outcome.code, outcome.message, outcome.details)}
    return {"index": index, "ok": True, "result": outcome}


def _batch_item_endpoint(item: dict) -> str:
    endpoint = item.get("endpoint")
    if endpoint is None:
        return universal_endpoint(item)
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError({"endpoint": ["Must be an endpoint's name (a non-empty string)."]})
    if item.keys() & {"model", "version", "alias"}:
        raise ValidationError({"endpoint": ["Give either 'endpoint' or 'model' (with 'version' or 'alias'), "
                                            "not both."]})
    return endpoint


class BatchPredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_batch", request=BatchPredictIn,
                   responses={200: BatchPredictOut, **errors(400, 413, 415)})
    def post(self, request):
        started = time.perf_counter()
        body = _body(request)
        only_known(body, frozenset({"requests"}))
        items = body.get("requests")
        if not isinstance(items, list) or not items or len(items) > 256:
            raise ValidationError({"requests": ["Must be a list of 1 to 256 requests."]})
        results = [_batch_result(index, outcome) for index, outcome in enumerate(_batch_outcomes(items, request))]
        succeeded = sum(1 for result in results if result["ok"])
        return Response({"results": results, "count": len(results), "succeeded": succeeded,
                         "success_rate": round(succeeded / len(results), 4),
                         "total_ms": round((time.perf_counter() - started) * 1000, 3)})


class CacheStatsApi(APIView):
    @extend_schema(tags=["cache"], operation_id="cache_stats", responses={200: CacheStatsOut, **errors()})
    def get(self, request):
        stats = serving.prediction_cache().stats()
        return Response({**stats, "enabled": runtime_config.current_config()["cache_enabled"]})


class CacheClearApi(APIView):
    @extend_schema(tags=["cache"], operation_id="cache_clear", request=None,
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"cleared": N}'), **errors(503)})
    def post(self, request):
        try:
            cleared = serving.prediction_cache().clear()
        except redis.RedisError:
            raise ServiceUnavailable("The prediction cache (Redis) is unavailable.", retry_after_s=5) from None
        return Response({"cleared": cleared})


class ConfigApi(APIView):
    @extend_schema(tags=["config"], operation_id="config_retrieve", responses={200: ConfigSerializer, **errors()})
    def get(self, request):
        return Response(ConfigSerializer(selectors.platform_config_get()).data)

    @extend_schema(tags=["config"], operation_id="config_update", request=ConfigSerializer,
                   responses={200: ConfigSerializer, **errors(400, 415)})
    def patch(self, request):
        config = services.platform_config_update(data=parse(ConfigSerializer, request.data))
        runtime_config.current_config()  # this process applies it now (the prediction cache's TTL and size)
        return Response(ConfigSerializer(config).data)


class MetricsJsonApi(APIView):
    @extend_schema(tags=["metrics"], operation_id="metrics_summary",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="per-deployment figures"),
                              **errors()})
    def get(self, request):
        data = metrics.collect()
        deployments = []
        for deployment in selectors.deployment_list():
            runtime = deployment.runtime or {}
            deployments.append({
                "endpoint": deployment.endpoint, "model": deployment.model.name,
                "version": deployment.model_version.version, "status": deployment.status,
                **metrics.summary(deployment.endpoint, data),
                "throughput_rps": runtime.get("throughput_rps"), "queue_depth": runtime.get("queue_depth"),
                "worker_memory_mb": runtime.get("memory_mb"), "loaded": runtime.get("loaded", False),
            })
        return Response({"deployments": deployments})


class PrometheusMetricsApi(APIView):
    @extend_schema(tags=["metrics"], operation_id="metrics_prometheus",
                   responses={200: OpenApiResponse(OpenApiTypes.STR, description="Prometheus text format"),
                              **errors()})
    def get(self, request):
        return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
