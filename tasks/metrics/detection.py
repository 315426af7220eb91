"""Object-detection metrics: PASCAL VOC average precision, and the input checks the COCO-style mAP shares.

Input, torchvision's detection format:
- `predictions`: a list with one dict per image: "boxes" (n, 4) as x1, y1, x2, y2 in pixels, "scores" (n,),
  "labels" (n,) integer classes. Values are torch tensors (CPU or CUDA) or NumPy arrays.
- `targets`: a list of the same length, one dict per image: "boxes" (m, 4), "labels" (m,) and optionally
  "difficult" (m,) bool (missing means no box is difficult).
An image without boxes has arrays with zero rows. Bad input (lists of different lengths, a missing key,
shapes that disagree, NaN scores, NaN or infinite coordinates, boxes with x2 < x1 or y2 < y1, non-integer
labels) raises `MetricError` naming the metric and the problem. Metrics return a Python float.

IoU is area of intersection / area of union; a pair of zero-area boxes has IoU 0. By default coordinates
are continuous (a box [0, 0, 10, 10] has area 100), as in torchvision and COCO. The VOC devkit instead
counts pixels, adding 1 to every width and height ([0, 0, 10, 10] has area 121): `pixel_plus_one=True`
reproduces it. We default to continuous coordinates because the boxes we score come from torchvision-era
models, whose boxes are continuous, and so that `voc-map` and `coco-map` measure IoU alike.

voc-map (PASCAL VOC, as the VOC devkit's VOCevaldet and py-faster-rcnn's `voc_eval`):
- Per class, the detections of that class in all images are sorted by score, highest first (tied scores
  keep their input order: image order, then order within the image).
- Each detection is assigned the ground-truth (GT) box of its class in its image with the highest IoU
  (lowest index on ties), whether or not that box is already matched. If that IoU >= `iou` (default 0.5):
  a difficult box makes the detection ignored (neither TP nor FP); a box not yet matched makes it a TP
  and marks the box matched; an already matched box makes it a FP (a duplicate detection). Otherwise
  (no GT of the class in the image, or IoU below `iou`) it is a FP. Note the devkit's rule: a duplicate of
  a matched box is a FP even if another unmatched box also overlaps it by `iou` or more.
- Precision after the k-th (non-ignored) detection = TP / k; recall = TP / P, where P is the number of
  non-difficult GT boxes of the class.
- interpolation="11point" (VOC2007): AP = mean over t in {0, 0.1, ..., 1} of the highest precision among
  points with recall >= t (0 if recall never reaches t). Recall >= t is decided exactly
  (10 * TP >= 10 * t * P), so a recall of exactly 3/10 counts for t = 0.3 (py-faster-rcnn's
  `np.arange(0, 1.1, 0.1)` holds 0.30000000000000004 and would miss it).
- interpolation="all" (VOC2010 and later): AP = area under the precision envelope (precision made
  non-increasing in recall: the best precision at this or any higher recall) as a step function of recall.
- A class with non-difficult GT but no detection has AP 0; so with no detection at all every AP is 0 and
  mAP is 0.0 (not an error). Classes without a non-difficult GT box have no recall, so no AP: they are left
  out of the mean (their detections, all FP or ignored, could not change any AP that is computed).
  voc-map = mean AP over the classes that have at least one non-difficult GT box; `MetricError` when
  there is none. `voc_ap_per_class` returns the per-class APs as {label: AP} over the same classes.

voc-map with protocol="py-faster-rcnn" reproduces py-faster-rcnn's `lib/datasets/voc_eval.py` bit for bit, as the
published VOC2007 numbers were computed with it (the `voc2007` task uses it). Boxes are converted back to what
voc_eval reads (VOC's 1-based pixel boxes: x1 + 1, y1 + 1, x2, y2) and, per class, it differs from the exact rule:
- detections are ordered by `np.argsort(-scores)`, NumPy's unstable default sort, over the class's detections in
  image order (as the result files list them): tied scores may come out in another order than the input's;
- IoU uses +1 widths and heights and must be strictly greater than `iou` (an IoU of exactly 0.5 is a FP);
- precision is TP / max(TP + FP, eps), with ignored (difficult) detections keeping their place in the ranking;
- 11-point AP compares recall with the floats of `np.arange(0, 1.1, 0.1)` (recall 0.3 misses 0.30000000000000004),
  summing p / 11 in order; all-point AP uses voc_eval's sentinels (0 and 1) around the recall curve.
The one deliberate difference: a class without non-difficult GT is left out (voc_eval divides by zero there).
The result files py-faster-rcnn writes round scores to 3 and boxes to 1 decimal; scores and boxes here are used
as given. `pixel_plus_one` is implied and may not be set with this protocol.

`coco-map` is in `metricbench.tasks.metrics.coco`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from metricbench.bench.core.registry import Option
from metricbench.tasks.metrics.core import HIGHER, MetricError, as_tensor, register_metric

INTERPOLATIONS = ("11point", "all")
PROTOCOLS = ("exact", "py-faster-rcnn")

# ----------------------------------------------------------------------------- input checks


@dataclass
class Boxes:
    """The boxes of all images in one flat table: row i is box i of image `image[i]`."""

    image: np.ndarray  # (k,) int64 image index
    boxes: np.ndarray  # (k, 4) float64 x1, y1, x2, y2
    labels: np.ndarray  # (k,) int64
    scores: np.ndarray | None = None  # (k,) float64, predictions only
    difficult: np.ndarray | None = None  # (k,) bool, targets only


def _field(metric: str, entry, where: str, key: str) -> torch.Tensor:
    if not isinstance(entry, dict):
        raise MetricError(f"{metric}: {where} must be a dict with 'boxes' and 'labels', got {type(entry).__name__}")
    if key not in entry:
        raise MetricError(f"{metric}: {where} has no '{key}'")
    try:
        return as_tensor(entry[key])
    except (TypeError, ValueError, RuntimeError) as error:
        raise MetricError(f"{metric}: {where}['{key}'] is not an array ({error})") from error


def _box_count(metric: str, boxes: torch.Tensor, where: str) -> int:
    if boxes.ndim == 2 and boxes.shape[1] == 4:
        return boxes.shape[0]
    if boxes.numel() == 0:  # an empty image, whatever shape its empty array has
        return 0
    raise MetricError(f"{metric}: {where}['boxes'] must have shape (n, 4), got {tuple(boxes.shape)}")


def _check_length(metric: str, values: torch.Tensor, n: int, where: str) -> None:
    if values.ndim != 1 or values.shape[0] != n:
        raise MetricError(f"{metric}: {where} must have shape ({n},) to match its {n} boxes, got {tuple(values.shape)}")


def _concat(tensors: list[torch.Tensor], dtype: torch.dtype) -> np.ndarray:
    """One NumPy array from per-image tensors; one device-to-host copy when they share a device."""
    if not tensors:
        return torch.zeros(0, dtype=dtype).numpy()
    if len({t.device for t in tensors}) > 1:
        tensors = [t.cpu() for t in tensors]
    return torch.cat(tensors).to(dtype).cpu().numpy()  # cat promotes mixed dtypes


def _integer_labels(metric: str, labels: torch.Tensor, where: str) -> torch.Tensor:
    if labels.is_floating_point() and not bool(torch.all(labels == torch.round(labels))):
        raise MetricError(f"{metric}: {where}['labels'] must be integer classes")
    return labels


def _flatten(metric: str, entries, side: str) -> Boxes:
    """Check one side (predictions or targets) and flatten it into one table of boxes."""
    is_prediction = side == "predictions"
    boxes, labels, extra, counts = [], [], [], []
    for i, entry in enumerate(entries):
        where = f"{side}[{i}]"
        entry_boxes = _field(metric, entry, where, "boxes")
        n = _box_count(metric, entry_boxes, where)
        entry_labels = _integer_labels(metric, _field(metric, entry, where, "labels"), where)
        _check_length(metric, entry_labels, n, f"{where}['labels']")
        if is_prediction:
            entry_extra = _field(metric, entry, where, "scores")
            _check_length(metric, entry_extra, n, f"{where}['scores']")
        elif "difficult" in entry:
            entry_extra = _field(metric, entry, where, "difficult")
            _check_length(metric, entry_extra, n, f"{where}['difficult']")
            entry_extra = entry_extra != 0
        else:
            entry_extra = torch.zeros(n, dtype=torch.bool)
        boxes.append(entry_boxes.reshape(n, 4))
        labels.append(entry_labels)
        extra.append(entry_extra)
        counts.append(n)

    table = Boxes(
        image=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
        boxes=_concat(boxes, torch.float64).reshape(-1, 4),
        labels=_concat(labels, torch.int64),
    )
    kind = "prediction" if is_prediction else "target"
    bad = ~np.isfinite(table.boxes).all(axis=1)
    if bad.any():
        raise MetricError(f"{metric}: {kind} boxes contain NaN or infinity (image {table.image[bad.argmax()]})")
    bad = (table.boxes[:, 2] < table.boxes[:, 0]) | (table.boxes[:, 3] < table.boxes[:, 1])
    if bad.any():
        raise MetricError(
            f"{metric}: {kind} boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, "
            f"got {table.boxes[bad.argmax()].tolist()} in image {table.image[bad.argmax()]} (xywh boxes?)"
        )
    if is_prediction:
        table.scores = _concat(extra, torch.float64)
        bad = np.isnan(table.scores)
        if bad.any():
            raise MetricError(f"{metric}: prediction scores contain NaN (image {table.image[bad.argmax()]})")
    else:
        table.difficult = _concat(extra, torch.bool)
    return table


def prepare_boxes(metric: str, predictions, targets) -> tuple[Boxes, Boxes]:
    for side, value in (("predictions", predictions), ("targets", targets)):
        if not isinstance(value, list | tuple):
            raise MetricError(f"{metric}: {side} must be a list with one dict per image, got {type(value).__name__}")
    if len(predictions) != len(targets):
        raise MetricError(
            f"{metric}: {len(predictions)} prediction entries but {len(targets)} target entries (one of each per image)"
        )
    return _flatten(metric, predictions, "predictions"), _flatten(metric, targets, "targets")


# ----------------------------------------------------------------------------- PASCAL VOC


def _paired_iou(a: np.ndarray, b: np.ndarray, pixel_plus_one: bool) -> np.ndarray:
    """IoU of box a[i] with box b[i], for every row i."""
    extra = 1.0 if pixel_plus_one else 0.0
    width = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + extra, 0.0)
    height = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + extra, 0.0)
    intersection = width * height
    area_a = (a[:, 2] - a[:, 0] + extra) * (a[:, 3] - a[:, 1] + extra)
    area_b = (b[:, 2] - b[:, 0] + extra) * (b[:, 3] - b[:, 1] + extra)
    union = area_a + area_b - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _best_ground_truth(det_key, det_boxes, gt_key, gt_boxes, pixel_plus_one):
    """For each detection, the GT box with the same (image, class) key and the highest IoU, and that IoU.

    Ties go to the lowest GT index, as np.argmax; a detection with no GT of its key gets index -1, IoU 0.
    Which box is best does not depend on which boxes are already matched, so this needs no loop.
    """
    gt_order = np.argsort(gt_key, kind="stable")  # stable: GT of one key stay in index order
    sorted_keys = gt_key[gt_order]
    first = np.searchsorted(sorted_keys, det_key, side="left")
    counts = np.searchsorted(sorted_keys, det_key, side="right") - first
    # one row per (detection, GT box of its key) pair, grouped by detection
    pair_det = np.repeat(np.arange(det_key.size), counts)
    pair_start = np.cumsum(counts) - counts
    pair_gt = gt_order[first[pair_det] + np.arange(pair_det.size) - pair_start[pair_det]]
    iou = _paired_iou(det_boxes[pair_det], gt_boxes[pair_gt], pixel_plus_one)

    best_gt = np.full(det_key.size, -1, dtype=np.int64)
    best_iou = np.zeros(det_key.size)
    has_pairs = counts > 0
    if pair_det.size:
        best_iou[has_pairs] = np.maximum.reduceat(iou, pair_start[has_pairs])
        best_pairs = np.flatnonzero(iou == best_iou[pair_det])
        # the first best pair of each detection is the lowest GT index
        first_of_detection = np.r_[True, pair_det[best_pairs[1:]] != pair_det[best_pairs[:-1]]]
        chosen = best_pairs[first_of_detection]
        best_gt[pair_det[chosen]] = pair_gt[chosen]
    return best_gt, best_iou


def _average_precision(is_tp: np.ndarray, n_positive: int, interpolation: str) -> float:
    """VOC AP of one class from its detections' TP flags, in score order (ignored detections removed)."""
    if is_tp.size == 0:
        return 0.0
    tp = np.cumsum(is_tp)
    precision = tp / np.arange(1, is_tp.size + 1)
    # the envelope: the best precision at this or any higher recall (recall never falls along the list)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if interpolation == "all":
        # recall grows by 1 / n_positive at each TP and nowhere else
        return float(envelope[is_tp].sum() / n_positive)
    # first point with recall >= k / 10, compared in integers so that recall 3/10 reaches t = 0.3
    first_reaching = np.searchsorted(10 * tp, np.arange(11) * n_positive, side="left")
    reached = first_reaching < tp.size
    return float(envelope[first_reaching[reached]].sum() / 11)


