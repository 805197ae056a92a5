from rest_framework import serializers

from core.pagination import Pagination
from monitoring.models import Alert, AlertRule, Metric, Op
from monitoring.selectors.history import WINDOWS as HISTORY_WINDOWS
from monitoring.selectors.quality import WINDOWS as QUALITY_WINDOWS
from registry.models import slug_validator

MAX_LIMIT = 1000


class _Page(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=Pagination.max_page_size, required=False)


class PredictionQueryIn(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False)
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; rows logged at or after")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; rows logged before")
    version = serializers.IntegerField(min_value=1, required=False)
    variant = serializers.CharField(max_length=64, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False,
                                     help_text="rows per page (page_size); an export's total")

    def validate(self, attrs):
        if "since" in attrs and "until" in attrs and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "Must be after 'since'."})
        return attrs


class ExportQueryIn(PredictionQueryIn):
    limit = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False,
                                     help_text="at most this many rows, newest first")


class PredictionOut(serializers.Serializer):
    request_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    endpoint = serializers.CharField()
    version = serializers.IntegerField()
    variant = serializers.CharField(allow_null=True)
    subject_id = serializers.CharField(allow_null=True)
    latency_ms = serializers.FloatField()
    cached = serializers.BooleanField()
    inputs = serializers.JSONField(allow_null=True, help_text="the checked rows; null unless a manage key or staff "
                                                             "reads them")
    outputs = serializers.JSONField(help_text="predictions (and probabilities, classes, uncertainty)")


class WindowIn(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(QUALITY_WINDOWS), required=False, default="24h")


class TimeseriesIn(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(HISTORY_WINDOWS), required=False, default="1h")
    version = serializers.IntegerField(min_value=1, required=False)


class PointOut(serializers.Serializer):
    t = serializers.IntegerField(help_text="start of the step, epoch seconds")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field named like Serializer.errors
    server_errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    cache_hits = serializers.IntegerField()
    cache_lookups = serializers.IntegerField()
    cache_miss_rate = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    mean_latency_ms = serializers.FloatField(allow_null=True)
    mean_batch_size = serializers.FloatField(allow_null=True)


class TimeseriesOut(serializers.Serializer):
    endpoint = serializers.CharField()
    window = serializers.CharField()
    step_s = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    points = PointOut(many=True)


class QualityVersionOut(serializers.Serializer):
    version = serializers.IntegerField()
    logged_requests = serializers.IntegerField()
    rows_with_feedback = serializers.IntegerField()
    accuracy = serializers.FloatField(required=False, allow_null=True)
    precision = serializers.FloatField(required=False, allow_null=True, help_text="binary classifiers")
    recall = serializers.FloatField(required=False, allow_null=True, help_text="binary classifiers")
    mae = serializers.FloatField(required=False, allow_null=True, help_text="regressors")
    rmse = serializers.FloatField(required=False, allow_null=True, help_text="regressors")
    points = serializers.ListField(child=serializers.DictField(), help_text="the same figures per twelfth of the "
                                                                            "window")


class QualityOut(serializers.Serializer):
    endpoint = serializers.CharField()
    window = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    task = serializers.CharField()
    metric = serializers.CharField(help_text="the headline figure: accuracy (classifiers) or rmse (regressors)")
    versions = QualityVersionOut(many=True)


class FeatureDriftOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])
    test = serializers.ChoiceField(choices=["ks", "chi2"], help_text="Kolmogorov-Smirnov or chi-square")
    score = serializers.FloatField(help_text="population stability index")
    p_value = serializers.FloatField()
    drifted = serializers.BooleanField()
    histogram = serializers.DictField(help_text="reference and current shares per bin (edges) or category")


class DriftOut(serializers.Serializer):
    endpoint = serializers.CharField()
    version = serializers.IntegerField(source="model_version.version")
    computed_at = serializers.DateTimeField()
    reference = serializers.SerializerMethodField()
    window = serializers.SerializerMethodField()
    thresholds = serializers.DictField(help_text='{"psi", "p_value"}: drifted when PSI > psi and p < p_value')
    features = FeatureDriftOut(many=True)
    prediction = FeatureDriftOut(allow_null=True)
    drifted_features = serializers.IntegerField()

    def get_reference(self, report) -> dict:
        return {"source": report.reference_source, "size": report.reference_size}

    def get_window(self, report) -> dict:
        return {"rows": report.window_size, "from": report.window_start, "to": report.window_end}


