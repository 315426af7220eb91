"""The statistics behind the tables: intervals over seeds, paired tests against a baseline, Holm's correction.

Each seed has its own pretrained checkpoint and every method of a seed starts from it, so methods are
compared seed by seed (paired): the test sees the per-seed differences, never two means whose spread
between checkpoints could hide or fake an effect.

- `interval(values)`: mean, sample std and the two-sided 95% Student-t confidence interval of the mean.
- `paired_t(differences)`: the two-sided p-value of the paired t-test (mean difference 0).
- `wilcoxon(differences)`: the two-sided p-value of Wilcoxon's signed-rank test, exact (the
  permutation distribution of the signed ranks, ties given their mean rank, zero differences dropped
  as Wilcoxon did). With n non-zero differences its smallest possible p-value is 2 / 2^n, so below 6
  seeds it can never reach 0.05.
- `holm(p_values)`: Holm's step-down adjusted p-values, which control the family-wise error rate
  across all of a table's comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95
TESTS = ("t", "wilcoxon")


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    std: float  # sample std (n - 1); nan below 2 values
    low: float  # the 95% confidence interval of the mean; nan below 2 values
    high: float


def interval(values, level: float = LEVEL) -> Interval:
    from scipy.special import stdtrit

    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stdtrit(n - 1, 0.5 + level / 2)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


def paired_t(differences) -> float:
    """Two-sided p-value that the mean difference is 0; nan below 2 differences. All differences equal:
    1 when they are 0 (no effect), else 0 (the statistic is infinite)."""
    from scipy.special import stdtr

    d = [float(v) for v in differences]
    n = len(d)
    if n < 2:
        return math.nan
    if max(d) == min(d):  # no spread (rounding would make the variance a tiny positive number)
        return 1.0 if d[0] == 0.0 else 0.0
    mean = math.fsum(d) / n
    var = math.fsum((v - mean) ** 2 for v in d) / (n - 1)
    t = mean / math.sqrt(var / n)
    return float(min(1.0, 2.0 * stdtr(n - 1, -abs(t))))


def _mean_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon(differences) -> float:
    """Two-sided exact p-value of the signed-rank test; nan with no differences, 1 when all are 0."""
    d = [float(v) for v in differences if v == v]
    if not d:
        return math.nan
    nonzero = [v for v in d if v != 0.0]
    if not nonzero:
        return 1.0
    ranks = _mean_ranks([abs(v) for v in nonzero])
    doubled = [round(2 * r) for r in ranks]  # mean ranks are halves: count in halves to stay in integers
    observed = sum(r for r, v in zip(doubled, nonzero, strict=True) if v > 0)
    total = sum(doubled)
    counts = [0] * (total + 1)  # counts[s]: sign assignments whose positive ranks sum to s
    counts[0] = 1
    for r in doubled:
        for s in range(total, r - 1, -1):
            counts[s] += counts[s - r]
    assignments = 2 ** len(doubled)
    below = sum(counts[: observed + 1]) / assignments
    above = sum(counts[observed:]) / assignments
    return min(1.0, 2.0 * min(below, above))


def p_value(differences, test: str = "t") -> float:
    if test == "t":
        return paired_t(differences)
    if test == "wilcoxon":
        return wilcoxon(differences)
    raise ValueError(f"unknown test {test!r}; one of {', '.join(TESTS)}")


def holm(p_values) -> list[float]:
    """Holm-adjusted p-values in the given order; a nan stays nan and is not counted as a comparison."""
    p = [float(v) for v in p_values]
    present = sorted((v, i) for i, v in enumerate(p) if v == v)
    m = len(present)
    adjusted = [math.nan] * len(p)
    running = 0.0
    for rank, (value, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[i] = running
    return adjusted
