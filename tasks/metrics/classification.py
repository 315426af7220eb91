"""Classification metrics.

Every metric here takes `scores` and `targets` as torch tensors (CPU or CUDA) or NumPy arrays and returns
a Python float. Classification scores are either a 1-D tensor of positive-class probabilities
(binary tasks) or an (N, C) tensor of class scores (multi-class). Bad input (NaN scores, mismatched
lengths, a metric undefined on the data) raises `MetricError` naming the metric and the problem;
no metric silently returns a wrong number.

Definitions (each checked against scikit-learn in tests/test_metrics.py):
- misclassification: share of predictions != label; binary: score >= 0.5 predicts the positive class;
  multi-class: arg-max (ties go to the lowest class index).
- aucpr: average precision, the step-wise sum over thresholds of (R_n - R_{n-1}) * P_n, as
  scikit-learn's `average_precision_score`; tied scores form one threshold. Multi-class: one-vs-rest,
  `average="macro"` (default: mean over classes that have positives) or `"micro"` (all class-example
  pairs pooled). `area="trapezoid"` gives the trapezoid area under the PR curve instead (the curve
  starts at recall 0, precision 1, as scikit-learn's `precision_recall_curve`).
- auroc: area under the ROC curve (trapezoid; ties handled as one threshold); multi-class: macro
  one-vs-rest.
- accuracy: 1 - misclassification.
- topk-error (option k): share of examples whose label is not among the k highest class scores;
  ties are broken toward the lower class index, as for arg-max, so topk-error with k=1 equals
  misclassification. (scikit-learn's `top_k_accuracy_score` breaks ties the other way; on scores
  without ties the two agree.)
- precision, recall, f1 (options threshold, average): binary: of the positive class, predicting
  positive when score >= threshold; multi-class: arg-max predictions, `average="macro"` over the
  classes that occur in the targets or the predictions, or `"micro"`. A ratio with a zero
  denominator counts as 0 (scikit-learn's `zero_division=0`).
- f1-error (option threshold): 1 - f1 (binary).
- recall@precision (option precision): the highest recall reached at a threshold whose precision is
  at least the given one (binary); 0 when no threshold reaches it.

Positive-class counts of 0 make aucpr, auroc and recall@precision undefined: they raise
MetricError (binary) or skip that class in a macro mean (multi-class).
"""

from __future__ import annotations

import numpy as np
import torch
from metricbench.bench.core.registry import Option
from metricbench.tasks.metrics.core import HIGHER, LOWER, MetricError, as_tensor, register_metric

# ----------------------------------------------------------------------------- input checks


