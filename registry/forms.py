from django import forms

from core.parsers import UnsafeText, loads_strict
from registry.models import Flavor


def _json_object(value: str, field: str) -> dict:
    if not value.strip():
        return {}
    try:
        parsed = loads_strict(value.encode())
    except UnsafeText as exc:
        raise forms.ValidationError(f"{field}.{exc.field}: {exc.problem}") from None
    except Exception as exc:
        raise forms.ValidationError(f"{field} is not valid JSON: {getattr(exc, 'detail', exc)}") from None
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f"{field} must be a JSON object.")
    return parsed


class ModelVersionUploadForm(forms.Form):
    artifact = forms.FileField(help_text="skops, TorchScript, torch.export, XGBoost (.json/.ubj), LightGBM (text) or "
                                         "ONNX file; detected from its content.")
    flavor = forms.ChoiceField(choices=Flavor.choices)
    input_example = forms.FileField(required=False, help_text="Optional: a few real rows, CSV with a header or a JSON "
                                                              "list of records (sets the columns' types).")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    signature = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                help_text='Optional JSON, e.g. {"n_features": 8, "classes": ["a", "b"]}')
    metrics = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Optional JSON")
    tags = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Optional JSON")

    def clean_signature(self):
        return _json_object(self.cleaned_data["signature"], "signature")

    def clean_metrics(self):
        return _json_object(self.cleaned_data["metrics"], "metrics")

    def clean_tags(self):
        return _json_object(self.cleaned_data["tags"], "tags")


class AliasForm(forms.Form):
    alias = forms.SlugField(max_length=64, initial="production")


