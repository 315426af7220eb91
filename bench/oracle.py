"""The sealed black-box metric and the view of a task that a method is handed.

A method gets a `TaskView` (train split, surrogate loss, predict function; no val inputs, no test
split) and a `MetricOracle` (the task's target metric on the val split, every query counted against
the cell's budget). Neither references the test split, directly or through anything they hold; the
test suite walks the object graph to prove it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from metricbench.bench.errors import BudgetExhausted
from metricbench.tasks import metrics as metric_lib
from metricbench.tasks.sampling import mix_seed


@dataclass
class QueryCounter:
    """What a method spent on the metric: calls, examples scored, seconds."""

    calls: int = 0
    examples: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class TaskView:
    """The parts of a task a method may use: train batches, the forward pass, the loss family and
    predictions (one forward gives all three through `train_step`); never val inputs or the test split."""

    def __init__(self, task, train, target_metric: str, seed: int):
        self._task = task
        self.train = train
        self.name = task.name
        self.kind = task.kind
        self.options = dict(task.options)
        self.metrics = tuple(task.metrics)
        self.target_metric = target_metric
        self.direction = metric_lib.direction(target_metric)
        self.finetune_recipe = task.finetune_recipe  # the task's suggested optimizer, lr and batch size
        self._seed = mix_seed("finetune batches", seed)

    def loss(self, model, batch) -> torch.Tensor:
        """The plain surrogate loss of a batch."""
        return self._task.loss(model, batch)

    def train_step(self, model, batch, loss_params: dict[str, torch.Tensor] | None = None):
        """`TrainStep(loss, outputs, predictions, targets)` from one forward, the loss with `loss_params`."""
        return self._task.train_step(model, batch, loss_params)

    def forward(self, model, batch):
        return self._task.forward(model, batch)

    def loss_family(self, **variant):
        """The task's `LossFamily` (`init_params()`, `__call__(outputs, targets, params)`)."""
        return self._task.loss_family(**variant)

    def predictions(self, outputs):
        return self._task.predictions(outputs)

    def predict(self, model, inputs):
        return self._task.predict(model, inputs)

    def train_batches(self, batch_size: int, seed: int | None = None, start_step: int = 0):
        """Endless training batches, reproducible from (seed, step); `seed` defaults to one derived from
        the cell's seed. Restarting at `start_step` gives the batches a stream run to it would."""
        return self._task.train_batches(self.train, batch_size, self._seed if seed is None else seed, start_step)


class MetricOracle:
    """The task's target metric as a black box on the observation (val) split.

    - `query(model)`: the metric of the model on all of val; `query(model, batch_size=n)`: on a random
      mini-batch of about n val examples, drawn by the task's rule (uniform; whole class groups for
      retrieval, so Recall@K is defined) with the oracle's own seeded generator.
    - `score(predictions, targets)`: the metric of predictions the method made itself (e.g. on a
      training batch).
    Each call costs one query of `budget`; a call beyond it raises `BudgetExhausted`.
    `direction` is "lower" or "higher": methods must read it rather than assume one.
    """

    def __init__(self, task, val, metric: str, budget: int, seed: int):
        self._task = task
        self._val = val
        self.metric = metric
        self.direction = metric_lib.direction(self.metric)
        self.budget = budget
        self.spent = QueryCounter()
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def remaining(self) -> int:
        return self.budget - self.spent.calls

    def _charge(self, examples: int, started: float) -> None:
        self.spent.calls += 1
        self.spent.examples += examples
        self.spent.seconds += time.perf_counter() - started

    def _check_budget(self) -> None:
        if self.spent.calls >= self.budget:
            raise BudgetExhausted(f"metric query budget of {self.budget} spent; check oracle.remaining before querying")

    def query(self, model, batch_size: int | None = None) -> float:
        self._check_budget()
        started = time.perf_counter()
        split = self._val
        if batch_size is not None and batch_size < len(split):
            split = split.subset(self._task.sample_val(split, batch_size, self._generator))
        value = self._task.evaluate(model, split, (self.metric,))[self.metric]
        self._charge(len(split), started)
        return value

    def score(self, predictions, targets) -> float:
        self._check_budget()
        started = time.perf_counter()
        value = self._task.score(predictions, targets, (self.metric,), device=self._val.device)[self.metric]
        self._charge(len(targets), started)
        return value
