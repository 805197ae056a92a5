from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from core.lockout import SignIn, username_credential
from core.openapi import public_errors
from core.permissions import Public
from core.throttling import client_address

TokenPair = inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()})
AccessToken = inline_serializer("AccessToken", {"access": serializers.CharField()})


@extend_schema_view(post=extend_schema(tags=["auth"], operation_id="auth_token_obtain",
                                       responses={200: TokenPair, **public_errors(400, 401, 415, 429)}))
class TokenObtainApi(TokenObtainPairView):
    """Exchange a username and password for a short-lived JWT bearer token carrying the user's permissions."""

    # simplejwt leaves its `permission_classes = ()` unannotated, so the empty tuple became its type.
    permission_classes = [Public]  # type: ignore[assignment]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data
        attempt = SignIn(client_address(request.META),
                         username_credential(data.get("username") if hasattr(data, "get") else None))
        attempt.check()
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:  # a wrong username or password (an inactive user too)
            attempt.failed()
            raise


@extend_schema_view(post=extend_schema(tags=["auth"], operation_id="auth_token_refresh",
                                       responses={200: AccessToken, **public_errors(400, 401, 415)}))
class TokenRefreshApi(TokenRefreshView):
    permission_classes = [Public]  # type: ignore[assignment]  # as above
