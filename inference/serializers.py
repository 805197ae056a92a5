from rest_framework import serializers

from inference.models import Deployment, Device
from registry.models import slug_validator

KNOB_FIELDS = ("replicas", "max_batch_size", "batch_timeout_ms", "max_queue", "timeout_ms", "max_rows", "device",
               "torch_threads", "torch_compile", "quantize", "warmup_requests", "scale_to_zero", "idle_ttl_s",
               "cache_enabled", "follow_alias")


class EnsembleMemberSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    weight = serializers.FloatField(min_value=0.0, max_value=1e6, default=1.0)


class _Knobs(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=1, max_value=16, required=False)
    max_batch_size = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    batch_timeout_ms = serializers.FloatField(min_value=0.0, max_value=10_000, required=False)
    max_queue = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    timeout_ms = serializers.IntegerField(min_value=1, max_value=600_000, required=False)
    max_rows = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    device = serializers.ChoiceField(choices=Device.choices, required=False)
    torch_threads = serializers.IntegerField(min_value=1, max_value=256, required=False, allow_null=True)
    torch_compile = serializers.BooleanField(required=False)
    quantize = serializers.BooleanField(required=False)
    warmup_requests = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    scale_to_zero = serializers.BooleanField(required=False)
    idle_ttl_s = serializers.IntegerField(min_value=1, max_value=7 * 86400, required=False)
    cache_enabled = serializers.BooleanField(required=False)
    follow_alias = serializers.BooleanField(required=False)
    ensemble = EnsembleMemberSerializer(many=True, required=False, max_length=16)


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


class DeploymentOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="model_version.version")
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Deployment
        fields = ["endpoint", "model", "version", "alias", "ensemble", "status", "status_reason", "generation",
                  *KNOB_FIELDS, "runtime", "created_by", "created_at", "updated_at", "stopped_at"]


class PredictParameters(serializers.Serializer):
    cache = serializers.BooleanField(required=False, help_text="false bypasses the prediction cache")
    uncertainty = serializers.DictField(required=False, help_text='{"samples": N}: Monte Carlo dropout (torch)')


class PredictIn(serializers.Serializer):
    inputs = serializers.JSONField(help_text="rows of numbers, one row, objects keyed by feature name, or strings")
    request_id = serializers.CharField(required=False, max_length=128)
    subject_id = serializers.CharField(required=False, max_length=256)
    parameters = PredictParameters(required=False)


class UniversalPredictIn(PredictIn):
    model = serializers.CharField(max_length=64)
    version = serializers.IntegerField(required=False, min_value=1)
    alias = serializers.CharField(required=False, max_length=64, help_text="default: production")


class PredictOut(serializers.Serializer):
    request_id = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    predictions = serializers.ListField(child=serializers.JSONField())
    probabilities = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), required=False)
    classes = serializers.ListField(child=serializers.JSONField(), required=False)
    uncertainty = serializers.DictField(required=False)
    variant = serializers.CharField(required=False,
                                    help_text="the experiment variant that answered (experiment endpoints only)")
    latency_ms = serializers.FloatField()
    cached = serializers.BooleanField()


class BatchItemIn(serializers.Serializer):
    endpoint = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False)
    alias = serializers.CharField(required=False)
    inputs = serializers.JSONField()
    request_id = serializers.CharField(required=False)
    parameters = PredictParameters(required=False)


class BatchPredictIn(serializers.Serializer):
    requests = BatchItemIn(many=True, max_length=256)


class BatchItemOut(serializers.Serializer):
    index = serializers.IntegerField()
    ok = serializers.BooleanField()
    result = PredictOut(required=False)
    error = serializers.DictField(required=False)


class BatchPredictOut(serializers.Serializer):
    results = BatchItemOut(many=True)
    count = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    success_rate = serializers.FloatField()
    total_ms = serializers.FloatField()


class ExplainIn(serializers.Serializer):
    inputs = serializers.JSONField()
    request_id = serializers.CharField(required=False, max_length=128)
    subject_id = serializers.CharField(required=False, max_length=256,
                                       help_text="on an experiment's endpoint, the model of this subject's variant")
    parameters = serializers.DictField(required=False, help_text='{"baseline": row} (default: a row of zeros)')


class ExplainOut(serializers.Serializer):
    request_id = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    feature_names = serializers.ListField(child=serializers.CharField(), allow_null=True)
    importances = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    baseline = serializers.ListField(child=serializers.FloatField())
    baseline_prediction = serializers.JSONField()
    predictions = serializers.ListField(child=serializers.JSONField())
    builtin_importances = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    variant = serializers.CharField(required=False,
                                    help_text="the experiment variant whose model explained (experiment endpoints "
                                              "only; explanations are not recorded as outcomes)")
    method = serializers.CharField()
    latency_ms = serializers.FloatField()


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
