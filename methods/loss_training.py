"""What every loss-based method shares: the optimizer options, the recipe they resolve to, and a
step-by-step trainer of the model on a loss the method computes itself.

`surrogate`, `ala` and `dab` all train the model by gradient descent on a loss; they differ only in
the loss. Their common options (optimizer, learning rate, schedule, batch size) default to the task's
finetuning recipe, so one set of defaults is sensible on every task kind.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from metricbench.bench.core.registry import Option
from metricbench.bench.core.training import TrainRecipe, make_optimizer, make_scheduler


def loss_training_options() -> dict[str, Option]:
    """The options of a loss-based method's model optimizer (a fresh dict: a method adds its own)."""
    return {
        "optimizer": Option(
            str,
            "task",
            "optimizer; 'task': the task's finetuning recipe (optimizer, momentum, weight decay)",
            ("task", "sgd", "adam"),
        ),
        "lr": Option(float, 0.0, "learning rate (0: the task's finetuning learning rate)"),
        "momentum": Option(float, 0.9, "SGD momentum (with optimizer = 'sgd')"),
        "weight_decay": Option(float, 0.0, "weight decay (with optimizer = 'sgd' or 'adam')"),
        "schedule": Option(str, "cosine", "learning-rate schedule over the step budget", ("cosine", "constant")),
        "batch_size": Option(int, 0, "training batch size (0: the task's)"),
    }


def finetune_recipe(options: dict, task_recipe: TrainRecipe, steps: int) -> TrainRecipe:
    """The recipe the options ask for: the task's finetuning recipe with what the options set overridden."""
    recipe = replace(task_recipe, steps=steps, schedule=options["schedule"])
    if options["optimizer"] != "task":
        recipe = replace(
            recipe, optimizer=options["optimizer"], momentum=options["momentum"], weight_decay=options["weight_decay"]
        )
    if options["lr"]:
        recipe = replace(recipe, lr=options["lr"])
    if options["batch_size"]:
        recipe = replace(recipe, batch_size=options["batch_size"])
    return recipe


class LossTrainer:
    """Optimizer and schedule of a model trained on a loss the caller computes: `update(loss)` is one
    optimizer step (zero grads, backward, step, schedule step)."""

    def __init__(self, model: torch.nn.Module, recipe: TrainRecipe, params=None):
        self.recipe = recipe
        self.optimizer = make_optimizer(model.parameters() if params is None else params, recipe)
        self.scheduler = make_scheduler(self.optimizer, recipe)

    def update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
