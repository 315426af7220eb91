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
- f1-error: 1 - F1 of the positive class at threshold 0.5 (binary); F1 is 0 when there is no true
  positive.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.registry import Option
from tasks.metrics.core import HIGHER, LOWER, MetricError, as_tensor, register_metric

# ----------------------------------------------------------------------------- input checks


def _prepare(metric: str, scores, targets) -> tuple[torch.Tensor, torch.Tensor]:
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


@register_metric("misclassification", LOWER, "share of wrong predictions (binary: score >= 0.5; multi-class: arg-max)")
def misclassification(scores, targets) -> float:
    scores, targets = _prepare("misclassification", scores, targets)
    predicted = (scores >= 0.5).to(torch.int64) if scores.ndim == 1 else torch.argmax(scores, dim=1)
    return float((predicted != targets).to(torch.float64).mean())


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


@register_metric("f1-error", LOWER, "1 - F1 of the positive class at threshold 0.5 (binary)")
def f1_error(scores, targets) -> float:
    scores, targets = _prepare("f1-error", scores, targets)
    if scores.ndim != 1:
        raise MetricError("f1-error: defined for binary scores (1-D), got a score matrix")
    predicted = scores >= 0.5
    actual = targets == 1
    tp = int((predicted & actual).sum())
    if tp == 0:
        return 1.0
    precision = tp / int(predicted.sum())
    recall = tp / int(actual.sum())
    return 1.0 - 2 * precision * recall / (precision + recall)
