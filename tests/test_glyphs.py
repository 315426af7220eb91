"""The glyphs retrieval pieces: the image generator, circle loss against its definition, the embedder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metricbench.tasks.formats.glyphs import make_glyphs
from metricbench.tasks.kinds.retrieval_loss import circle_loss
from metricbench.tasks.models.small import EmbeddingCNN


def test_generator_is_deterministic_with_expected_shapes():
    images, labels = make_glyphs(7, 3, 18, seed=5)
    again_images, again_labels = make_glyphs(7, 3, 18, seed=5)
    other_images, _ = make_glyphs(7, 3, 18, seed=6)
    assert images.shape == (21, 1, 18, 18) and images.dtype == np.uint8
    assert labels.shape == (21,) and labels.dtype == np.int64
    assert np.array_equal(labels, np.repeat(np.arange(7), 3))
    assert np.array_equal(images, again_images) and np.array_equal(labels, again_labels)
    assert not np.array_equal(images, other_images)
    assert 0 < images.mean() < 255  # neither blank nor saturated


def test_instances_of_a_class_are_closer_than_different_classes():
    """Mean absolute pixel distance. Jitter, affine and noise keep raw pixels a weak cue (which is why
    the task needs a learned embedding), so the gap is modest, but it holds overall and for most classes."""
    n_classes, per_class = 30, 6
    images, labels = make_glyphs(n_classes, per_class, 20, seed=0)
    x = images.reshape(len(images), -1).astype(np.float64)
    distance = np.abs(x[:, None] - x[None]).mean(-1)
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(len(x), dtype=bool)
    assert distance[same & off_diagonal].mean() < 0.95 * distance[~same].mean()
    within = np.array([distance[labels == c][:, (labels == c)].sum() / (per_class * (per_class - 1)) for c in range(n_classes)])
    between = np.array([distance[labels == c][:, labels != c].mean() for c in range(n_classes)])
    assert (within < between).mean() >= 0.8
    # ...but instances do vary: no two images of a class are identical
    assert distance[same & off_diagonal].min() > 0


def naive_circle_loss(embeddings, labels, margin, scale) -> float:
    """The paper's per-anchor formula, one anchor at a time, without logsumexp: log(1 + sum_n sum_p exp(...))."""
    x = embeddings / embeddings.norm(dim=1, keepdim=True)
    losses = []
    for a in range(len(x)):
        negative_sum = positive_sum = 0.0
        has_positive = has_negative = False
        for b in range(len(x)):
            if b == a:
                continue
            s = float(x[a] @ x[b])
            if labels[b] == labels[a]:
                has_positive = True
                positive_sum += math.exp(-scale * max(0.0, 1 + margin - s) * (s - (1 - margin)))
            else:
                has_negative = True
                negative_sum += math.exp(scale * max(0.0, s + margin) * (s - margin))
        if has_positive and has_negative:
            losses.append(math.log1p(negative_sum * positive_sum))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("margin, scale", [(0.25, 8.0), (0.4, 16.0), (0.1, 2.0)])
def test_circle_loss_matches_the_per_anchor_definition(margin, scale):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(14, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4, 5, 6])  # 3, 5 and 6 are singletons: not anchors
    expected = naive_circle_loss(embeddings, labels, margin, scale)
    assert float(circle_loss(embeddings, labels, margin, scale)) == pytest.approx(expected, rel=1e-9)
    margin_tensor, scale_tensor = torch.tensor(margin, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)
    as_tensors = circle_loss(embeddings, labels, margin_tensor, scale_tensor)
    assert float(as_tensors) == pytest.approx(expected, rel=1e-9)


def test_circle_loss_is_stable_for_large_scales():
    embeddings = torch.randn(32, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    labels = torch.arange(8).repeat_interleave(4)
    loss = circle_loss(embeddings, labels, 0.4, 1e4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize("labels", [torch.zeros(6, dtype=torch.int64), torch.arange(6)], ids=["one-class", "no-positives"])
def test_circle_loss_without_comparable_pairs_is_zero_and_backpropagates(labels):
    embeddings = torch.randn(6, 4, requires_grad=True)
    loss = circle_loss(embeddings, labels, 0.4, 80.0)
    assert loss.ndim == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_circle_loss_is_lower_when_classes_are_tight():
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(6).repeat_interleave(4)
    centres = torch.randn(6, 16, generator=generator)
    tight = centres[labels] + 0.01 * torch.randn(24, 16, generator=generator)
    shuffled = tight[torch.randperm(24, generator=generator)]
    assert circle_loss(tight, labels, 0.4, 80.0) < circle_loss(shuffled, labels, 0.4, 80.0)


def test_circle_loss_gradients_reach_margin_and_scale():
    embeddings = torch.randn(12, 4, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(3).repeat_interleave(4)
    margin = torch.tensor(0.3, requires_grad=True)
    scale = torch.tensor(20.0, requires_grad=True)
    circle_loss(embeddings, labels, margin, scale).backward()
    assert torch.isfinite(margin.grad) and margin.grad != 0
    assert torch.isfinite(scale.grad) and scale.grad != 0


def test_embedder_accepts_uint8_and_float_pixels_alike():
    images, _ = make_glyphs(3, 2, 20, seed=0)
    model = EmbeddingCNN(in_channels=1, embedding_dim=12, widths=(4, 8)).eval()
    pixels = torch.from_numpy(images)
    with torch.no_grad():
        from_uint8 = model(pixels)
        from_float = model(pixels.float())
    assert from_uint8.shape == (6, 12) and from_uint8.dtype == torch.float32
    assert torch.allclose(from_uint8, from_float)
