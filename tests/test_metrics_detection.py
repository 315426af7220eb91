"""Detection metrics: VOC AP against hand-computed values and a plain loop in the style of py-faster-rcnn's
voc_eval, COCO mAP edge cases, input checks and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metricbench.bench.core.errors import UsageError
from metricbench.tasks import metrics
from metricbench.tasks.metrics import HIGHER, MetricError
from metricbench.tasks.metrics.detection import voc_ap_per_class


def detections(boxes, scores, labels=None):
    """One image's predictions as NumPy arrays (labels default to class 1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.ones(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    return {"boxes": boxes, "scores": np.asarray(scores, dtype=np.float64), "labels": labels}


def truth(boxes, labels=None, difficult=None):
    """One image's ground truth as NumPy arrays (labels default to class 1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.ones(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    entry = {"boxes": boxes, "labels": labels}
    if difficult is not None:
        entry["difficult"] = np.asarray(difficult, dtype=bool)
    return entry


def voc(predictions, targets, **options):
    return metrics.compute("voc-map", predictions, targets, **options)


A, B, C = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]
NOWHERE = [100, 100, 110, 110]  # overlaps no ground-truth box


# ----------------------------------------------------------------------------- VOC golden values by hand


def test_fp_between_tps_11point_and_all_point():
    # 3 GT over two images; by score: TP (A), FP, TP (B), TP (C, image 1)
    # precision 1, 1/2, 2/3, 3/4; recall 1/3, 1/3, 2/3, 1; envelope 1, 3/4, 3/4, 3/4
    predictions = [detections([A, NOWHERE, B], [0.9, 0.8, 0.7]), detections([C], [0.6])]
    targets = [truth([A, B]), truth([C])]
    # 11-point: t = 0, .1, .2, .3 -> 1 (recall 1/3 reached at the first point); t = .4 ... 1 -> 3/4
    # (4 * 1 + 7 * 3/4) / 11 = 9.25 / 11
    assert voc(predictions, targets) == pytest.approx(9.25 / 11, abs=1e-12)
    # all-point: recall steps of 1/3 at the TPs, envelope there 1, 3/4, 3/4: (1 + 3/4 + 3/4) / 3 = 5/6
    assert voc(predictions, targets, interpolation="all") == pytest.approx(5 / 6, abs=1e-12)
    assert voc_ap_per_class(predictions, targets, interpolation="all") == {1: pytest.approx(5 / 6, abs=1e-12)}


def test_detection_on_difficult_box_is_ignored():
    # GT A, B (difficult), C: 2 positives. By score: on B (ignored), TP (A), FP, TP (C)
    # kept: TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1; envelope 1, 2/3, 2/3
    predictions = [detections([B, A, NOWHERE, C], [0.9, 0.8, 0.7, 0.6])]
    targets = [truth([A, B, C], difficult=[False, True, False])]
    # all-point: (1 + 2/3) / 2 = 5/6 (were the detection on B a FP: 1/2)
    assert voc(predictions, targets, interpolation="all") == pytest.approx(5 / 6, abs=1e-12)
    # 11-point: t = 0 ... .5 -> 1 (6 points), t = .6 ... 1 -> 2/3 (5 points): (6 + 10/3) / 11 = 28/33
    assert voc(predictions, targets) == pytest.approx(28 / 33, abs=1e-12)


def test_undetected_difficult_box_does_not_count_in_recall():
    # GT A and a difficult B nobody finds: recall 1/1 after the TP on A, so AP 1 (it would be 1/2 if B counted)
    predictions = [detections([A], [0.9])]
    targets = [truth([A, B], difficult=[False, True])]
    assert voc(predictions, targets) == pytest.approx(1.0, abs=1e-12)
    assert voc(predictions, targets, interpolation="all") == pytest.approx(1.0, abs=1e-12)


def test_duplicate_detection_is_false_positive():
    # GT A, B; by score: TP (A), A shifted by 1 (IoU 90/110, a duplicate: FP), TP (B)
    # precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> as the difficult case: all 5/6, 11-point 28/33
    predictions = [detections([A, [1, 0, 11, 10], B], [0.9, 0.8, 0.7])]
    targets = [truth([A, B])]
    assert voc(predictions, targets, interpolation="all") == pytest.approx(5 / 6, abs=1e-12)
    assert voc(predictions, targets) == pytest.approx(28 / 33, abs=1e-12)


def test_duplicate_is_false_positive_even_if_another_unmatched_box_overlaps_it():
    # devkit rule: a detection takes its best-IoU box, matched or not. GT A and D = A shifted by 2
    # (IoU 80/120 = 2/3). Both detections sit exactly on A: the second one's best box is A (IoU 1),
    # already matched, so it is a FP although D (IoU 2/3 >= 0.5) is still free.
    d = [2, 0, 12, 10]
    predictions = [detections([A, A], [0.9, 0.8])]
    targets = [truth([A, d])]
    # TP, FP: precision 1, 1/2; recall 1/2, 1/2; all-point: 1 * 1/2 = 1/2
    assert voc(predictions, targets, interpolation="all") == pytest.approx(0.5, abs=1e-12)
    # 11-point: t = 0 ... .5 -> 1 (6 points), recall 1 never reached for t > .5: 6/11
    assert voc(predictions, targets) == pytest.approx(6 / 11, abs=1e-12)


def test_11point_takes_max_precision_from_a_later_point():
    # 2 GT; by score: FP, TP (A), TP (B): precision 0, 1/2, 2/3; recall 0, 1/2, 1
    # at t = 0 the first point (precision 0) and at t = .1 ... .5 the point of recall 1/2 (precision 1/2)
    # reach t, but the later point has precision 2/3: every t gets 2/3, so AP = 11 * (2/3) / 11 = 2/3
    predictions = [detections([NOWHERE, A, B], [0.9, 0.8, 0.7])]
    targets = [truth([A, B])]
    assert voc(predictions, targets) == pytest.approx(2 / 3, abs=1e-12)
    # all-point: envelope 2/3, 2/3 at the two TPs: (2/3 + 2/3) / 2 = 2/3
    assert voc(predictions, targets, interpolation="all") == pytest.approx(2 / 3, abs=1e-12)


def test_11point_recall_of_exactly_three_tenths_reaches_t_03():
    # 10 GT, 3 found (precision 1, recall exactly 3/10): t = 0, .1, .2, .3 -> 1, so AP = 4/11
    # (with np.arange(0, 1.1, 0.1), t = 0.30000000000000004 and AP would be 3/11)
    boxes = [[20 * i, 0, 20 * i + 10, 10] for i in range(10)]
    predictions = [detections(boxes[:3], [0.9, 0.8, 0.7])]
    targets = [truth(boxes)]
    assert voc(predictions, targets) == pytest.approx(4 / 11, abs=1e-12)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([0, 0, 10, 5], 1.0),  # IoU 50/100 = 0.5 exactly: enough (>= threshold)
        ([0, 0, 10, 5.1], 1.0),  # IoU 0.51
        ([0, 0, 10, 4.9], 0.0),  # IoU 0.49: a FP, and no TP at all
    ],
)
def test_iou_threshold_boundary(box, expected):
    assert voc([detections([box], [0.9])], [truth([[0, 0, 10, 10]])]) == pytest.approx(expected, abs=1e-12)


def test_iou_option_and_pixel_plus_one():
    gt = [truth([[0, 0, 9, 9]])]
    predictions = [detections([[0, 0, 9, 4]], [0.9])]
    # continuous: 36 / 81 = 0.44 < 0.5; VOC pixels: 10 * 5 / (10 * 10) = 0.5 >= 0.5
    assert voc(predictions, gt) == 0.0
    assert voc(predictions, gt, pixel_plus_one=True) == pytest.approx(1.0, abs=1e-12)
    assert voc(predictions, gt, iou=0.4) == pytest.approx(1.0, abs=1e-12)


def test_two_classes_mean_and_classes_without_ground_truth_excluded():
    # class 1: the FP-between-TPs case (all 5/6, 11-point 9.25/11); class 2: one GT found (AP 1);
    # class 3: only detections (excluded); class 4: only a difficult GT (no positives: excluded)
    predictions = [
        detections(
            [A, NOWHERE, B, [60, 0, 70, 10], [80, 0, 90, 10], [0, 50, 10, 60]],
            [0.9, 0.8, 0.7, 0.95, 0.99, 0.5],
            [1, 1, 1, 2, 3, 4],
        ),
        detections([C], [0.6], [1]),
    ]
    targets = [truth([A, B, [60, 0, 70, 10], [0, 50, 10, 60]], [1, 1, 2, 4], [False, False, False, True]), truth([C], [1])]
    per_class = voc_ap_per_class(predictions, targets, interpolation="all")
    assert per_class == {1: pytest.approx(5 / 6, abs=1e-12), 2: pytest.approx(1.0, abs=1e-12)}
    # (5/6 + 1) / 2 = 11/12;  11-point: (9.25/11 + 1) / 2 = 20.25/22
    assert voc(predictions, targets, interpolation="all") == pytest.approx(11 / 12, abs=1e-12)
    assert voc(predictions, targets) == pytest.approx(20.25 / 22, abs=1e-12)


def test_class_with_ground_truth_but_no_detection_has_ap_zero():
    predictions = [detections([A], [0.9], [1])]
    targets = [truth([A, B], [1, 2])]
    assert voc_ap_per_class(predictions, targets) == {1: 1.0, 2: 0.0}
    assert voc(predictions, targets) == pytest.approx(0.5, abs=1e-12)


def test_no_detections_at_all_gives_zero():
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, dtype=np.int64)}
    targets = [truth([A], [1]), truth([B, C], [2, 3])]
    assert voc([empty, empty], targets) == 0.0
    assert voc_ap_per_class([empty, empty], targets) == {1: 0.0, 2: 0.0, 3: 0.0}


def test_no_ground_truth_is_an_error():
    predictions = [detections([A], [0.9])]
    with pytest.raises(MetricError, match="^voc-map: no class has a non-difficult"):
        voc(predictions, [truth([])])
    with pytest.raises(MetricError, match="^voc-map: no class"):
        voc(predictions, [truth([A], difficult=[True])])
    assert voc_ap_per_class(predictions, [truth([])]) == {}


# ----------------------------------------------------------------------------- VOC against a plain loop


def reference_voc_ap(predictions, targets, iou, interpolation, pixel_plus_one):
    """The py-faster-rcnn voc_eval loop, class by class and detection by detection (with >= as the devkit)."""
    extra = 1.0 if pixel_plus_one else 0.0
    result = {}
    for c in sorted({int(label) for t in targets for label in t["labels"]}):
        records, n_positive = [], 0
        for t in targets:
            mask = t["labels"] == c
            difficult = t.get("difficult", np.zeros(len(mask), dtype=bool))[mask]
            records.append({"boxes": t["boxes"][mask], "difficult": difficult, "matched": [False] * int(mask.sum())})
            n_positive += int((~difficult).sum())
        if n_positive == 0:
            continue
        found = [
            (score, image, box)
            for image, p in enumerate(predictions)
            for box, score, label in zip(p["boxes"], p["scores"], p["labels"], strict=True)
            if label == c
        ]
        found.sort(key=lambda d: -d[0])
        tp, fp = np.zeros(len(found)), np.zeros(len(found))
        for d, (_, image, box) in enumerate(found):
            record = records[image]
            gt = record["boxes"]
            best = -np.inf
            if len(gt):
                iw = np.maximum(np.minimum(gt[:, 2], box[2]) - np.maximum(gt[:, 0], box[0]) + extra, 0.0)
                ih = np.maximum(np.minimum(gt[:, 3], box[3]) - np.maximum(gt[:, 1], box[1]) + extra, 0.0)
                inters = iw * ih
                union = (
                    (box[2] - box[0] + extra) * (box[3] - box[1] + extra)
                    + (gt[:, 2] - gt[:, 0] + extra) * (gt[:, 3] - gt[:, 1] + extra)
                    - inters
                )
                overlaps = inters / union
                best, j = overlaps.max(), int(overlaps.argmax())
            if best >= iou:
                if not record["difficult"][j]:
                    if not record["matched"][j]:
                        tp[d] = 1.0
                        record["matched"][j] = True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / n_positive
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if interpolation == "11point":
            ap = 0.0
            for t in [k / 10 for k in range(11)]:  # not np.arange: 3 * 0.1 != 0.3
                p = precision[recall >= t].max() if (recall >= t).any() else 0.0
                ap += p / 11
        else:
            mrec = np.concatenate([[0.0], recall, [1.0]])
            mpre = np.concatenate([[0.0], precision, [0.0]])
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
        result[c] = ap
    return result


@st.composite
def detection_cases(draw):
    """A few images with integer boxes, random difficult flags, detections jittered from GT (so
    near-duplicates and exact IoU ties happen) or anywhere, and distinct scores."""
    n_classes = draw(st.integers(1, 3))
    box = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 12), st.integers(1, 12))
    targets, raw = [], []
    for _ in range(draw(st.integers(1, 4))):
        gts = draw(st.lists(st.tuples(box, st.integers(1, n_classes), st.booleans()), max_size=5))
        dets = []
        for _ in range(draw(st.integers(0, 8))):
            if gts and draw(st.booleans()):
                (x, y, w, h), label, _ = gts[draw(st.integers(0, len(gts) - 1))]
                dx, dy, dw, dh = (draw(st.integers(-2, 2)) for _ in range(4))
                x, y, w, h = x + dx, y + dy, max(w + dw, 1), max(h + dh, 1)
                if draw(st.integers(0, 4)) == 0:
                    label = draw(st.integers(1, n_classes))
            else:
                (x, y, w, h), label = draw(box), draw(st.integers(1, n_classes))
            dets.append(([x, y, x + w, y + h], label))
        targets.append(truth([[x, y, x + w, y + h] for (x, y, w, h), _, _ in gts], [g[1] for g in gts], [g[2] for g in gts]))
        raw.append(dets)
    n_detections = sum(len(d) for d in raw)
    ranks = draw(st.permutations(range(n_detections)))
    predictions, k = [], 0
    for dets in raw:
        scores = [(ranks[k + i] + 1) / (n_detections + 1) for i in range(len(dets))]
        k += len(dets)
        predictions.append(detections([b for b, _ in dets], scores, [label for _, label in dets]))
    return predictions, targets


@settings(max_examples=300, deadline=None)
@given(
    case=detection_cases(),
    iou=st.sampled_from([0.3, 0.5, 0.7]),
    interpolation=st.sampled_from(["11point", "all"]),
    pixel_plus_one=st.booleans(),
)
def test_voc_matches_plain_loop(case, iou, interpolation, pixel_plus_one):
    predictions, targets = case
    expected = reference_voc_ap(predictions, targets, iou, interpolation, pixel_plus_one)
    got = voc_ap_per_class(predictions, targets, iou=iou, interpolation=interpolation, pixel_plus_one=pixel_plus_one)
    assert set(got) == set(expected)
    for c, value in expected.items():
        assert got[c] == pytest.approx(value, abs=1e-9)
    if expected:
        mean = voc(predictions, targets, iou=iou, interpolation=interpolation, pixel_plus_one=pixel_plus_one)
        assert mean == pytest.approx(np.mean(list(expected.values())), abs=1e-9)


def test_tied_scores_keep_input_order():
    # one GT, a FP and a TP with the same score: ranked in input order, as the devkit's stable sort
    # FP first: precision 0, 1/2 at recall 0, 1 -> 1/2 either way; TP first: 1
    targets = [truth([A])]
    assert voc([detections([NOWHERE, A], [0.9, 0.9])], targets) == pytest.approx(0.5, abs=1e-12)
    assert voc([detections([A, NOWHERE], [0.9, 0.9])], targets) == pytest.approx(1.0, abs=1e-12)
    # across images: image order
    assert voc([detections([NOWHERE], [0.9]), detections([A], [0.9])], [truth([]), truth([A])]) == pytest.approx(0.5)


def test_detections_of_a_class_without_ground_truth_change_nothing():
    predictions = [detections([A, NOWHERE, B], [0.9, 0.8, 0.7])]
    targets = [truth([A, B, C])]
    extra = [detections([A, NOWHERE, B, A, C], [0.9, 0.8, 0.7, 0.95, 0.85], [1, 1, 1, 7, 7])]
    assert voc(extra, targets) == voc(predictions, targets)


# ----------------------------------------------------------------------------- COCO


def coco(predictions, targets, **options):
    return metrics.compute("coco-map", predictions, targets, **options)


def perfect_case():
    targets = [
        truth([[10, 10, 60, 80], [100, 40, 300, 200]], [1, 2]),
        truth([[5, 5, 25, 30]], [1]),
        truth([[50, 50, 400, 300], [0, 0, 40, 40], [200, 10, 260, 90]], [3, 2, 1]),
    ]
    predictions = [detections(t["boxes"], np.linspace(0.9, 0.5, len(t["boxes"])), t["labels"]) for t in targets]
    return predictions, targets


@pytest.mark.parametrize("iou", ["0.50:0.95", "0.50", "0.75"])
def test_coco_perfect_detector_scores_one(iou):
    predictions, targets = perfect_case()
    assert coco(predictions, targets, iou=iou) == pytest.approx(1.0, abs=1e-12)


def test_coco_iou_options_read_their_thresholds():
    # IoU 62.5 / 100: a TP at 0.50, 0.55, 0.60, not above: 0.50 -> 1, 0.75 -> 0, 0.50:0.95 -> 3/10
    predictions, targets = [detections([[0, 0, 10, 6.25]], [0.9])], [truth([[0, 0, 10, 10]])]
    assert coco(predictions, targets, iou="0.50") == pytest.approx(1.0, abs=1e-12)
    assert coco(predictions, targets, iou="0.75") == 0.0
    assert coco(predictions, targets) == pytest.approx(0.3, abs=1e-12)


def test_coco_no_detections_gives_zero_and_no_ground_truth_is_an_error():
    _, targets = perfect_case()
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, dtype=np.int64)}
    assert coco([empty] * len(targets), targets) == 0.0
    with pytest.raises(MetricError, match="^coco-map: no non-difficult ground-truth box"):
        coco([detections([A], [0.9])], [truth([])])
    # only difficult (crowd) boxes: pycocotools would say -1
    with pytest.raises(MetricError, match="^coco-map: no non-difficult"):
        coco([detections([A], [0.9])], [truth([A], difficult=[True])])


def test_coco_difficult_boxes_behave_as_crowd():
    targets = [truth([[0, 0, 50, 50], [100, 100, 150, 150]], difficult=[False, True])]
    on_difficult = [detections([[100, 100, 150, 150], [0, 0, 50, 50]], [0.95, 0.9])]
    on_nothing = [detections([[300, 300, 350, 350], [0, 0, 50, 50]], [0.95, 0.9])]
    # the top detection on the difficult box is ignored: AP stays 1 ...
    assert coco(on_difficult, targets, iou="0.50") == pytest.approx(1.0, abs=1e-12)
    # ... while the same detection on empty space is a FP that lowers it
    assert coco(on_nothing, targets, iou="0.50") < 0.9


def test_coco_prints_nothing(capsys):
    predictions, targets = perfect_case()
    coco(predictions, targets)
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- inputs and registry


def as_torch(entries, dtype=torch.float32):
    return [
        {k: torch.tensor(v, dtype=dtype) if v.dtype.kind == "f" else torch.tensor(v) for k, v in entry.items()}
        for entry in entries
    ]


@pytest.mark.parametrize("metric", ["voc-map", "coco-map"])
def test_torch_and_numpy_give_the_same_value(metric):
    predictions = [detections([A, NOWHERE, B], [0.9, 0.8, 0.7]), detections([C, [41, 1, 50, 11]], [0.6, 0.3])]
    targets = [truth([A, B], difficult=[False, True]), truth([C])]
    expected = metrics.compute(metric, predictions, targets)
    assert metrics.compute(metric, as_torch(predictions), as_torch(targets)) == expected
    assert metrics.compute(metric, as_torch(predictions, torch.float64), targets) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_same_value():
    predictions, targets = perfect_case()
    predictions[0] = detections([A, NOWHERE, B], [0.9, 0.8, 0.7], [1, 1, 2])
    cuda = lambda entries: [{k: v.cuda() for k, v in e.items()} for e in as_torch(entries)]
    for metric in ("voc-map", "coco-map"):
        assert metrics.compute(metric, cuda(predictions), cuda(targets)) == metrics.compute(metric, predictions, targets)


def test_missing_difficult_means_all_false():
    predictions = [detections([A, NOWHERE], [0.9, 0.8])]
    assert voc(predictions, [truth([A, B])]) == voc(predictions, [truth([A, B], difficult=[False, False])])


def bad_inputs():
    good_p, good_t = [detections([A], [0.9])], [truth([A])]
    nan_score = [detections([A], [float("nan")])]
    nan_box = [detections([[0, 0, float("nan"), 10]], [0.9])]
    five_columns = [{"boxes": np.zeros((1, 5)), "scores": np.ones(1), "labels": np.ones(1, dtype=np.int64)}]
    short_scores = [{"boxes": np.zeros((2, 4)), "scores": np.ones(1), "labels": np.ones(2, dtype=np.int64)}]
    no_labels = [{"boxes": np.zeros((1, 4)), "scores": np.ones(1)}]
    float_labels = [{"boxes": np.array([A], dtype=float), "scores": np.ones(1), "labels": np.array([1.5])}]
    return [
        (good_p * 2, good_t, "2 prediction entries but 1 target entries"),
        (nan_score, good_t, "prediction scores contain NaN"),
        (nan_box, good_t, "prediction boxes contain NaN"),
        (five_columns, good_t, r"predictions\[0\]\['boxes'\] must have shape \(n, 4\)"),
        (good_p, [{"boxes": np.zeros(3), "labels": np.ones(1)}], r"targets\[0\]\['boxes'\] must have shape"),
        (short_scores, good_t, r"\['scores'\] must have shape \(2,\)"),
        (no_labels, good_t, "has no 'labels'"),
        (float_labels, good_t, "must be integer classes"),
        (good_p, [truth([A], difficult=[True, False])], r"\['difficult'\] must have shape \(1,\)"),
        ([detections([[10, 0, 0, 10]], [0.9])], good_t, "x2 >= x1"),
        (good_p[0], good_t[0], "predictions must be a list"),
    ]


@pytest.mark.parametrize("metric", ["voc-map", "coco-map"])
@pytest.mark.parametrize(("predictions", "targets", "message"), bad_inputs())
def test_bad_input_raises_metric_error_naming_the_metric(metric, predictions, targets, message):
    with pytest.raises(MetricError, match=f"^{metric}: .*{message}"):
        metrics.compute(metric, predictions, targets)


def test_registered_names_directions_and_options():
    assert {"voc-map", "coco-map"} <= set(metrics.METRICS.names())
    assert metrics.direction("voc-map") == HIGHER
    assert metrics.direction("coco-map") == HIGHER
    assert metrics.is_better("voc-map", 0.6, 0.5)
    predictions, targets = [detections([A, NOWHERE, B], [0.9, 0.8, 0.7])], [truth([A, B])]
    assert metrics.compute("voc-map", predictions, targets, interpolation="all") == pytest.approx(5 / 6, abs=1e-12)
    assert metrics.compute("voc-map", predictions, targets, iou=1) == pytest.approx(28 / 33, abs=1e-12)
    with pytest.raises(UsageError):
        metrics.compute("voc-map", predictions, targets, interpolation="101point")
    with pytest.raises(UsageError):
        metrics.compute("coco-map", predictions, targets, iou="0.5")


def test_direct_calls_check_their_options():
    predictions, targets = [detections([A], [0.9])], [truth([A])]
    with pytest.raises(MetricError, match="^voc-map: interpolation"):
        voc_ap_per_class(predictions, targets, interpolation="101point")
    with pytest.raises(MetricError, match=r"^voc-map: iou threshold must be in \(0, 1\]"):
        voc_ap_per_class(predictions, targets, iou=0.0)
