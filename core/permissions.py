from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.permissions import BasePermission

from core.models import ApiKey, Scope

if TYPE_CHECKING:  # DRF's views import the permission classes named in settings: no runtime import back
    from rest_framework.request import Request
    from rest_framework.views import APIView


def principal_allows(request: Request, scope: str) -> bool:
    """Staff may do everything; a key by its scope; a user (session or JWT) by its permissions."""
    if isinstance(request.auth, ApiKey):
        return request.auth.allows(scope)
    user = request.user
    if not user or not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    if scope == Scope.PREDICT and user.has_perm("core.use_predict"):
        return True
    allowed: bool = user.has_perm("core.use_manage")
    return allowed


class ManageScope(BasePermission):
    """Registry, deployments, experiments, config: never opened by REQUIRE_API_KEY=0."""

    scope = Scope.MANAGE
    message = "This route needs an API key with the 'manage' scope or a staff user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return principal_allows(request, Scope.MANAGE)


class PredictScope(BasePermission):
    scope = Scope.PREDICT
    message = "This route needs an API key with the 'predict' scope."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not settings.REQUIRE_API_KEY:
            return True
        return principal_allows(request, Scope.PREDICT)


class Public(BasePermission):
    scope = "anon"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return True
