import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

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
DEFAULT_POOL = "default"
pool_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,62}$", "Lowercase letters, digits, '-' and '_' only.")


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
    # How long a batch may wait for more rows once its first request is queued. 0 (the default, as Triton's
    # dynamic batcher): no added wait; a batch is whatever queued while the model was busy, which under load
    # fills batches on its own (bench_serving.py: 2.4x the throughput of a 5 ms wait at 16 connections).
    batch_timeout_ms = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(10_000)])
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
    # The share of answered requests recorded in the prediction log (monitoring/), sampled in the web tier.
    log_predictions = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # Judged after a follow_alias roll to a new version: {"max_error_rate", "max_p99_ms", "min_requests"}; a
    # breach rolls back to the previous version (monitoring/services/guardrails.py).
    guardrails = models.JSONField(default=dict, blank=True)

    # Only model servers started with this MODEL_SERVER_POOL load it (a GPU pool beside a CPU pool).
    pool = models.CharField(max_length=63, default=DEFAULT_POOL, validators=[pool_validator])

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


class ModelServerInstance(models.Model):
    """One model server process (INSTANCE_NAME), written by that process alone: many never fight over a row."""

    name = models.CharField(max_length=64, unique=True)
    pool = models.CharField(max_length=63, default=DEFAULT_POOL)
    # host:port other hosts reach its gateway at; empty for a model server without a listener.
    address = models.CharField(max_length=255, blank=True, default="")
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    # Alive while recent (MODEL_SERVER_HEARTBEAT_TTL_S); indexed because every status read filters on it.
    heartbeat_at = models.DateTimeField(db_index=True)
    memory_mb = models.FloatField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pool", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.pool})"


class InstanceDeployment(models.Model):
    """What one model server instance holds of one deployment; the deployment's status is read across these."""

    instance = models.ForeignKey(ModelServerInstance, on_delete=models.CASCADE, related_name="served")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="instance_states")
    generation = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.LOADING)
    reason = models.TextField(blank=True, default="")
    loaded = models.BooleanField(default=False)
    ready = models.BooleanField(default=False)
    queue_depth = models.PositiveIntegerField(default=0)
    memory_mb = models.FloatField(null=True, blank=True)
    runtime = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instance", "deployment"], name="unique_instance_deployment")]

    def __str__(self) -> str:
        return f"{self.instance.name}: {self.deployment.endpoint}"


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


# --- async inference and batch jobs ---------------------------------------------------------

class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobPriority(models.TextChoices):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class _Job(models.Model):
    """What async and batch jobs share. The row is the record of truth; RQ only carries the job's id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.CharField(max_length=64)
    # The version the endpoint served at submission, then the one that actually answered.
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    priority = models.CharField(max_length=8, choices=JobPriority.choices, default=JobPriority.NORMAL)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # Each execution claims the row by incrementing this; the value doubles as a fencing token, so an
    # execution presumed dead (and replaced) can never write over its successor.
    attempts = models.PositiveSmallIntegerField(default=0)
    timeout_s = models.PositiveIntegerField(default=300)
    # Who may read the job and the scope of idempotency keys: "key:<prefix>", "user:<id>" or "anonymous".
    owner = models.CharField(max_length=64)
    api_key = models.ForeignKey("core.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    rq_job_id = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set explicitly by every conditional update (auto_now does not apply to QuerySet.update).
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_finished(self) -> bool:
        return self.status not in ACTIVE_JOB_STATUSES


class InferenceJob(_Job):
    """One async prediction: POST /api/v1/predict/{endpoint}/async."""

    inputs = models.JSONField()
    parameters = models.JSONField(default=dict, blank=True)
    rows = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=128, blank=True, default="")
    # Experiments assign variants by subject: the job is routed as the sync request would have been.
    subject_id = models.CharField(max_length=128, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # sha256 of the submitted request: a reused Idempotency-Key with another body is refused.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    result = models.JSONField(null=True, blank=True)

    class Meta(_Job.Meta):
        constraints = [
            # Two concurrent repeats of one submission race to insert; the database lets exactly one win.
            models.UniqueConstraint(fields=["owner", "idempotency_key"], condition=~Q(idempotency_key=""),
                                    name="unique_inference_job_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="inference_job_owner_idx"),
            # The sweeper's scan: active jobs by age.
            models.Index(fields=["status", "updated_at"], name="inference_job_status_idx"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.endpoint}, {self.status})"


class BatchFormat(models.TextChoices):
    CSV = "csv"
    JSONL = "jsonl", "JSON Lines"


class BatchJob(_Job):
    """An offline scoring run over an uploaded CSV / JSON Lines file: POST /api/v1/batch-jobs/."""

    input_format = models.CharField(max_length=8, choices=BatchFormat.choices)
    filename = models.CharField(max_length=255, blank=True, default="", help_text="the client's name, display only")
    # Relative to BATCH_DIR and always server-generated.
    input_path = models.CharField(max_length=255)
    result_path = models.CharField(max_length=255)
    columns = models.JSONField(default=list, blank=True)
    # The serving version's signature at submission: the file was checked against it, and the job reads
    # the file (feature order, classes for the result columns) with the same one.
    signature = models.JSONField(default=dict, blank=True)
    chunk_size = models.PositiveIntegerField(default=500)
    total_rows = models.PositiveIntegerField(default=0)
    # Rows processed (succeeded or failed) and committed to the result file up to result_bytes: a retried
    # execution truncates the file there and resumes after that many rows.
    rows_done = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    result_bytes = models.BigIntegerField(default=0)
    row_errors = models.JSONField(default=list, blank=True)

    class Meta(_Job.Meta):
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="batch_job_owner_idx"),
            models.Index(fields=["status", "updated_at"], name="batch_job_status_idx"),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.endpoint}, {self.status})"

    @property
    def progress(self) -> float:
        return round(self.rows_done / self.total_rows, 4) if self.total_rows else 0.0
