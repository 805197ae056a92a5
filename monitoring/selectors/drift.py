from core.errors import NotFound
from inference.models import LIVE, Deployment
from monitoring.errors import DriftNotComputed
from monitoring.models import DriftReport, ReferenceSample
from monitoring.selectors.logs import endpoint_check
from registry.models import ModelVersion


def drift_report_get(endpoint: str, *, version: int | None = None) -> DriftReport:
    """The latest report of the endpoint for `version`, by default the version it serves now."""
    endpoint_check(endpoint)
    reports = DriftReport.objects.filter(endpoint=endpoint).select_related("model_version")
    if version is not None:
        reports = reports.filter(model_version__version=version)
    elif live := Deployment.objects.filter(LIVE, endpoint=endpoint).first():
        reports = reports.filter(model_version_id=live.model_version_id)
    report = reports.first()
    if report is None:
        raise DriftNotComputed(f"No drift computed yet for '{endpoint}'; POST .../drift/compute, or wait for the "
                               "scheduler.")
    return report


def drift_report_latest(endpoint: str) -> DriftReport | None:
    """The newest report of the endpoint, whatever version it was computed for (the admin's page)."""
    return DriftReport.objects.filter(endpoint=endpoint).select_related("model_version").first()


def reference_get(model_version: ModelVersion) -> ReferenceSample:
    sample = ReferenceSample.objects.filter(model_version=model_version).select_related("model_version__model").first()
    if sample is None:
        raise NotFound(f"Version {model_version.version} of '{model_version.model.name}' has no drift reference yet.")
    return sample
