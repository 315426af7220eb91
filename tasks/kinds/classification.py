"""The classification kind: binary (one logit) or multi-class (C logits), scored on probabilities.

Its loss family is Adaptive Loss Alignment's class-relation loss (Huang et al., ICML 2019),
`l(p, y) = -squash(y^T Phi log p)` with `Phi` a C x C class-relation matrix (binary: 2 x 2 over
(negative, positive)). With `Phi` = identity and no squash it is exactly cross-entropy (binary:
the logistic loss); ALA's own form squashes with a sigmoid, which is monotone and so keeps
cross-entropy's ranking of predictions at `Phi` = identity.
"""

from __future__ import annotations

import torch
from metricbench.tasks.kinds.base import LossFamily, Task
from torch import nn

SQUASHES = ("none", "sigmoid")


class ClassRelationLoss(LossFamily):
    """`-squash(y^T Phi log p)` averaged over the batch; parameter `phi` (C x C), initially identity."""

    def __init__(self, num_classes: int, squash: str = "none"):
        if squash not in SQUASHES:
            raise ValueError(f"squash must be one of {SQUASHES}, got {squash!r}")
        self.num_classes = num_classes
        self.squash = squash

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def init_params(self) -> dict[str, torch.Tensor]:
        return {"phi": torch.eye(self.num_classes)}

    def log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, C) log-probabilities; binary logits (N,) or (N, 1) become (N, 2) over (negative, positive)."""
        if self.binary:
            z = logits.reshape(-1)
            return torch.stack([nn.functional.logsigmoid(-z), nn.functional.logsigmoid(z)], dim=1)
        return torch.log_softmax(logits, dim=1)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, params=None) -> torch.Tensor:
        if params is None and self.squash == "none":  # the plain surrogate: PyTorch's fused kernels
            if self.binary:
                return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), targets.to(logits.dtype))
            return nn.functional.cross_entropy(logits, targets)
        phi = (params or self.init_params())["phi"].to(device=logits.device, dtype=logits.dtype)
        log_p = self.log_probabilities(logits)
        alignment = (phi[targets] * log_p).sum(dim=1)  # y^T Phi log p, y one-hot
        if self.squash == "sigmoid":
            return -torch.sigmoid(alignment).mean()
        return -alignment.mean()


class ClassificationTask(Task):
    """Classification: the model maps a batch of inputs to logits, (N,) or (N, 1) for binary tasks
    (predictions: positive-class probabilities, (N,)) or (N, C) otherwise (predictions: softmax).

    Set `num_classes`; implement `load_splits` and `build_model`. Targets are int64 class indices.
    """

    kind = "classification"
    num_classes: int = 2

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def forward(self, model, batch):
        return model(batch.inputs)

    def loss_family(self, squash: str = "none") -> ClassRelationLoss:
        return ClassRelationLoss(self.num_classes, squash)

    def predictions(self, logits):
        if self.binary:
            return torch.sigmoid(logits.reshape(-1))
        return torch.softmax(logits, dim=1)

    def predict(self, model, inputs):
        return self.predictions(model(inputs))

    def statistics(self, predictions, targets):
        """`confusion`: C x C, row = true class, column = predicted class (arg-max; binary: p >= 0.5),
        each row normalised to sum to 1 (a class absent from the batch gives a zero row)."""
        if self.binary:
            predicted = (predictions >= 0.5).long()
        else:
            predicted = predictions.argmax(dim=1)
        targets = targets.to(predicted.device)
        counts = torch.bincount(targets * self.num_classes + predicted, minlength=self.num_classes**2)
        counts = counts.reshape(self.num_classes, self.num_classes).float()
        return {"confusion": counts / counts.sum(dim=1, keepdim=True).clamp_min(1)}
