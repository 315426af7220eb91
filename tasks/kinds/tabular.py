"""The tabular kind: feature vectors, a class label each, an MLP; A9A- and CoverType-like tasks.

A concrete tabular task is its data and nothing else: it implements `load_arrays(paths)` (features,
labels and, when the dataset has one, its official test set) and sets `num_features`, `num_classes`
and `dataset_sizes` (`examples`, and `test` for an official test set). The split (stratified,
seeded by the `split_seed` option, val carved from training data), the standardisation (training
statistics only) and the model (an MLP with BatchNorm) are shared, as are the options
`tabular_options()` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from metricbench.bench.core.registry import Option
from metricbench.tasks.data.partition import standardize, stratified_sizes, stratified_split
from metricbench.tasks.data.splits import Splits, SplitSizes, TensorSplit
from metricbench.tasks.kinds.base import DataPaths
from metricbench.tasks.kinds.classification import ClassificationTask
from metricbench.tasks.models.small import MLP


@dataclass
class TabularArrays:
    """A tabular dataset: `features` (N, F) and `labels` (N,) with classes 0..C-1; `test_features` and
    `test_labels` when the dataset comes with an official test set (then only val is carved)."""

    features: np.ndarray
    labels: np.ndarray
    test_features: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def tabular_options(test_fraction: float, val_fraction: float, hidden: int, **extra: Option) -> dict[str, Option]:
    """The options every tabular task has (with this task's defaults), plus its own."""
    return {
        "split_seed": Option(int, 0, "seed of the fixed stratified split (not the run seed)"),
        "test_fraction": Option(
            float, test_fraction, "share of all examples held out as test (ignored with an official test set)"
        ),
        "val_fraction": Option(float, val_fraction, "share of the training examples used as val (metric observations)"),
        "hidden": Option(int, hidden, "width of the MLP's hidden layer (0: logistic regression)"),
        **extra,
    }


class TabularTask(ClassificationTask):
    """Hooks: `load_arrays(paths) -> TabularArrays`; class attributes `num_features`, `num_classes`,
    `dataset_sizes` ({"examples": N} and, with an official test set, "test")."""

    num_features: int = 0

    def load_arrays(self, paths: DataPaths) -> TabularArrays:
        raise NotImplementedError(f"task '{self.name}' must implement load_arrays(paths) -> TabularArrays")

    def load_splits(self, paths: DataPaths) -> Splits:
        data = self.load_arrays(paths)
        o: dict[str, Any] = self.options
        has_test = data.test_features is not None
        train, val, test = stratified_split(data.labels, o["test_fraction"], o["val_fraction"], o["split_seed"], has_test)
        x_test, y_test = (data.test_features, data.test_labels) if has_test else (data.features[test], data.labels[test])
        x_train, x_val, x_test = standardize(data.features[train], data.features[val], x_test)

        def split(x, y):
            return TensorSplit(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))

        return Splits(split(x_train, data.labels[train]), split(x_val, data.labels[val]), split(x_test, y_test))

    def split_sizes(self) -> SplitSizes | None:
        sizes, o = self.dataset_sizes, self.options
        if "examples" not in sizes:
            return None
        return SplitSizes(*stratified_sizes(sizes["examples"], o["test_fraction"], o["val_fraction"], sizes.get("test")))

    def build_model(self):
        hidden = self.options["hidden"]
        return MLP(self.num_features, (hidden,) if hidden else (), 1 if self.binary else self.num_classes)
