"""`glyphs-retrieval`: generated glyphs (300 classes of random stroke patterns), small CNN embedding.

Stands in for Stanford Online Products: many classes with few images, look-alike classes, and
test classes never seen in training (the split is class-disjoint: 180 train, 60 val, 60 test
classes by default). Images are 20 x 20 uint8 kept on the device; training batches are 16 classes
x 4 images, translated by up to 2 pixels on the device. Judged on Recall@1/2/4/8 and MAP@R.
"""

from __future__ import annotations

import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data.partition import class_disjoint_counts, class_disjoint_split
from metricbench.tasks.data.splits import Splits, SplitSizes, TensorSplit
from metricbench.tasks.data.transforms import random_crop
from metricbench.tasks.data.weights import PRETRAIN_STEPS
from metricbench.tasks.formats.glyphs import make_glyphs
from metricbench.tasks.kinds.retrieval import RetrievalTask
from metricbench.tasks.models.small import EmbeddingCNN


@register_task(
    "glyphs-retrieval",
    "generated glyphs (300 classes of stroke patterns, 20x20), class-disjoint retrieval, small CNN embedding",
    options={
        "data_seed": Option(int, 0, "seed of the generated glyphs and of the class-disjoint split (not the run seed)"),
        "classes": Option(int, 300, "classes generated in all"),
        "per_class": Option(int, 16, "images per class"),
        "size": Option(int, 20, "image side in pixels"),
        "val_fraction": Option(float, 0.2, "share of the classes used as val (metric observations)"),
        "test_fraction": Option(float, 0.2, "share of the classes held out as test"),
        "embedding_dim": Option(int, 64, "embedding size"),
        "pretrain_steps": PRETRAIN_STEPS,
    },
)
class GlyphsRetrievalTask(RetrievalTask):
    metrics = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r")
    pretrain = TrainRecipe(steps=300, batch_size=64, optimizer="adam", lr=3e-3)
    budget = Budget(steps=100, queries=10)
    per_class = 4
    val_per_class = 4
    margin = 0.4
    scale = 80.0

    def load_splits(self, paths):
        o = self.options
        images, labels = make_glyphs(o["classes"], o["per_class"], o["size"], seed=o["data_seed"])
        parts = class_disjoint_split(labels, o["val_fraction"], o["test_fraction"], split_seed=o["data_seed"])
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        train, val, test = (torch.as_tensor(idx) for idx in parts)
        return Splits(
            TensorSplit(images[train], labels[train], transform=random_crop(2)),
            TensorSplit(images[val], labels[val]),
            TensorSplit(images[test], labels[test]),
        )

    def split_sizes(self):
        o = self.options
        classes = class_disjoint_counts(o["classes"], o["val_fraction"], o["test_fraction"])
        return SplitSizes(*(n * o["per_class"] for n in classes))

    def build_model(self):
        return EmbeddingCNN(in_channels=1, embedding_dim=self.options["embedding_dim"])
