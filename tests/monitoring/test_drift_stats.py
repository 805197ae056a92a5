"""The drift statistics against scipy's own tests and the PSI formula written out."""

import math

import numpy as np
from scipy import stats

from monitoring.drift_stats import categorical_drift, column_drift, numeric_drift, psi

THRESHOLDS = {"psi_threshold": 0.2, "p_threshold": 0.01}


def test_psi_is_the_symmetric_kl_divergence_of_the_bin_shares():
    expected, actual = np.array([50.0, 30.0, 20.0]), np.array([20.0, 30.0, 50.0])
    p, q = expected / 100, actual / 100
    assert math.isclose(psi(expected, actual), float(np.sum((p - q) * np.log(p / q))), rel_tol=1e-9)
    assert psi(expected, expected) == 0.0


def test_an_empty_bin_keeps_psi_finite():
    assert math.isfinite(psi(np.array([10.0, 0.0]), np.array([0.0, 10.0])))


def test_samples_of_one_distribution_do_not_drift_and_a_shifted_one_does():
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 1000).tolist()
    same = column_drift("x", "numeric", reference, rng.normal(0, 1, 1000).tolist(), **THRESHOLDS)
    shifted = column_drift("x", "numeric", reference, rng.normal(1.0, 1, 1000).tolist(), **THRESHOLDS)
    assert (same.drifted, shifted.drifted) == (False, True)
    assert same.score < 0.1 < 0.2 < shifted.score
    assert shifted.p_value < 1e-10 and shifted.test == "ks"


def test_the_numeric_p_value_is_scipys_kolmogorov_smirnov():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0.2, 1, 300)
    assert numeric_drift("x", a.tolist(), b.tolist()).p_value == stats.ks_2samp(a, b).pvalue


def test_categories_are_compared_with_a_chi_square_test_and_charted_as_shares():
    reference = ["fr"] * 60 + ["de"] * 40
    current = ["fr"] * 20 + ["de"] * 40 + ["es"] * 40
    result = categorical_drift("country", reference, current)
    table = np.array([[60, 40, 0], [20, 40, 40]])
    assert result.p_value == stats.chi2_contingency(table).pvalue
    assert result.histogram["categories"] == ["fr", "de", "es"]
    assert result.histogram["reference"] == [0.6, 0.4, 0.0]
    assert result.histogram["current"] == [0.2, 0.4, 0.4]
    assert column_drift("country", "categorical", reference, current, **THRESHOLDS).drifted


def test_a_numeric_column_holding_strings_is_compared_as_categories():
    result = column_drift("plan", "numeric", ["a", "b"] * 50, ["a"] * 100, **THRESHOLDS)
    assert (result.kind, result.test, result.drifted) == ("categorical", "chi2", True)


def test_missing_values_are_left_out_of_a_numeric_test():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 500).tolist()
    current = [None] * 100 + rng.normal(0, 1, 500).tolist()
    result = column_drift("x", "numeric", reference, current, **THRESHOLDS)
    assert (result.kind, result.drifted) == ("numeric", False)
