import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.choices import ChoiceField, ChoiceFilter, ModelSerializer
from experiments.models import MAX_DURATION_HOURS, Experiment, ExperimentStatus, Outcome
from inference.deployments.serializers import GuardrailsSerializer
from registry.models import slug_validator


class WeightField(serializers.FloatField):
    """A JSON number only: FloatField would take "50" and true (as 1.0), so ["50", "50"] or [true, 99] passed."""

    default_error_messages = {"not_number": "Must be a JSON number, not {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("not_number", kind="a boolean" if isinstance(data, bool) else type(data).__name__)
        return super().to_internal_value(data)


class VariantIn(serializers.Serializer):
    name = serializers.CharField(max_length=64, validators=[slug_validator])
    deployment = serializers.CharField(max_length=64, validators=[slug_validator],
                                       help_text="endpoint name of a ready deployment")
    # Range and finiteness are checked by the service, which names the problem (negative, NaN, sum).
    weight = WeightField(help_text="share of the traffic in percent; the weights sum to 100")


class ShadowIn(serializers.Serializer):
    name = serializers.CharField(max_length=64, validators=[slug_validator], required=False,
                                 help_text="defaults to the deployment's name")
    deployment = serializers.CharField(max_length=64, validators=[slug_validator])


class _ExperimentFields(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    endpoint = serializers.CharField(max_length=64, validators=[slug_validator],
                                     help_text="the public endpoint clients call: POST /api/v1/predict/{endpoint}")
    # allow_empty: an empty list reaches the service, which says what is wrong in the experiment's terms.
    # DRF hands max_length to the ListSerializer that many=True builds; the stub's __init__ lacks it.
    variants = VariantIn(many=True, allow_empty=True, max_length=20,  # type: ignore[call-arg]
                         help_text="the first variant is the control")
    shadows = ShadowIn(many=True, required=False, max_length=10,  # type: ignore[call-arg]
                       help_text="get a copy of every routed request; their answers are recorded, never returned")
    outcome = ChoiceField(choices=Outcome.choices, required=False)
    higher_is_better = serializers.BooleanField(required=False)
    duration_hours = serializers.FloatField(required=False, allow_null=True, min_value=0.001,
                                            max_value=MAX_DURATION_HOURS, help_text="auto-stop after this long")
    ends_at = serializers.DateTimeField(required=False, allow_null=True, help_text="planned end (auto-stop)")
    guardrails = GuardrailsSerializer(required=False, help_text="a treatment breaching one pauses the experiment")


class ExperimentCreateIn(_ExperimentFields):
    pass


class ExperimentUpdateIn(_ExperimentFields):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class StopIn(serializers.Serializer):
    force = serializers.BooleanField(required=False, default=False,
                                     help_text="stop even when no deployment answers the endpoint afterwards")


class PromoteIn(serializers.Serializer):
    variant = serializers.CharField(max_length=64, required=False,
                                    help_text="default: the variant the results recommend (significant winner)")
    target = ChoiceField(choices=[("endpoint", "endpoint"), ("alias", "alias")], default="endpoint",
                                     help_text="'endpoint': the deployment named like the endpoint serves the "
                                               "winner; 'alias': the model's production alias moves to it too")


class VariantOut(serializers.Serializer):
    name = serializers.CharField()
    deployment = serializers.CharField()
    weight = serializers.FloatField()


class ShadowOut(serializers.Serializer):
    name = serializers.CharField()
    deployment = serializers.CharField()


class ExperimentOut(ModelSerializer):
    variants = serializers.SerializerMethodField()
    shadows = serializers.SerializerMethodField()
    control = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    class Meta:
        model = Experiment
        fields = ["id", "name", "description", "endpoint", "status", "variants", "shadows", "control", "outcome",
                  "higher_is_better", "duration_hours", "guardrails", "started_at", "ends_at", "stopped_at",
                  "stop_reason",
                  "promoting_to", "winner", "created_by", "created_at", "updated_at"]

    @staticmethod
    def _rows(experiment, shadow: bool) -> list:
        return [v for v in experiment.variants.all() if v.shadow == shadow]

    @extend_schema_field(VariantOut(many=True))
    def get_variants(self, experiment) -> list[dict]:
        # many=True makes a ListSerializer, whose data is a list; the stub types the call as one VariantOut.
        return VariantOut(self._rows(experiment, False), many=True).data  # type: ignore[return-value]

    @extend_schema_field(ShadowOut(many=True))
    def get_shadows(self, experiment) -> list[dict]:
        return ShadowOut(self._rows(experiment, True), many=True).data  # type: ignore[return-value]  # as above

    def get_control(self, experiment) -> str | None:
        rows = self._rows(experiment, False)
        return rows[0].name if rows else None


class _OutcomeOut(serializers.Serializer):
    n = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="rate or mean")
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="95% interval")
    std = serializers.FloatField(required=False, allow_null=True)


class _ComparisonOut(serializers.Serializer):
    test = serializers.CharField(help_text="two-proportion z-test (rates) or Welch's t-test (means)")
    difference = serializers.FloatField(allow_null=True, help_text="treatment minus control")
    difference_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    relative_difference = serializers.FloatField(allow_null=True)
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()
    verdict = serializers.CharField()


class _LatencyOut(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class VariantResultOut(serializers.Serializer):
    name = serializers.CharField()
    deployment = serializers.CharField()
    weight = serializers.FloatField()
    shadow = serializers.BooleanField()
    control = serializers.BooleanField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, see FeedbackIn.label
    error_rate = serializers.FloatField()
    errors_by_code = serializers.DictField(child=serializers.IntegerField())
    cache_hits = serializers.IntegerField()
    cache_hit_rate = serializers.FloatField(allow_null=True)
    latency_ms = _LatencyOut()
    outcome = _OutcomeOut()
    vs_control = _ComparisonOut(allow_null=True)
    shadow_dropped = serializers.IntegerField(required=False, help_text="copies dropped while the pool was full")


class ResultsOut(serializers.Serializer):
    experiment = serializers.IntegerField()
    name = serializers.CharField()
    endpoint = serializers.CharField()
    status = serializers.CharField()
    outcome = serializers.CharField()
    outcome_kind = ChoiceField(choices=["rate", "mean"])
    higher_is_better = serializers.BooleanField()
    confidence = serializers.FloatField()
    alpha = serializers.FloatField(help_text="significance level per comparison (Bonferroni over the treatments)")
    variants = VariantResultOut(many=True)
    verdict = serializers.CharField()
    recommended_variant = serializers.CharField(allow_null=True)
    traffic = serializers.DictField(help_text='{"bucket_s", "points": [{"t": epoch seconds, "counts": {...}}]}')
    latency_histogram = serializers.DictField(help_text='{"bounds_ms": [...], "counts": {variant: [...]}}')
    generated_at = serializers.FloatField()
    source = ChoiceField(choices=["live", "snapshot"])  # type: ignore[assignment]  # see FeedbackIn


class ExperimentFilter(django_filters.FilterSet):
    status = ChoiceFilter(choices=ExperimentStatus.choices)
    endpoint = django_filters.CharFilter()

    class Meta:
        model = Experiment
        fields = ["status", "endpoint"]
