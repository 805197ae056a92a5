from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import ApplicationError
from experiments import services
from experiments.models import Experiment, ExperimentStatus, Variant
from experiments.results import experiment_results
from inference.models import LIVE, Deployment

STATUS_COLOURS = {"draft": "#757575", "running": "#2e7d32", "paused": "#f9a825", "stopped": "#9e9e9e"}
FIELDS = ("name", "description", "endpoint", "outcome", "higher_is_better", "duration_hours", "ends_at")
TRANSITIONS = {
    "start": services.experiment_start,
    "pause": services.experiment_pause,
    "stop": services.experiment_stop,
    "promote": services.experiment_promote,
}


def _deployment_choices() -> list[tuple[str, str]]:
    live = Deployment.objects.filter(LIVE).select_related("model", "model_version").order_by("endpoint")
    return [("", "---------")] + [
        (d.endpoint, f"{d.endpoint} ({d.model.name} v{d.model_version.version}, {d.status})") for d in live
    ]


class VariantForm(forms.ModelForm):
    deployment = forms.ChoiceField(choices=())

    class Meta:
        model = Variant
        fields = ("name", "deployment", "weight", "shadow")
        help_texts = {"weight": "percent; shadows take 0", "shadow": "gets a copy of the traffic, never answers"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = _deployment_choices()
        current = self.initial.get("deployment")
        if current and current not in dict(choices):
            choices.append((current, f"{current} (not live)"))
        self.fields["deployment"].choices = choices


class VariantFormSet(BaseInlineFormSet):
    """Checks the whole set through the same service as the API: weights, names, deployments."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [form.cleaned_data for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        self.arms = [{k: row[k] for k in ("name", "deployment", "weight")} for row in rows if not row.get("shadow")]
        self.copies = [{"name": row["name"], "deployment": row["deployment"]} for row in rows if row.get("shadow")]
        for row in rows:
            if row.get("shadow") and row.get("weight"):
                raise ValidationError(f"Shadow '{row['name']}' gets a copy of every request: give it weight 0.")
        try:
            services.experiment_check_arms(variants=self.arms, shadows=self.copies)
        except ApplicationError as exc:
            raise ValidationError(exc.message) from None


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    formset = VariantFormSet
    extra = 2
    fields = ("name", "deployment", "weight", "shadow")
    verbose_name_plural = "variants (the first is the control; shadows get a copy and never answer)"


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "endpoint", "status_badge", "arms", "outcome", "started_at", "ends_at", "results_link")
    list_filter = ("status", "outcome")
    search_fields = ("name", "endpoint", "description")
    readonly_fields = ("status", "started_at", "stopped_at", "stop_reason", "promoting_to", "winner", "created_by",
                       "created_at", "updated_at", "results_link")
    fieldsets = (
        (None, {"fields": ("name", "description", "endpoint")}),
        ("Outcome and schedule", {"fields": ("outcome", "higher_is_better", "duration_hours", "ends_at")}),
        ("State", {"fields": ("status", "results_link", "started_at", "stopped_at", "stop_reason", "promoting_to",
                              "winner", "created_by", "created_at", "updated_at")}),
    )
    inlines = [VariantInline]
    actions = ["start", "pause", "stop", "promote"]
    change_form_template = "admin/experiments/experiment/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("variants")

    def has_change_permission(self, request, obj=None):
        # A stopped experiment is a record: shown read-only, with its frozen results.
        if obj is not None and obj.status == ExperimentStatus.STOPPED:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == ExperimentStatus.STOPPED:
            return (*FIELDS, *self.readonly_fields)
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return ("endpoint", "outcome", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colour = STATUS_COLOURS.get(obj.status, "#757575")
        label = f"{obj.status} → {obj.promoting_to}" if obj.promoting_to else obj.status
        return format_html('<b style="color:{}" title="{}">{}</b>', colour, obj.stop_reason, label)

    @admin.display(description="variants")
    def arms(self, obj):
        return ", ".join(f"{v.name} {v.weight:g}%" if not v.shadow else f"{v.name} (shadow)"
                         for v in obj.variants.all())

    @admin.display(description="results")
    def results_link(self, obj):
        if obj is None or obj.pk is None or obj.status == ExperimentStatus.DRAFT:
            return "-"
        return format_html('<a href="{}">results and charts</a>',
                           reverse("admin:experiments_experiment_results", args=[obj.pk]))

    # --- saving through the services ---------------------------------------------------------

    def save_model(self, request, obj, form, change):
        pass  # written together with its variants in save_related, by the services

    def save_related(self, request, form, formsets, change):
        variant_set = next(f for f in formsets if isinstance(f, VariantFormSet))
        data = {f: form.cleaned_data[f] for f in FIELDS if f in form.cleaned_data}
        try:
            if change:
                experiment = services.experiment_update(
                    experiment=Experiment.objects.get(pk=form.instance.pk),
                    data={**data, "variants": variant_set.arms, "shadows": variant_set.copies})
            else:
                experiment = services.experiment_create(**data, variants=variant_set.arms,
                                                        shadows=variant_set.copies, created_by=request.user)
        except ApplicationError as exc:  # only a race since the form was checked: say so, save nothing
            self.message_user(request, exc.message, messages.ERROR)
            form.instance.pk = None if not change else form.instance.pk
            return
        form.instance.pk = experiment.pk

    def construct_change_message(self, request, form, formsets, add=False):
        # The inline formsets were never saved by the admin (the service replaced the variants).
        message = construct_change_message(form, [], add)
        return [*message, {"changed": {"name": "variant", "object": "all variants", "fields": []}}]

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            super().log_addition(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    # --- actions --------------------------------------------------------------------------------

    def _apply(self, request, queryset, name: str) -> None:
        for experiment in queryset:
            try:
                TRANSITIONS[name](experiment=Experiment.objects.prefetch_related("variants").get(pk=experiment.pk))
            except ApplicationError as exc:
                self.message_user(request, f"{experiment.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment.name}: {name} done.")

    @admin.action(description="Start or resume")
    def start(self, request, queryset):
        self._apply(request, queryset, "start")

    @admin.action(description="Pause (the control answers everyone)")
    def pause(self, request, queryset):
        self._apply(request, queryset, "pause")

    @admin.action(description="Stop")
    def stop(self, request, queryset):
        self._apply(request, queryset, "stop")

    @admin.action(description="Promote the significant winner")
    def promote(self, request, queryset):
        self._apply(request, queryset, "promote")

    # --- results page and buttons ---------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/results/", view(self.results_view), name="experiments_experiment_results"),
            path("<int:pk>/transition/<str:name>/", view(self.transition_view),
                 name="experiments_experiment_transition"),
            *super().get_urls(),
        ]

    def results_view(self, request, pk: int):
        experiment = get_object_or_404(Experiment.objects.prefetch_related("variants"), pk=pk)
        if not self.has_view_permission(request, experiment):
            return HttpResponseRedirect(reverse("admin:index"))
        try:
            results, error = experiment_results(experiment), None
        except ApplicationError as exc:
            results, error = None, exc.message
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "experiment": experiment,
                   "results": results, "error": error, "table": results_table(results) if results else None,
                   "title": f"Results: {experiment.name}",
                   "original": experiment, "can_act": self.has_change_permission(request, experiment)}
        return TemplateResponse(request, "admin/experiments/experiment/results.html", context)

    def transition_view(self, request, pk: int, name: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = get_object_or_404(Experiment.objects.prefetch_related("variants"), pk=pk)
        if name not in TRANSITIONS or not self.has_change_permission(request, experiment):
            return HttpResponseRedirect(reverse("admin:index"))
        options = {"variant": request.POST["variant"]} if name == "promote" and request.POST.get("variant") else {}
        try:
            TRANSITIONS[name](experiment=experiment, **options)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"{experiment.name}: {name} done.")
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:experiments_experiment_change", args=[pk])
        return HttpResponseRedirect(back)


# --- the results table, formatted for people ----------------------------------------------------

def _number(value, rate: bool, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    sign = "+" if signed else ""
    return f"{value * 100:{sign}.2f}%" if rate else f"{value:{sign}.4g}"


def _interval(ci, rate: bool, *, signed: bool = False) -> str:
    return f"[{_number(ci[0], rate, signed=signed)}, {_number(ci[1], rate, signed=signed)}]" if ci else ""


def _row(variant: dict, rate: bool) -> dict:
    latency, outcome, comparison = variant["latency_ms"], variant["outcome"], variant["vs_control"] or {}
    cache = f"{variant['cache_hits']}" + (f" ({variant['cache_hit_rate'] * 100:.0f}%)"
                                          if variant["cache_hit_rate"] is not None else "")
    return {
        "name": variant["name"], "control": variant["control"], "shadow": variant["shadow"],
        "deployment": variant["deployment"], "weight": "shadow" if variant["shadow"] else f"{variant['weight']:g}%",
        "requests": variant["requests"], "errors": f"{variant['errors']} ({variant['error_rate'] * 100:.1f}%)",
        "latency": " / ".join("-" if latency[q] is None else f"{latency[q]:.1f}" for q in ("p50", "p95", "p99")),
        "cache": cache,
        "outcome": f"{_number(outcome['value'], rate)} {_interval(outcome['ci'], rate)} n={outcome['n']}",
        "difference": f"{_number(comparison.get('difference'), rate, signed=True)} "
                      f"{_interval(comparison.get('difference_ci'), rate, signed=True)}" if comparison else "",
        "p_value": "-" if comparison.get("p_value") is None else f"{comparison['p_value']:.4f}",
        "verdict": "control" if variant["control"] else comparison.get("verdict", ""),
    }


def results_table(results: dict) -> dict:
    rate = results["outcome_kind"] == "rate"
    first: dict[str, Any] = next(iter(results["variants"]), {})
    recommended, control = results["recommended_variant"], first.get("name")
    tone = "" if not recommended else "bad" if recommended == control else "good"
    test = "two-proportion z-test" if rate else "Welch's t-test"
    method = (f"{test}, 95% intervals ({'Wilson' if rate else 't'} per variant); each treatment is compared with the "
              f"control at alpha {results['alpha']:.3g} (Bonferroni over the comparisons).")
    return {"rows": [_row(variant, rate) for variant in results["variants"]], "tone": tone, "method": method}
