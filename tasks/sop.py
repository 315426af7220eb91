"""`sop`: Stanford Online Products retrieval (59,551 training images of 11,318 products; 60,502 test images of
11,316 other products), an ImageNet-style backbone with an L2-normalised embedding head, the paper's
retrieval task. Judged on Recall@1/10/100/1000 (each test image queries all the others) and MAP@R.

Data: `Stanford_Online_Products/` under `--data-dir` (`Ebay_train.txt`, `Ebay_test.txt` and the image
folders; `tasks.formats.sop` reads it), fetched by `metricbench data download sop`. `Ebay_test.txt` is the
test split; val (the metric observations) is a fixed, seeded 10% of the training products (ours),
class-disjoint from train like the test split. Images stream through DataLoader workers: training
images get a random-resized crop and a flip, evaluation a resize and centre crop, at `image_size`.

Model: torchvision's ResNet-50 (option `backbone`; ResNet-18 for small budgets) with its classifier
replaced by a linear embedding (512-d by default, ours), L2-normalised, starting from torchvision's
public ImageNet weights (`backbone_weights = "imagenet"`, the standard deep-metric-learning start) and
trained on train by the task's recipe. The surrogate is the retrieval kind's circle loss (Sun et al.
2020) on P x K batches (K = 4 images per product, drawn with replacement from products that have
fewer). Recipe and budget are ours.
"""

from __future__ import annotations

import numpy as np
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data import weights as weight_sources
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.partition import class_disjoint_counts, class_disjoint_split
from metricbench.tasks.data.resources import Resource
from metricbench.tasks.data.splits import Splits, SplitSizes, StreamConfig, StreamSplit, worker_count
from metricbench.tasks.data.weights import start_options
from metricbench.tasks.formats.images import ImageFiles, center_crop, random_resized_crop
from metricbench.tasks.formats.sop import ARCHIVE_MD5, FOLDER, TEST_INDEX, TRAIN_INDEX, URL, read_index, write_sop
from metricbench.tasks.kinds.retrieval import RetrievalTask
from metricbench.tasks.models.small import EmbeddingHead, Normalized

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DATA = DatasetFiles(
    name="Stanford Online Products",
    required=(f"{FOLDER}/{TRAIN_INDEX}", f"{FOLDER}/{TEST_INDEX}"),
    resources=(Resource(URL, "Stanford_Online_Products.zip", f"md5:{ARCHIVE_MD5}", extract_to="."),),
    source="https://cvgl.stanford.edu/projects/lifted_struct/",
    fixture=write_sop,
)
BACKBONES = {
    "resnet50": ("torchvision:ResNet50_Weights.IMAGENET1K_V1", 2048),
    "resnet18": ("torchvision:ResNet18_Weights.IMAGENET1K_V1", 512),
}


@register_task(
    "sop",
    "Stanford Online Products retrieval (11,318 / 11,316 class-disjoint products) from --data-dir, ResNet + L2 embedding",
    options={
        "split_seed": Option(int, 0, "seed of the val products carved from the training products (not the run seed)"),
        "val_fraction": Option(float, 0.1, "share of the training products used as val (ours)"),
        "backbone": Option(str, "resnet50", "torchvision backbone", tuple(BACKBONES)),
        "embedding_dim": Option(int, 512, "embedding size (ours)"),
        "image_size": Option(int, 224, "crop side in pixels"),
        **start_options(
            "model start: 'recipe' (train on train from the backbone) or a checkpoint file", backbone=True, streamed=True
        ),
    },
)
class SOPTask(RetrievalTask):
    # Ebay_train.txt: images and products; Ebay_test.txt: images
    dataset_sizes = {"train": 59_551, "train_classes": 11_318, "test": 60_502}
    metrics = ("recall@1", "recall@10", "recall@100", "recall@1000", "map@r")
    pretrain = TrainRecipe(steps=10_000, batch_size=128, optimizer="adam", lr=3e-5, weight_decay=1e-4)
    finetune = TrainRecipe(steps=500, batch_size=128, optimizer="adam", lr=3e-6, weight_decay=1e-4)
    budget = Budget(steps=500, queries=20)
    per_class = 4
    val_per_class = 4
    data = DATA
    weight_options = ("backbone_weights", "weights")
    eval_batch_size = 256

    def imagenet_weights(self) -> str:
        return BACKBONES[self.options["backbone"]][0]

    def load_splits(self, paths):
        hint = DATA.how_to_get(self.name, paths.data_dir)
        train_index, test_index = read_index(paths.data_dir, TRAIN_INDEX, hint), read_index(paths.data_dir, TEST_INDEX, hint)
        o = self.options
        # val: whole products out of train (class-disjoint, as test is); the split seed fixes which
        train, val, _ = class_disjoint_split(train_index.classes, o["val_fraction"], 0.0, o["split_seed"])
        size, workers = o["image_size"], worker_count(o["workers"])

        def split(index, rows, augment: bool):
            paths_, labels = [index.paths[i] for i in rows], index.classes[rows]
            config = StreamConfig(
                num_workers=workers,
                transform=random_resized_crop(size) if augment else None,
                eval_transform=center_crop(size),
                labels=torch.as_tensor(labels),
            )
            return StreamSplit(ImageFiles(paths_, labels), config)

        everything = np.arange(len(test_index.paths))
        return Splits(split(train_index, train, True), split(train_index, val, False), split(test_index, everything, False))

    def split_sizes(self):
        # val is whole products: its images are estimated from the mean images per training product
        sizes = self.dataset_sizes
        _, val_classes, _ = class_disjoint_counts(sizes["train_classes"], self.options["val_fraction"], 0.0)
        val = round(sizes["train"] * val_classes / sizes["train_classes"])
        return SplitSizes(sizes["train"] - val, val, sizes["test"], ("train", "val"))

    def build_model(self):
        import torchvision

        name = self.options["backbone"]
        backbone = getattr(torchvision.models, name)()
        start = self.weights_for("backbone_weights")
        if start != "none":
            weight_sources.load_into(backbone, start, f"a torchvision {name}")
        backbone.fc = torch.nn.Identity()
        return Normalized(EmbeddingHead(backbone, BACKBONES[name][1], self.options["embedding_dim"]), IMAGENET_MEAN, IMAGENET_STD)
