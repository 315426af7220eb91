"""Black-box evaluation metrics, registered by name with their direction ("lower" or "higher").

`compute(name, predictions, targets, **options) -> float`, `direction(name)`, `is_better(name, a, b)`,
`METRICS.names()`. Inputs are torch tensors (CPU or CUDA) or NumPy arrays; bad input raises
`MetricError` naming the metric and the problem. One module per kind of prediction:
`classification`, `retrieval`, `detection`.
"""

from metricbench.tasks.metrics.core import HIGHER, LOWER, METRICS, MetricError, compute, direction, is_better, register_metric

__all__ = ["HIGHER", "LOWER", "METRICS", "MetricError", "compute", "direction", "is_better", "register_metric"]
