"""`digits`: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes), small ResNet.

Stands in for cifar10 / imagenet: an image classifier judged on misclassification rate and AUCPR.
Images are kept as uint8 (grey levels 0-16) on the device; the model scales them.
"""

from __future__ import annotations

import numpy as np
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data.partition import stratified_sizes, stratified_split
from metricbench.tasks.data.splits import Splits, SplitSizes, TensorSplit
from metricbench.tasks.kinds.classification import ClassificationTask
from metricbench.tasks.models.small import SmallResNet
from sklearn.datasets import load_digits


@register_task(
    "digits",
    "scikit-learn handwritten digits (1,797 real 8x8 images, 10 classes), small ResNet-style CNN",
    options={
        "split_seed": Option(int, 0, "seed of the fixed stratified split (not the run seed)"),
        "test_fraction": Option(float, 0.25, "share of all images held out as test"),
        "val_fraction": Option(float, 0.2, "share of the remaining images used as val (metric observations)"),
        "width": Option(int, 16, "channels of the first stage (the second has twice as many)"),
    },
)
class DigitsTask(ClassificationTask):
    num_classes = 10
    dataset_sizes = {"examples": 1_797}
    metrics = ("misclassification", "aucpr")
    metric_options = {"aucpr": {"average": "macro"}}
    pretrain = TrainRecipe(steps=150, batch_size=64, optimizer="adam", lr=3e-3)
    budget = Budget(steps=100, queries=10)

    def load_splits(self, paths):
        digits = load_digits()
        images = torch.as_tensor(digits.images.reshape(-1, 1, 8, 8).astype(np.uint8))
        labels = torch.as_tensor(digits.target, dtype=torch.int64)
        o = self.options
        parts = stratified_split(digits.target, o["test_fraction"], o["val_fraction"], o["split_seed"])
        return Splits(*(TensorSplit(images[idx], labels[idx]) for idx in map(torch.as_tensor, parts)))

    def split_sizes(self):
        o = self.options
        return SplitSizes(*stratified_sizes(self.dataset_sizes["examples"], o["test_fraction"], o["val_fraction"]))

    def build_model(self):
        w = self.options["width"]
        return SmallResNet(in_channels=1, num_classes=self.num_classes, widths=(w, 2 * w), input_scale=1 / 16)
