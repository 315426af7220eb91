"""Options that keep each paper task to seconds on a CPU in the tests: small images, small backbones,
no public weights, no DataLoader worker processes (ImageNet also needs given weights: see its tests)."""

from __future__ import annotations

SMALL_OPTIONS = {
    "cifar10": {},
    "a9a": {},
    "covtype": {},
    "sop": {"backbone": "resnet18", "backbone_weights": "none", "image_size": 64, "workers": 0},
    "voc2007": {
        "model": "fasterrcnn_mobilenet_v3_large_fpn",
        "backbone_weights": "none",
        "min_size": 96,
        "max_size": 96,
        "workers": 0,
    },
    "imagenet": {"image_size": 64, "workers": 0},
}
