"""Reads for the overview page: each live deployment with its figures, and what failed lately."""

from dataclasses import dataclass, field
from typing import Any

from inference import metrics
from inference.deployments import selectors as deployment_selectors
from inference.models import BatchJob, Deployment, DeploymentStatus, InferenceJob, JobStatus
from registry.models import ModelVersion, VersionStatus

RECENT = 10


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: Deployment
    summary: dict[str, Any]  # inference.metrics.summary: requests, errors, error_rate, latency_ms...
    replicas_ready: int | None  # None until the model server reports
    throughput_rps: float | None
    restarts: int
    last_error: str

    @property
    def healthy(self) -> bool:
        return self.deployment.status == DeploymentStatus.READY and not self.restarts


@dataclass(frozen=True)
class Failures:
    versions: list[ModelVersion] = field(default_factory=list)
    jobs: list[InferenceJob] = field(default_factory=list)
    batch_jobs: list[BatchJob] = field(default_factory=list)
    # Deployments that failed, or whose workers crashed and were restarted.
    crash_loops: list[DeploymentHealth] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.versions or self.jobs or self.batch_jobs or self.crash_loops)


def deployment_health_list() -> list[DeploymentHealth]:
    figures = metrics.collect()
    return [_health(deployment, metrics.summary(deployment.endpoint, figures))
            for deployment in deployment_selectors.deployment_list()]


def _health(deployment: Deployment, summary: dict[str, Any]) -> DeploymentHealth:
    replicas = deployment_selectors.serving_replicas(deployment)
    current = replicas or []
    errors = [str(r["last_error"]) for r in current if r.get("last_error")]
    return DeploymentHealth(
        deployment=deployment, summary=summary,
        replicas_ready=None if replicas is None else sum(r.get("state") == "ready" for r in current),
        throughput_rps=(deployment.runtime or {}).get("throughput_rps"),
        restarts=sum(int(r.get("restarts") or 0) for r in current),
        last_error=errors[-1] if errors else "",
    )


def recent_failures(health: list[DeploymentHealth], limit: int = RECENT) -> Failures:
    return Failures(
        versions=list(ModelVersion.objects.filter(status=VersionStatus.FAILED).select_related("model")
                      .order_by("-updated_at")[:limit]),
        jobs=list(InferenceJob.objects.filter(status=JobStatus.FAILED).order_by("-finished_at", "-created_at")[:limit]),
        batch_jobs=list(BatchJob.objects.filter(status=JobStatus.FAILED)
                        .order_by("-finished_at", "-created_at")[:limit]),
        crash_loops=[item for item in health
                     if item.deployment.status == DeploymentStatus.FAILED or item.restarts][:limit],
    )
