"""`imagenet`: ImageNet-1k (ILSVRC2012: 1,281,167 training / 50,000 validation images, 1,000 classes) with
NASNet-A, the paper's large-scale classification task. Judged on top-1 error (`misclassification`) and
top-5 error (`topk-error`, k = 5).

Data: the `ImageFolder` layout under `--data-dir` (`imagenet/train/<wnid>/`, `imagenet/val/<wnid>/`; see
`tasks.formats.imagenet`). ImageNet has no public download, so `metricbench data download imagenet` only
says where to get it. The official validation set is the test split (as in every ImageNet paper);
val (the metric observations) is a fixed, seeded 10 images per class carved from train (ours:
10,000 images). Images stream through DataLoader workers (random-resized crop and flip for training,
resize and centre crop for evaluation, at `image_size`).

Models (`model`): `nasnet-a-mobile` (Zoph et al. 2018, "4 @ 1056", 5.3M parameters, 224 px, 74.0% top-1:
the model the paper's ~75% refers to; assembled from timm's NASNet cells in `tasks.models.paper`) or
`nasnet-a-large` (timm's `nasnetalarge`, 88.9M parameters, 331 px, 82.7% top-1). Both take inputs
normalised with mean = std = 0.5, as the published NASNet weights expect.

Starting weights are required (`weights`): a checkpoint file, or for `nasnet-a-large` the public
`timm:nasnetalarge.tf_in1k`; pretraining NASNet from scratch inside a cell is not a default (it takes
hundreds of GPU-days), though `weights = "recipe"` runs the task's (ours) recipe. Budget is ours.
"""

from __future__ import annotations

import numpy as np
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import DataError, UsageError
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.splits import Splits, SplitSizes, StreamConfig, StreamSplit, worker_count
from metricbench.tasks.data.weights import start_options
from metricbench.tasks.formats.imagenet import FOLDER, MANUAL, list_image_folder, write_imagenet
from metricbench.tasks.formats.images import ImageFiles, center_crop, random_resized_crop
from metricbench.tasks.kinds.classification import ClassificationTask
from metricbench.tasks.models.small import Normalized

DATA = DatasetFiles(
    name="ImageNet-1k (ILSVRC2012)",
    required=(f"{FOLDER}/train", f"{FOLDER}/val"),
    manual=MANUAL,
    source="https://image-net.org/",
    fixture=write_imagenet,
)
NASNET_MEAN = NASNET_STD = (0.5, 0.5, 0.5)
MODELS = {"nasnet-a-mobile": 224, "nasnet-a-large": 331}  # model -> its published input size
NO_WEIGHTS = ""


@register_task(
    "imagenet",
    "ImageNet-1k (ILSVRC2012, ImageFolder layout) from --data-dir, NASNet-A Mobile or Large; needs starting weights",
    options={
        "split_seed": Option(int, 0, "seed of the val images carved from train (not the run seed)"),
        "val_per_class": Option(
            int, 10, "training images per class used as val, at most a tenth of the class (ours: 10,000 in all)"
        ),
        "model": Option(str, "nasnet-a-mobile", "NASNet-A variant", tuple(MODELS)),
        "image_size": Option(int, 0, "crop side in pixels (0: the model's own, 224 for Mobile, 331 for Large)"),
        **start_options(
            "starting weights (required): a checkpoint file, 'timm:nasnetalarge.tf_in1k', or 'recipe'", NO_WEIGHTS, streamed=True
        ),
    },
)
class ImageNetTask(ClassificationTask):
    num_classes = 1000
    # ILSVRC2012: training images, validation images, classes, and the smallest class's training images
    dataset_sizes = {"train": 1_281_167, "test": 50_000, "classes": 1_000, "smallest_class": 732}
    metrics = ("misclassification", "topk-error")
    metric_options = {"topk-error": {"k": 5}}
    # only with weights = "recipe" (ours; not a default): SGD with a cosine decay over ~50 epochs at batch 256
    pretrain = TrainRecipe(steps=250_000, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=4e-5)
    finetune = TrainRecipe(steps=500, batch_size=64, optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=4e-5)
    budget = Budget(steps=500, queries=20)
    data = DATA
    weight_options = ("weights",)
    eval_batch_size = 128

    def check_data(self, paths):
        if self.options["weights"] == NO_WEIGHTS:
            raise UsageError(
                "task 'imagenet' starts from given weights: set task_options.imagenet.weights (or --task-option "
                "imagenet.weights=...) to a checkpoint file, or to 'timm:nasnetalarge.tf_in1k' with model = 'nasnet-a-large'"
            )
        super().check_data(paths)

    def load_splits(self, paths):
        train_index = list_image_folder(paths.data_dir, "train")
        test_index = list_image_folder(paths.data_dir, "val", classes=train_index.classes)
        if len(train_index.classes) > self.num_classes:
            raise DataError(
                f"{paths.data_dir / FOLDER / 'train'}: {len(train_index.classes)} class folders, "
                f"ImageNet-1k has {self.num_classes}"
            )
        # fewer classes (a subset, or a fixture) are numbered by sorted folder name among themselves: the model
        # keeps its 1,000 outputs, so published 1,000-class weights only line up on the full set
        rng = np.random.default_rng(self.options["split_seed"])
        per_class = [np.flatnonzero(train_index.labels == c) for c in range(len(train_index.classes))]
        # val_per_class images of each class, at most a tenth of it (at least one), so train keeps most of every class
        val_rows = np.concatenate(
            [rng.permutation(rows)[: min(self.options["val_per_class"], max(1, len(rows) // 10))] for rows in per_class]
        )
        is_val = np.zeros(len(train_index.labels), dtype=bool)
        is_val[val_rows] = True
        size = self.options["image_size"] or MODELS[self.options["model"]]
        workers = worker_count(self.options["workers"])

        def split(index, rows, augment: bool):
            labels = index.labels[rows]
            config = StreamConfig(
                num_workers=workers,
                transform=random_resized_crop(size) if augment else None,
                eval_transform=center_crop(size),
                labels=torch.as_tensor(labels),
            )
            return StreamSplit(ImageFiles([index.paths[i] for i in rows], labels), config)

        return Splits(
            split(train_index, np.flatnonzero(~is_val), True),
            split(train_index, np.flatnonzero(is_val), False),
            split(test_index, np.arange(len(test_index.labels)), False),
        )

    def split_sizes(self):
        sizes, wanted = self.dataset_sizes, self.options["val_per_class"]
        # each class gives min(val_per_class, a tenth of it (at least 1)) to val: the same number from every
        # class when even the smallest class has enough, else an estimate from the mean class size
        exact = wanted <= max(1, sizes["smallest_class"] // 10)
        typical = sizes["smallest_class"] if exact else sizes["train"] // sizes["classes"]
        val = sizes["classes"] * min(wanted, max(1, typical // 10))
        return SplitSizes(sizes["train"] - val, val, sizes["test"], () if exact else ("train", "val"))

    def build_model(self):
        from metricbench.tasks.models.paper import nasnet_a_large, nasnet_a_mobile

        build = nasnet_a_mobile if self.options["model"] == "nasnet-a-mobile" else nasnet_a_large
        return Normalized(build(num_classes=self.num_classes), NASNET_MEAN, NASNET_STD)
