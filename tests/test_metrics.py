"""Metrics against scikit-learn on random cases, ties and degenerate inputs included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metricbench.tasks import metrics
from sklearn.metrics import (
    auc,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

TOL = 1e-9


@st.composite
def binary_case(draw, need_negative=False):
    n = draw(st.integers(2, 60))
    # few distinct values so many cases have ties; sometimes continuous scores
    tied = draw(st.booleans())
    elements = st.integers(0, 4).map(lambda v: v / 4) if tied else st.floats(0, 1, allow_nan=False)
    scores = np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)
    targets = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    targets[0] = 1
    if need_negative:
        targets[1] = 0
    return scores, targets


@st.composite
def multiclass_case(draw):
    classes = draw(st.integers(3, 5))
    n = draw(st.integers(classes, 50))
    scores = np.array(
        draw(st.lists(st.lists(st.integers(0, 3), min_size=classes, max_size=classes), min_size=n, max_size=n)), dtype=np.float64
    )
    targets = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    targets[:classes] = np.arange(classes)  # every class present
    return scores, targets


@settings(max_examples=300, deadline=None)
@given(binary_case())
def test_binary_aucpr_equals_sklearn_average_precision(case):
    scores, targets = case
    assert metrics.compute("aucpr", scores, targets) == pytest.approx(average_precision_score(targets, scores), abs=TOL)


@settings(max_examples=200, deadline=None)
@given(binary_case())
def test_trapezoid_aucpr_equals_area_under_sklearn_pr_curve(case):
    scores, targets = case
    precision, recall, _ = precision_recall_curve(targets, scores)
    expected = auc(recall, precision)
    assert metrics.compute("aucpr", scores, targets, area="trapezoid") == pytest.approx(expected, abs=TOL)


@settings(max_examples=300, deadline=None)
@given(binary_case(need_negative=True))
def test_binary_auroc_equals_sklearn(case):
    scores, targets = case
    assert metrics.compute("auroc", scores, targets) == pytest.approx(roc_auc_score(targets, scores), abs=TOL)


@settings(max_examples=200, deadline=None)
@given(multiclass_case())
def test_multiclass_macro_and_micro_aucpr_equal_sklearn_one_vs_rest(case):
    scores, targets = case
    onehot = np.eye(scores.shape[1])[targets]
    assert metrics.compute("aucpr", scores, targets) == pytest.approx(
        average_precision_score(onehot, scores, average="macro"), abs=TOL
    )
    assert metrics.compute("aucpr", scores, targets, average="micro") == pytest.approx(
        average_precision_score(onehot, scores, average="micro"), abs=TOL
    )


@settings(max_examples=200, deadline=None)
@given(multiclass_case())
def test_multiclass_auroc_equals_sklearn_macro_ovr(case):
    scores, targets = case
    onehot = np.eye(scores.shape[1])[targets]
    if (onehot.sum(0) == len(targets)).any():
        return  # a class that is every example has no negatives
    assert metrics.compute("auroc", scores, targets) == pytest.approx(roc_auc_score(onehot, scores, average="macro"), abs=TOL)


@settings(max_examples=200, deadline=None)
@given(multiclass_case())
def test_misclassification_is_share_of_wrong_argmax(case):
    scores, targets = case
    expected = float(np.mean(np.argmax(scores, axis=1) != targets))  # NumPy's arg-max also takes the first of ties
    assert metrics.compute("misclassification", scores, targets) == pytest.approx(expected, abs=TOL)


@settings(max_examples=200, deadline=None)
@given(binary_case())
def test_binary_misclassification_and_f1_error_use_threshold_half(case):
    scores, targets = case
    predicted = (scores >= 0.5).astype(int)
    assert metrics.compute("misclassification", scores, targets) == pytest.approx(np.mean(predicted != targets), abs=TOL)
    expected_f1 = f1_score(targets, predicted, zero_division=0.0)
    assert metrics.compute("f1-error", scores, targets) == pytest.approx(1 - expected_f1, abs=TOL)


def test_float32_torch_input_matches_float64_reference():
    rng = np.random.default_rng(0)
    scores = rng.random(5000).astype(np.float32)
    targets = (rng.random(5000) < 0.3).astype(int)
    value = metrics.compute("aucpr", torch.from_numpy(scores), torch.from_numpy(targets))
    assert value == pytest.approx(average_precision_score(targets, scores), abs=1e-4)


def test_all_tied_scores_give_the_positive_rate():
    targets = np.array([1, 0, 0, 1, 0])
    assert metrics.compute("aucpr", np.full(5, 0.3), targets) == pytest.approx(0.4)
    assert metrics.compute("auroc", np.full(5, 0.3), targets) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("name", "scores", "targets", "problem"),
    [
        ("aucpr", [0.1, float("nan")], [0, 1], "NaN"),
        ("misclassification", [[0.1, float("nan")]], [0], "NaN"),
        ("aucpr", [0.1, 0.2], [0, 0], "no positive"),
        ("auroc", [0.1, 0.2], [1, 1], "negative"),
        ("aucpr", [0.1, 0.2, 0.3], [0, 1], "3 scores but 2 targets"),
        ("aucpr", [], [], "no examples"),
        ("f1-error", [[0.2, 0.8]], [1], "binary"),
        ("misclassification", [0.3, 0.9], [0, 2], "0/1 targets"),
        ("topk-error", [0.3, 0.9], [0, 1], "score matrix"),
        ("recall@precision", [0.3, 0.9], [0, 0], "no positive"),
    ],
)
def test_bad_input_raises_an_error_naming_the_metric_and_problem(name, scores, targets, problem):
    with pytest.raises(metrics.MetricError, match=problem) as info:
        metrics.compute(name, np.array(scores, dtype=float), np.array(targets, dtype=int))
    assert str(info.value).startswith(name)


def test_directions_and_unknown_metric():
    assert metrics.direction("misclassification") == "lower"
    assert metrics.direction("aucpr") == "higher"
    assert metrics.is_better("misclassification", 0.1, 0.2)
    assert metrics.is_better("aucpr", 0.9, 0.8)
    from metricbench.bench.core.errors import UsageError

    with pytest.raises(UsageError, match="did you mean 'aucpr'"):
        metrics.direction("aucprr")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_give_the_cpu_value():
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.random((300, 4)))
    targets = torch.from_numpy(rng.integers(0, 4, 300))
    for name in ("misclassification", "aucpr", "auroc"):
        assert metrics.compute(name, scores.cuda(), targets.cuda()) == pytest.approx(
            metrics.compute(name, scores, targets), abs=1e-12
        )


@st.composite
def labelled_predictions(draw):
    """Multi-class integer scores (many ties) with labels; some classes may be absent."""
    classes = draw(st.integers(2, 6))
    n = draw(st.integers(1, 40))
    rows = st.lists(st.integers(0, 3), min_size=classes, max_size=classes)
    scores = np.array(draw(st.lists(rows, min_size=n, max_size=n)), dtype=np.float64)
    targets = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    return scores, targets


@settings(max_examples=500, deadline=None)
@given(labelled_predictions(), st.sampled_from(["macro", "micro"]))
def test_multiclass_precision_recall_f1_equal_sklearn(case, average):
    scores, targets = case
    predicted = np.argmax(scores, axis=1)
    expected = precision_recall_fscore_support(targets, predicted, average=average, zero_division=0.0)[:3]
    for name, value in zip(("precision", "recall", "f1"), expected, strict=True):
        assert metrics.compute(name, scores, targets, average=average) == pytest.approx(value, abs=TOL), name


@settings(max_examples=500, deadline=None)
@given(binary_case(), st.sampled_from([0.25, 0.5, 0.75]))
def test_binary_precision_recall_f1_at_threshold_equal_sklearn(case, threshold):
    scores, targets = case
    predicted = (scores >= threshold).astype(int)
    expected = precision_recall_fscore_support(targets, predicted, average="binary", zero_division=0.0)[:3]
    for name, value in zip(("precision", "recall", "f1"), expected, strict=True):
        assert metrics.compute(name, scores, targets, threshold=threshold) == pytest.approx(value, abs=TOL), name
    assert metrics.compute("f1-error", scores, targets, threshold=threshold) == pytest.approx(1 - expected[2], abs=TOL)


@settings(max_examples=500, deadline=None)
@given(binary_case(), st.sampled_from([0.5, 0.8, 0.9, 1.0]))
def test_recall_at_precision_equals_the_best_point_of_sklearn_pr_curve(case, target_precision):
    scores, targets = case
    precisions, recalls, _ = precision_recall_curve(targets, scores)
    reached = recalls[precisions >= target_precision]
    expected = reached.max() if reached.size else 0.0
    assert metrics.compute("recall@precision", scores, targets, precision=target_precision) == pytest.approx(expected, abs=TOL)


@settings(max_examples=500, deadline=None)
@given(st.integers(3, 8), st.integers(1, 60), st.integers(1, 8), st.randoms(use_true_random=False))
def test_topk_error_equals_sklearn_without_ties(classes, n, k, rng):
    k = min(k, classes - 1)  # scikit-learn reads 2 classes as binary and refuses k >= classes
    scores = np.array([rng.sample(range(1000), classes) for _ in range(n)], dtype=np.float64)  # distinct per row
    targets = np.array([rng.randrange(classes) for _ in range(n)])
    expected = 1 - top_k_accuracy_score(targets, scores, k=k, labels=np.arange(classes))
    assert metrics.compute("topk-error", scores, targets, k=k) == pytest.approx(expected, abs=TOL)


@settings(max_examples=500, deadline=None)
@given(labelled_predictions(), st.integers(1, 4))
def test_topk_error_with_ties_ranks_lower_class_index_first(case, k):
    scores, targets = case
    # brute force: a stable sort by descending score keeps the lower class index first among ties
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    expected = float(np.mean([t not in row for t, row in zip(targets, order, strict=True)]))
    assert metrics.compute("topk-error", scores, targets, k=k) == pytest.approx(expected, abs=TOL)
    if k == 1:
        assert metrics.compute("topk-error", scores, targets, k=1) == metrics.compute("misclassification", scores, targets)
        assert metrics.compute("accuracy", scores, targets) == pytest.approx(1 - expected, abs=TOL)
