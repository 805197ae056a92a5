from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from core.openapi import public_errors
from core.permissions import Public

TokenPair = inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()})
AccessToken = inline_serializer("AccessToken", {"access": serializers.CharField()})


@extend_schema_view(post=extend_schema(tags=["auth"], operation_id="auth_token_obtain",
                                       responses={200: TokenPair, **public_errors(400, 401, 415)}))
class TokenObtainApi(TokenObtainPairView):
    """Exchange a username and password for a short-lived JWT bearer token carrying the user's permissions."""

    # simplejwt leaves its `permission_classes = ()` unannotated, so the empty tuple became its type.
    permission_classes = [Public]  # type: ignore[assignment]


@extend_schema_view(post=extend_schema(tags=["auth"], operation_id="auth_token_refresh",
                                       responses={200: AccessToken, **public_errors(400, 401, 415)}))
class TokenRefreshApi(TokenRefreshView):
    permission_classes = [Public]  # type: ignore[assignment]  # as above
