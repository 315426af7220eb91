"""`voc-map` with protocol "py-faster-rcnn" equals py-faster-rcnn's `voc_eval` bit for bit.

The reference below is written from voc_eval's published algorithm in the shape voc_eval has: per-class
ground-truth records keyed by image, a flat detection list in result-file order, VOC's 1-based pixel
boxes, `np.argsort(-confidence)`, strict `ovmax > ovthresh`, and `np.arange(0., 1.1, 0.1)` thresholds.
The metric must agree with it exactly (`==` on floats) on random problems full of ties, and the hand-made
cases show where it differs from the default, exact protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metricbench.tasks.metrics import compute
from metricbench.tasks.metrics.core import MetricError
from metricbench.tasks.metrics.detection import voc_ap_per_class


def reference_voc_eval(gt, dets, label, ovthresh=0.5, use_07_metric=True):
    """gt: {image: [(label, [xmin, ymin, xmax, ymax], difficult)]} in VOC pixels; dets: [(image, label, score, box)]
    in result-file order. Returns AP of `label` as voc_eval would (None when the class has no positives)."""
    records, npos = {}, 0
    for image, objects in gt.items():
        mine = [(box, hard) for lab, box, hard in objects if lab == label]
        records[image] = {"boxes": [b for b, _ in mine], "difficult": [h for _, h in mine], "seen": [False] * len(mine)}
        npos += sum(not h for _, h in mine)
    if npos == 0:
        return None
    mine = [(image, score, box) for image, lab, score, box in dets if lab == label]
    confidence = np.array([score for _, score, _ in mine], dtype=float)
    order = np.argsort(-confidence)
    tp, fp = [], []
    for d in order:
        image, _, bb = mine[d]
        record = records[image]
        ovmax, jmax = -np.inf, -1
        for j, g in enumerate(record["boxes"]):
            iw = max(min(g[2], bb[2]) - max(g[0], bb[0]) + 1.0, 0.0)
            ih = max(min(g[3], bb[3]) - max(g[1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0) - inters
            if inters / uni > ovmax:  # the first maximum, as np.argmax
                ovmax, jmax = inters / uni, j
        hit = miss = 0.0
        if ovmax > ovthresh:
            if not record["difficult"][jmax]:
                if not record["seen"][jmax]:
                    hit, record["seen"][jmax] = 1.0, True
                else:
                    miss = 1.0
        else:
            miss = 1.0
        tp.append(hit)
        fp.append(miss)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def to_metric_input(gt, dets, n_images):
    """The same problem in torchvision's continuous coordinates (x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax)."""
    shift = torch.tensor([-1.0, -1.0, 0.0, 0.0])
    targets, predictions = [], []
    for image in range(n_images):
        objects = gt.get(image, [])
        targets.append(
            {
                "boxes": torch.tensor([box for _, box, _ in objects], dtype=torch.float32).reshape(-1, 4) + shift,
                "labels": torch.tensor([lab for lab, _, _ in objects], dtype=torch.int64),
                "difficult": torch.tensor([hard for _, _, hard in objects], dtype=torch.bool),
            }
        )
        mine = [(lab, score, box) for i, lab, score, box in dets if i == image]
        predictions.append(
            {
                "boxes": torch.tensor([box for _, _, box in mine], dtype=torch.float32).reshape(-1, 4) + shift,
                "scores": torch.tensor([score for _, score, _ in mine], dtype=torch.float64),
                "labels": torch.tensor([lab for lab, _, _ in mine], dtype=torch.int64),
            }
        )
    return predictions, targets


