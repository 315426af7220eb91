"""The task API: the `Task` base class every kind of task (classification, tabular, retrieval,
detection) builds on, loss families with named parameters, and what a task needs from disk.

A task object holds only its options; its data lives in the `Splits` that `load_splits` returns, so
handing a method the task (through a `TaskView`) never hands it the test split.

The model interface is split in three so methods can change the loss or read predictions without a
second forward pass: `forward(model, batch)` gives the raw outputs of one training forward;
`loss_family()(outputs, targets, params)` the surrogate loss with given parameters;
`predictions(outputs)` what the metrics score, from the same outputs. `train_step` runs all three.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import HookContractError, UsageError
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import metrics as metric_lib
from metricbench.tasks.data import weights
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.sampling import IndexStream, ShuffledBatches
from metricbench.tasks.data.splits import Batch, Split, Splits, SplitSizes
from torch import nn


@dataclass(frozen=True)
class DataPaths:
    """Where a task finds its data: the user's `--data-dir` (downloaded datasets, or None), and a
    folder the harness owns where embedded tasks write data they generate (shared between runs)."""

    data_dir: Path | None
    generated_dir: Path


class LossFamily(abc.ABC):
    """A surrogate loss with named parameters that a method may change (Adaptive Loss Alignment
    adapts them). Hooks: `init_params()` (the values that give the task's plain surrogate loss) and
    `__call__(outputs, targets, params=None)` (params None: the initial values, fastest path)."""

    @abc.abstractmethod
    def init_params(self) -> dict[str, torch.Tensor]: ...

    @abc.abstractmethod
    def __call__(self, outputs: Any, targets: Any, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor: ...


@dataclass
class TrainStep:
    """What one training forward gives: the loss, the raw outputs, differentiable predictions (what
    the metrics score; None where the model gives none in train mode) and the batch's targets."""

    loss: torch.Tensor
    outputs: Any
    predictions: Any
    targets: Any


class Task(abc.ABC):
    """A benchmark task. Register a subclass with `@register_task(name, description, options)`.

    A concrete task usually subclasses a kind (`ClassificationTask`, `TabularTask`, `RetrievalTask`,
    `DetectionTask`), which provides the model interface, and implements:
    - `load_splits(paths)`: return `Splits` (train / val / test); deterministic for the task's
      options: the split is fixed by the data, not by the run seed, so every seed is scored on the
      same test set. `paths.data_dir` is the user's data folder, `paths.generated_dir` a folder for
      data the task generates.
    - `build_model()`: a freshly initialised model (the runner seeds the RNG before calling it).

    A kind implements the model interface:
    - `forward(model, batch)`: raw outputs of one training forward pass.
    - `loss_family()`: the `LossFamily` whose initial parameters give the surrogate loss.
    - `predictions(outputs)`: what the metrics score, from `forward`'s outputs (None if unavailable).
    - `predict(model, inputs)`: predictions for a batch of inputs in eval mode.
    and may override `train_stream` (which examples form a batch), `sample_val` (which val examples
    form an oracle mini-batch), `collate` (joining per-batch predictions) and `score`.

    Class attributes:
    - `kind`: "classification", "retrieval" or "detection".
    - `metrics`: metric names from `tasks.metrics`; the first is the default target (a suite may
      name other targets among them).
    - `metric_options`: per-metric options, e.g. {"aucpr": {"average": "macro"}}.
    - `pretrain`: the `TrainRecipe` that makes the shared starting checkpoint.
    - `finetune`: the recipe a loss-based method starts from (its steps are the budget's); default:
      the pretraining recipe at a tenth of its learning rate.
    - `budget`: the default finetuning `Budget`.
    - `requires_data`: whether `load_splits` needs the user's `--data-dir` (set for every task with `data`).
    - `data`: a `DatasetFiles` (required files, download resources) for tasks that read a real dataset.
    - `weight_options`: the options that name weights (`tasks.data.weights`): a file's sha256 is part of the
      checkpoint's identity; an option named `weights` other than "recipe" replaces pretraining.
    - `version`: bump it when a change outside the task's own module (a shared model, a data file)
      changes what pretraining produces; the checkpoint cache key includes it.
    - `dataset_sizes`: the sizes of the dataset the splits are made from (examples, official test set,
      classes; for a paper task the standard dataset's, from its documentation), from which
      `split_sizes()` declares train / val / test without loading anything.
    """

    kind: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    metric_options: ClassVar[dict[str, dict[str, Any]]] = {}
    pretrain: ClassVar[TrainRecipe] = TrainRecipe(steps=100)
    finetune: ClassVar[TrainRecipe | None] = None
    budget: ClassVar[Budget] = Budget(steps=100, queries=10)
    requires_data: ClassVar[bool] = False
    data: ClassVar[DatasetFiles | None] = None
    weight_options: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "1"
    eval_batch_size: ClassVar[int] = 1024
    dataset_sizes: ClassVar[dict[str, int]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.data is not None:  # a task that reads a dataset reads it from the user's --data-dir
            cls.requires_data = True

    def __init__(self, **options: Any):
        self.options = dict(options)
        self.name = getattr(type(self), "registered_name", type(self).__name__)
        if self.options.get("pretrain_steps"):  # a shorter (or longer) run of the task's own recipe
            self.pretrain = replace(type(self).pretrain, steps=self.options["pretrain_steps"])

    # ---- hooks of a concrete task
    @abc.abstractmethod
    def load_splits(self, paths: DataPaths) -> Splits: ...

    @abc.abstractmethod
    def build_model(self) -> nn.Module: ...

    # ---- hooks of a kind
    @abc.abstractmethod
    def forward(self, model: nn.Module, batch: Batch) -> Any: ...

    @abc.abstractmethod
    def loss_family(self) -> LossFamily: ...

    @abc.abstractmethod
    def predictions(self, outputs: Any) -> Any: ...

    @abc.abstractmethod
    def predict(self, model: nn.Module, inputs: Any) -> Any: ...

    def train_stream(self, split: Split, batch_size: int, seed: int) -> IndexStream:
        """Which examples form each training batch (default: uniformly shuffled epochs)."""
        return ShuffledBatches(len(split), batch_size, seed)

    def sample_val(self, split: Split, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of an oracle mini-batch of `n` val examples (default: uniform, no repeats)."""
        return torch.randperm(len(split), generator=generator)[:n]

    def collate(self, chunks: list) -> Any:
        """Join per-batch predictions or targets: tensors are concatenated, lists chained."""
        if chunks and isinstance(chunks[0], torch.Tensor):
            return torch.cat(chunks)
        return [item for chunk in chunks for item in chunk]

    def statistics(self, predictions: Any, targets: Any) -> dict[str, torch.Tensor]:
        """Validation statistics richer than the scalar metric (Adaptive Loss Alignment's state): each
        kind defines its own; the oracle computes them on val, counted on the `stats` account."""
        raise HookContractError(f"task '{self.name}' ({self.kind}) defines no validation statistics; implement `statistics`")

    def split_sizes(self) -> SplitSizes | None:
        """How many examples train, val and test hold with this task's options, from `dataset_sizes` and
        the options alone (no data is read): what `metricbench list tasks` shows. None: not declared.
        The tests check it against `load_splits` for every built-in task (a paper task on its fixture)."""
        return None

    def check_data(self, paths: DataPaths) -> None:
        """Raise `UsageError` (one line: the task, what is missing, how to fix it) before anything runs."""
        if self.data is not None:
            self.data.check(self.name, paths.data_dir)
        elif self.requires_data and paths.data_dir is None:
            raise UsageError(f"task '{self.name}' reads its dataset from disk: pass --data-dir DIR, the folder that holds it")
        for option in self.weight_options:
            weights.check(option, self.weights_for(option), self.name)

    @property
    def starting_weights(self) -> str:
        """ "recipe" (pretrain with the task's recipe), or the weights the `weights` option names."""
        return self.options.get("weights", "recipe") if "weights" in self.weight_options else "recipe"

    def imagenet_weights(self) -> str | None:
        """The public weights a weights option's value "imagenet" stands for (e.g. the backbone's torchvision
        ImageNet weights); None where the task has no such backbone."""
        return None

    def weights_for(self, option: str) -> str:
        """What weights `option` names, resolved: "imagenet" becomes `imagenet_weights()`, and every option
        but `weights` is "none" when given starting weights replace pretraining (they replace every tensor)."""
        value = self.options[option]
        if option != "weights" and self.starting_weights != "recipe":
            return "none"
        if value == "imagenet":
            resolved = self.imagenet_weights()
            if resolved is None:
                raise UsageError(f"task '{self.name}': {option} = 'imagenet' names no weights here; give 'none' or a file")
            return resolved
        return value

    def weights_identity(self) -> dict[str, str]:
        """What each weights option names (a file by its sha256), for the checkpoint's identity."""
        return {option: weights.identity(self.options[option]) for option in self.weight_options}

    # ---- provided
    @property
    def finetune_recipe(self) -> TrainRecipe:
        return self.finetune or replace(self.pretrain, lr=self.pretrain.lr / 10)

    @property
    def default_target(self) -> str:
        return self.metrics[0]

    def metric_directions(self) -> dict[str, str]:
        return {m: metric_lib.direction(m) for m in self.metrics}

    def _surrogate(self) -> LossFamily:
        family = self.__dict__.get("_surrogate_family")
        if family is None:  # built once: the training path calls it every step
            family = self.__dict__["_surrogate_family"] = self.loss_family()
        return family

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The plain surrogate loss of one batch (the loss family at its initial parameters)."""
        return self._surrogate()(self.forward(model, batch), batch.targets)

    def train_step(self, model: nn.Module, batch: Batch, loss_params: dict[str, torch.Tensor] | None = None) -> TrainStep:
        """Loss (with `loss_params`, default the initial ones), predictions and targets from one forward."""
        outputs = self.forward(model, batch)
        loss = self._surrogate()(outputs, batch.targets, loss_params)
        return TrainStep(loss, outputs, self.predictions(outputs), batch.targets)

    def train_batches(self, split: Split, batch_size: int, seed: int, start_step: int = 0):
        """Endless training batches; the same (seed, step) always gives the same batch."""
        return split.train_batches(self.train_stream(split, batch_size, seed), start_step)

    @torch.no_grad()
    def predict_split(self, model: nn.Module, split: Split) -> tuple[Any, Any]:
        """(predictions, targets) for a whole split in eval mode (the model's mode is restored afterwards)."""
        was_training = model.training
        model.eval()
        predictions, targets = [], []
        try:
            for batch in split.eval_batches(self.eval_batch_size):
                predictions.append(self.predict(model, batch.inputs))
                targets.append(batch.targets)
        finally:
            model.train(was_training)
        return self.collate(predictions), self.collate(targets)

    @torch.no_grad()
    def predict_candidates(self, model: nn.Module, adapters, vectors: torch.Tensor, split: Split, batched: bool = False):
        """([predictions for each row of `vectors`], targets) on a whole split, with the model's FiLM
        adapters set to each row in turn by a functional forward (`adapters.call_with`); each batch of
        inputs is read once for all candidates. `batched` maps the candidates with `torch.func.vmap`."""
        was_training = model.training
        model.eval()
        vectors = vectors.to(next(model.parameters()).device)
        chunks: list[list] = [[] for _ in range(len(vectors))]
        targets = []
        try:
            for batch in split.eval_batches(self.eval_batch_size):
                if batched:
                    stacked = torch.func.vmap(lambda v, x=batch.inputs: self.predict(partial(adapters.call_with, v), x))(vectors)
                    for chunk, predictions in zip(chunks, stacked, strict=True):
                        chunk.append(predictions)
                else:
                    for chunk, vector in zip(chunks, vectors, strict=True):
                        chunk.append(self.predict(partial(adapters.call_with, vector), batch.inputs))
                targets.append(batch.targets)
        finally:
            model.train(was_training)
        return [self.collate(chunk) for chunk in chunks], self.collate(targets)

    def score(self, predictions, targets, metrics: tuple[str, ...] | None = None, device=None) -> dict[str, float]:
        """The task's metrics (or the named subset) on predictions and their targets. `device` is where the
        split's batches land: the retrieval kind computes its chunked similarities there; the metrics of
        the other kinds compute where the predictions are."""
        return {
            m: metric_lib.compute(m, predictions, targets, **self.metric_options.get(m, {})) for m in (metrics or self.metrics)
        }

    def evaluate(self, model: nn.Module, split: Split, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
        """The metrics of `model` on a whole split, computed where the split's batches land."""
        return self.score(*self.predict_split(model, split), metrics, device=split.device)
