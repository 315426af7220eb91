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

from bench.errors import BudgetExhausted
from tasks import metrics as metric_lib


@dataclass
class QueryCounter:
    """What a method spent on the metric: calls, examples scored, seconds."""

    calls: int = 0
    examples: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class TaskView:
    """The parts of a task a method may use: train batches, the surrogate loss, predictions."""

    def __init__(self, task, train):
        self._task = task
        self.train = train
        self.name = task.name
        self.kind = task.kind
        self.options = dict(task.options)
        self.metrics = tuple(task.metrics)
        self.target_metric = task.target_metric
        self.direction = metric_lib.direction(task.target_metric)

    def loss(self, model, batch) -> torch.Tensor:
        return self._task.loss(model, batch)

    def predict(self, model, inputs) -> torch.Tensor:
        return self._task.predict(model, inputs)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        return self.train.batches(batch_size, generator)


class MetricOracle:
    """The task's target metric as a black box on the observation (val) split.

    - `query(model)`: the metric of the model on all of val; `query(model, batch_size=n)`: on a random
      mini-batch of n val examples (drawn with the oracle's own seeded generator).
    - `score(predictions, targets)`: the metric of predictions the method made itself (e.g. on a
      training batch).
    Each call costs one query of `budget`; a call beyond it raises `BudgetExhausted`.
    `direction` is "lower" or "higher": methods must read it rather than assume one.
    """

    def __init__(self, task, val, budget: int, seed: int):
        self._task = task
        self._val = val
        self.metric = task.target_metric
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
            split = split.subset(torch.randperm(len(split), generator=self._generator)[:batch_size])
        value = self._task.evaluate(model, split, (self.metric,))[self.metric]
        self._charge(len(split), started)
        return value

    def score(self, predictions, targets) -> float:
        self._check_budget()
        started = time.perf_counter()
        value = self._task.score(predictions, targets, (self.metric,))[self.metric]
        self._charge(len(targets), started)
        return value
