from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.choices import ChoiceField, ModelSerializer
from core.fields import JSONObjectField, StringMapField
from inference.runtime.contract.columns import DTYPES
from registry.models import Flavor, ModelAlias, ModelVersion, RegisteredModel, Task, VersionStatus, slug_validator


class TensorSpecSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    dtype = ChoiceField(choices=["float32", "float64", "int64", "int32", "bool", "string"])
    shape = serializers.ListField(child=serializers.IntegerField(min_value=-1), max_length=8)


class ColumnSpecSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    dtype = ChoiceField(choices=list(DTYPES))
    nullable = serializers.BooleanField(required=False, help_text="whether null (a missing value) is accepted; "
                                                                  "omitted: from the model and the input example")


class SignatureSerializer(serializers.Serializer):
    inputs = TensorSpecSerializer(many=True, required=False)
    outputs = TensorSpecSerializer(many=True, required=False)
    feature_names = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, allow_null=True, max_length=100_000
    )
    n_features = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    input_kind = ChoiceField(choices=["tabular", "text"], required=False)
    classes = serializers.ListField(required=False, allow_null=True, max_length=100_000)
    columns = serializers.ListField(child=ColumnSpecSerializer(), required=False, allow_null=True, max_length=100_000,
                                    help_text="typed tabular columns, in the order the model takes them")

    def validate(self, attrs):
        names, count = attrs.get("feature_names"), attrs.get("n_features")
        if names and count and len(names) != count:
            raise serializers.ValidationError({"feature_names": f"has {len(names)} names but n_features is {count}."})
        columns = [column["name"] for column in attrs.get("columns") or []]
        if len(set(columns)) != len(columns):
            raise serializers.ValidationError({"columns": "names each column once."})
        if columns and names and list(names) != columns:
            raise serializers.ValidationError({"columns": "must name the same columns, in the same order, as "
                                                          "feature_names."})
        return attrs


@extend_schema_field(SignatureSerializer)
class SignatureField(JSONObjectField):
    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        serializer = SignatureSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data | {}


class AliasOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.version")


class RegisteredModelOut(ModelSerializer):
    aliases = AliasOut(many=True, read_only=True)
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True, read_only=True)
    latest_version = serializers.IntegerField(source="last_version", read_only=True)

    class Meta:
        model = RegisteredModel
        fields = ["name", "description", "task", "tags", "owner", "latest_version", "aliases",
                  "created_at", "updated_at"]


class RegisteredModelCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=64, validators=[slug_validator])
    task = ChoiceField(choices=Task.choices, default=Task.OTHER)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    tags = StringMapField(required=False, default=dict)


class RegisteredModelUpdateIn(serializers.Serializer):
    task = ChoiceField(choices=Task.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    tags = StringMapField(required=False)


class ModelVersionOut(ModelSerializer):
    model = serializers.CharField(source="model.name")
    aliases = serializers.SlugRelatedField[ModelAlias](many=True, read_only=True, slug_field="name")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True, read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["model", "version", "flavor", "format", "status", "status_reason", "sha256", "size_bytes",
                  "signature", "input_example", "metrics", "params", "tags", "description", "aliases", "validation",
                  "created_by", "created_at", "updated_at", "validated_at"]


class ModelVersionCreateIn(serializers.Serializer):
    # The file's name and content type are ignored: the format is detected from its bytes.
    artifact = serializers.FileField(allow_empty_file=False, use_url=False)
    flavor = ChoiceField(choices=Flavor.choices)
    signature = SignatureField(required=False)
    metrics = JSONObjectField(required=False, default=dict)
    params = JSONObjectField(required=False, default=dict)
    tags = StringMapField(required=False, default=dict)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    input_example = serializers.FileField(
        required=False, allow_empty_file=False, use_url=False,
        help_text="a few real rows: a CSV file with a header row, or a JSON list of records (or rows, or strings "
                  "for text models); empty CSV cells and JSON nulls are missing values. Sets the columns' types, "
                  "feeds the validation's smoke prediction and is shown with the version.")


class ModelVersionUpdateIn(serializers.Serializer):
    """Corrections while the version is not deployed; a new signature is validated against the model again."""

    signature = SignatureField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    metrics = JSONObjectField(required=False)
    tags = StringMapField(required=False)


class AliasSetIn(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class AliasSetOut(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    alias = serializers.CharField(source="name")
    version = serializers.IntegerField(source="version.version")
    updated_at = serializers.DateTimeField()


class VersionStatusFilterEnum(ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=VersionStatus.choices, **kwargs)
