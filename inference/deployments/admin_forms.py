"""The admin's deployment forms. They check what the API checks, with the API's own serializers and the same
service (deployment_prepare), so the admin and the API agree on defaults, ranges and refusals, and a refusal
shows beside its field before anything is written."""

from typing import Any, cast

from django import forms

from core import figures
from core.errors import ApplicationError
from inference.deployments import services
from inference.deployments.serializers import KNOB_FIELDS, DeploymentCreateIn, DeploymentUpdateIn
from inference.models import Deployment
from registry.models import ModelAlias, ModelVersion, VersionStatus

TARGET_FIELDS = ("model_version", "alias", "follow_alias", "ensemble")
KNOBS = tuple(field for field in KNOB_FIELDS if field != "follow_alias")
# The API's field for each of the form's, where the names differ, and back.
API_NAMES = {"model_version": "version"}
FORM_NAMES = {api: name for name, api in API_NAMES.items()}


class ModelFilteredSelect(forms.Select):
    """A select whose options belong to a registered model (`data-model`), so the page's script shows only the
    chosen model's; versions that are not ready are listed, disabled, with their status."""

    def __init__(self, *args: Any, option_models: list[int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.option_models = option_models or []
        self.attrs["data-filter-by-model"] = "1"

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        version = getattr(value, "instance", None)  # a ModelChoiceField's option carries its object
        if isinstance(version, ModelVersion):
            option["attrs"]["data-model"] = version.model_id
            if version.status != VersionStatus.READY:
                option["attrs"]["disabled"] = True
        elif index < len(self.option_models) and self.option_models[index] is not None:
            option["attrs"]["data-model"] = self.option_models[index]
        return option


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelVersion) -> str:
        aliases = ", ".join(alias.name for alias in obj.aliases.all())
        parts = [f"v{obj.version}", obj.status, obj.format, figures.size(obj.size_bytes), aliases]
        return " \u00b7 ".join(part for part in parts if part)


def alias_choices(model_id: int | None = None) -> tuple[list[tuple[str, str]], list[int | None]]:
    """(choices, the model of each): an alias is named per model, so the same name may be listed once a model."""
    aliases = ModelAlias.objects.select_related("version")
    if model_id is not None:
        aliases = aliases.filter(model_id=model_id)
    choices: list[tuple[str, str]] = [("", "(none: the version above)")]
    models: list[int | None] = [None]
    for alias in aliases.order_by("model__name", "name"):
        choices.append((alias.name, f"{alias.name} \u2192 v{alias.version.version}"))
        models.append(alias.model_id)
    return choices, models


OPTIONAL_KNOBS = ("torch_threads", "log_predictions", "guardrails", "pool")


class DeploymentForm(forms.ModelForm):
    """What the add and change pages share: a version among the model's (ready ones selectable), an alias of
    the model, an ensemble checked by the API's serializer."""

    model_version = VersionChoiceField(
        queryset=ModelVersion.objects.select_related("model").prefetch_related("aliases"), required=False,
        label="Version", help_text="Only ready versions deploy; the others are listed with their status.",
        widget=ModelFilteredSelect)
    alias = forms.ChoiceField(required=False, help_text="Deploys the version the alias names (instead of a "
                                                        "version); with 'follow alias', moves when it moves.")

    class Meta:
        model = Deployment
        fields = ("endpoint", "model", *TARGET_FIELDS, *KNOBS)
        help_texts = {"ensemble": 'Optional: more versions whose answers are averaged with this one\'s, '
                                  'e.g. [{"version": 2, "weight": 0.5}] (this version weighs 1).'}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_id = self.instance.model_id if self.instance.pk else None
        choices, models = alias_choices(model_id)
        alias = cast(forms.ChoiceField, self.fields["alias"])
        alias.choices = choices
        alias.widget = ModelFilteredSelect(choices=choices, option_models=models)
        # Fields the API defaults when absent (a form posted without them keeps the API's default).
        for name in OPTIONAL_KNOBS:
            if name in self.fields:
                self.fields[name].required = False
        if model_id is not None:
            version = cast(VersionChoiceField, self.fields["model_version"])
            version.queryset = ModelVersion.objects.filter(model_id=model_id).prefetch_related("aliases")

    def api_data(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The cleaned values of `names`, as the API's serializers name and type them."""
        data: dict[str, Any] = {}
        for name in names:
            value = self.cleaned_data.get(name)
            if name == "model_version":
                value = value.version if value else None
            if value in (None, "") and name in ("model_version", "alias", *OPTIONAL_KNOBS):
                continue
            data[API_NAMES.get(name, name)] = value
        return data

    def add_refusal(self, field: str, message: str) -> None:
        """An error of the API's serializers or services, beside the form's field it names (else on top)."""
        name = FORM_NAMES.get(field.split("[")[0], field.split("[")[0])
        self.add_error(name if name in self.fields else None, message)

    def add_api_errors(self, errors: dict[str, Any]) -> None:
        for field, messages in errors.items():
            self.add_refusal(field, _text(messages))

    def add_service_error(self, exc: ApplicationError) -> None:
        self.add_refusal(str(exc.details.get("field", "")), exc.message)


def _text(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_text(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_text(message) for message in messages if message)
    return str(messages)


class DeploymentAddForm(DeploymentForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        model, version, alias = data.get("model"), data.get("model_version"), data.get("alias")
        if self.errors or model is None:
            return data
        if version is not None and version.model_id != model.pk:
            # A forged or stale POST: the page only offers the chosen model's versions.
            self.add_error("model_version", f"v{version.version} is a version of '{version.model.name}', not of "
                                            f"'{model.name}'.")
            return data
        if (version is None) == (not alias):
            self.add_error("model_version", "Choose a ready version, or an alias (not both).")
            return data
        api = DeploymentCreateIn(data={"model": model.name, **self.api_data(("endpoint", *TARGET_FIELDS, *KNOBS))})
        if not api.is_valid():
            self.add_api_errors(api.errors)
            return data
        try:
            prepared = services.deployment_prepare(**api.validated_data)
        except ApplicationError as exc:
            self.add_service_error(exc)
            return data
        self.validated = dict(api.validated_data)
        data["model_version"] = prepared.model_version  # an alias names one: the row records it
        return data


class DeploymentChangeForm(DeploymentForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        changed = tuple(name for name in self.changed_data if name in (*TARGET_FIELDS, *KNOBS))
        api = DeploymentUpdateIn(data=self.api_data(changed))
        if not api.is_valid():
            self.add_api_errors(api.errors)
        self.validated = dict(api.validated_data) if api.is_valid() else {}
        if data.get("model_version") is None and not data.get("alias"):
            data["model_version"] = self.instance.model_version  # the select left empty: keep what serves
        return data


class DeployVersionForm(forms.ModelForm):
    """The "Deploy to an endpoint" action on a model version: the endpoint and a few knobs, with the model's
    defaults as the API has them (a knob the API is not sent keeps the model's default)."""

    class Meta:
        model = Deployment
        fields = ("endpoint", "replicas", "max_batch_size", "batch_timeout_ms")