def _voc_ap(metric: str, predictions, targets, iou: float, interpolation: str, pixel_plus_one: bool) -> dict[int, float]:
    if interpolation not in INTERPOLATIONS:
        raise MetricError(f"{metric}: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if not 0.0 < iou <= 1.0:
        raise MetricError(f"{metric}: iou threshold must be in (0, 1], got {iou}")
    detections, truth = prepare_boxes(metric, predictions, targets)

    classes, class_index = np.unique(np.concatenate([truth.labels, detections.labels]), return_inverse=True)
    gt_class, det_class = class_index[: truth.labels.size], class_index[truth.labels.size :]
    n_positive = np.bincount(gt_class[~truth.difficult], minlength=classes.size)

    best_gt, best_iou = _best_ground_truth(
        detections.image * classes.size + det_class,
        detections.boxes,
        truth.image * classes.size + gt_class,
        truth.boxes,
        pixel_plus_one,
    )

    # score order within each class; the stable sort keeps tied scores in input order
    order = np.lexsort((-detections.scores, det_class))
    det_class, best_gt, best_iou = det_class[order], best_gt[order], best_iou[order]
    overlaps = best_iou >= iou  # only where a GT box exists, as iou > 0
    on_difficult = np.zeros(order.size, dtype=bool)
    on_difficult[overlaps] = truth.difficult[best_gt[overlaps]]
    claims = np.flatnonzero(overlaps & ~on_difficult)
    # the highest-scored detection of a GT box is its TP; later ones are duplicates (FP)
    _, first_claim = np.unique(best_gt[claims], return_index=True)
    is_tp = np.zeros(order.size, dtype=bool)
    is_tp[claims[first_claim]] = True

    # detections on difficult boxes are neither TP nor FP: drop them from the ranking
    kept_class, kept_tp = det_class[~on_difficult], is_tp[~on_difficult]
    bounds = np.searchsorted(kept_class, np.arange(classes.size + 1))
    return {
        int(classes[c]): _average_precision(kept_tp[bounds[c] : bounds[c + 1]], int(n_positive[c]), interpolation)
        for c in np.flatnonzero(n_positive > 0)
    }


def _voc_ap_py_faster_rcnn(metric: str, predictions, targets, iou: float, interpolation: str) -> dict[int, float]:
    """AP per class exactly as py-faster-rcnn's `voc_eval` computes it (see the module doc), on boxes
    converted back to VOC's 1-based pixel coordinates."""
    detections, truth = prepare_boxes(metric, predictions, targets)
    to_pixels = np.array([1.0, 1.0, 0.0, 0.0])  # x1 + 1, y1 + 1, x2, y2: what the XML and the result files hold
    det_boxes, gt_boxes = detections.boxes + to_pixels, truth.boxes + to_pixels
    thresholds = np.arange(0.0, 1.1, 0.1)  # voc_eval's thresholds, float rounding included
    result = {}
    for label in np.unique(truth.labels):
        of_class = truth.labels == label
        n_positive = int((of_class & ~truth.difficult).sum())
        if n_positive == 0:
            continue  # voc_eval would divide by zero; no GT means no defined AP (as protocol "exact")
        gt_image, boxes, difficult = truth.image[of_class], gt_boxes[of_class], truth.difficult[of_class]
        by_image = {i: np.flatnonzero(gt_image == i) for i in np.unique(gt_image)}
        mine = detections.labels == label
        confidence, image, candidates = detections.scores[mine], detections.image[mine], det_boxes[mine]
        order = np.argsort(-confidence)  # NumPy's default (unstable) sort, as voc_eval: ties come out as it orders them
        matched = np.zeros(of_class.sum(), dtype=bool)
        tp, fp = np.zeros(order.size), np.zeros(order.size)
        for rank, d in enumerate(order):
            rows = by_image.get(image[d], np.empty(0, dtype=np.int64))
            best = -np.inf
            if rows.size:
                gt, bb = boxes[rows], candidates[d]
                width = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]) + 1.0, 0.0)
                height = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]) + 1.0, 0.0)
                intersection = width * height
                union = (
                    (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                    + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
                    - intersection
                )
                overlaps = intersection / union
                best, j = np.max(overlaps), rows[np.argmax(overlaps)]
            if best > iou:  # strictly greater, as voc_eval
                if not difficult[j]:
                    if not matched[j]:
                        tp[rank], matched[j] = 1.0, True
                    else:
                        fp[rank] = 1.0
            else:
                fp[rank] = 1.0
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        recall = tp / float(n_positive)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if interpolation == "11point":
            ap = 0.0
            for t in thresholds:
                p = 0 if np.sum(recall >= t) == 0 else np.max(precision[recall >= t])
                ap = ap + p / 11.0
        else:
            points = np.concatenate(([0.0], recall, [1.0]))
            envelope = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
            changes = np.where(points[1:] != points[:-1])[0]
            ap = np.sum((points[changes + 1] - points[changes]) * envelope[changes + 1])
        result[int(label)] = float(ap)
    return result


def _voc_dispatch(predictions, targets, iou: float, interpolation: str, pixel_plus_one: bool, protocol: str) -> dict[int, float]:
    if protocol not in PROTOCOLS:
        raise MetricError(f"voc-map: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "exact":
        return _voc_ap("voc-map", predictions, targets, iou, interpolation, pixel_plus_one)
    if pixel_plus_one:
        raise MetricError("voc-map: protocol 'py-faster-rcnn' always uses VOC's +1 pixel boxes; leave pixel_plus_one unset")
    if interpolation not in INTERPOLATIONS:
        raise MetricError(f"voc-map: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if not 0.0 < iou < 1.0:
        raise MetricError(f"voc-map: iou threshold must be in (0, 1) with protocol 'py-faster-rcnn', got {iou}")
    return _voc_ap_py_faster_rcnn("voc-map", predictions, targets, iou, interpolation)


def voc_ap_per_class(
    predictions, targets, iou=0.5, interpolation="11point", pixel_plus_one=False, protocol="exact"
) -> dict[int, float]:
    """PASCAL VOC AP of every class with at least one non-difficult GT box, as {label: AP} (see module doc)."""
    return _voc_dispatch(predictions, targets, iou, interpolation, pixel_plus_one, protocol)


@register_metric(
    "voc-map",
    HIGHER,
    "PASCAL VOC mean average precision over classes with ground truth (11-point or all-point)",
    options={
        "iou": Option(float, 0.5, "IoU a detection needs with a ground-truth box to count as a true positive"),
        "interpolation": Option(str, "11point", "11-point (VOC2007) or all-point (VOC2010+) average precision", INTERPOLATIONS),
        "pixel_plus_one": Option(bool, False, "VOC devkit IoU: +1 to widths and heights (default: continuous, as COCO)"),
        "protocol": Option(
            str,
            "exact",
            "exact rule, or py-faster-rcnn's voc_eval reproduced bit for bit (the published VOC07 numbers)",
            PROTOCOLS,
        ),
    },
)
def voc_map(
    predictions, targets, iou: float = 0.5, interpolation: str = "11point", pixel_plus_one: bool = False, protocol: str = "exact"
) -> float:
    per_class = _voc_dispatch(predictions, targets, iou, interpolation, pixel_plus_one, protocol)
    if not per_class:
        raise MetricError("voc-map: no class has a non-difficult ground-truth box, so mAP is undefined")
    return float(np.mean(list(per_class.values())))
