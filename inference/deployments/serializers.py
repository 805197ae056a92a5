from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.choices import ChoiceField, ModelSerializer
from inference.deployments.instances import DeploymentInstances, deployment_instances
from inference.models import DEFAULT_POOL, Deployment, DeploymentStatus, Device
from registry.models import slug_validator

KNOB_FIELDS = ("replicas", "max_batch_size", "batch_timeout_ms", "max_queue", "timeout_ms", "max_rows", "device",
               "torch_threads", "torch_compile", "quantize", "warmup_requests", "scale_to_zero", "idle_ttl_s",
               "cache_enabled", "follow_alias", "log_predictions", "guardrails", "pool")


class EnsembleMemberSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    weight = serializers.FloatField(min_value=0.0, max_value=1e6, default=1.0)


DEFAULT_MIN_REQUESTS = 20


class GuardrailsSerializer(serializers.Serializer):
    """What a rollout must keep to (an experiment's treatments, a follow_alias roll's new version), judged once
    `min_requests` have been answered; an empty object declares none."""

    max_error_rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False,
                                            help_text="highest share of failed requests")
    max_p99_ms = serializers.FloatField(min_value=0.001, max_value=3_600_000, required=False,
                                        help_text="highest p99 latency in milliseconds")
    min_requests = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False,
                                            help_text=f"requests answered before anything is judged (default "
                                                      f"{DEFAULT_MIN_REQUESTS})")

    def validate(self, attrs):
        if not attrs:
            return {}
        if not attrs.keys() & {"max_error_rate", "max_p99_ms"}:
            raise serializers.ValidationError(
                {"max_error_rate": "Give max_error_rate and/or max_p99_ms (or {} for no guardrails)."})
        return {"min_requests": DEFAULT_MIN_REQUESTS, **attrs}


class _Knobs(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=1, max_value=16, required=False)
    max_batch_size = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    batch_timeout_ms = serializers.FloatField(min_value=0.0, max_value=10_000, required=False)
    max_queue = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    timeout_ms = serializers.IntegerField(min_value=1, max_value=600_000, required=False)
    max_rows = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    device = ChoiceField(choices=Device.choices, required=False)
    torch_threads = serializers.IntegerField(min_value=1, max_value=256, required=False, allow_null=True)
    torch_compile = serializers.BooleanField(required=False)
    quantize = serializers.BooleanField(required=False)
    warmup_requests = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    scale_to_zero = serializers.BooleanField(required=False)
    idle_ttl_s = serializers.IntegerField(min_value=1, max_value=7 * 86400, required=False)
    cache_enabled = serializers.BooleanField(required=False)
    follow_alias = serializers.BooleanField(required=False)
    # DRF hands max_length to the ListSerializer that many=True builds; the stub's __init__ lacks it.
    ensemble = EnsembleMemberSerializer(many=True, required=False, max_length=16)  # type: ignore[call-arg]
    log_predictions = serializers.FloatField(min_value=0.0, max_value=1.0, required=False,
                                             help_text="share of answered requests recorded in the prediction log")
    guardrails = GuardrailsSerializer(required=False, help_text="judged after a follow_alias roll to a new "
                                      "version: a breach rolls the deployment back to the previous one")
    pool = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,62}$", max_length=63, required=False,
                                  help_text=f"only model servers of this MODEL_SERVER_POOL load it (default "
                                            f"'{DEFAULT_POOL}'); lowercase letters, digits, - and _",
                                  error_messages={"invalid": "Lowercase letters, digits, '-' and '_' only, "
                                                             "starting with a letter or digit."})


class DeploymentCreateIn(_Knobs):
    endpoint = serializers.CharField(max_length=64, validators=[slug_validator])
    model = serializers.CharField(max_length=64)
    version = serializers.IntegerField(min_value=1, required=False)
    alias = serializers.CharField(max_length=64, required=False, validators=[slug_validator])

    def validate(self, attrs):
        if ("version" in attrs) == ("alias" in attrs):
            raise serializers.ValidationError({"version": "Give exactly one of 'version' or 'alias'."})
        return attrs


