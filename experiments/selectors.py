from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from experiments.errors import ExperimentNotFound
from experiments.models import ACTIVE, Experiment, ExperimentStatus, Variant
from experiments.routing import Arm, CompiledExperiment


def experiment_list(*, status: str | None = None, endpoint: str | None = None) -> QuerySet[Experiment]:
    experiments = Experiment.objects.select_related("created_by").prefetch_related(
        Prefetch("variants", queryset=Variant.objects.order_by("shadow", "position", "pk"))
    )
    if status:
        experiments = experiments.filter(status=status)
    if endpoint:
        experiments = experiments.filter(endpoint=endpoint)
    return experiments


def experiment_get(pk: int) -> Experiment:
    try:
        return experiment_list().get(pk=pk)
    except Experiment.DoesNotExist:
        raise ExperimentNotFound(f"No experiment with id {pk}.") from None


def variants_of(experiment: Experiment) -> tuple[list[Variant], list[Variant]]:
    """(variants in order, the first being the control; shadows)."""
    everything = list(experiment.variants.all())
    return [v for v in everything if not v.shadow], [v for v in everything if v.shadow]


def experiments_using_deployment(endpoint: str) -> QuerySet[Experiment]:
    return Experiment.objects.filter(ACTIVE, variants__deployment=endpoint).distinct()


@dataclass(frozen=True)
class TableEntry:
    compiled: CompiledExperiment
    due: bool
    ends_at: datetime | None = None


def experiment_routing_table() -> dict[str, TableEntry]:
    """Active experiments by public endpoint, compiled for the hot path (two queries)."""
    now = timezone.now()
    table = {}
    for experiment in experiment_list().filter(ACTIVE):
        arms, shadows = variants_of(experiment)
        if not arms:
            continue
        compiled = CompiledExperiment(
            id=experiment.pk, endpoint=experiment.endpoint, salt=experiment.salt,
            arms=tuple(Arm(v.name, v.deployment, v.weight) for v in arms),
            shadows=tuple(Arm(v.name, v.deployment) for v in shadows),
            paused=experiment.status == ExperimentStatus.PAUSED, promoting_to=experiment.promoting_to,
            outcome=experiment.outcome,
        )
        due = experiment.ends_at is not None and experiment.ends_at <= now and not experiment.promoting_to
        table[experiment.endpoint] = TableEntry(compiled, due, experiment.ends_at)
    return table
