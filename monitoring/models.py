"""What monitoring keeps: the prediction log and its ground truth, per-minute figures, drift references and
reports, alert rules with their alerts and notifications, and the rollouts watched by guardrails."""

import secrets

from django.db import models
from django.db.models import Q

from inference.models import Deployment
from registry.models import ModelVersion, slug_validator


class PredictionLog(models.Model):
    """One logged request: what the deployment at `endpoint` was asked (the checked rows) and answered."""

    request_id = models.CharField(max_length=128)
    endpoint = models.CharField(max_length=64)
    # The version that answered (an ensemble's primary version); a shadow copy is logged at its own endpoint
    # with the request id of the request it copied.
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    variant = models.CharField(max_length=64, blank=True, default="")
    subject_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField()
    inputs = models.JSONField()
    outputs = models.JSONField()
    latency_ms = models.FloatField()
    cached = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list and export (by endpoint, newest first), retention and the per-endpoint row cap.
            models.Index(fields=["endpoint", "-created_at"], name="predlog_endpoint_time_idx"),
            models.Index(fields=["request_id"], name="predlog_request_idx"),
            # Drift windows: the newest rows of one version.
            models.Index(fields=["model_version", "-id"], name="predlog_version_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} v{self.version} {self.request_id}"


class Feedback(models.Model):
    """The ground truth of one request: `label` (the true class, or one per row) or `value` (a number)."""

    request_id = models.CharField(max_length=128, unique=True)
    label = models.JSONField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"feedback {self.request_id}"


class MetricMinute(models.Model):
    """One closed minute of one deployment and version, summed over every web process that served it."""

    endpoint = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    minute = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    server_errors = models.PositiveBigIntegerField(default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)
    cache_lookups = models.PositiveBigIntegerField(default=0)
    batch_sum = models.FloatField(default=0.0)
    batch_count = models.PositiveBigIntegerField(default=0)
    latency_sum_s = models.FloatField(default=0.0)
    # Requests per bucket of inference.metrics.LATENCY_BUCKETS (not cumulative).
    latency_buckets = models.JSONField(default=list)

    class Meta:
        ordering = ["endpoint", "minute"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "version", "minute"], name="unique_metric_minute")]
        indexes = [models.Index(fields=["minute"], name="metric_minute_time_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint} v{self.version} {self.minute:%Y-%m-%d %H:%M}"


class ReferenceSource(models.TextChoices):
    TRAINING_SAMPLE = "training_sample", "training sample uploaded with the version"
    INPUT_EXAMPLE = "input_example", "input example uploaded with the version"
    LOGGED = "logged", "first logged rows"


class ReferenceSample(models.Model):
    """What a version's inputs are compared with for drift."""

    model_version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=32, choices=ReferenceSource.choices)
    rows = models.JSONField()
    # One per row; computed through the deployment when a training sample came without them.
    predictions = models.JSONField(null=True, blank=True)
    # For a logged reference: the last log row it holds (the drift window starts after it).
    last_log_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"reference of {self.model_version} ({self.source})"


class DriftReport(models.Model):
    endpoint = models.CharField(max_length=64)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    reference_source = models.CharField(max_length=32, choices=ReferenceSource.choices)
    reference_size = models.PositiveIntegerField()
    window_size = models.PositiveIntegerField()
    window_start = models.DateTimeField(null=True)
    window_end = models.DateTimeField(null=True)
    thresholds = models.JSONField(default=dict)
    features = models.JSONField(default=list)
    prediction = models.JSONField(null=True, blank=True)
    drifted_features = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-computed_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-computed_at"], name="drift_endpoint_time_idx")]

    def __str__(self) -> str:
        return f"drift of {self.endpoint} at {self.computed_at:%Y-%m-%d %H:%M}"


class Metric(models.TextChoices):
    ERROR_RATE = "error_rate"
    P95_MS = "p95_ms"
    P99_MS = "p99_ms"
    CACHE_MISS_RATE = "cache_miss_rate"
    REQUESTS_PER_S = "requests_per_s"
    DRIFT_FEATURES = "drift_features"
    QUALITY = "quality"
    HEALTH = "health"


class Op(models.TextChoices):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class AlertRule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # An endpoint, or "" for every live deployment (each gets alerts of its own).
    deployment = models.CharField(max_length=64, blank=True, default="", validators=[slug_validator])
    metric = models.CharField(max_length=32, choices=Metric.choices)
    op = models.CharField(max_length=2, choices=Op.choices)
    threshold = models.FloatField()
    for_s = models.PositiveIntegerField(default=0, help_text="how long the condition must hold before it fires")
    window_s = models.PositiveIntegerField(default=300, help_text="the figures are taken over this many seconds")
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    webhook_secret = models.CharField(max_length=128, default=new_secret)
    email = models.EmailField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    notify = models.BooleanField(default=True, help_text="off: alerts are recorded, nobody is told")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.metric} {self.op} {self.threshold:g}"


class AlertState(models.TextChoices):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


OPEN = Q(state__in=(AlertState.PENDING, AlertState.FIRING))


class AlertKind(models.TextChoices):
    RULE = "rule"
    GUARDRAIL = "guardrail"


class Alert(models.Model):
    """A rule's condition on one deployment from the moment it first held until it stopped holding, or a
    guardrail's breach. `history` lists each change of state with the value seen."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    kind = models.CharField(max_length=16, choices=AlertKind.choices, default=AlertKind.RULE)
    name = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=64)
    metric = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.PENDING)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    history = models.JSONField(default=list, blank=True)
    # A guardrail's subject: {"experiment": id} or {"rollout": id}.
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Two evaluations racing (two schedulers) open one alert per rule and deployment, never two.
            models.UniqueConstraint(fields=["rule", "endpoint"], condition=OPEN, name="one_open_alert_per_rule"),
        ]
        indexes = [models.Index(fields=["state", "-started_at"], name="alert_state_idx")]

    def __str__(self) -> str:
        return f"{self.name} on {self.endpoint} ({self.state})"


class NotificationStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notification(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=AlertState.choices)
    channel = models.CharField(max_length=16, choices=[("webhook", "webhook"), ("email", "email")])
    target = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} of alert {self.alert_id} ({self.status})"


class RolloutState(models.TextChoices):
    WATCHING = "watching"
    PASSED = "passed"
    ROLLED_BACK = "rolled_back"


class Rollout(models.Model):
    """A follow_alias deployment moving to a new version, watched against the deployment's guardrails."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=RolloutState.choices)
    reason = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"rollout of {self.deployment.endpoint} to {self.to_version} ({self.state})"
