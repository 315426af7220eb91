"""The tables' statistics against SciPy on known data, and Holm's correction on a worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from metricbench.bench.report.stats import holm, interval, paired_t, wilcoxon
from scipy import stats as scipy_stats

SAMPLES = [
    [0.012, -0.004, 0.020, 0.007, 0.015],
    [1.0, 2.0, 4.0],
    [-0.3, -0.1, -0.25, -0.4, -0.05, -0.2, 0.02],
    list(np.random.default_rng(0).normal(0.1, 1.0, size=20)),
]


@pytest.mark.parametrize("values", SAMPLES)
def test_interval_matches_scipy(values):
    got = interval(values)
    mean, sem = np.mean(values), scipy_stats.sem(values)
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert got.n == len(values)
    assert got.mean == pytest.approx(mean, rel=1e-12)
    assert got.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (got.low, got.high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))


def test_interval_of_one_value_has_no_spread():
    got = interval([0.5])
    assert got.mean == 0.5 and math.isnan(got.std) and math.isnan(got.low)


@pytest.mark.parametrize("values", SAMPLES)
def test_paired_t_matches_scipy(values):
    after = np.asarray(values) + 0.3
    expected = scipy_stats.ttest_rel(after, np.full(len(values), 0.3) + 0.0).pvalue
    assert paired_t(values) == pytest.approx(expected, rel=1e-9)
    assert paired_t(values) == pytest.approx(scipy_stats.ttest_1samp(values, 0.0).pvalue, rel=1e-9)


def test_paired_t_edge_cases():
    assert math.isnan(paired_t([0.1]))
    assert paired_t([0.0, 0.0, 0.0]) == 1.0
    assert paired_t([0.2, 0.2, 0.2]) == 0.0


@pytest.mark.parametrize(
    "values",
    [
        [0.5, 1.2, -0.3, 2.0, 0.8, 1.5, -0.1, 0.9],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [-1.0, -2.0, -3.0, 4.0, -5.0, -6.0],
        list(np.random.default_rng(1).normal(0.2, 1.0, size=15)),
    ],
)
def test_wilcoxon_matches_scipy_exact(values):
    expected = scipy_stats.wilcoxon(values, method="exact").pvalue
    assert wilcoxon(values) == pytest.approx(expected, rel=1e-12)


def test_wilcoxon_with_ties_matches_the_permutation_distribution():
    values = [1.0, 1.0, -2.0, 3.0, 3.0, 3.0, 0.5]
    perm = scipy_stats.wilcoxon(values, method=scipy_stats.PermutationMethod(n_resamples=np.inf)).pvalue
    assert wilcoxon(values) == pytest.approx(perm, rel=1e-12)


def test_wilcoxon_drops_zero_differences_and_cannot_reach_5_percent_below_6_seeds():
    assert wilcoxon([0.0, 1.0, 2.0, 3.0]) == pytest.approx(scipy_stats.wilcoxon([1.0, 2.0, 3.0], method="exact").pvalue)
    assert wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 2**5)  # every seed better: still 0.0625
    assert wilcoxon([0.0, 0.0]) == 1.0 and math.isnan(wilcoxon([]))


def test_holm_on_a_worked_example():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, math.nan, 0.04])  # a missing comparison is not counted
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_holm_agrees_with_the_bonferroni_bound_and_its_definition():
    rng = np.random.default_rng(2)
    p = list(rng.uniform(0, 0.2, size=9))
    adjusted = holm(p)
    order = np.argsort(p)
    expected = np.maximum.accumulate([min(1.0, (len(p) - k) * p[i]) for k, i in enumerate(order)])
    assert [adjusted[i] for i in order] == pytest.approx(list(expected))
    assert all(a <= min(1.0, len(p) * v) + 1e-15 for a, v in zip(adjusted, p, strict=True))
