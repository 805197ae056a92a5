"""Per-feature drift between a reference sample and a current window (pure: lists in, numbers out).

Numeric columns: the population stability index over ten bins cut at the reference's deciles, and the
two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp). Categorical columns: PSI over the categories seen
in either sample, and the chi-square test of the 2 x k contingency table (scipy.stats.chi2_contingency).
PSI is the symmetric Kullback-Leibler divergence sum((p - q) ln(p / q)), computed with scipy.special.rel_entr;
an empty bin counts as EPSILON of its sample so the logarithm stays finite.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

EPSILON = 1e-4
PSI_BINS = 10
CHART_BINS = 20
MAX_CATEGORIES = 50


@dataclass
class FeatureDrift:
    name: str
    kind: str  # "numeric" | "categorical"
    test: str
    score: float  # PSI
    p_value: float
    drifted: bool = False
    histogram: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "test": self.test, "score": round(self.score, 6),
                "p_value": float(f"{self.p_value:.6g}"), "drifted": self.drifted, "histogram": self.histogram}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    p = _proportions(expected)
    q = _proportions(actual)
    return float(np.sum(special.rel_entr(p, q) + special.rel_entr(q, p)))


def _proportions(counts: np.ndarray) -> np.ndarray:
    shares = np.maximum(counts / max(counts.sum(), 1), EPSILON)
    return shares / shares.sum()


def numeric_drift(name: str, reference: list[float], current: list[float]) -> FeatureDrift:
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    bins = np.concatenate(([-np.inf], edges, [np.inf]))
    score = psi(np.histogram(ref, bins)[0].astype(float), np.histogram(cur, bins)[0].astype(float))
    p_value = float(stats.ks_2samp(ref, cur).pvalue)
    return FeatureDrift(name, "numeric", "ks", score, p_value, histogram=_numeric_chart(ref, cur))


def _numeric_chart(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    low, high = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, CHART_BINS + 1)
    share = lambda values: (np.histogram(values, edges)[0] / max(len(values), 1)).round(6).tolist()  # noqa: E731
    return {"edges": [float(f"{e:.6g}") for e in edges], "reference": share(ref), "current": share(cur)}


def categorical_drift(name: str, reference: list[Any], current: list[Any]) -> FeatureDrift:
    ref_counts, cur_counts = Counter(map(_category, reference)), Counter(map(_category, current))
    categories = [c for c, _ in (ref_counts + cur_counts).most_common()]
    if len(categories) > MAX_CATEGORIES:  # the long tail in one column, so the table stays readable
        kept = set(categories[: MAX_CATEGORIES - 1])
        ref_counts, cur_counts = _fold(ref_counts, kept), _fold(cur_counts, kept)
        categories = [*categories[: MAX_CATEGORIES - 1], "(other)"]
    table = np.array([[ref_counts[c] for c in categories], [cur_counts[c] for c in categories]], dtype=float)
    score = psi(table[0], table[1])
    p_value = 1.0 if len(categories) < 2 else float(stats.chi2_contingency(table).pvalue)
    chart = {"categories": categories, "reference": (table[0] / max(table[0].sum(), 1)).round(6).tolist(),
             "current": (table[1] / max(table[1].sum(), 1)).round(6).tolist()}
    return FeatureDrift(name, "categorical", "chi2", score, p_value, histogram=chart)


def _category(value: Any) -> str:
    return value if isinstance(value, str) else "(missing)" if value is None else repr(value)


def _fold(counts: Counter, kept: set[str]) -> Counter:
    folded: Counter = Counter()
    for category, count in counts.items():
        folded[category if category in kept else "(other)"] += count
    return folded


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def column_drift(name: str, kind: str, reference: list[Any], current: list[Any], *, psi_threshold: float,
                 p_threshold: float) -> FeatureDrift:
    """A column is numeric only when the signature says so and every value is a number (missing values are
    left out of a numeric test); anything else is compared as categories."""
    ref = [v for v in reference if v is not None]
    cur = [v for v in current if v is not None]
    numeric = kind == "numeric" and ref and cur and all(is_number(v) for v in (*ref, *cur))
    result = numeric_drift(name, ref, cur) if numeric else categorical_drift(name, reference, current)
    result.drifted = result.score > psi_threshold and result.p_value < p_threshold
    return result
