"""Alert rules (CRUD), the alerts they and the guardrails raised, and feedback on logged predictions."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import check_query, parse, parse_query
from core.openapi import errors
from core.pagination import PAGE_QUERY, Pagination
from core.parsers import SafeJSONParser
from core.permissions import PredictScope
from monitoring.selectors import alerts as selectors
from monitoring.serializers import (
    AlertOut,
    AlertQueryIn,
    AlertRuleCreatedOut,
    AlertRuleIn,
    AlertRuleOut,
    AlertRuleUpdateIn,
    FeedbackIn,
    FeedbackOut,
)
from monitoring.services import alerts as services
from monitoring.services.feedback import feedback_record

TAGS = ["alerts"]


class AlertRuleListCreateApi(APIView):
    @extend_schema(tags=TAGS, operation_id="alert_rules_list",
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses={200: AlertRuleOut(many=True), **errors()})
    def get(self, request):
        check_query(request, PAGE_QUERY)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.alert_rule_list(), request, view=self)
        return paginator.get_paginated_response(AlertRuleOut(page, many=True).data)

    @extend_schema(tags=TAGS, operation_id="alert_rules_create", request=AlertRuleIn,
                   responses={201: AlertRuleCreatedOut, **errors(400, 415)},
                   description="The answer carries the webhook's signing secret (`X-Signature: sha256=HMAC-SHA256("
                               "secret, body)`), shown this once.")
    def post(self, request):
        rule = services.alert_rule_create(**parse(AlertRuleIn, request.data))
        return Response(AlertRuleCreatedOut(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(APIView):
    @extend_schema(tags=TAGS, operation_id="alert_rules_retrieve", responses={200: AlertRuleOut, **errors(404)})
    def get(self, request, pk: int):
        return Response(AlertRuleOut(selectors.alert_rule_get(pk)).data)

    @extend_schema(tags=TAGS, operation_id="alert_rules_update", request=AlertRuleUpdateIn,
                   responses={200: AlertRuleOut, **errors(400, 404, 415)})
    def patch(self, request, pk: int):
        rule = selectors.alert_rule_get(pk)
        data = parse(AlertRuleUpdateIn, request.data)
        return Response(AlertRuleOut(services.alert_rule_update(rule=rule, data=data)).data)

    @extend_schema(tags=TAGS, operation_id="alert_rules_destroy", responses={204: None, **errors(404)},
                   description="Its alerts stay listed; open ones resolve without a notification.")
    def delete(self, request, pk: int):
        services.alert_rule_delete(rule=selectors.alert_rule_get(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertListApi(APIView):
    @extend_schema(tags=TAGS, operation_id="alerts_list",
                   parameters=[OpenApiParameter("state", str, enum=["pending", "firing", "resolved"]),
                               OpenApiParameter("endpoint", str), OpenApiParameter("rule", int),
                               OpenApiParameter("kind", str, enum=["rule", "guardrail"]),
                               OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses={200: AlertOut(many=True), **errors(400)},
                   description="Firing and resolved alerts (pending ones with `state=pending`), newest first, each "
                               "with its history of states and its notifications.")
    def get(self, request):
        query = parse_query(AlertQueryIn, request, also=PAGE_QUERY)
        alerts = selectors.alert_list(**{k: v for k, v in query.items() if k not in ("page", "page_size")})
        paginator = Pagination()
        page = paginator.paginate_queryset(alerts, request, view=self)
        return paginator.get_paginated_response(AlertOut(page, many=True).data)


class FeedbackApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeJSONParser]

    @extend_schema(tags=["feedback"], operation_id="feedback_create", request=FeedbackIn,
                   responses={201: FeedbackOut, **errors(400, 404, 409, 415, 503)},
                   description="The ground truth of a logged prediction (`label`: the true class, or one per row; "
                               "or `value`: a number), and of one an experiment routed (accuracy takes `label`, "
                               "conversion 0/1 and means `value`). Once per request (409 the second time).")
    def post(self, request):
        return Response(feedback_record(**parse(FeedbackIn, request.data)), status=status.HTTP_201_CREATED)
