"""Circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization", CVPR 2020).

The surrogate of the retrieval task. Within a batch, every item is an anchor; its positives are the
other items of its class and its negatives the items of other classes. With cosine similarities
s_p (positives) and s_n (negatives) of L2-normalised embeddings, margin m and scale gamma:

    alpha_p = relu(1 + m - s_p),   alpha_n = relu(s_n + m)          (self-paced weights)
    delta_p = 1 - m,               delta_n = m                      (decision margins)
    loss(anchor) = softplus( logsumexp_n gamma * alpha_n * (s_n - delta_n)
                           + logsumexp_p -gamma * alpha_p * (s_p - delta_p) )

which is the paper's log(1 + sum_n sum_p exp(...)) written with logsumexps so that nothing
overflows for large gamma. The loss is the mean over anchors that have at least one positive and
one negative in the batch.

The weights alpha are constants in back-propagation with respect to the similarities: they are
computed from detached similarities, so they rescale each pair's gradient (the paper's point:
pairs far from their optimum are pushed harder) rather than being a term the optimiser could shrink
by moving similarities; widely used implementations do the same. The weights still depend on m,
and the loss on m and gamma, so a controller may pass both as tensors that require gradients.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _masked_logsumexp(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logsumexp over each row's entries where `mask` is True; every row must have at least one."""
    return torch.logsumexp(values.masked_fill(~mask, float("-inf")), dim=1)


def circle_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin=0.4, scale=80.0) -> torch.Tensor:
    """Pair-wise circle loss of a batch of (unnormalised) embeddings (B, D) with labels (B,); a 0-dim tensor.

    `margin` and `scale` may be Python floats or 0-dim tensors (gradients flow into tensors). The
    defaults (m = 0.4, gamma = 80) were chosen on the glyphs task; (0.25, 64), (0.25, 32) and
    (0.15, 64) did no better there.
    When no anchor has both a positive and a negative (one class only, or every class a singleton)
    there is nothing to compare and the loss is 0; it is returned as `0 * embeddings.sum()`, so it
    stays attached to the graph and `backward()` gives zero gradients instead of failing.
    """
    x = F.normalize(embeddings, dim=1)
    similarity = x @ x.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same
    anchors = positive.any(1) & negative.any(1)
    if not anchors.any():
        return 0 * embeddings.sum()
    similarity, positive, negative = similarity[anchors], positive[anchors], negative[anchors]

    fixed = similarity.detach()
    alpha_p = torch.relu(1 + margin - fixed)
    alpha_n = torch.relu(fixed + margin)
    positive_logits = -scale * alpha_p * (similarity - (1 - margin))
    negative_logits = scale * alpha_n * (similarity - margin)
    per_anchor = F.softplus(_masked_logsumexp(negative_logits, negative) + _masked_logsumexp(positive_logits, positive))
    return per_anchor.mean()
