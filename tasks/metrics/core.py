"""The metric registry: names, directions, options, and the one error type metrics raise."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from metricbench.bench.core import seal
from metricbench.bench.core.registry import Option, Registry

LOWER, HIGHER = "lower", "higher"

# the built-in metric modules register themselves when a metric is first looked up
METRICS = Registry(
    "metric",
    builtin_modules=(
        "metricbench.tasks.metrics.classification",
        "metricbench.tasks.metrics.retrieval",
        "metricbench.tasks.metrics.detection",
        "metricbench.tasks.metrics.coco",
    ),
)


class MetricError(ValueError):
    """A metric cannot be computed on the given input."""


def register_metric(name: str, direction: str, description: str, options: dict[str, Option] | None = None):
    """Register `fn(scores, targets, **options) -> float` as metric `name` with its direction."""
    if direction not in (LOWER, HIGHER):
        raise ValueError(f"metric '{name}': direction must be '{LOWER}' or '{HIGHER}'")

    def decorate(fn):
        fn.direction = direction
        return METRICS.register(name, description, options)(fn)

    return decorate


def direction(name: str) -> str:
    return METRICS.entry(name).factory.direction


def compute(name: str, scores: Any, targets: Any, **options: Any) -> float:
    """Score `scores` against `targets` with metric `name`."""
    seal.check(name)
    entry = METRICS.entry(name)
    return float(entry.factory(scores, targets, **entry.resolve_options("metric", options)))


def is_better(name: str, a: float, b: float) -> bool:
    """Whether value `a` of metric `name` is strictly better than `b`."""
    return a < b if direction(name) == LOWER else a > b


def as_tensor(value: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A detached tensor from a tensor or a NumPy array (NumPy input is copied, never aliased)."""
    tensor = torch.as_tensor(value.copy() if isinstance(value, np.ndarray) else value)
    tensor = tensor.detach()
    return tensor if dtype is None else tensor.to(dtype)
