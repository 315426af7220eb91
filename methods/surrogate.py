"""`surrogate`: finetune with the task's surrogate loss only (the loss-only baseline).

It never queries the metric: the val curves in its results come from the runner's own uncounted
evaluation, which cannot influence training. By default it uses the task's own finetuning recipe
(`Task.finetune`: the task's optimizer, batch size and a learning rate suited to its loss), so one
set of defaults is sensible on classification, retrieval and detection alike.
"""

from __future__ import annotations

from metricbench.bench.core.training import train_steps
from metricbench.methods import Option, register_method
from metricbench.methods.adapters import attach_film_adapters
from metricbench.methods.base import Method
from metricbench.methods.loss_training import finetune_recipe, loss_training_options


@register_method(
    "surrogate",
    "finetune with the task's surrogate loss only (cross-entropy / logistic / metric-learning / detector losses)",
    options={
        **loss_training_options(),
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
