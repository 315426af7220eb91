"""`voc2007`: PASCAL VOC2007 detection (5,011 trainval / 4,952 test images, 20 classes) with torchvision's
Faster R-CNN, the paper's detection task. Judged on mAP@0.5 computed as py-faster-rcnn's `voc_eval`
(11-point, +1 pixel boxes: the convention of the published VOC2007 numbers) and COCO-style mAP.

Data: `VOCdevkit/VOC2007/` under `--data-dir` (JPEGImages, Annotations with `difficult`, ImageSets/Main;
`tasks.formats.voc` reads it), fetched by `metricbench data download voc2007` (the trainval and test archives
unpack into the same folder). `test.txt` is the test split; val (the metric observations) is a fixed,
seeded 10% of `trainval.txt` (ours), the rest is train. Images stream through DataLoader
workers; training images are flipped left-right with probability 1/2 (boxes with them), the usual
Faster R-CNN augmentation, and resized by the detector itself (shorter side 600, longer at most 1000,
as py-faster-rcnn; ours for torchvision, whose default is 800/1333).

Models (`model`): `fasterrcnn_resnet50_fpn` (default) or `fasterrcnn_mobilenet_v3_large_fpn` for small
budgets, built with 21 classes (20 + background). Starting weights default to the standard recipe:
torchvision's public ImageNet weights for the backbone (`backbone_weights = "imagenet"`, BatchNorm
frozen, the first layers not trained, as torchvision's detection references), then the task's
pretraining recipe on train; or a VOC-trained detector given as `weights = PATH`. Recipes and the
finetuning budget are ours.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import DataError, UsageError
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data import weights as weight_sources
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.resources import Resource
from metricbench.tasks.data.splits import Splits, SplitSizes, StreamConfig, StreamSplit, list_collate, worker_count
from metricbench.tasks.data.weights import start_options
from metricbench.tasks.formats.shapes import SHAPE_CLASSES, render_image
from metricbench.tasks.formats.voc import VOC_CLASSES, VOCDetection, VOCFormatError, write_voc
from metricbench.tasks.kinds.detection import DetectionTask

ROOT = "VOCdevkit/VOC2007"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007"


def write_voc_fixture(data_dir: str | Path, trainval: int = 24, test: int = 12, image_size: int = 96, seed: int = 0) -> Path:
    """A tiny PASCAL VOC2007 under `data_dir/VOCdevkit/VOC2007`: generated shapes on textures (see
    `tasks.formats.shapes`) labelled with the first VOC class names, with `difficult` flags, image sets
    train, val, trainval and test, in exactly the devkit's layout. It lives here, not in `tasks.formats.voc`,
    because the generator writes through `tasks.formats.voc` (the other way round would be an import circle)."""
    names = dict(zip(SHAPE_CLASSES, VOC_CLASSES, strict=False))
    ids = [f"{n:06d}" for n in range(1, trainval + test + 1)]

    def samples():
        for number, image_id in enumerate(ids):
            image, objects = render_image(np.random.default_rng((seed, number)), image_size)
            yield image_id, image, [replace(obj, name=names[obj.name]) for obj in objects]

    half = trainval // 2
    image_sets = {"train": ids[:half], "val": ids[half:trainval], "trainval": ids[:trainval], "test": ids[trainval:]}
    return write_voc(Path(data_dir) / "VOCdevkit" / "VOC2007", samples(), image_sets)


DATA = DatasetFiles(
    name="PASCAL VOC2007",
    required=(
        f"{ROOT}/ImageSets/Main/trainval.txt",
        f"{ROOT}/ImageSets/Main/test.txt",
        f"{ROOT}/Annotations",
        f"{ROOT}/JPEGImages",
    ),
    resources=(
        Resource(
            f"{VOC_URL}/VOCtrainval_06-Nov-2007.tar",
            "VOCtrainval_06-Nov-2007.tar",
            "md5:c52e279531787c972589f7e41ab4ae64",
            extract_to=".",
        ),
        Resource(
            f"{VOC_URL}/VOCtest_06-Nov-2007.tar",
            "VOCtest_06-Nov-2007.tar",
            "md5:b6e924de25625d8de591ea690078ad9f",
            extract_to=".",
        ),
    ),
    source="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
    fixture=write_voc_fixture,
)
MODELS = {
    # model -> (torchvision backbone builder, its public ImageNet weights)
    "fasterrcnn_resnet50_fpn": ("resnet50", "torchvision:ResNet50_Weights.IMAGENET1K_V1"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("mobilenet_v3_large", "torchvision:MobileNet_V3_Large_Weights.IMAGENET1K_V1"),
}


def flip_left_right(image: torch.Tensor, target: dict, generator: torch.Generator):
    """Training augmentation: mirror the image and its boxes with probability 1/2."""
    if torch.rand(1, generator=generator).item() >= 0.5:
        return image, target
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


@register_task(
    "voc2007",
    "PASCAL VOC2007 detection (5,011 trainval / 4,952 test, 20 classes) from --data-dir, torchvision Faster R-CNN",
    options={
        "split_seed": Option(int, 0, "seed of the val images carved from trainval (not the run seed)"),
        "val_fraction": Option(float, 0.1, "share of trainval used as val (metric observations; ours: 501 of 5,011 images)"),
        "model": Option(str, "fasterrcnn_resnet50_fpn", "detector", tuple(MODELS)),
        "min_size": Option(int, 600, "shorter image side the detector resizes to (py-faster-rcnn: 600)"),
        "max_size": Option(int, 1000, "longest image side after resizing (py-faster-rcnn: 1000)"),
        **start_options(
            "detector start: 'recipe' (train on train from the backbone) or a VOC-trained checkpoint",
            backbone=True,
            streamed=True,
        ),
    },
)
class VOC2007Task(DetectionTask):
    num_classes = len(VOC_CLASSES)
    dataset_sizes = {"trainval": 5_011, "test": 4_952}  # ImageSets/Main/trainval.txt, test.txt
    metrics = ("voc-map", "coco-map")
    metric_options = {"voc-map": {"interpolation": "11point", "protocol": "py-faster-rcnn"}}
    # ours, on the scale of torchvision's VOC-style finetuning: SGD 0.01 (for batch 8), cosine, ~12 epochs of 4.5k images
    pretrain = TrainRecipe(steps=7_000, batch_size=8, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4)
    finetune = TrainRecipe(steps=500, batch_size=8, optimizer="sgd", lr=0.001, momentum=0.9, weight_decay=1e-4)
    budget = Budget(steps=500, queries=20)
    data = DATA
    weight_options = ("backbone_weights", "weights")
    eval_batch_size = 8

    def imagenet_weights(self) -> str:
        return MODELS[self.options["model"]][1]

    def split_sizes(self):
        sizes = self.dataset_sizes
        n_val = round(self.options["val_fraction"] * sizes["trainval"])
        return SplitSizes(sizes["trainval"] - n_val, n_val, sizes["test"])

    def load_splits(self, paths):
        root = paths.data_dir / ROOT
        try:
            trainval, test = VOCDetection(root, "trainval"), VOCDetection(root, "test")
        except (FileNotFoundError, VOCFormatError) as error:
            raise DataError(f"{error}; fix the file or {DATA.how_to_get(self.name, paths.data_dir)}") from None
        n_val = round(self.options["val_fraction"] * len(trainval))
        if not 0 < n_val < len(trainval):
            raise UsageError(
                f"task 'voc2007': val_fraction {self.options['val_fraction']} of {len(trainval)} trainval images "
                "leaves no val or no train"
            )
        order = torch.randperm(len(trainval), generator=torch.Generator().manual_seed(self.options["split_seed"]))
        workers = worker_count(self.options["workers"])
        full = StreamSplit(trainval, StreamConfig(num_workers=workers, collate=list_collate, transform=flip_left_right))
        plain = StreamConfig(num_workers=workers, collate=list_collate)
        return Splits(
            full.subset(order[n_val:].sort().values),
            StreamSplit(trainval, plain).subset(order[:n_val].sort().values),
            StreamSplit(test, plain),
        )

    def build_model(self):
        from torchvision.models import detection, mobilenet_v3_large, resnet50
        from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
        from torchvision.ops import FrozenBatchNorm2d

        o = self.options
        start = self.weights_for("backbone_weights")
        pretrained = start != "none"
        # as torchvision's detection builders: a pretrained backbone keeps its BatchNorm statistics frozen
        # and its first layers untrained; a random one trains everything
        norm = FrozenBatchNorm2d if pretrained else torch.nn.BatchNorm2d
        trainable = 3 if pretrained else 5  # ResNet stages (of 5); MobileNet's blocks: 3 of 6 when pretrained
        if o["model"] == "fasterrcnn_resnet50_fpn":
            backbone = resnet50(norm_layer=norm)
            if pretrained:
                weight_sources.load_into(backbone, start, "a torchvision ResNet-50")
            features = _resnet_fpn_extractor(backbone, trainable)
            return detection.FasterRCNN(
                features, num_classes=self.num_classes + 1, min_size=o["min_size"], max_size=o["max_size"]
            )
        backbone = mobilenet_v3_large(norm_layer=norm)
        if pretrained:
            weight_sources.load_into(backbone, start, "a torchvision MobileNetV3-Large")
        features = _mobilenet_extractor(backbone, True, 3 if pretrained else 6)
        anchors = ((32, 64, 128, 256, 512),) * 3
        return detection.FasterRCNN(
            features,
            num_classes=self.num_classes + 1,
            rpn_anchor_generator=detection.anchor_utils.AnchorGenerator(anchors, ((0.5, 1.0, 2.0),) * 3),
            min_size=o["min_size"],
            max_size=o["max_size"],
            rpn_score_thresh=0.05,
        )
