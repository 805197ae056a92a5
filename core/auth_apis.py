from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from core.openapi import public_errors
from core.permissions import Public


@extend_schema(tags=["auth"], responses={200: TokenObtainPairView.serializer_class, **public_errors(400, 401, 429)})
class TokenObtainApi(TokenObtainPairView):
    """Exchange a username and password for a short-lived JWT bearer token."""

    permission_classes = [Public]


@extend_schema(tags=["auth"], responses={200: TokenRefreshView.serializer_class, **public_errors(400, 401, 429)})
class TokenRefreshApi(TokenRefreshView):
    permission_classes = [Public]