def random_problem(rng):
    n_images, n_classes = int(rng.integers(1, 7)), int(rng.integers(1, 4))

    def box():
        x, y = rng.integers(1, 30, size=2)
        w, h = rng.integers(0, 15, size=2)
        return [float(x), float(y), float(x + w), float(y + h)]

    gt = {
        i: [(int(rng.integers(1, n_classes + 1)), box(), bool(rng.random() < 0.2)) for _ in range(rng.integers(0, 5))]
        for i in range(n_images)
    }
    dets = []
    for image in range(n_images):  # result-file order: image by image
        for _ in range(rng.integers(0, 25)):
            if gt[image] and rng.random() < 0.6:  # near a GT box, often on it exactly
                label, base, _ = gt[image][rng.integers(len(gt[image]))]
                candidate = [v + float(rng.integers(-2, 3)) * (rng.random() < 0.5) for v in base]
                candidate[2], candidate[3] = max(candidate[2], candidate[0]), max(candidate[3], candidate[1])
            else:
                label, candidate = int(rng.integers(1, n_classes + 1)), box()
            dets.append((image, label, float(rng.integers(0, 6)) / 5, candidate))  # 6 score levels: many ties
    return gt, dets, n_images, n_classes


@pytest.mark.parametrize("use_07_metric", [True, False])
def test_equal_to_voc_eval_bit_for_bit_on_random_problems(use_07_metric):
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(300):
        gt, dets, n_images, n_classes = random_problem(rng)
        predictions, targets = to_metric_input(gt, dets, n_images)
        interpolation = "11point" if use_07_metric else "all"
        ours = voc_ap_per_class(predictions, targets, interpolation=interpolation, protocol="py-faster-rcnn")
        for label in range(1, n_classes + 1):
            expected = reference_voc_eval(gt, dets, label, use_07_metric=use_07_metric)
            assert ours.get(label) == (None if expected is None else float(expected)), (label, gt, dets)
            compared += expected is not None
    assert compared > 300


def one_class(gt_boxes, det_boxes, scores):
    targets = [{"boxes": torch.tensor(gt_boxes, dtype=torch.float32), "labels": torch.ones(len(gt_boxes), dtype=torch.int64)}]
    predictions = [
        {
            "boxes": torch.tensor(det_boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores),
            "labels": torch.ones(len(det_boxes), dtype=torch.int64),
        }
    ]
    return predictions, targets


def test_recall_of_exactly_three_tenths_counts_for_t_03_only_in_the_exact_protocol():
    gt = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(10)]
    predictions, targets = one_class(gt, gt[:3], [0.9, 0.8, 0.7])  # three TPs: recall 3/10, precision 1
    assert compute("voc-map", predictions, targets, protocol="exact") == pytest.approx(4 / 11)  # t = 0, 0.1, 0.2, 0.3
    assert compute("voc-map", predictions, targets, protocol="py-faster-rcnn") == pytest.approx(
        3 / 11
    )  # 0.30000000000000004 missed


def test_an_iou_of_exactly_one_half_matches_only_in_the_exact_protocol():
    # continuous boxes [0, 0, 10, 10] and [0, 0, 10, 5]: IoU 50 / 100; in VOC pixels with +1 widths, also exactly 0.5
    predictions, targets = one_class([[0.0, 0.0, 10.0, 10.0]], [[0.0, 0.0, 10.0, 5.0]], [0.9])
    assert compute("voc-map", predictions, targets, protocol="exact") == 1.0
    assert compute("voc-map", predictions, targets, protocol="py-faster-rcnn") == 0.0


def test_bad_option_combinations_are_refused():
    predictions, targets = one_class([[0.0, 0.0, 10.0, 10.0]], [[0.0, 0.0, 10.0, 10.0]], [0.9])
    with pytest.raises(MetricError, match="pixel_plus_one"):
        compute("voc-map", predictions, targets, protocol="py-faster-rcnn", pixel_plus_one=True)
    with pytest.raises(MetricError, match="iou threshold"):
        voc_ap_per_class(predictions, targets, iou=1.0, protocol="py-faster-rcnn")
    with pytest.raises(Exception, match="protocol"):
        compute("voc-map", predictions, targets, protocol="devkit")
