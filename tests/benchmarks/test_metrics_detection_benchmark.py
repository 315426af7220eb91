"""Speed of the detection metrics on seeded random detections.

Run with `pytest tests/benchmarks/test_metrics_detection_benchmark.py --benchmark-only`. Each image has 2-3
ground-truth boxes of 20 classes and 100 detections: 10 jittered copies of each ground-truth box (mostly of
its class) and random boxes of random classes for the rest, with uniform random scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metricbench.tasks import metrics

N_CLASSES = 20
DETECTIONS_PER_IMAGE = 100


def random_detection_set(n_images: int, seed: int = 0):
    """Torch tensors per image, in torchvision's detection output format."""
    rng = np.random.default_rng(seed)
    predictions, targets = [], []
    for _ in range(n_images):
        n_truth = int(rng.integers(2, 4))
        corner = rng.uniform(0, 400, (n_truth, 2))
        truth_boxes = np.hstack([corner, corner + rng.uniform(20, 200, (n_truth, 2))])
        truth_labels = rng.integers(0, N_CLASSES, n_truth)

        source = rng.integers(0, n_truth, 10 * n_truth)
        jittered = truth_boxes[source] + rng.normal(0, 8, (source.size, 4))
        jittered_labels = np.where(rng.random(source.size) < 0.9, truth_labels[source], rng.integers(0, N_CLASSES, source.size))
        n_random = DETECTIONS_PER_IMAGE - source.size
        corner = rng.uniform(0, 400, (n_random, 2))
        boxes = np.vstack([jittered, np.hstack([corner, corner + rng.uniform(10, 200, (n_random, 2))])])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])  # keep x2 >= x1 after jitter

        predictions.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "scores": torch.tensor(rng.random(DETECTIONS_PER_IMAGE), dtype=torch.float32),
                "labels": torch.tensor(np.concatenate([jittered_labels, rng.integers(0, N_CLASSES, n_random)])),
            }
        )
        targets.append(
            {
                "boxes": torch.tensor(truth_boxes, dtype=torch.float32),
                "labels": torch.tensor(truth_labels),
                "difficult": torch.tensor(rng.random(n_truth) < 0.1),
            }
        )
    return predictions, targets


@pytest.mark.parametrize(("metric", "n_images"), [("voc-map", 5000), ("coco-map", 500)])
def test_detection_metric_speed(benchmark, metric, n_images):
    predictions, targets = random_detection_set(n_images)
    benchmark.extra_info.update(
        images=n_images,
        classes=N_CLASSES,
        detections=sum(len(p["scores"]) for p in predictions),
        ground_truth_boxes=sum(len(t["labels"]) for t in targets),
    )
    value = benchmark.pedantic(metrics.compute, args=(metric, predictions, targets), rounds=3, iterations=1)
    assert 0.0 < value < 1.0
