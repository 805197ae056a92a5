from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import filter_queryset, parse, request_user
from core.openapi import errors
from core.pagination import Pagination
from experiments import selectors, services
from experiments.results import experiment_results
from experiments.serializers import (
    ExperimentCreateIn,
    ExperimentFilter,
    ExperimentOut,
    ExperimentUpdateIn,
    PromoteIn,
    ResultsOut,
    StopIn,
)

TAGS = ["experiments"]


class ExperimentListCreateApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_list",
                   parameters=[OpenApiParameter("status", str), OpenApiParameter("endpoint", str),
                               OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses={200: ExperimentOut(many=True), **errors(400)})
    def get(self, request):
        # Planned ends pass while nobody predicts too: reads settle them, so status is never stale.
        services.experiments_stop_due()
        experiments = filter_queryset(ExperimentFilter, request, selectors.experiment_list())
        paginator = Pagination()
        page = paginator.paginate_queryset(experiments, request, view=self)
        return paginator.get_paginated_response(ExperimentOut(page, many=True).data)

    @extend_schema(tags=TAGS, operation_id="experiments_create", request=ExperimentCreateIn,
                   responses={201: ExperimentOut, **errors(400, 415)},
                   description="Creates a draft. Weights are percentages summing to 100; the first variant is the "
                               "control; every deployment must exist, be ready and take the same inputs.")
    def post(self, request):
        data = parse(ExperimentCreateIn, request.data)
        experiment = services.experiment_create(**data, created_by=request_user(request))
        return Response(ExperimentOut(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_retrieve", responses={200: ExperimentOut, **errors(404)})
    def get(self, request, pk: int):
        services.experiments_stop_due()
        return Response(ExperimentOut(selectors.experiment_get(pk)).data)

    @extend_schema(tags=TAGS, operation_id="experiments_update", request=ExperimentUpdateIn,
                   responses={200: ExperimentOut, **errors(400, 404, 409, 415)},
                   description="Weights may change while running (e.g. a ramp-up) and variants be added or "
                               "removed; a started variant keeps its deployment (409), endpoint and outcome change "
                               "only in a draft. A stopped experiment is final (409).")
    def patch(self, request, pk: int):
        experiment = selectors.experiment_get(pk)
        data = parse(ExperimentUpdateIn, request.data)
        return Response(ExperimentOut(services.experiment_update(experiment=experiment, data=data)).data)

    @extend_schema(tags=TAGS, operation_id="experiments_destroy", responses={204: None, **errors(404, 409)},
                   description="Drafts and stopped experiments only (409 while running or paused).")
    def delete(self, request, pk: int):
        services.experiment_delete(experiment=selectors.experiment_get(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExperimentStartApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_start", request=None,
                   responses={200: ExperimentOut, **errors(400, 404, 409)},
                   description="Starts a draft or resumes a paused experiment (checked again against the "
                               "deployments; 400 when another experiment runs on the endpoint).")
    def post(self, request, pk: int):
        return Response(ExperimentOut(services.experiment_start(experiment=selectors.experiment_get(pk))).data)


class ExperimentPauseApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_pause", request=None,
                   responses={200: ExperimentOut, **errors(404, 409)},
                   description="While paused the control answers every request and nothing is recorded.")
    def post(self, request, pk: int):
        return Response(ExperimentOut(services.experiment_pause(experiment=selectors.experiment_get(pk))).data)


class ExperimentStopApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_stop", request=StopIn,
                   responses={200: ExperimentOut, **errors(400, 404, 409, 415)},
                   description="Ends the experiment and freezes its results. 409 when no deployment is named like "
                               "the endpoint (its clients would get 404s) unless `force` is true.")
    def post(self, request, pk: int):
        data = parse(StopIn, request.data or {})
        experiment = selectors.experiment_get(pk)
        return Response(ExperimentOut(services.experiment_stop(experiment=experiment, **data)).data)


class ExperimentPromoteApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_promote", request=PromoteIn,
                   responses={200: ExperimentOut, **errors(400, 404, 409, 415, 503)},
                   description="Sends all traffic to the winner, points the endpoint's deployment (or the model's "
                               "production alias) at the winner's version, waits until it serves, then stops the "
                               "experiment. 503 while the winner still loads: call again to finish.")
    def post(self, request, pk: int):
        data = parse(PromoteIn, request.data or {})
        experiment = selectors.experiment_get(pk)
        return Response(ExperimentOut(services.experiment_promote(experiment=experiment, **data)).data)


class ExperimentResultsApi(APIView):
    @extend_schema(tags=TAGS, operation_id="experiments_results", responses={200: ResultsOut, **errors(404, 503)})
    def get(self, request, pk: int):
        return Response(experiment_results(selectors.experiment_get(pk)))
