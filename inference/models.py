from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from registry.models import ModelVersion, RegisteredModel, slug_validator


class DeploymentStatus(models.TextChoices):
    PENDING = "pending"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class Device(models.TextChoices):
    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"


LIVE = ~Q(status=DeploymentStatus.STOPPED)


class Deployment(models.Model):
    """An endpoint name serving one model version (or a weighted ensemble of versions)."""

    endpoint = models.CharField(max_length=64, validators=[slug_validator])
    # CASCADE only ever removes history rows: live deployments make the registry refuse the delete (409).
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="deployments")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="deployments")
    # With follow_alias, the supervisor rolls the deployment whenever the alias moves.
    alias = models.CharField(max_length=64, blank=True, default="")
    follow_alias = models.BooleanField(default=False)
    # [{"version": N, "weight": w}, ...] beside model_version (weight of model_version: `weight`).
    ensemble = models.JSONField(default=list, blank=True)
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])

    replicas = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(16)])
    max_batch_size = models.PositiveIntegerField(
        default=32, validators=[MinValueValidator(1), MaxValueValidator(4096)]
    )
    batch_timeout_ms = models.FloatField(default=5.0, validators=[MinValueValidator(0.0), MaxValueValidator(10_000)])
    max_queue = models.PositiveIntegerField(default=256, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    timeout_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(1), MaxValueValidator(600_000)]
    )
    max_rows = models.PositiveIntegerField(default=1024, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.CPU)
    torch_threads = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(256)])
    torch_compile = models.BooleanField(default=False)
    quantize = models.BooleanField(default=False, help_text="dynamic int8 quantization of Linear layers (torch)")
    warmup_requests = models.PositiveSmallIntegerField(default=1, validators=[MaxValueValidator(1000)])
    scale_to_zero = models.BooleanField(default=False)
    idle_ttl_s = models.PositiveIntegerField(default=300, validators=[MinValueValidator(1)])
    cache_enabled = models.BooleanField(default=True)

    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    status_reason = models.TextField(blank=True, default="")
    # Bumped by every change that needs fresh worker processes (version, device, torch options...).
    generation = models.PositiveIntegerField(default=1)
    # Written by the model server: what is actually loaded right now.
    runtime = models.JSONField(default=dict, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["endpoint", "-created_at"]
        constraints = [
            # Stopped deployments stay as history; only one live deployment may own an endpoint.
            models.UniqueConstraint(fields=["endpoint"], condition=LIVE, name="unique_live_endpoint"),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.endpoint} -> {self.model.name} v{self.model_version.version}"

    @property
    def is_live(self) -> bool:
        return self.status != DeploymentStatus.STOPPED


class PlatformConfig(models.Model):
    """Runtime configuration changed without a restart (GET/PATCH /api/v1/config). One row."""

    cache_enabled = models.BooleanField(default=True)
    cache_ttl_s = models.PositiveIntegerField(default=300, validators=[MinValueValidator(1)])
    cache_capacity = models.PositiveIntegerField(default=100_000, validators=[MinValueValidator(1)])
    max_loaded_models = models.PositiveIntegerField(default=32, validators=[MinValueValidator(1)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "platform configuration"
        verbose_name_plural = "platform configuration"

    def __str__(self) -> str:
        return "platform configuration"
