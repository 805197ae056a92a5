"""The statistics against textbook values and scipy's own tests on raw samples."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from experiments.stats import (
    Sample,
    adjusted_alpha,
    compare,
    mean_interval,
    two_proportion_test,
    welch_test,
    wilson_interval,
)


def sample_of(values) -> Sample:
    values = np.asarray(values, dtype=float)
    return Sample(len(values), float(values.sum()), float((values * values).sum()))


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(81, 263)  # Newcombe (1998), example with p = 0.308
    assert low == pytest.approx(0.2553, abs=5e-4)
    assert high == pytest.approx(0.3662, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 0) is None


def test_two_proportion_z_test_matches_the_pooled_formula():
    result = two_proportion_test(Sample(1000, 700, 700), Sample(1000, 750, 750))
    pooled = 1450 / 2000
    z = 0.05 / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert result.statistic == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * sp.norm.sf(z))
    assert result.difference == pytest.approx(0.05)
    assert result.interval[0] < 0.05 < result.interval[1]


def test_welch_matches_scipy_on_the_raw_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 80), rng.normal(11, 5, 60)
    result = welch_test(sample_of(a), sample_of(b))
    expected = sp.ttest_ind(b, a, equal_var=False)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    low, high = result.interval
    scipy_ci = expected.confidence_interval(0.95)
    assert (low, high) == (pytest.approx(scipy_ci.low), pytest.approx(scipy_ci.high))


def test_mean_interval_is_the_t_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    low, high = mean_interval(sample_of(values))
    half = sp.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert (low, high) == (pytest.approx(3 - half), pytest.approx(3 + half))


def test_small_samples_say_not_enough_data_yet():
    verdict = compare(Sample(10, 9, 9), Sample(10, 1, 1), rate=True)
    assert verdict["verdict"] == "not enough data yet"
    assert verdict["p_value"] is None and not verdict["significant"]


def test_direction_follows_higher_is_better():
    control, treatment = Sample(2000, 1000, 1000), Sample(2000, 1200, 1200)
    assert compare(control, treatment, rate=True)["verdict"] == "treatment better, significant"
    assert compare(control, treatment, rate=True, higher_is_better=False)["verdict"] == \
        "treatment worse, significant"
    assert compare(control, Sample(2000, 1010, 1010), rate=True)["verdict"] == "no significant difference"


def test_identical_constant_outcomes_are_no_difference():
    result = compare(Sample(100, 100, 100), Sample(100, 100, 100), rate=True)
    assert result["verdict"] == "no significant difference"
    assert result["p_value"] == 1.0


def test_bonferroni_divides_alpha_by_the_comparisons():
    assert adjusted_alpha(1) == 0.05
    assert adjusted_alpha(4) == pytest.approx(0.0125)
