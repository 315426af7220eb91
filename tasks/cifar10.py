"""`cifar10`: CIFAR-10 (50,000 training / 10,000 test 32x32 images, 10 classes) with ResNet-32, the paper's
image-classification task. Judged on misclassification rate and AUCPR (macro one-vs-rest), two targets
on one checkpoint.

Data: the standard python batches under `--data-dir` (`cifar-10-batches-py/`, see `tasks.formats.cifar`),
fetched by `metricbench data download cifar10`. The official test batch is the test split; val (the
metric observations) is carved from the training batches: a stratified 10% (5,000 images), fixed by
`split_seed`, never by the run seed. All images stay on the device as uint8 tensors; training batches
are augmented there (4-pixel pad-and-crop and a horizontal flip, He et al.'s augmentation).

Pretraining follows He et al. (2016) for CIFAR: SGD with momentum 0.9, batch 128, weight decay 1e-4,
learning rate 0.1, 64,000 iterations; their step decay (x0.1 at 32k and 48k) is replaced by a cosine
decay (ours: the recipe type this harness has). The finetuning budget is ours (the paper does not give one).
"""

from __future__ import annotations

import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.partition import stratified_sizes, stratified_split
from metricbench.tasks.data.resources import Resource
from metricbench.tasks.data.splits import Splits, SplitSizes, TensorSplit
from metricbench.tasks.data.transforms import compose, random_crop, random_flip_lr
from metricbench.tasks.data.weights import start_options
from metricbench.tasks.formats.cifar import ARCHIVE_MD5, FILES, FOLDER, URL, read_cifar10, write_cifar10
from metricbench.tasks.kinds.classification import ClassificationTask

DATA = DatasetFiles(
    name="CIFAR-10 (python version)",
    required=tuple(f"{FOLDER}/{name}" for name in FILES),
    resources=(Resource(URL, "cifar-10-python.tar.gz", f"md5:{ARCHIVE_MD5}", extract_to="."),),
    source="https://www.cs.toronto.edu/~kriz/cifar.html",
    fixture=write_cifar10,
)


@register_task(
    "cifar10",
    "CIFAR-10 (50k/10k 32x32 images, 10 classes) from --data-dir, ResNet-32 (He et al. 2016)",
    options={
        "split_seed": Option(int, 0, "seed of the stratified val split carved from the training batches (not the run seed)"),
        "val_fraction": Option(float, 0.1, "share of the training images used as val (ours: 5,000 of 50,000)"),
        "depth": Option(
            int,
            32,
            "ResNet depth 6n+2 (32: the paper's ResNet-32)",
            check=lambda d: d >= 8 and (d - 2) % 6 == 0,
            requirement="6n+2 with n >= 1",
        ),
        **start_options("starting weights: 'recipe' (He et al.'s training, cached), or a checkpoint file"),
    },
)
class Cifar10Task(ClassificationTask):
    num_classes = 10
    dataset_sizes = {"train": 50_000, "test": 10_000}  # the five training batches, the test batch
    metrics = ("misclassification", "aucpr")
    metric_options = {"aucpr": {"average": "macro"}}
    pretrain = TrainRecipe(steps=64_000, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    finetune = TrainRecipe(steps=2_000, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4)
    budget = Budget(steps=2_000, queries=50)
    data = DATA
    weight_options = ("weights",)
    eval_batch_size = 1000

    def load_splits(self, paths):
        arrays = read_cifar10(paths.data_dir, DATA.how_to_get(self.name, paths.data_dir))
        train, val, _ = stratified_split(
            arrays.train_labels, 0.0, self.options["val_fraction"], self.options["split_seed"], has_test=True
        )
        images, labels = torch.from_numpy(arrays.train_images), torch.from_numpy(arrays.train_labels)
        augment = compose([random_crop(4), random_flip_lr()])
        return Splits(
            TensorSplit(images[train], labels[train], transform=augment),
            TensorSplit(images[val], labels[val]),
            TensorSplit(torch.from_numpy(arrays.test_images), torch.from_numpy(arrays.test_labels)),
        )

    def split_sizes(self):
        sizes = self.dataset_sizes
        return SplitSizes(*stratified_sizes(sizes["train"], 0.0, self.options["val_fraction"], official_test=sizes["test"]))

    def build_model(self):
        from metricbench.tasks.models.paper import CifarResNet

        return CifarResNet(self.options["depth"], self.num_classes)
