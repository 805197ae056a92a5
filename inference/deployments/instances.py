"""Model server instances: the writes each instance makes about itself, and the reads that sum them up.

Each model server writes only its own rows (its ModelServerInstance and its InstanceDeployment per deployment),
so two of them never overwrite each other. A deployment's status is derived from the rows of the live
instances (heartbeat within MODEL_SERVER_HEARTBEAT_TTL_S): ready when at least one serves it. The model
servers write that derived status into Deployment.status (the column other code reads), and every read shown
to people (API, admin) derives it again, so an instance that died without a word drops out within the TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inference.models import LIVE, Deployment, DeploymentStatus, InstanceDeployment, ModelServerInstance

# --- reads ----------------------------------------------------------------------------------------------


def live_since() -> datetime:
    return timezone.now() - timedelta(seconds=settings.MODEL_SERVER_HEARTBEAT_TTL_S)


def _live() -> Q:
    return Q(stopped_at__isnull=True, heartbeat_at__gte=live_since())


def instance_list() -> QuerySet[ModelServerInstance]:
    """Every instance ever seen, newest heartbeat first (the admin's list)."""
    return ModelServerInstance.objects.order_by("-heartbeat_at")


def instance_is_live(instance: ModelServerInstance) -> bool:
    return instance.stopped_at is None and instance.heartbeat_at >= live_since()


def instance_health() -> list[dict[str, Any]]:
    """Every model server instance not stopped, live or not, with what it serves (metrics, admin)."""
    now = timezone.now()
    result = []
    for instance in instance_list().filter(stopped_at__isnull=True).prefetch_related("served__deployment"):
        served = list(instance.served.all())
        result.append({
            "name": instance.name, "pool": instance.pool, "address": instance.address, "host": instance.host,
            "live": instance_is_live(instance), "heartbeat_at": instance.heartbeat_at,
            "heartbeat_age_s": round((now - instance.heartbeat_at).total_seconds(), 1),
            "memory_mb": instance.memory_mb, "started_at": instance.started_at,
            "loaded": sorted(row.deployment.endpoint for row in served if row.loaded),
            "ready": sorted(row.deployment.endpoint for row in served if row.ready),
        })
    return result


def live_pools() -> set[str]:
    return set(ModelServerInstance.objects.filter(_live()).values_list("pool", flat=True))


@dataclass(frozen=True)
class DeploymentInstances:
    """A deployment's state across instances, as the API and the admin show it."""

    status: str
    reason: str
    instances: list[dict[str, Any]]

    @property
    def ready(self) -> int:
        return sum(1 for row in self.instances if row["status"] == DeploymentStatus.READY)


def deployment_instances(deployments: Sequence[Deployment]) -> dict[int, DeploymentInstances]:
    """Per deployment id, its live instances and the status they add up to: two queries for any number."""
    rows = (InstanceDeployment.objects.filter(deployment__in=[d.pk for d in deployments])
            .filter(instance__stopped_at__isnull=True, instance__heartbeat_at__gte=live_since())
            .select_related("instance").order_by("instance__name"))
    by_deployment: dict[int, list[InstanceDeployment]] = {}
    for row in rows:
        by_deployment.setdefault(row.deployment_id, []).append(row)
    pools = live_pools()
    result = {}
    for deployment in deployments:
        mine = by_deployment.get(deployment.pk, [])
        status, reason = _summary(deployment, mine, deployment.pool in pools)
        result[deployment.pk] = DeploymentInstances(status, reason, [_row_view(row) for row in mine])
    return result


def _row_view(row: InstanceDeployment) -> dict[str, Any]:
    return {"name": row.instance.name, "pool": row.instance.pool, "status": row.status, "loaded": row.loaded,
            "heartbeat_at": row.instance.heartbeat_at, "memory_mb": row.memory_mb, "queue_depth": row.queue_depth}


def _summary(deployment: Deployment, rows: Iterable[InstanceDeployment], pool_alive: bool) -> tuple[str, str]:
    if not deployment.is_live:
        return deployment.status, deployment.status_reason
    summed = aggregate_status(rows, pool_alive=pool_alive, pool=deployment.pool, generation=deployment.generation)
    return summed if summed is not None else (deployment.status, deployment.status_reason)


def aggregate_status(rows: Iterable[InstanceDeployment], *, pool_alive: bool, pool: str,
                     generation: int) -> tuple[str, str] | None:
    """(status, reason) of a deployment from its live instances' rows; None when they say nothing yet."""
    rows = list(rows)
    ready = [row for row in rows if row.status == DeploymentStatus.READY]
    if ready:
        current = [row for row in ready if row.generation >= generation]
        # Rows of an older generation: the change (a new version, new knobs) has not reached any model server
        # yet. They still serve, but saying "ready" with no reason would tell a waiting client it is done.
        return DeploymentStatus.READY, current[0].reason if current else "rolling out a new generation"
    if not pool_alive:
        return DeploymentStatus.PENDING, f"no live model server in pool '{pool}'"
    if rows and all(row.status == DeploymentStatus.FAILED for row in rows):
        return DeploymentStatus.FAILED, rows[0].reason
    loading = [row for row in rows if row.status == DeploymentStatus.LOADING]
    if loading:
        return DeploymentStatus.LOADING, loading[0].reason
    return None


# --- writes (each model server, about itself) -----------------------------------------------------------


def instance_register(*, name: str, pool: str, address: str, host: str, pid: int) -> ModelServerInstance:
    """A model server starting under `name`: its row (re)made, what an earlier run of it reported forgotten."""
    now = timezone.now()
    with transaction.atomic():
        instance, _ = ModelServerInstance.objects.update_or_create(name=name, defaults={
            "pool": pool, "address": address, "host": host, "pid": pid, "started_at": now, "heartbeat_at": now,
            "stopped_at": None, "memory_mb": None})
        InstanceDeployment.objects.filter(instance=instance).delete()
    return instance


def instance_heartbeat(*, instance_id: int, memory_mb: float | None) -> None:
    ModelServerInstance.objects.filter(pk=instance_id).update(heartbeat_at=timezone.now(), memory_mb=memory_mb)


def instance_stop(*, instance_id: int) -> list[int]:
    """A model server stopping: off every deployment. Returns the deployments it served, to re-sum."""
    served = list(InstanceDeployment.objects.filter(instance_id=instance_id).values_list("deployment_id", flat=True))
    InstanceDeployment.objects.filter(instance_id=instance_id).delete()
    ModelServerInstance.objects.filter(pk=instance_id).update(stopped_at=timezone.now())
    return served


def instance_record_status(*, instance_id: int, deployment_id: int, generation: int, status: str,
                           reason: str) -> None:
    ready = status == DeploymentStatus.READY
    InstanceDeployment.objects.update_or_create(
        instance_id=instance_id, deployment_id=deployment_id,
        defaults={"generation": generation, "status": status, "reason": reason[:2000], "ready": ready,
                  "loaded": ready})


def instance_record_runtime(*, instance_id: int, deployment_id: int, runtime: dict[str, Any]) -> None:
    InstanceDeployment.objects.filter(instance_id=instance_id, deployment_id=deployment_id).update(
        runtime=runtime, loaded=bool(runtime.get("loaded")), memory_mb=runtime.get("memory_mb"),
        queue_depth=int(runtime.get("queue_depth") or 0))


def instance_forget(*, instance_id: int, keep: Iterable[int]) -> list[int]:
    """Drops this instance's rows for deployments it no longer holds (undeployed, moved to another pool)."""
    gone = InstanceDeployment.objects.filter(instance_id=instance_id).exclude(deployment_id__in=list(keep))
    ids = list(gone.values_list("deployment_id", flat=True))
    gone.delete()
    return ids


def deployment_sum_up(*, deployment_id: int) -> None:
    """Writes the status and runtime the live instances add up to into the deployment's own columns.

    Every instance may do this for a deployment it serves: they compute the same answer from the same rows,
    so they converge instead of overwriting each other's own reports. Only changes are written.
    """
    deployment = Deployment.objects.filter(LIVE, pk=deployment_id).first()
    if deployment is None:
        return
    summary = deployment_instances([deployment])[deployment.pk]
    rows = (InstanceDeployment.objects.filter(deployment_id=deployment_id, instance__in=
                                              ModelServerInstance.objects.filter(_live()))
            .select_related("instance").order_by("instance__name"))
    runtime = _summed_runtime(list(rows))
    changes: dict[str, Any] = {}
    if (summary.status, summary.reason) != (deployment.status, deployment.status_reason):
        changes.update(status=summary.status, status_reason=summary.reason[:2000], updated_at=timezone.now())
    if runtime is not None and runtime != deployment.runtime:
        changes["runtime"] = runtime
    if changes:
        Deployment.objects.filter(LIVE, pk=deployment_id).update(**changes)


def deployments_sum_up_orphaned() -> None:
    """Live deployments whose pool has no live instance: nobody else would mark them pending."""
    orphaned = Deployment.objects.filter(LIVE).exclude(pool__in=live_pools()).exclude(
        status=DeploymentStatus.PENDING, status_reason__startswith="no live model server").values_list("pk", flat=True)
    for deployment_id in orphaned:
        deployment_sum_up(deployment_id=deployment_id)


def _summed_runtime(rows: list[InstanceDeployment]) -> dict[str, Any] | None:
    """One instance's runtime as it reported it; several added up, with each replica naming its instance."""
    reports = [(row.instance.name, row.runtime) for row in rows if row.runtime]
    if not reports:
        return None
    if len(reports) == 1:
        return reports[0][1]
    first = reports[0][1]
    rates = [r.get("throughput_rps") for _, r in reports if r.get("throughput_rps") is not None]
    return {
        **first,
        "loaded": any(r.get("loaded") for _, r in reports),
        "replicas": [{**replica, "instance": name} for name, r in reports for replica in r.get("replicas") or []],
        "memory_mb": round(sum(r.get("memory_mb") or 0 for _, r in reports), 1),
        "queue_depth": sum(r.get("queue_depth") or 0 for _, r in reports),
        "throughput_rps": round(sum(rates), 2) if rates else None,
        "last_request_at": max((r.get("last_request_at") or 0 for _, r in reports), default=0) or None,
        "updated_at": max(r.get("updated_at") or 0 for _, r in reports),
        "instances": len(reports),
    }
