# Which deployments the model server keeps loaded: a pure function of what it is told, so every rule
# is unit-tested without processes or clocks.
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadCandidate:
    """One deployment as the server loop sees it on a tick.

    `loaded` means the supervisor has it in its desired set (loading or ready). `wanted_at` is the
    time of the wake request that loads, or loaded, this deployment: it counts as use, so a woken
    deployment is not unloaded before its first request arrives. The caller clears it when it unloads
    the deployment, so an unloaded deployment with `wanted_at` set is a pending wake.
    """

    deployment_id: int
    scale_to_zero: bool
    idle_ttl_s: float
    last_request_at: float | None
    wanted_at: float | None
    loaded: bool


def plan_loaded(deployments: Sequence[LoadCandidate], *, max_loaded: int, now: float) -> set[int]:
    """The ids to keep or make loaded; the caller unloads every other one."""
    if max_loaded < 0:
        raise ValueError("max_loaded must not be negative")
    # Pinned deployments are never evicted, even past the cap: an operator who pins more than the
    # cap allows asked for that memory explicitly, and unloading one would fail its traffic.
    pinned = {c.deployment_id for c in deployments if not c.scale_to_zero}
    slots = max(0, max_loaded - len(pinned))
    active = [c for c in deployments if c.scale_to_zero and not _idle(c, now)]
    warm = sorted((c for c in active if c.loaded), key=_last_used, reverse=True)
    # Oldest wake first, so a steady stream of new wakes cannot starve an earlier one.
    wakes = sorted((c for c in active if not c.loaded and c.wanted_at is not None), key=_last_used)
    # A wake takes a free slot, else the least recently used warm one's; a deployment woken on this
    # tick is never evicted for a later wake, which would load and unload it in a loop.
    woken = wakes[:slots]
    keep = warm[: slots - len(woken)]
    return pinned | _ids(woken) | _ids(keep)


def _last_used(candidate: LoadCandidate) -> float:
    times = [t for t in (candidate.last_request_at, candidate.wanted_at) if t is not None]
    return max(times, default=-math.inf)


def _idle(candidate: LoadCandidate, now: float) -> bool:
    # A wake older than the TTL has lapsed too: loading it would only unload it on the next tick.
    return now - _last_used(candidate) > candidate.idle_ttl_s


def _ids(candidates: Iterable[LoadCandidate]) -> set[int]:
    return {c.deployment_id for c in candidates}