def _prepare(metric: str, scores, targets, expect: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked float64 scores and int64 targets; `expect` = "binary" (1-D) or "matrix" (N, C) when only one fits."""
    scores = as_tensor(scores, torch.float64)
    targets = as_tensor(targets).to(device=scores.device, dtype=torch.int64).reshape(-1)
    if scores.ndim not in (1, 2):
        raise MetricError(f"{metric}: scores must be 1-D (binary) or 2-D (N, classes), got shape {tuple(scores.shape)}")
    if scores.shape[0] != targets.shape[0]:
        raise MetricError(f"{metric}: {scores.shape[0]} scores but {targets.shape[0]} targets")
    if scores.shape[0] == 0:
        raise MetricError(f"{metric}: no examples to score")
    if torch.isnan(scores).any():
        raise MetricError(f"{metric}: scores contain NaN (did the model diverge?)")
    if scores.ndim == 1 and ((targets < 0) | (targets > 1)).any():
        raise MetricError(f"{metric}: binary scores need 0/1 targets, got values {targets.unique().tolist()[:5]}")
    if expect == "binary" and scores.ndim != 1:
        raise MetricError(f"{metric}: defined for binary scores (1-D), got a score matrix")
    if expect == "matrix" and scores.ndim != 2:
        raise MetricError(f"{metric}: needs an (N, classes) score matrix")
    if scores.ndim == 2 and ((targets < 0) | (targets >= scores.shape[1])).any():
        raise MetricError(f"{metric}: targets must lie in 0..{scores.shape[1] - 1}")
    return scores, targets


def _one_vs_rest(scores: torch.Tensor, targets: torch.Tensor):
    """Yield (class scores, 0/1 targets) per class of a 2-D score matrix."""
    for c in range(scores.shape[1]):
        yield scores[:, c], (targets == c).to(torch.int64)


# ----------------------------------------------------------------------------- ranking curves


def _threshold_counts(scores: torch.Tensor, positives: torch.Tensor):
    """True and false positive counts at each distinct score threshold, highest threshold first."""
    order = torch.argsort(scores, descending=True, stable=True)
    sorted_scores, sorted_pos = scores[order], positives[order].to(torch.float64)
    # the last index of each run of tied scores closes a threshold
    last_of_run = torch.nonzero(sorted_scores[1:] != sorted_scores[:-1]).reshape(-1)
    ends = torch.cat([last_of_run, torch.tensor([scores.numel() - 1], device=scores.device)])
    tps = torch.cumsum(sorted_pos, 0)[ends]
    fps = (ends + 1).to(torch.float64) - tps
    return tps, fps


def _binary_average_precision(scores: torch.Tensor, positives: torch.Tensor, area: str, metric: str) -> float:
    n_pos = int(positives.sum())
    if n_pos == 0:
        raise MetricError(f"{metric}: no positive examples, so average precision is undefined")
    tps, fps = _threshold_counts(scores, positives)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    if area == "step":
        previous = torch.cat([recall.new_zeros(1), recall[:-1]])
        return float(torch.sum((recall - previous) * precision))
    # trapezoid under the curve that starts at (recall 0, precision 1)
    recall = torch.cat([recall.new_zeros(1), recall])
    precision = torch.cat([precision.new_ones(1), precision])
    return float(torch.trapezoid(precision, recall))


def _binary_auroc(scores: torch.Tensor, positives: torch.Tensor, metric: str) -> float:
    n_pos = int(positives.sum())
    n_neg = positives.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise MetricError(f"{metric}: needs both positive and negative examples, got {n_pos} positive, {n_neg} negative")
    tps, fps = _threshold_counts(scores, positives)
    tpr = torch.cat([tps.new_zeros(1), tps / n_pos])
    fpr = torch.cat([fps.new_zeros(1), fps / n_neg])
    return float(torch.trapezoid(tpr, fpr))


def _macro(metric: str, scores: torch.Tensor, targets: torch.Tensor, binary_fn) -> float:
    """Mean of `binary_fn` over classes that occur in `targets` (a class with no positive is skipped)."""
    values = [binary_fn(s, y) for s, y in _one_vs_rest(scores, targets) if int(y.sum()) > 0]
    if not values:
        raise MetricError(f"{metric}: no class has a positive example")
    return float(np.mean(values))


# ----------------------------------------------------------------------------- registered metrics


def _predicted_labels(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Binary: positive when score >= threshold; multi-class: arg-max (ties to the lowest class index)."""
    if scores.ndim == 1:
        return (scores >= threshold).to(torch.int64)
    return torch.argmax(scores, dim=1)


@register_metric("misclassification", LOWER, "share of wrong predictions (binary: score >= 0.5; multi-class: arg-max)")
def misclassification(scores, targets) -> float:
    scores, targets = _prepare("misclassification", scores, targets)
    return float((_predicted_labels(scores, 0.5) != targets).to(torch.float64).mean())


@register_metric(
    "aucpr",
    HIGHER,
    "area under the precision-recall curve as average precision (step-wise; multi-class one-vs-rest)",
    options={
        "average": Option(str, "macro", "multi-class: mean of per-class AP, or AP of all pooled pairs", ("macro", "micro")),
        "area": Option(str, "step", "step-wise average precision or trapezoid area", ("step", "trapezoid")),
    },
)
def aucpr(scores, targets, average: str = "macro", area: str = "step") -> float:
    scores, targets = _prepare("aucpr", scores, targets)
    if scores.ndim == 1:
        return _binary_average_precision(scores, targets, area, "aucpr")
    if average == "micro":
        onehot = torch.nn.functional.one_hot(targets, scores.shape[1])
        return _binary_average_precision(scores.reshape(-1), onehot.reshape(-1), area, "aucpr")
    return _macro("aucpr", scores, targets, lambda s, y: _binary_average_precision(s, y, area, "aucpr"))


@register_metric("auroc", HIGHER, "area under the ROC curve (multi-class: macro one-vs-rest)")
def auroc(scores, targets) -> float:
    scores, targets = _prepare("auroc", scores, targets)
    if scores.ndim == 1:
        return _binary_auroc(scores, targets, "auroc")
    return _macro("auroc", scores, targets, lambda s, y: _binary_auroc(s, y, "auroc"))


@register_metric("accuracy", HIGHER, "share of correct predictions (1 - misclassification)")
def accuracy(scores, targets) -> float:
    return 1.0 - misclassification(scores, targets)


@register_metric(
    "topk-error",
    LOWER,
    "share of examples whose label is not among the k highest scores (ties: lower class index first)",
    options={"k": Option(int, 5, "how many of the highest-scored classes count as a hit")},
)
def topk_error(scores, targets, k: int = 5) -> float:
    scores, targets = _prepare("topk-error", scores, targets, expect="matrix")
    if k < 1:
        raise MetricError(f"topk-error: k must be at least 1, got {k}")
    true_score = scores.gather(1, targets[:, None])
    class_index = torch.arange(scores.shape[1], device=scores.device)
    # the rank of the true class: classes scored higher, plus tied classes with a lower index
    rank = (scores > true_score).sum(1) + ((scores == true_score) & (class_index < targets[:, None])).sum(1)
    return float((rank >= k).to(torch.float64).mean())


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1), torch.zeros_like(numerator))


