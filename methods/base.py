"""The method API."""

from __future__ import annotations

import abc
from typing import Any

from metricbench.bench.context import FinetuneContext, History
from metricbench.bench.errors import HookContractError
from metricbench.bench.oracle import MetricOracle, TaskView
from torch import nn


class Method(abc.ABC):
    """A way to finetune a pretrained model towards a black-box metric.

    Register a subclass with `@register_method(name, description, options)`; its options arrive in
    `self.options`. Hook to implement:

    - `finetune(model, task, oracle, ctx) -> History`: change `model` in place, taking at most
      `ctx.budget.steps` optimizer steps (call `ctx.step(model, loss)` after each) and at most
      `ctx.budget.queries` metric queries (`oracle.query` / `oracle.score`; both raise once the budget
      is spent). Use `ctx.generator` for any randomness so the same seed gives the same run. Read the
      metric's direction from `oracle.direction`. Return `ctx.finish()`.

    The model arrives on `ctx.device`, in train mode, with the shared pretrained weights.
    `task` is a `TaskView`: `train_batches(batch_size)` (reproducible from (seed, step)),
    `train_step(model, batch, loss_params)` (loss, predictions and targets from one forward),
    `loss_family()`, `predict`, and `finetune_recipe` (the task's suggested optimizer, learning
    rate and batch size); never val inputs or the test split. `oracle.metric` is the cell's target.
    """

    def __init__(self, **options: Any):
        self.options = dict(options)
        self.name = getattr(type(self), "registered_name", type(self).__name__)

    @abc.abstractmethod
    def finetune(self, model: nn.Module, task: TaskView, oracle: MetricOracle, ctx: FinetuneContext) -> History: ...


def run_finetune(method: Method, model: nn.Module, task: TaskView, oracle: MetricOracle, ctx: FinetuneContext) -> History:
    """Call a method's hook and check what it returned."""
    history = method.finetune(model, task, oracle, ctx)
    if not isinstance(history, History):
        raise HookContractError(
            f"method '{method.name}': finetune() returned {type(history).__name__}, expected a History; "
            "end finetune() with `return ctx.finish()`"
        )
    return history