class DeploymentUpdateIn(_Knobs):
    unknown_hints = {"endpoint": "An endpoint cannot be renamed: deploy at the new name, then undeploy this one.",
                     "model": "A deployment serves one model: deploy the other model at an endpoint of its own."}
    version = serializers.IntegerField(min_value=1, required=False)
    alias = serializers.CharField(max_length=64, required=False, validators=[slug_validator])

    def validate(self, attrs):
        if "version" in attrs and "alias" in attrs:
            raise serializers.ValidationError({"version": "Give at most one of 'version' or 'alias'."})
        return attrs


class InstanceOut(serializers.Serializer):
    name = serializers.CharField(help_text="the model server's INSTANCE_NAME")
    pool = serializers.CharField()
    status = ChoiceField(choices=DeploymentStatus.choices, help_text="this deployment on this instance")
    loaded = serializers.BooleanField()
    heartbeat_at = serializers.DateTimeField()
    memory_mb = serializers.FloatField(allow_null=True)
    queue_depth = serializers.IntegerField()


class DeploymentOut(ModelSerializer):
    """`status` is summed up over the live model server instances: ready while at least one serves it.

    Serializing many at once, pass context={"instances": deployment_instances(deployments)} (two queries).
    """

    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="model_version.version")
    created_by = serializers.CharField(source="created_by.username", default=None)
    status = serializers.SerializerMethodField()
    status_reason = serializers.SerializerMethodField()
    instances = serializers.SerializerMethodField()
    instances_ready = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["endpoint", "model", "version", "alias", "ensemble", "status", "status_reason", "instances",
                  "instances_ready", "generation", *KNOB_FIELDS, "runtime", "created_by", "created_at",
                  "updated_at", "stopped_at"]

    @extend_schema_field(ChoiceField(choices=DeploymentStatus.choices))
    def get_status(self, deployment: Deployment) -> str:
        return self._instances(deployment).status

    def get_status_reason(self, deployment: Deployment) -> str:
        return self._instances(deployment).reason

    @extend_schema_field(InstanceOut(many=True))
    def get_instances(self, deployment: Deployment) -> list:
        return list(InstanceOut(self._instances(deployment).instances, many=True).data)

    def get_instances_ready(self, deployment: Deployment) -> int:
        return self._instances(deployment).ready

    def _instances(self, deployment: Deployment) -> DeploymentInstances:
        known = self.context.get("instances") or {}
        if deployment.pk in known:
            return known[deployment.pk]
        # Four fields read it: summed up once per deployment object.
        summary = getattr(deployment, "instances_summary", None)
        if summary is None:
            summary = deployment_instances([deployment])[deployment.pk]
            setattr(deployment, "instances_summary", summary)  # noqa: B010 - not a model field
        return summary


class ConfigSerializer(serializers.Serializer):
    cache_enabled = serializers.BooleanField(required=False)
    cache_ttl_s = serializers.IntegerField(min_value=1, max_value=30 * 86400, required=False)
    cache_capacity = serializers.IntegerField(min_value=1, max_value=100_000_000, required=False)
    max_loaded_models = serializers.IntegerField(min_value=1, max_value=10_000, required=False)


class CacheStatsOut(serializers.Serializer):
    available = serializers.BooleanField(help_text="false while Redis is unreachable (counts are then null)")
    size = serializers.IntegerField(allow_null=True)
    capacity = serializers.IntegerField()
    hits = serializers.IntegerField(allow_null=True)
    misses = serializers.IntegerField(allow_null=True)
    hit_rate = serializers.FloatField(allow_null=True)
    evictions = serializers.IntegerField(allow_null=True)
    ttl_s = serializers.IntegerField()
    enabled = serializers.BooleanField()
