import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from registry.models import slug_validator


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# A paused experiment still owns its endpoint (the control answers everyone), so it counts as active.
ACTIVE_STATUSES = (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)
ACTIVE = Q(status__in=ACTIVE_STATUSES)


class Outcome(models.TextChoices):
    ACCURACY = "accuracy", "accuracy (rate)"
    CONVERSION = "conversion", "conversion (rate)"
    MEAN = "mean", "mean (e.g. reward)"


RATE_OUTCOMES = (Outcome.ACCURACY, Outcome.CONVERSION)
MAX_DURATION_HOURS = 24 * 366


def new_salt() -> str:
    return secrets.token_hex(8)


class Experiment(models.Model):
    """Splits the traffic of one public endpoint between deployments (variants) and measures them."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    endpoint = models.CharField(max_length=64, validators=[slug_validator],
                                help_text="The public endpoint clients call: POST /api/v1/predict/{endpoint}.")
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.ACCURACY,
        help_text="accuracy: feedback `label` compared with the prediction; conversion: feedback `value` 0/1 per "
                  "request; mean: feedback `value` per request (reward, revenue...).",
    )
    higher_is_better = models.BooleanField(default=True, help_text="Direction of the outcome for the verdict.")
    # Part of every assignment hash: subjects keep their variant across processes and restarts, and two
    # experiments split the same subjects independently of each other.
    salt = models.CharField(max_length=32, default=new_salt, editable=False)
    duration_hours = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.001), MaxValueValidator(MAX_DURATION_HOURS)],
        help_text="Planned duration; the experiment stops by itself this long after it first starts.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Planned end (auto-stop).")
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=200, blank=True, default="")
    # Set while promote hands the endpoint over: every request goes to this variant, unrecorded.
    promoting_to = models.CharField(max_length=64, blank=True, default="")
    winner = models.CharField(max_length=64, blank=True, default="")
    # {"max_error_rate", "max_p99_ms", "min_requests"}: a treatment that breaches one pauses the experiment
    # (the control answers everyone); judged by the monitoring app's scheduler.
    guardrails = models.JSONField(default=dict, blank=True)
    # The results at the moment the experiment stopped: survives the statistics' store (Redis).
    final_results = models.JSONField(default=dict, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two active experiments on one endpoint would make routing ambiguous; the database decides races.
            models.UniqueConstraint(fields=["endpoint"], condition=ACTIVE, name="one_active_experiment_per_endpoint"),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.endpoint})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def measures_rate(self) -> bool:
        return self.outcome in RATE_OUTCOMES


class Variant(models.Model):
    """One arm: a deployment and its share of the traffic. Shadows get a copy and never answer."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=64, validators=[slug_validator])
    deployment = models.CharField(max_length=64, validators=[slug_validator],
                                  help_text="Endpoint name of the live deployment that serves this variant.")
    weight = models.FloatField(default=0.0, help_text="Share of the traffic in percent.")
    shadow = models.BooleanField(default=False)
    # The first non-shadow variant is the control every other variant is compared with.
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["shadow", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="unique_variant_name")]

    def __str__(self) -> str:
        return f"{self.name} -> {self.deployment}"
