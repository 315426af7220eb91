"""Correlations the methods report as diagnostics (DAB's bridge against the true batch metric,
MetricOpt's value function against observed metrics). Both are 0 when either side is constant or
has fewer than two values, so a diagnostic never becomes NaN."""

from __future__ import annotations

import torch


def pearson(a, b) -> float:
    """Pearson correlation of two equal-length sequences (lists or tensors)."""
    x = torch.as_tensor(a, dtype=torch.float64).detach().cpu().reshape(-1)
    y = torch.as_tensor(b, dtype=torch.float64).detach().cpu().reshape(-1)
    if len(x) < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    den = float((x.square().sum() * y.square().sum()).sqrt())
    return float((x * y).sum()) / den if den > 0 else 0.0


def ranks(values) -> torch.Tensor:
    """Ranks from 0, ties sharing their mean rank (O(n log n))."""
    v = torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(-1)
    unique, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() + 1) / 2)[inverse]


def spearman(a, b) -> float:
    """Spearman rank correlation: Pearson's on the ranks."""
    return pearson(ranks(a), ranks(b))
