"""`surrogate`: finetune with the task's surrogate loss only (the loss-only baseline).

It never queries the metric: the val curves in its results come from the runner's own uncounted
evaluation, which cannot influence training.
"""

from __future__ import annotations

from bench.training import TrainRecipe, train_steps
from methods import Option, register_method
from methods.adapters import attach_film_adapters
from methods.base import Method


@register_method(
    "surrogate",
    "finetune with the task's surrogate loss only (cross-entropy / logistic); never queries the metric",
    options={
        "optimizer": Option(str, "sgd", "optimizer", ("sgd", "adam")),
        "lr": Option(float, 0.01, "learning rate"),
        "momentum": Option(float, 0.9, "SGD momentum"),
        "weight_decay": Option(float, 0.0, "weight decay"),
        "schedule": Option(str, "cosine", "learning-rate schedule over the step budget", ("cosine", "constant")),
        "batch_size": Option(int, 64, "training batch size"),
        "params": Option(str, "all", "what is trained: every parameter, or FiLM adapters only", ("all", "adapters")),
    },
)
class Surrogate(Method):
    def finetune(self, model, task, oracle, ctx):
        o = self.options
        recipe = TrainRecipe(
            steps=ctx.budget.steps,
            batch_size=o["batch_size"],
            optimizer=o["optimizer"],
            lr=o["lr"],
            momentum=o["momentum"],
            weight_decay=o["weight_decay"],
            schedule=o["schedule"],
        )
        params = None
        if o["params"] == "adapters":
            params = attach_film_adapters(model)
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
        batches = task.train_batches(recipe.batch_size, ctx.generator)
        train_steps(model, task.loss, batches, recipe, on_step=lambda _step, loss: ctx.step(model, loss), params=params)
        return ctx.finish()
