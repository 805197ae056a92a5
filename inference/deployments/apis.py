"""Deployments at runtime (create, read, tune, undeploy), the platform configuration, the prediction cache and
the metrics, over the REST API."""

import redis
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import check_query, parse, request_user
from core.errors import ServiceUnavailable
from core.openapi import errors
from core.pagination import PAGE_QUERY, Pagination
from inference import metrics, platform_config
from inference.deployments import instance_metrics, selectors, services
from inference.deployments.instances import deployment_instances, instance_health
from inference.deployments.serializers import (
    CacheStatsOut,
    ConfigSerializer,
    DeploymentCreateIn,
    DeploymentOut,
    DeploymentUpdateIn,
)
from inference.predict.dispatch import prediction_cache


class DeploymentListCreateApi(APIView):
    @extend_schema(tags=["deployments"], operation_id="deployments_list",
                   parameters=[OpenApiParameter("include_stopped", bool), OpenApiParameter("page", int),
                               OpenApiParameter("page_size", int)],
                   responses={200: DeploymentOut(many=True), **errors()})
    def get(self, request):
        check_query(request, ["include_stopped", *PAGE_QUERY])
        include_stopped = request.query_params.get("include_stopped") in ("1", "true")
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.deployment_list(include_stopped=include_stopped), request, self)
        context = {"instances": deployment_instances(page)}
        return paginator.get_paginated_response(DeploymentOut(page, many=True, context=context).data)

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


class CacheStatsApi(APIView):
    @extend_schema(tags=["cache"], operation_id="cache_stats", responses={200: CacheStatsOut, **errors()})
    def get(self, request):
        stats = prediction_cache().stats()
        return Response({**stats, "enabled": platform_config.current_config()["cache_enabled"]})


class CacheClearApi(APIView):
    @extend_schema(tags=["cache"], operation_id="cache_clear", request=None,
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"cleared": N}'), **errors(503)})
    def post(self, request):
        try:
            cleared = prediction_cache().clear()
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
        platform_config.current_config()  # this process applies it now (the prediction cache's TTL and size)
        return Response(ConfigSerializer(config).data)


class MetricsJsonApi(APIView):
    @extend_schema(tags=["metrics"], operation_id="metrics_summary",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="per-deployment figures"),
                              **errors()})
    def get(self, request):
        data = metrics.collect()
        live = list(selectors.deployment_list())
        across = deployment_instances(live)
        deployments = []
        for deployment in live:
            runtime = deployment.runtime or {}
            summed = across[deployment.pk]
            deployments.append({
                "endpoint": deployment.endpoint, "model": deployment.model.name,
                "version": deployment.model_version.version, "status": summed.status, "pool": deployment.pool,
                **metrics.summary(deployment.endpoint, data),
                "throughput_rps": runtime.get("throughput_rps"), "queue_depth": runtime.get("queue_depth"),
                "worker_memory_mb": runtime.get("memory_mb"), "loaded": runtime.get("loaded", False),
                "instances_ready": summed.ready,
                "instances": [{key: row[key] for key in ("name", "status", "loaded", "memory_mb", "queue_depth")}
                              for row in summed.instances],
            })
        return Response({"deployments": deployments, "instances": instance_health()})


class PrometheusMetricsApi(APIView):
    @extend_schema(tags=["metrics"], operation_id="metrics_prometheus",
                   responses={200: OpenApiResponse(OpenApiTypes.STR, description="Prometheus text format"),
                              **errors()})
    def get(self, request):
        body = metrics.exposition() + instance_metrics.exposition()
        return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
