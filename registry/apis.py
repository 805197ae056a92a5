from django.db.models import Model
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import filter_queryset, parse, request_user
from core.models import ApiKey
from core.openapi import errors
from core.pagination import Pagination
from core.parsers import SafeFormParser, SafeMultiPartParser
from registry import selectors, services
from registry.filters import ModelVersionFilter, RegisteredModelFilter
from registry.serializers import (
    AliasSetIn,
    AliasSetOut,
    ModelVersionCreateIn,
    ModelVersionOut,
    ModelVersionUpdateIn,
    RegisteredModelCreateIn,
    RegisteredModelOut,
    RegisteredModelUpdateIn,
)

TAG_PARAM = OpenApiParameter("tag", str, description="'key' or 'key:value'")
VERSION_EXAMPLE = OpenApiExample(
    "A DataFrame pipeline with its input example", response_only=True, status_codes=["201"],
    value={"model": "churn-mixed", "version": 1, "flavor": "sklearn", "format": "skops", "status": "pending",
           "signature": {"columns": [{"name": "country", "dtype": "string", "nullable": False},
                                     {"name": "age", "dtype": "float64", "nullable": False},
                                     {"name": "income", "dtype": "float64", "nullable": True}]},
           "input_example": [{"country": "fr", "age": 31.0, "income": 42000.0},
                             {"country": "de", "age": 55.0, "income": None}]})
PAGE_PARAMS = [OpenApiParameter("page", int), OpenApiParameter("page_size", int, description="at most 100")]


def _actor(request) -> dict:
    key = request.auth if isinstance(request.auth, ApiKey) else None
    user = request_user(request)
    return {"created_by": user or (key.owner if key else None), "created_by_key": key}


def _paginated(request, view, queryset, serializer_class) -> Response:
    paginator = Pagination()
    page: list[Model] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class ModelListCreateApi(APIView):
    @extend_schema(tags=["registry"], operation_id="models_list",
                   parameters=[OpenApiParameter("task", str), TAG_PARAM, OpenApiParameter("name", str), *PAGE_PARAMS],
                   responses={200: RegisteredModelOut(many=True), **errors(400)})
    def get(self, request):
        models = filter_queryset(RegisteredModelFilter, request, selectors.registered_model_list())
        return _paginated(request, self, models, RegisteredModelOut)

    @extend_schema(tags=["registry"], operation_id="models_create", request=RegisteredModelCreateIn,
                   responses={201: RegisteredModelOut, **errors(400, 409, 413, 415)})
    def post(self, request):
        data = parse(RegisteredModelCreateIn, request.data)
        model = services.registered_model_create(**data, owner=_actor(request)["created_by"])
        return Response(RegisteredModelOut(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    @extend_schema(tags=["registry"], operation_id="models_retrieve",
                   responses={200: RegisteredModelOut, **errors(404)})
    def get(self, request, name: str):
        return Response(RegisteredModelOut(selectors.registered_model_get(name)).data)

    @extend_schema(tags=["registry"], operation_id="models_update", request=RegisteredModelUpdateIn,
                   responses={200: RegisteredModelOut, **errors(400, 404, 415)})
    def patch(self, request, name: str):
        model = selectors.registered_model_get(name)
        data = parse(RegisteredModelUpdateIn, request.data)
        return Response(RegisteredModelOut(services.registered_model_update(model=model, data=data)).data)

    @extend_schema(tags=["registry"], operation_id="models_destroy", responses={204: None, **errors(404, 409)})
    def delete(self, request, name: str):
        services.registered_model_delete(model=selectors.registered_model_get(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListCreateApi(APIView):
    parser_classes = [SafeMultiPartParser, SafeFormParser]

    @extend_schema(tags=["registry"], operation_id="versions_list",
                   parameters=[OpenApiParameter("status", str), OpenApiParameter("flavor", str), TAG_PARAM,
                               *PAGE_PARAMS],
                   responses={200: ModelVersionOut(many=True), **errors(400, 404)})
    def get(self, request, name: str):
        versions = selectors.model_version_list(selectors.registered_model_get(name))
        return _paginated(request, self, filter_queryset(ModelVersionFilter, request, versions), ModelVersionOut)

    @extend_schema(tags=["registry"], operation_id="versions_create",
                   request={"multipart/form-data": ModelVersionCreateIn},
                   responses={201: ModelVersionOut, **errors(400, 404, 413, 415)},
                   description="Upload an artifact. Returns at once with status 'pending'; a background job "
                               "validates it in a sandboxed process and records 'ready' or 'failed'. An optional "
                               "`input_example` file (CSV with a header, or JSON records) types the columns, feeds "
                               "the smoke prediction and is shown with the version.",
                   examples=[VERSION_EXAMPLE])
    def post(self, request, name: str):
        model = selectors.registered_model_get(name)
        data = parse(ModelVersionCreateIn, request.data)
        version = services.model_version_create(model=model, **data, **_actor(request))
        return Response(ModelVersionOut(version).data, status=status.HTTP_201_CREATED)


class VersionDetailApi(APIView):
    @extend_schema(tags=["registry"], operation_id="versions_retrieve",
                   parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH,
                                                description="a version number or an alias")],
                   responses={200: ModelVersionOut, **errors(404)})
    def get(self, request, name: str, version: str):
        model = selectors.registered_model_get(name)
        return Response(ModelVersionOut(selectors.model_version_get(model, version)).data)

    @extend_schema(tags=["registry"], operation_id="versions_update", request=ModelVersionUpdateIn,
                   parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH)],
                   responses={200: ModelVersionOut, **errors(400, 404, 409, 415)},
                   description="Correct a version's signature, description, metrics or tags while no deployment "
                               "serves it (409 naming the endpoint otherwise). A new signature is checked against "
                               "the input example at once and against the model by validating the version again.")
    def patch(self, request, name: str, version: str):
        model = selectors.registered_model_get(name)
        target = selectors.model_version_get(model, version)
        data = parse(ModelVersionUpdateIn, request.data)
        return Response(ModelVersionOut(services.model_version_update(version=target, data=data)).data)

    @extend_schema(tags=["registry"], operation_id="versions_destroy",
                   parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH)],
                   responses={204: None, **errors(404, 409)})
    def delete(self, request, name: str, version: str):
        model = selectors.registered_model_get(name)
        services.model_version_delete(version=selectors.model_version_get(model, version))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionValidateApi(APIView):
    @extend_schema(tags=["registry"], operation_id="versions_validate", request=None,
                   parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH)],
                   responses={202: ModelVersionOut, **errors(404)})
    def post(self, request, name: str, version: str):
        model = selectors.registered_model_get(name)
        target = services.model_version_request_validation(version=selectors.model_version_get(model, version))
        return Response(ModelVersionOut(target).data, status=status.HTTP_202_ACCEPTED)


class AliasApi(APIView):
    @extend_schema(tags=["registry"], operation_id="aliases_set", request=AliasSetIn,
                   responses={200: AliasSetOut, **errors(400, 404, 415)})
    def put(self, request, name: str, alias: str):
        model = selectors.registered_model_get(name)
        data = parse(AliasSetIn, request.data)
        moved = services.model_alias_set(model=model, alias=alias, version_number=data["version"])
        return Response(AliasSetOut(moved).data)

    @extend_schema(tags=["registry"], operation_id="aliases_destroy", responses={204: None, **errors(404)})
    def delete(self, request, name: str, alias: str):
        services.model_alias_delete(model=selectors.registered_model_get(name), alias=alias)
        return Response(status=status.HTTP_204_NO_CONTENT)
