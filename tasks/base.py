"""The task API: splits, the `Task` base class and the classification kind.

A task object holds only its options; its data lives in the `Splits` that `load_splits` returns, so
handing a method the task (through a `TaskView`) never hands it the test split.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.training import Budget, TrainRecipe
from tasks import metrics as metric_lib


@dataclass
class TensorSplit:
    """One split held as tensors: `inputs` (N, ...) and `targets` (N,); kept on one device."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self):
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"split has {len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device) -> TensorSplit:
        return TensorSplit(self.inputs.to(device), self.targets.to(device))

    def subset(self, indices: torch.Tensor) -> TensorSplit:
        indices = indices.to(self.targets.device)
        return TensorSplit(self.inputs[indices], self.targets[indices])

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled mini-batches (a fresh permutation each epoch; the last partial batch dropped).

        Indexing happens where the data lives, so data kept on the GPU never crosses to the CPU.
        """
        n = len(self)
        batch_size = min(batch_size, n)
        while True:
            order = torch.randperm(n, generator=generator).to(self.targets.device)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                yield self.inputs[idx], self.targets[idx]


@dataclass
class Splits:
    """train (for gradients), val (the observation split for metric queries), test (final evaluation only)."""

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit

    def to(self, device) -> Splits:
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


class Task(abc.ABC):
    """A benchmark task. Register a subclass with `@register_task(name, description, options)`.

    Hooks to implement:
    - `load_splits(data_dir)`: return `Splits`; deterministic for the task's options (the split is
      fixed by the data, not by the run seed, so every seed is scored on the same test set).
    - `build_model()`: a freshly initialised model (the runner seeds the RNG before calling it).
    - `loss(model, batch)`: the surrogate loss of one training batch, a scalar tensor.
    - `predict(model, inputs)`: what the metrics score for a batch of inputs (e.g. probabilities).

    Class attributes to set:
    - `kind`: "classification" (later "retrieval", "detection"): what predictions look like.
    - `metrics`: metric names from `tasks.metrics`, the first one is the target a method optimises.
    - `metric_options`: per-metric options, e.g. {"aucpr": {"average": "macro"}}.
    - `pretrain`: the `TrainRecipe` that makes the shared starting checkpoint.
    - `budget`: the default finetuning `Budget`.
    - `requires_data`: whether `load_splits` needs a `--data-dir`.
    """

    kind: str = "classification"
    metrics: tuple[str, ...] = ()
    metric_options: dict[str, dict[str, Any]] = {}
    pretrain: TrainRecipe = TrainRecipe(steps=100)
    budget: Budget = Budget(steps=100, queries=10)
    requires_data: bool = False
    eval_batch_size: int = 1024

    def __init__(self, **options: Any):
        self.options = dict(options)
        self.name = getattr(type(self), "registered_name", type(self).__name__)

    # ---- hooks
    @abc.abstractmethod
    def load_splits(self, data_dir: str | None) -> Splits: ...

    @abc.abstractmethod
    def build_model(self) -> nn.Module: ...

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch) -> torch.Tensor: ...

    @abc.abstractmethod
    def predict(self, model: nn.Module, inputs) -> torch.Tensor: ...

    # ---- provided
    @property
    def target_metric(self) -> str:
        return self.metrics[0]

    def metric_directions(self) -> dict[str, str]:
        return {m: metric_lib.direction(m) for m in self.metrics}

    @torch.no_grad()
    def predict_split(self, model: nn.Module, split: TensorSplit) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions for a whole split in eval mode (the model's mode is restored afterwards)."""
        was_training = model.training
        model.eval()
        try:
            outputs = [
                self.predict(model, split.inputs[i : i + self.eval_batch_size])
                for i in range(0, len(split), self.eval_batch_size)
            ]
        finally:
            model.train(was_training)
        return torch.cat(outputs), split.targets

    def score(self, predictions, targets, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
        """The task's metrics (or the named subset) on predictions and their targets."""
        return {
            m: metric_lib.compute(m, predictions, targets, **self.metric_options.get(m, {})) for m in (metrics or self.metrics)
        }

    def evaluate(self, model: nn.Module, split: TensorSplit, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
        return self.score(*self.predict_split(model, split), metrics)


class ClassificationTask(Task):
    """Classification on tensors: binary tasks have one output logit (logistic loss, predictions are
    positive-class probabilities), multi-class tasks have C logits (cross-entropy, softmax)."""

    kind = "classification"
    num_classes: int = 2

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def loss(self, model, batch):
        inputs, targets = batch
        logits = model(inputs)
        if self.binary:
            return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), targets.to(logits.dtype))
        return nn.functional.cross_entropy(logits, targets)

    def predict(self, model, inputs):
        logits = model(inputs)
        if self.binary:
            return torch.sigmoid(logits.reshape(-1))
        return torch.softmax(logits, dim=1)
