"""`shapes-detection`: generated images of coloured shapes on textured backgrounds, written to disk in
the exact PASCAL VOC2007 layout on first use and read back by the VOC loader the paper's `voc2007`
task uses; a tiny torchvision Faster R-CNN. Judged on VOC07 mAP (IoU 0.5, 11-point) and COCO mAP.

The dataset is generated once per set of options into the harness's dataset cache
(`CACHE/datasets/shapes-voc-<hash>/`, atomically), then streamed through `DataLoader` workers
(option `storage = "stream"`), or decoded once into memory (`storage = "memory"`).
"""

from __future__ import annotations

import hashlib
import json

from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.data.splits import ListSplit, Splits, SplitSizes, StreamConfig, StreamSplit, list_collate
from metricbench.tasks.data.weights import PRETRAIN_STEPS
from metricbench.tasks.formats.shapes import GENERATOR_VERSION, SHAPE_CLASSES, generate_shapes_voc
from metricbench.tasks.formats.voc import VOCDetection
from metricbench.tasks.kinds.detection import DetectionTask
from metricbench.tasks.models.detectors import tiny_faster_rcnn


@register_task(
    "shapes-detection",
    "generated shapes on textures in VOC2007 layout (3 classes, 96x96), tiny Faster R-CNN",
    options={
        "data_seed": Option(int, 0, "seed of the generated images (not the run seed)"),
        "train_images": Option(int, 240, "images in the train image set"),
        "val_images": Option(int, 80, "images in the val image set (metric observations)"),
        "test_images": Option(int, 80, "images in the test image set"),
        "image_size": Option(int, 96, "image side in pixels"),
        "width": Option(int, 16, "channels of the detector backbone's first stage"),
        "pretrain_steps": PRETRAIN_STEPS,
        "storage": Option(
            str, "stream", "read images through DataLoader workers, or decode them once into memory", ("stream", "memory")
        ),
        "workers": Option(int, 1, "DataLoader worker processes when streaming (0: read in the main process)"),
    },
)
class ShapesDetectionTask(DetectionTask):
    num_classes = len(SHAPE_CLASSES)
    metrics = ("voc-map", "coco-map")
    metric_options = {"voc-map": {"interpolation": "11point"}}
    # a constant rate: cosine decay at this length lowered it too early (mAP 0.22-0.43 against 0.44-0.52)
    pretrain = TrainRecipe(steps=400, batch_size=8, optimizer="adam", lr=2e-3, schedule="constant")
    budget = Budget(steps=40, queries=10)

    def dataset_root(self, paths):
        o = self.options
        generation = {k: o[k] for k in ("data_seed", "train_images", "val_images", "test_images", "image_size")}
        generation["generator_version"] = GENERATOR_VERSION  # a changed generator writes a new folder
        digest = hashlib.sha256(json.dumps(generation, sort_keys=True).encode()).hexdigest()[:12]
        return generate_shapes_voc(
            paths.generated_dir / f"shapes-voc-{digest}",
            n_train=o["train_images"],
            n_val=o["val_images"],
            n_test=o["test_images"],
            image_size=o["image_size"],
            seed=o["data_seed"],
        )

    def load_splits(self, paths):
        root = self.dataset_root(paths)

        def split(image_set):
            dataset = VOCDetection(root, image_set, SHAPE_CLASSES)
            if self.options["storage"] == "memory":
                images, targets = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
                return ListSplit(list(images), list(targets))
            return StreamSplit(dataset, StreamConfig(num_workers=self.options["workers"], collate=list_collate))

        return Splits(split("train"), split("val"), split("test"))

    def split_sizes(self):
        return SplitSizes(*(self.options[f"{part}_images"] for part in ("train", "val", "test")))

    def build_model(self):
        return tiny_faster_rcnn(len(SHAPE_CLASSES) + 1, self.options["image_size"], width=self.options["width"])
