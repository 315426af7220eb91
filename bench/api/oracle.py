"""The sealed black-box metric and the view of a task that a method is handed.

A method gets a `TaskView` (train batches, the forward pass, the loss family, predictions; never val
inputs or the test split) and a `MetricOracle` (the cell's target metric on the val split). Every
oracle call is authorised against one account of the cell's ledger before it runs and charged after
(calls, examples, seconds): full-val queries, queries on fixed val mini-batches (per model or per
candidate adapter vector), scores of the method's own predictions, validation statistics. The
oracle keeps val in private state; nothing it or the view holds reaches the test split, the
harness's val curve or its monitor, even through private attributes and closures (the tests walk
the object graph to prove it).
"""

from __future__ import annotations

import contextlib
import itertools
import time

import torch
from metricbench.bench.core import seal
from metricbench.bench.core.budget import Ledger
from metricbench.bench.core.seeding import mix_seed
from metricbench.tasks import metrics as metric_lib

_handle_ids = itertools.count(1)


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


class ValBatch:
    """A fixed mini-batch of val examples, drawn once with `oracle.batch(n)` and reused, so that models
    or candidates compared on it see the same examples (antithetic ES pairs, for one). Opaque: it
    holds indices into val and its size, never inputs or labels."""

    __slots__ = ("_indices", "_oracle", "size")

    def __init__(self, indices: torch.Tensor, oracle_id: int):
        self._indices = indices
        self._oracle = oracle_id
        self.size = len(indices)

    def __repr__(self) -> str:
        return f"ValBatch(size={self.size})"


class MetricOracle:
    """The cell's target metric as a black box on the val split, metered by the cell's ledger.

    - `batch(n) -> ValBatch`: draw a fixed mini-batch of about n val examples (free; seeded; the task's
      rule: uniform, or whole class groups for retrieval so Recall@K is defined). At most half of val:
      all of val is what `query(model)` is for.
    - `query(model)`: the metric on all of val (account `queries`); `query(model, on=batch)`: on a
      fixed mini-batch (account `batch_queries`, one call).
    - `query_candidates(model, adapters, vectors, on=batch)`: the metric of the model with its FiLM
      adapters set to each row of `vectors`, on one fixed mini-batch (`len(vectors)` batch queries,
      functional forwards: the model and its stored adapters are untouched).
    - `score(predictions, targets)`: the metric of predictions the method made itself, e.g. on a
      training batch (account `batch_scores`).
    - `statistics(model, on=None)`: the task kind's validation statistics, e.g. a confusion matrix
      (account `stats`).
    A call beyond an account's limit raises `BudgetExhausted` before any work is done;
    `remaining(account)` says what is left. `direction` is "lower" or "higher": read it, never assume
    (`sign` is +1 or -1 to match: `sign * metric` is to be minimised).
    """

    def __init__(self, task, val, metric: str, ledger: Ledger, seed: int):
        self._task = task
        self._val = val
        self._ledger = ledger
        self._id = next(_handle_ids)
        self._generator = torch.Generator().manual_seed(mix_seed("oracle batches", seed))
        self.metric = metric
        self.direction = metric_lib.direction(metric)
        self.max_batch_size = max(1, len(val) // 2)

    @property
    def sign(self) -> float:
        """+1 when lower is better, -1 otherwise: `sign * metric` is a value to minimise."""
        return 1.0 if self.direction == "lower" else -1.0

    def remaining(self, account: str = "queries") -> int:
        return self._ledger.remaining(account)

    @property
    def spent(self) -> dict[str, dict]:
        """A copy of the ledger: {account: {calls, examples, seconds, limit}}."""
        return self._ledger.to_dict()

    @contextlib.contextmanager
    def _metered(self, account: str, calls: int, examples: int):
        self._ledger.authorise(account, calls)
        started = time.perf_counter()
        with seal.unsealed():
            yield
        device = self._val.device
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)  # charge the GPU time, not the launch time
        self._ledger.charge(account, calls, examples, time.perf_counter() - started)

    def _split(self, on: ValBatch | None):
        if on is None:
            return self._val
        if not isinstance(on, ValBatch) or on._oracle != self._id:
            raise TypeError(f"`on` must be a ValBatch drawn from this oracle with oracle.batch(n), got {on!r}")
        return self._val.subset(on._indices)

    def batch(self, n: int) -> ValBatch:
        if not 1 <= n <= self.max_batch_size:
            raise ValueError(
                f"a val mini-batch holds 1 to {self.max_batch_size} examples (half of val), got {n}; "
                "query(model) without `on` scores all of val"
            )
        return ValBatch(self._task.sample_val(self._val, n, self._generator), self._id)

    def query(self, model, on: ValBatch | None = None) -> float:
        split = self._split(on)
        with self._metered("queries" if on is None else "batch_queries", 1, len(split)):
            return self._task.evaluate(model, split, (self.metric,))[self.metric]

    def query_candidates(self, model, adapters, vectors: torch.Tensor, on: ValBatch, batched: bool = False) -> torch.Tensor:
        """The metric for each row of `vectors` (k x len(adapters)) as a k-vector (float64, CPU), on one
        fixed batch. `batched=True` runs the candidates through `torch.func.vmap` (tensor models only; on
        the development CPU it was no faster than the default loop, see docs/performance.md, "Candidate evaluation")."""
        if adapters.model is not model:
            raise ValueError("`adapters` must be attached to `model` (adapters = attach_film_adapters(model))")
        if vectors.ndim != 2 or vectors.shape[1] != len(adapters):
            raise ValueError(f"`vectors` must be k x {len(adapters)} (one adapter vector per row), got {tuple(vectors.shape)}")
        split = self._split(on)
        with self._metered("batch_queries", len(vectors), len(vectors) * len(split)):
            per_candidate, targets = self._task.predict_candidates(model, adapters, vectors, split, batched)
            values = [self._task.score(p, targets, (self.metric,), device=split.device)[self.metric] for p in per_candidate]
        return torch.tensor(values, dtype=torch.float64)

    def score(self, predictions, targets) -> float:
        with self._metered("batch_scores", 1, len(targets)):
            return self._task.score(predictions, targets, (self.metric,), device=self._val.device)[self.metric]

    def statistics(self, model, on: ValBatch | None = None) -> dict[str, torch.Tensor]:
        split = self._split(on)
        with self._metered("stats", 1, len(split)):
            predictions, targets = self._task.predict_split(model, split)
            return {k: v.detach().cpu() for k, v in self._task.statistics(predictions, targets).items()}
