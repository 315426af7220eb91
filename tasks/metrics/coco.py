"""COCO-style box mAP (through pycocotools), on the detection input of `metricbench.tasks.metrics.detection`.

coco-map (COCO-style, computed by pycocotools' COCOeval, bbox, its default parameters):
- The GT is built in memory: boxes converted to x, y, width, height, area = width * height, and
  `iscrowd` = difficult, so a difficult box is ignored the way COCO ignores a crowd region: a detection
  matched to it is neither TP nor FP, and it is not counted in recall. (COCO matches a detection to a crowd
  region by intersection / detection area instead of IoU.)
- COCO's rules apply: per image and class at most the 100 highest-scored detections count, and AP is
  interpolated at 101 recall points; classes without non-difficult GT are left out of the mean.
- iou="0.50:0.95" (default) is the COCO mAP averaged over IoU thresholds 0.50, 0.55, ..., 0.95
  (pycocotools' stats[0]); "0.50" and "0.75" are AP at one threshold (stats[1], stats[2]).
- No detection at all gives 0.0. No non-difficult GT box at all raises `MetricError` (pycocotools would
  report -1, "undefined"; this metric never returns -1).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from metricbench.bench.core.registry import Option
from metricbench.tasks.metrics.core import HIGHER, MetricError, register_metric
from metricbench.tasks.metrics.detection import Boxes, prepare_boxes

COCO_IOU_STATS = {"0.50:0.95": 0, "0.50": 1, "0.75": 2}  # option value -> index in COCOeval.stats


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])


def _coco_ground_truth(truth: Boxes, n_images: int):
    from pycocotools.coco import COCO

    xywh = _xywh(truth.boxes)
    annotations = [
        # ids start at 1: COCOeval takes a matched GT id of 0 for "unmatched"
        {"id": k + 1, "image_id": image + 1, "category_id": label, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}
        for k, (image, label, box, crowd) in enumerate(
            zip(truth.image.tolist(), truth.labels.tolist(), xywh.tolist(), truth.difficult.astype(int).tolist(), strict=True)
        )
    ]
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": [{"id": i + 1} for i in range(n_images)],
        "annotations": annotations,
        "categories": [{"id": label} for label in np.unique(truth.labels).tolist()],
    }
    ground_truth.createIndex()
    return ground_truth


@register_metric(
    "coco-map",
    HIGHER,
    "COCO-style box mAP by pycocotools (difficult boxes treated as crowd)",
    options={
        "iou": Option(
            str, "0.50:0.95", "IoU thresholds: COCO's mean over 0.50:0.95, or AP at 0.50 or 0.75", tuple(COCO_IOU_STATS)
        ),
    },
)
def coco_map(predictions, targets, iou: str = "0.50:0.95") -> float:
    if iou not in COCO_IOU_STATS:
        raise MetricError(f"coco-map: iou must be one of {', '.join(COCO_IOU_STATS)}, got {iou!r}")
    detections, truth = prepare_boxes("coco-map", predictions, targets)
    if not (~truth.difficult).any():
        raise MetricError("coco-map: no non-difficult ground-truth box, so mAP is undefined")
    if detections.labels.size == 0:
        return 0.0  # pycocotools' loadRes cannot load an empty result list

    from pycocotools.cocoeval import COCOeval

    xywh = _xywh(detections.boxes)
    results = [
        {"image_id": image + 1, "category_id": label, "bbox": box, "score": score}
        for image, label, box, score in zip(
            detections.image.tolist(), detections.labels.tolist(), xywh.tolist(), detections.scores.tolist(), strict=True
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its summary table
        ground_truth = _coco_ground_truth(truth, len(targets))
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    value = float(evaluation.stats[COCO_IOU_STATS[iou]])
    if value < 0:  # pycocotools' "undefined"; the check above should make this unreachable
        raise MetricError("coco-map: pycocotools found no ground truth to evaluate against (it reported -1)")
    return value
