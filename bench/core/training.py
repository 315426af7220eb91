"""Plain training-loop pieces shared by pretraining and by methods: recipes, optimizers, batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class TrainRecipe:
    """How to train: what a task's pretraining and a loss-based method's finetuning are configured by."""

    steps: int
    batch_size: int = 64
    optimizer: str = "adam"  # "adam" or "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" or "constant"

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizer(params, recipe: TrainRecipe) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer '{recipe.optimizer}' (use 'adam' or 'sgd')")


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: TrainRecipe):
    if recipe.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if recipe.schedule == "cosine":
        total = max(1, recipe.steps)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    raise ValueError(f"unknown schedule '{recipe.schedule}' (use 'cosine' or 'constant')")


def train_steps(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, tuple], torch.Tensor],
    batches: Iterator,
    recipe: TrainRecipe,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    params=None,
) -> None:
    """Run `recipe.steps` optimizer steps of `loss_fn` on `batches`; `on_step(step, loss)` after each.

    `params` limits what is trained (default: every parameter of the model).
    """
    optimizer = make_optimizer(model.parameters() if params is None else params, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    model.train()
    for step in range(1, recipe.steps + 1):
        loss = loss_fn(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step(step, loss.detach())
