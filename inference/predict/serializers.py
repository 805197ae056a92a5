"""The prediction routes' request and response shapes, for the OpenAPI document (their bodies are checked by
hand in bodies.py: this is the hot path)."""

from rest_framework import serializers

from inference.predict.scoring import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_CANDIDATE_CHARS


class PredictParameters(serializers.Serializer):
    cache = serializers.BooleanField(required=False, help_text="false bypasses the prediction cache")
    uncertainty = serializers.DictField(required=False, help_text='{"samples": N}: Monte Carlo dropout (torch)')
    timeout_ms = serializers.IntegerField(
        required=False, min_value=1,
        help_text="this request's own deadline, shorter than the deployment's timeout_ms (a longer one is clamped "
                  "to it); 504 deadline_exceeded when no answer came in time")


class PredictIn(serializers.Serializer):
    inputs = serializers.JSONField(help_text="rows of numbers, one row, records (objects keyed by column name), "
                                             "columns (an object of equal-length lists) or strings; string columns "
                                             "take strings, nullable columns null")
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
    # DRF hands max_length to the ListSerializer that many=True builds; the stub's __init__ lacks it.
    requests = BatchItemIn(many=True, max_length=256)  # type: ignore[call-arg]


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
    parameters = serializers.DictField(
        required=False,
        help_text='{"baseline": row} (default: zeros for numbers, the input example\'s most frequent value for '
                  'categories), {"timeout_ms": N}: a deadline shorter than the deployment\'s')


class ExplainOut(serializers.Serializer):
    request_id = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    feature_names = serializers.ListField(child=serializers.CharField(), allow_null=True)
    importances = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
                                        help_text="null for a skipped column")
    baseline = serializers.ListField(child=serializers.JSONField())
    baseline_prediction = serializers.JSONField()
    predictions = serializers.ListField(child=serializers.JSONField())
    builtin_importances = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    skipped = serializers.DictField(child=serializers.CharField(), required=False,
                                    help_text="typed columns left out, with why: a categorical column is ablated to "
                                              "its most frequent value in the version's input example")
    variant = serializers.CharField(required=False,
                                    help_text="the experiment variant whose model explained (experiment endpoints "
                                              "only; explanations are not recorded as outcomes)")
    method = serializers.CharField()
    latency_ms = serializers.FloatField()


class ScoreIn(serializers.Serializer):
    candidates = serializers.ListField(child=serializers.CharField(max_length=MAX_CANDIDATE_CHARS), min_length=1,
                                       help_text="distinct names, e.g. the LLMs to choose between")
    prompts = serializers.ListField(child=serializers.CharField(allow_blank=True), min_length=1)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BATCH_SIZE,
                                          help_text=f"rows per call to the model (default {DEFAULT_BATCH_SIZE}, at "
                                                    "most the deployment's max_rows)")
    parameters = serializers.DictField(required=False, help_text='{"cache": false} bypasses the prediction cache')


class ScoreOut(serializers.Serializer):
    request_id = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    scores = serializers.DictField(child=serializers.ListField(child=serializers.FloatField()),
                                   help_text="candidate -> one score per prompt, in the prompts' order")
    pairs = serializers.IntegerField()
    batch_size = serializers.IntegerField()
    chunks = serializers.IntegerField()
    latency_ms = serializers.FloatField()
