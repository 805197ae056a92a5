"""Deterministic assignment of subjects to variants. Pure: no Django, no I/O, no randomness.

A subject's point in [0, 1) is the sha256 of the experiment's salt and the subject id, so every
process, host and restart computes the same variant, and a client cannot pick one except by being
(or claiming to be) a subject that already maps to it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

WEIGHT_TOTAL = 100.0
# How stale a process's table of running experiments may be while it may be missing announcements (Redis
# down); promotion waits twice this long for every process to route by the new table.
TABLE_TTL_S = 1.0
WEIGHT_TOLERANCE = 1e-6
_SCALE = float(1 << 64)


def unit_point(salt: str, subject: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def choose(weights: tuple[float, ...], point: float) -> int:
    """Index of the arm whose cumulative range holds `point`; zero-weight arms are never chosen."""
    target, cumulative = point * sum(weights), 0.0
    for index, weight in enumerate(weights):
        cumulative += weight
        if target < cumulative:
            return index
    # Float rounding can leave target == sum: the last arm with traffic takes it.
    return max(index for index, weight in enumerate(weights) if weight > 0)


def weights_problem(weights: list[Any]) -> tuple[int | None, str] | None:
    """(index of the offending weight or None for the set, message), or None when the set is usable."""
    if not weights:
        return None, "at least one variant is required"
    for index, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return index, "must be a number"
        if not math.isfinite(weight):
            return index, f"must be a finite number, not {weight}"
        if weight < 0:
            return index, f"must not be negative (got {weight:g})"
    total = math.fsum(weights)
    if abs(total - WEIGHT_TOTAL) > WEIGHT_TOLERANCE:
        shown = ", ".join(f"{weight:g}" for weight in weights)
        return None, f"weights must sum to 100 (percent); [{shown}] sums to {total:g}"
    return None


@dataclass(frozen=True)
class Arm:
    name: str
    endpoint: str
    weight: float = 0.0


@dataclass(frozen=True)
class CompiledExperiment:
    """What a web process needs to route one endpoint's traffic, built from the database when experiments change."""

    id: int
    endpoint: str
    salt: str
    arms: tuple[Arm, ...]
    shadows: tuple[Arm, ...] = ()
    paused: bool = False
    promoting_to: str = ""
    outcome: str = "accuracy"

    @property
    def recording(self) -> bool:
        return not self.paused and not self.promoting_to

    def assign(self, subject: str) -> Arm:
        if self.promoting_to:
            # A shadow may win too: it has answered every request, only nobody saw its answers.
            return next((arm for arm in (*self.arms, *self.shadows) if arm.name == self.promoting_to), self.arms[0])
        if self.paused:
            return self.arms[0]
        return self.arms[choose(tuple(arm.weight for arm in self.arms), unit_point(self.salt, subject))]
