"""Retrieval metrics against a brute-force NumPy implementation on small sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metricbench.tasks import metrics
from metricbench.tasks.metrics.retrieval import retrieval_metrics


def brute_force(embeddings: np.ndarray, labels: np.ndarray, ks) -> dict[str, float]:
    """The definitions, directly: full Euclidean distance matrix of L2-normalised embeddings."""
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    distance = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    recall_hits = {k: [] for k in ks}
    average_precisions, r_precisions = [], []
    for q in range(len(x)):
        others = [i for i in np.argsort(distance[q], kind="stable") if i != q]
        relevant = np.array([labels[i] == labels[q] for i in others])
        r = int(relevant.sum())
        if r == 0:
            continue  # no other item of its class: left out of every mean
        for k in ks:
            recall_hits[k].append(relevant[:k].any())
        top_r = relevant[:r]
        precision_at_i = np.cumsum(top_r) / np.arange(1, r + 1)
        average_precisions.append((precision_at_i * top_r).sum() / r)
        r_precisions.append(top_r.sum() / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recall_hits.items()}
    out["map@r"] = float(np.mean(average_precisions))
    out["r-precision"] = float(np.mean(r_precisions))
    return out


@st.composite
def embedding_sets(draw):
    n = draw(st.integers(3, 40))
    dim = draw(st.integers(2, 6))  # 1-D embeddings normalise to +-1: all distances tie
    classes = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    labels[0] = labels[1]  # at least one query has a partner
    centres = rng.normal(size=(classes, dim))
    embeddings = centres[labels] + rng.normal(scale=draw(st.sampled_from([0.1, 1.0, 3.0])), size=(n, dim))
    return embeddings, labels


@settings(max_examples=300, deadline=None)
@given(embedding_sets(), st.sampled_from([None, 1, 3, 7]))
def test_recall_map_r_and_r_precision_equal_brute_force(case, chunk_size):
    embeddings, labels = case
    ks = (1, 2, 5, len(labels) - 1, len(labels) + 3)
    expected = brute_force(embeddings, labels, ks)
    got = retrieval_metrics(embeddings, labels, ks, map_at_r=True, r_precision=True, chunk_size=chunk_size, device="cpu")
    assert got == pytest.approx(expected, abs=1e-12)


def test_registered_metrics_agree_with_the_one_pass_function():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 20, 500)
    embeddings = rng.normal(size=(20, 16))[labels] + rng.normal(scale=2.0, size=(500, 16))
    together = retrieval_metrics(embeddings, labels, (1, 10, 100), map_at_r=True, r_precision=True)
    for name in ("recall@1", "recall@10", "recall@100", "map@r", "r-precision"):
        assert metrics.compute(name, embeddings, labels) == pytest.approx(together[name], abs=1e-12)
        assert metrics.direction(name) == "higher"
    float32 = metrics.compute("map@r", torch.from_numpy(embeddings).float(), torch.from_numpy(labels))
    assert float32 == pytest.approx(together["map@r"], abs=1e-4)


def test_perfectly_separated_classes_score_one():
    labels = np.repeat(np.arange(5), 4)
    embeddings = np.eye(5)[labels] + 1e-3 * np.random.default_rng(0).normal(size=(20, 5))
    got = retrieval_metrics(embeddings, labels, (1, 3), map_at_r=True, r_precision=True)
    assert got == {"recall@1": 1.0, "recall@3": 1.0, "map@r": 1.0, "r-precision": 1.0}


@pytest.mark.parametrize(
    ("embeddings", "labels", "problem"),
    [
        ([[0.1, float("nan")], [0.2, 0.3]], [0, 0], "NaN"),
        ([[0.1, 0.2], [0.2, 0.3]], [0, 1], "no item has another item of its class"),
        ([[0.1, 0.2], [0.2, 0.3], [0.5, 0.5]], [0, 0], "3 embeddings but 2 labels"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "must be \\(N, D\\)"),
        ([[0.1, 0.2]], [0], "at least 2 items"),
    ],
)
def test_bad_input_raises_an_error_naming_the_metric(embeddings, labels, problem):
    with pytest.raises(metrics.MetricError, match=problem) as info:
        metrics.compute("recall@1", np.array(embeddings), np.array(labels))
    assert str(info.value).startswith("recall@1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_and_cpu_agree():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 30, 2000)
    embeddings = rng.normal(size=(30, 32))[labels] + rng.normal(scale=2.0, size=(2000, 32))
    on_cpu = retrieval_metrics(embeddings, labels, (1, 10), map_at_r=True, device="cpu")
    on_gpu = retrieval_metrics(torch.from_numpy(embeddings).cuda(), labels, (1, 10), map_at_r=True)
    assert on_gpu == pytest.approx(on_cpu, abs=1e-9)
