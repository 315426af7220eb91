"""`surrogate`: finetune with the task's surrogate loss only (the loss-only baseline).

It never queries the metric: the val curves in its results come from the runner's own uncounted
evaluation, which cannot influence training. By default it uses the task's own finetuning recipe
(`Task.finetune`: the task's optimizer, batch size and a learning rate suited to its loss), so one
set of defaults is sensible on classification, retrieval and detection alike.
"""

from __future__ import annotations

from dataclasses import replace

from metricbench.bench.training import TrainRecipe, train_steps
from metricbench.methods import Option, register_method
from metricbench.methods.adapters import attach_film_adapters
from metricbench.methods.base import Method


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


@register_method(
    "surrogate",
    "finetune with the task's surrogate loss only (cross-entropy / logistic / metric-learning / detector losses)",
    options={
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
        "params": Option(str, "all", "what is trained: every parameter, or FiLM adapters only", ("all", "adapters")),
    },
)
class Surrogate(Method):
    def finetune(self, model, task, oracle, ctx):
        recipe = finetune_recipe(self.options, task.finetune_recipe, ctx.budget.steps)
        params = None
        if self.options["params"] == "adapters":
            params = attach_film_adapters(model).parameters()
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
        batches = task.train_batches(recipe.batch_size)
        train_steps(model, task.loss, batches, recipe, on_step=lambda _step, loss: ctx.step(loss), params=params)
        return ctx.finish()
