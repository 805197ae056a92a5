from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class Scope(models.TextChoices):
    PREDICT = "predict", "predict: inference and its own async jobs"
    MANAGE = "manage", "manage: registry, deployments, experiments, config, all jobs"


class ApiKey(AbstractAPIKey):
    """A client credential. Only a hash of the key is stored (djangorestframework-api-key)."""

    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.PREDICT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )

    objects: ClassVar[APIKeyManager[ApiKey]] = APIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        # Granted to users (and so to their JWT tokens) to reach the matching API scope.
        permissions = [
            ("use_predict", "Can call prediction endpoints"),
            ("use_manage", "Can manage models, deployments and experiments"),
        ]

    def allows(self, scope: str) -> bool:
        return self.scope == Scope.MANAGE or self.scope == scope
