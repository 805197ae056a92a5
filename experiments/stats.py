"""Outcome statistics from sufficient statistics (n, sum, sum of squares): intervals, tests, verdicts.

Rates: Wilson score interval per variant (honest near 0 and 1 and for small n), a pooled two-proportion
z-test and an unpooled Wald interval for the difference. Means: t interval per variant, Welch's t-test
(unequal variances) and the Welch-Satterthwaite interval for the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats as sp

ALPHA = 0.05
# Below this many outcomes per variant an interval says little and a test's p-value is unstable.
MIN_OUTCOMES = 30
# The normal approximation of a rate test wants a handful of successes and failures in each arm.
MIN_RATE_EVENTS = 5


@dataclass(frozen=True)
class Sample:
    n: float
    total: float
    total_sq: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        if self.n < 2:
            return None
        # Sum-of-squares form; clamped because rounding can push a zero variance slightly negative.
        return max((self.total_sq - self.total * self.total / self.n) / (self.n - 1), 0.0)


def _z(confidence: float) -> float:
    return float(sp.norm.ppf(1 - (1 - confidence) / 2))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float] | None:
    if n <= 0:
        return None
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(sample: Sample, confidence: float = 0.95) -> tuple[float, float] | None:
    mean, variance = sample.mean, sample.variance
    if mean is None or variance is None:  # fewer than two outcomes
        return None
    half = float(sp.t.ppf(1 - (1 - confidence) / 2, sample.n - 1)) * math.sqrt(variance / sample.n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Comparison:
    test: str
    difference: float
    interval: tuple[float, float] | None
    statistic: float | None
    p_value: float | None


def two_proportion_test(control: Sample, treatment: Sample, confidence: float = 0.95) -> Comparison:
    p1, p2 = control.total / control.n, treatment.total / treatment.n
    pooled = (control.total + treatment.total) / (control.n + treatment.n)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    difference = p2 - p1
    if pooled_se == 0:
        # Both arms all-success or all-failure: identical by every measure we have.
        statistic, p_value = 0.0, 1.0
    else:
        statistic = difference / pooled_se
        p_value = float(2 * sp.norm.sf(abs(statistic)))
    se = math.sqrt(p1 * (1 - p1) / control.n + p2 * (1 - p2) / treatment.n)
    half = _z(confidence) * se
    return Comparison("two-proportion z-test", difference, (difference - half, difference + half), statistic,
                      p_value)


def welch_test(control: Sample, treatment: Sample, confidence: float = 0.95) -> Comparison:
    mean1, var1, mean2, var2 = control.mean, control.variance, treatment.mean, treatment.variance
    if mean1 is None or var1 is None or mean2 is None or var2 is None:  # compare() checks enough_data first
        raise ValueError("Welch's t-test needs at least two outcomes in each variant")
    v1, v2 = var1 / control.n, var2 / treatment.n
    difference = mean2 - mean1
    if v1 + v2 == 0:
        same = difference == 0
        return Comparison("Welch's t-test", difference, (difference, difference), None if same else math.inf,
                          1.0 if same else 0.0)
    # Counts are whole numbers (results.py passes ints); scipy's stubs want them as int.
    result = sp.ttest_ind_from_stats(mean2, math.sqrt(var2), int(treatment.n),
                                     mean1, math.sqrt(var1), int(control.n), equal_var=False)
    df = (v1 + v2) ** 2 / (v1 * v1 / (control.n - 1) + v2 * v2 / (treatment.n - 1))
    half = float(sp.t.ppf(1 - (1 - confidence) / 2, df)) * math.sqrt(v1 + v2)
    return Comparison("Welch's t-test", difference, (difference - half, difference + half),
                      _finite(float(result.statistic)), _finite(float(result.pvalue)))


def enough_data(control: Sample, treatment: Sample, *, rate: bool) -> bool:
    if min(control.n, treatment.n) < MIN_OUTCOMES:
        return False
    if not rate:
        return control.variance is not None and treatment.variance is not None
    return all(min(s.total, s.n - s.total) >= MIN_RATE_EVENTS for s in (control, treatment)) or \
        (control.total + treatment.total) in (0, control.n + treatment.n)


def compare(control: Sample, treatment: Sample, *, rate: bool, higher_is_better: bool = True,
            alpha: float = ALPHA) -> dict[str, Any]:
    """The comparison of one treatment with the control, with a verdict a product team can act on."""
    if not enough_data(control, treatment, rate=rate):
        return {"test": "two-proportion z-test" if rate else "Welch's t-test", "difference": None,
                "difference_ci": None, "relative_difference": None, "statistic": None, "p_value": None,
                "significant": False, "verdict": "not enough data yet",
                "needed_per_variant": MIN_OUTCOMES}
    result = (two_proportion_test if rate else welch_test)(control, treatment, 1 - alpha)
    significant = result.p_value is not None and result.p_value < alpha
    better = (result.difference > 0) == higher_is_better
    if not significant:
        verdict = "no significant difference"
    else:
        verdict = f"treatment {'better' if better else 'worse'}, significant"
    base = control.mean
    return {
        "test": result.test, "difference": result.difference,
        "difference_ci": list(result.interval) if result.interval else None,
        "relative_difference": result.difference / base if base else None,
        "statistic": result.statistic, "p_value": result.p_value, "significant": significant,
        "better": better if significant else None, "verdict": verdict,
    }


def adjusted_alpha(treatments: int, alpha: float = ALPHA) -> float:
    """Bonferroni: with several treatments each is tested at alpha/k, so the chance of any false
    'significant' stays at alpha."""
    return alpha / max(1, treatments)