class DriftQueryIn(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, required=False)


class ReferenceIn(serializers.Serializer):
    inputs = serializers.JSONField(help_text="rows as a prediction takes them (lists, or objects by feature name)")
    predictions = serializers.ListField(child=serializers.JSONField(), required=False,
                                        help_text="the version's answers, one per row (else asked of a deployment)")


class ReferenceOut(serializers.Serializer):
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    size = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_size(self, sample) -> int:
        return len(sample.rows)


class FeedbackIn(serializers.Serializer):
    request_id = serializers.CharField(max_length=128, help_text="the request_id of the prediction response")
    label = serializers.JSONField(  # type: ignore[assignment]  # a field named like Field.label
        required=False, help_text="the true class (a list: one per row), or a number")
    value = serializers.JSONField(required=False, help_text="a number (regression truth, conversion 0/1, reward)")


class FeedbackOut(serializers.Serializer):
    request_id = serializers.CharField()
    logged = serializers.BooleanField(required=False, help_text="true: the prediction log holds the request")
    endpoint = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False)
    label = serializers.JSONField(required=False)  # type: ignore[assignment]  # a field named like Field.label
    value = serializers.FloatField(required=False)
    experiment = serializers.IntegerField(required=False, help_text="set when an experiment routed the request")
    variant = serializers.CharField(required=False)
    outcome = serializers.CharField(required=False)
    rows = serializers.IntegerField(required=False)
    correct = serializers.IntegerField(required=False)


class AlertRuleIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    deployment = serializers.CharField(max_length=64, allow_null=True, required=False, validators=[slug_validator],
                                       help_text="an endpoint; null: every live deployment")
    metric = serializers.ChoiceField(choices=Metric.choices)
    op = serializers.ChoiceField(choices=Op.choices)
    threshold = serializers.FloatField()
    for_s = serializers.IntegerField(min_value=0, max_value=30 * 86_400, required=False)
    window_s = serializers.IntegerField(min_value=60, max_value=30 * 86_400, required=False)
    webhook_url = serializers.URLField(max_length=500, allow_blank=True, required=False)
    webhook_secret = serializers.CharField(min_length=16, max_length=128, required=False, write_only=True,
                                           help_text="the HMAC key (default: generated, shown once at creation)")
    email = serializers.EmailField(allow_blank=True, required=False)
    enabled = serializers.BooleanField(required=False)
    notify = serializers.BooleanField(required=False)


class AlertRuleUpdateIn(AlertRuleIn):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class AlertRuleOut(serializers.ModelSerializer):
    deployment = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = ["id", "name", "deployment", "metric", "op", "threshold", "for_s", "window_s", "webhook_url", "email",
                  "enabled", "notify", "created_at", "updated_at"]

    def get_deployment(self, rule) -> str | None:
        return rule.deployment or None


class AlertRuleCreatedOut(AlertRuleOut):
    class Meta(AlertRuleOut.Meta):
        fields = [*AlertRuleOut.Meta.fields, "webhook_secret"]


class AlertQueryIn(_Page):
    state = serializers.ChoiceField(choices=["pending", "firing", "resolved"], required=False)
    endpoint = serializers.CharField(max_length=64, required=False)
    rule = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)  # a row id: a 64-bit integer
    kind = serializers.ChoiceField(choices=["rule", "guardrail"], required=False)


class NotificationOut(serializers.Serializer):
    event = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)


class AlertOut(serializers.ModelSerializer):
    deployment = serializers.CharField(source="endpoint")
    notifications = NotificationOut(many=True)
    history = serializers.ListField(child=serializers.DictField(), help_text='[{"at", "state", "value"}]')

    class Meta:
        model = Alert
        fields = ["id", "rule", "kind", "name", "deployment", "metric", "state", "value", "threshold", "message",
                  "started_at", "fired_at", "resolved_at", "updated_at", "history", "context", "notifications"]