def _precision_recall_f1(
    metric: str, scores, targets, threshold: float, average: str, expect: str | None = None
) -> tuple[float, float, float]:
    scores, targets = _prepare(metric, scores, targets, expect)
    predicted = _predicted_labels(scores, threshold)
    if scores.ndim == 1:
        classes = torch.tensor([1], device=scores.device)
    else:
        classes = torch.unique(torch.cat([targets, predicted]))
    is_pred = predicted[None, :] == classes[:, None]
    is_true = targets[None, :] == classes[:, None]
    tp = (is_pred & is_true).sum(1).to(torch.float64)
    n_pred = is_pred.sum(1).to(torch.float64)
    n_true = is_true.sum(1).to(torch.float64)
    if average == "micro" and scores.ndim == 2:
        tp, n_pred, n_true = tp.sum(0, keepdim=True), n_pred.sum(0, keepdim=True), n_true.sum(0, keepdim=True)
    precision = _ratio(tp, n_pred)
    recall = _ratio(tp, n_true)
    f1 = _ratio(2 * tp, n_pred + n_true)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


_THRESHOLD_OPTIONS = {
    "threshold": Option(float, 0.5, "binary: predict positive when score >= threshold"),
    "average": Option(str, "macro", "multi-class: mean over classes, or pooled counts", ("macro", "micro")),
}


@register_metric("precision", HIGHER, "precision at a threshold (binary) or of arg-max predictions", _THRESHOLD_OPTIONS)
def precision(scores, targets, threshold: float = 0.5, average: str = "macro") -> float:
    return _precision_recall_f1("precision", scores, targets, threshold, average)[0]


@register_metric("recall", HIGHER, "recall at a threshold (binary) or of arg-max predictions", _THRESHOLD_OPTIONS)
def recall(scores, targets, threshold: float = 0.5, average: str = "macro") -> float:
    return _precision_recall_f1("recall", scores, targets, threshold, average)[1]


@register_metric("f1", HIGHER, "F1 at a threshold (binary) or of arg-max predictions", _THRESHOLD_OPTIONS)
def f1(scores, targets, threshold: float = 0.5, average: str = "macro") -> float:
    return _precision_recall_f1("f1", scores, targets, threshold, average)[2]


@register_metric(
    "f1-error",
    LOWER,
    "1 - F1 of the positive class at a threshold (binary)",
    options={"threshold": Option(float, 0.5, "predict positive when score >= threshold")},
)
def f1_error(scores, targets, threshold: float = 0.5) -> float:
    return 1.0 - _precision_recall_f1("f1-error", scores, targets, threshold, "macro", expect="binary")[2]


@register_metric(
    "recall@precision",
    HIGHER,
    "highest recall at a threshold whose precision is at least the given one (binary)",
    options={"precision": Option(float, 0.9, "the precision the threshold must reach")},
)
def recall_at_precision(scores, targets, precision: float = 0.9) -> float:
    scores, targets = _prepare("recall@precision", scores, targets, expect="binary")
    n_pos = int(targets.sum())
    if n_pos == 0:
        raise MetricError("recall@precision: no positive examples, so recall is undefined")
    tps, fps = _threshold_counts(scores, targets)
    reached = tps / (tps + fps) >= precision
    return float((tps[reached] / n_pos).max()) if bool(reached.any()) else 0.0
