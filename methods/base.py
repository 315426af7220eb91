"""The method API."""

from __future__ import annotations

import abc
from typing import Any

from metricbench.bench.api.context import FinetuneContext, History
from metricbench.bench.api.oracle import MetricOracle, TaskView
from metricbench.bench.api.stages import StageContext, StageSpec
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import HookContractError
from torch import nn

__all__ = ["Method", "StageContext", "StageSpec", "run_finetune"]


class Method(abc.ABC):
    """A way to finetune a pretrained model towards a black-box metric.

    Register a subclass with `@register_method(name, description, options)`; its options arrive in
    `self.options`, the name it was created by in `self.name`. Hook to implement:

    - `finetune(model, task, oracle, ctx) -> History`: change `model` in place and end with
      `return ctx.finish()`.

    What it is handed (the harness owns the data, the evaluation and the accounting):
    - `model`: on `ctx.device`, in train mode, with the cell's shared pretrained weights.
    - `task`, a `TaskView`: `train_batches(batch_size)` (reproducible from (seed, step)),
      `train_step(model, batch, loss_params)` (loss, outputs, predictions and targets from one
      forward), `loss_family()`, `forward`, `predictions`, `predict`, `finetune_recipe` (the task's
      suggested optimizer, learning rate and batch size); never val inputs or the test split.
    - `oracle`, a `MetricOracle` for the cell's target `oracle.metric` (read `oracle.direction`):
      `query(model)` on all of val; `batch(n)` draws a fixed val mini-batch to reuse with
      `query(model, on=batch)` and `query_candidates(model, adapters, vectors, on=batch)`;
      `score(predictions, targets)` for the method's own predictions; `statistics(model)`.
    - `ctx`, a `FinetuneContext`: `ctx.step(loss=None)` after every `optimizer.step()` on the model
      (the harness counts those steps itself: fewer reports than steps fail the cell), `ctx.log(name,
      value)`, `ctx.generator` / `ctx.device_generator` for all randomness (same seed, same run),
      `ctx.autocast()`, `ctx.cell_dir`, `ctx.artifacts`, `ctx.remaining(account)`.
    Every account of `ctx.budget` (steps, queries, batch_queries, batch_scores, stats) is authorised
    before it is spent: going over raises `BudgetExhausted` and fails the cell. While `finetune` runs,
    metrics can only be computed through the oracle.

    Optional hooks, for what a method builds once and shares among its cells (`bench.api.stages`):
    - `stage(budget) -> StageSpec | None`: the stage's key and budget, given the cell's budget (default
      None: no stage);
    - `build_stage(model, task, oracle, ctx)`: build it into `ctx.folder` (a `StageContext`), with a
      copy of the pretrained model, the train view and an oracle over val on the stage's own ledger.
    The harness builds each stage once (locked, reused across cells and invocations), records its costs
    apart from the cells', and hands its folder to `finetune` as `ctx.stage`.
    """

    def __init__(self, **options: Any):
        self.options = dict(options)
        self.name = getattr(type(self), "registered_name", type(self).__name__)

    @abc.abstractmethod
    def finetune(self, model: nn.Module, task: TaskView, oracle: MetricOracle, ctx: FinetuneContext) -> History: ...

    def stage(self, budget: Budget) -> StageSpec | None:
        return None

    def build_stage(self, model: nn.Module, task: TaskView, oracle: MetricOracle, ctx: StageContext) -> None:
        raise HookContractError(f"method '{self.name}' declares a stage but does not implement build_stage()")


def run_finetune(method: Method, model: nn.Module, task: TaskView, oracle: MetricOracle, ctx: FinetuneContext) -> History:
    """Call a method's hook and check what it returned."""
    history = method.finetune(model, task, oracle, ctx)
    if not isinstance(history, History):
        raise HookContractError(
            f"method '{method.name}': finetune() returned {type(history).__name__}, expected a History; "
            "end finetune() with `return ctx.finish()`"
        )
    return history
