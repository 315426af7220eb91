"""The one data layer every path goes through: pretraining, a method's batches, evaluation, the oracle.

A split is a set of examples that can (1) stream training batches chosen by an `IndexStream`
(reproducible from (seed, step), optionally augmented), (2) stream ordered evaluation batches that
keep the last partial batch, (3) be narrowed to a subset, and (4) say where its batches land.
Three kinds:

- `TensorSplit`: tensors resident on the device (airbench-style). Augmentation is a batched
  function on the device (`transform(x, generator)`, no per-sample Python); images stay uint8 and
  are normalised by the model or the transform.
- `StreamSplit`: a `torch.utils.data.Dataset` read through `DataLoader` workers (pinned memory on
  CUDA, persistent workers for evaluation) for data that does not fit in memory; augmentation is
  per sample in the workers, seeded per (stream, step, position) so it is reproducible too.
- `ListSplit`: in-memory lists of variable-size images with target dicts (detection).

Every batch is a `Batch(inputs, targets)`: tensors, or lists of tensors and of target dicts.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from metricbench.bench.core.seeding import mix_seed, seeded_generator
from metricbench.tasks.data.sampling import IndexStream

BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SampleTransform = Callable[[Any, Any, torch.Generator], tuple[Any, Any]]
EvalTransform = Callable[[Any, Any], tuple[Any, Any]]


class Batch(NamedTuple):
    """One batch: `inputs` (a tensor, or a list of tensors) and `targets` (a tensor, or a list of dicts)."""

    inputs: Any
    targets: Any


def move(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """`value` with every tensor inside (lists, tuples, dicts) moved to `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, list):
        return [move(v, device, non_blocking) for v in value]
    if isinstance(value, tuple):
        return tuple(move(v, device, non_blocking) for v in value)
    if isinstance(value, dict):
        return {k: move(v, device, non_blocking) for k, v in value.items()}
    return value


def transform_generator(stream_seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator of step `step`'s augmentation: a function of (stream seed, step) only."""
    return seeded_generator("augment", stream_seed, step, device=device)


class Split(abc.ABC):
    """A set of examples. Hooks a new kind of split implements:

    - `__len__()`; `device` (where batches land); `to(device)` (a split whose batches land there)
    - `subset(indices)`: the examples at `indices` (an int64 tensor), as a split of the same kind
    - `train_batches(stream, start_step)`: the batches `stream` picks, from `start_step` on, augmented
    - `eval_batches(batch_size)`: every example once, in order, not augmented, last batch kept
    - `labels()`: class labels (int64, CPU) when examples have one class each, else None
    """

    device: torch.device

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> Split: ...

    @abc.abstractmethod
    def subset(self, indices: torch.Tensor) -> Split: ...

    @abc.abstractmethod
    def train_batches(self, stream: IndexStream, start_step: int = 0) -> Iterator[Batch]: ...

    @abc.abstractmethod
    def eval_batches(self, batch_size: int) -> Iterator[Batch]: ...

    def labels(self) -> torch.Tensor | None:
        return None


class TensorSplit(Split):
    """Tensors `inputs` (N, ...) and `targets` (N, ...) on one device; `transform` augments training batches."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, transform: BatchTransform | None = None):
        if len(inputs) != len(targets):
            raise ValueError(f"split has {len(inputs)} inputs but {len(targets)} targets")
        if inputs.device != targets.device:
            raise ValueError(f"split inputs are on {inputs.device} but targets on {targets.device}")
        self.inputs = inputs
        self.targets = targets
        self.transform = transform
        self.device = inputs.device

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device) -> TensorSplit:
        return TensorSplit(self.inputs.to(device), self.targets.to(device), self.transform)

    def subset(self, indices: torch.Tensor) -> TensorSplit:
        indices = indices.to(self.device)
        return TensorSplit(self.inputs[indices], self.targets[indices], self.transform)

    def train_batches(self, stream: IndexStream, start_step: int = 0) -> Iterator[Batch]:
        # indexing happens where the data lives, so data kept on the GPU never crosses to the CPU
        on_cpu = self.device.type == "cpu"
        for step, idx in enumerate(stream.from_step(start_step), start_step):
            if not on_cpu:
                idx = idx.to(self.device, non_blocking=True)
            inputs = self.inputs[idx]
            if self.transform is not None:
                inputs = self.transform(inputs, transform_generator(stream.seed, step, self.device))
            yield Batch(inputs, self.targets[idx])

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self), batch_size):
            yield Batch(self.inputs[start : start + batch_size], self.targets[start : start + batch_size])

    def labels(self) -> torch.Tensor | None:
        if self.targets.ndim == 1 and not torch.is_floating_point(self.targets):
            return self.targets.cpu()
        return None


class ListSplit(Split):
    """In-memory lists: `inputs` (variable-size image tensors) and `targets` (dicts of tensors)."""

    def __init__(self, inputs: list, targets: list, device: torch.device | str = "cpu"):
        if len(inputs) != len(targets):
            raise ValueError(f"split has {len(inputs)} inputs but {len(targets)} targets")
        self.inputs = list(inputs)
        self.targets = list(targets)
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device) -> ListSplit:
        device = torch.device(device)
        return ListSplit(move(self.inputs, device), move(self.targets, device), device)

    def subset(self, indices: torch.Tensor) -> ListSplit:
        picked = indices.tolist()
        return ListSplit([self.inputs[i] for i in picked], [self.targets[i] for i in picked], self.device)

    def train_batches(self, stream: IndexStream, start_step: int = 0) -> Iterator[Batch]:
        for idx in stream.from_step(start_step):
            picked = idx.tolist()
            yield Batch([self.inputs[i] for i in picked], [self.targets[i] for i in picked])

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self), batch_size):
            yield Batch(self.inputs[start : start + batch_size], self.targets[start : start + batch_size])


# ---- streamed splits


def stack_collate(samples: list[tuple[Any, Any]]) -> Batch:
    """Same-size samples: inputs and targets stacked into tensors."""
    inputs, targets = zip(*samples, strict=True)
    return Batch(torch.stack([torch.as_tensor(x) for x in inputs]), torch.stack([torch.as_tensor(t) for t in targets]))


def list_collate(samples: list[tuple[Any, Any]]) -> Batch:
    """Variable-size samples (detection): inputs and targets kept as lists."""
    inputs, targets = zip(*samples, strict=True)
    return Batch(list(inputs), list(targets))


class _Loaded(torch.utils.data.Dataset):
    """What the workers read: item (index, seed) -> the dataset's example, augmented with that seed
    (seed None: evaluation, no augmentation, only `eval_transform`, e.g. a centre crop). Keeps
    augmentation a function of the stream and step."""

    def __init__(self, dataset, transform: SampleTransform | None, eval_transform: EvalTransform | None = None):
        self.dataset = dataset
        self.transform = transform
        self.eval_transform = eval_transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        inputs, targets = self.dataset[index]
        if seed is not None and self.transform is not None:
            inputs, targets = self.transform(inputs, targets, torch.Generator().manual_seed(seed))
        elif seed is None and self.eval_transform is not None:
            inputs, targets = self.eval_transform(inputs, targets)
        return inputs, targets


class _TrainItems(torch.utils.data.Sampler):
    """Batches of (dataset index, augmentation seed) from an index stream, from a start step on, endless."""

    def __init__(self, stream: IndexStream, index_map: torch.Tensor | None, start_step: int):
        self.stream, self.index_map, self.start_step = stream, index_map, start_step

    def __iter__(self):
        for step, idx in enumerate(self.stream.from_step(self.start_step), self.start_step):
            if self.index_map is not None:
                idx = self.index_map[idx]
            yield [(i, mix_seed("sample", self.stream.seed, step, position)) for position, i in enumerate(idx.tolist())]


class _EvalItems(torch.utils.data.Sampler):
    """Ordered batches of the indices set just before each pass (so one persistent loader serves
    the whole split and each of its subsets without restarting workers)."""

    def __init__(self):
        self.indices: list[int] = []
        self.batch_size = 1

    def __iter__(self):
        for start in range(0, len(self.indices), self.batch_size):
            yield [(i, None) for i in self.indices[start : start + self.batch_size]]

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)


class _Loaders:
    """The persistent evaluation loader of one dataset, shared by a split, its subsets and moved copies."""

    def __init__(self):
        self.eval_loader = None
        self.eval_items = _EvalItems()


def worker_count(option: int) -> int:
    """A task's `workers` option as a DataLoader worker count: -1 means up to 4, one per core (the batches
    never depend on it, only the speed does)."""
    import os

    return min(4, os.cpu_count() or 1) if option < 0 else option


@dataclass
class StreamConfig:
    """How a streamed split reads: workers, collate function, per-sample training augmentation."""

    num_workers: int = 2
    collate: Callable[[list], Batch] = stack_collate
    transform: SampleTransform | None = None
    eval_transform: EvalTransform | None = None  # applied instead of `transform` when reading for evaluation
    labels: torch.Tensor | None = None  # class labels, if the dataset has them (for class-balanced sampling)


class StreamSplit(Split):
    """A `Dataset` of (input, target) examples read through `DataLoader` workers.

    Indices and augmentation seeds are chosen in the main process; workers only load and augment,
    so the batches do not depend on the number of workers.
    """

    def __init__(self, dataset, config: StreamConfig | None = None, device="cpu", indices: torch.Tensor | None = None):
        self.dataset = dataset
        self.config = config or StreamConfig()
        self.device = torch.device(device)
        self._indices = None if indices is None else torch.as_tensor(indices, dtype=torch.int64).cpu()
        self._loaders = _Loaders()

    def __len__(self) -> int:
        return len(self.dataset) if self._indices is None else len(self._indices)

    def _derived(self, device, indices) -> StreamSplit:
        split = StreamSplit(self.dataset, self.config, device, indices)
        split._loaders = self._loaders
        return split

    def to(self, device) -> StreamSplit:
        return self._derived(device, self._indices)

    def subset(self, indices: torch.Tensor) -> StreamSplit:
        indices = torch.as_tensor(indices, dtype=torch.int64).cpu()
        return self._derived(self.device, indices if self._indices is None else self._indices[indices])

    def _loader(self, batch_sampler, persistent: bool) -> torch.utils.data.DataLoader:
        workers = self.config.num_workers
        return torch.utils.data.DataLoader(
            _Loaded(self.dataset, self.config.transform, self.config.eval_transform),
            batch_sampler=batch_sampler,
            num_workers=workers,
            collate_fn=self.config.collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=persistent and workers > 0,
            # the loader draws its workers' base seed from this, not from the global RNG, so reading
            # data never shifts the random numbers of whatever runs next
            generator=torch.Generator().manual_seed(0),
        )

    def _on_device(self, batches) -> Iterator[Batch]:
        non_blocking = self.device.type == "cuda"
        for batch in batches:
            yield Batch(move(batch.inputs, self.device, non_blocking), move(batch.targets, self.device, non_blocking))

    def train_batches(self, stream: IndexStream, start_step: int = 0) -> Iterator[Batch]:
        return self._on_device(self._loader(_TrainItems(stream, self._indices, start_step), persistent=False))

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        loaders = self._loaders
        if loaders.eval_loader is None:
            loaders.eval_loader = self._loader(loaders.eval_items, persistent=True)
        loaders.eval_items.indices = list(range(len(self.dataset))) if self._indices is None else self._indices.tolist()
        loaders.eval_items.batch_size = batch_size
        return self._on_device(iter(loaders.eval_loader))

    def labels(self) -> torch.Tensor | None:
        labels = self.config.labels
        if labels is None:
            return None
        labels = torch.as_tensor(labels).cpu()
        return labels if self._indices is None else labels[self._indices]


@dataclass
class Splits:
    """train (for gradients), val (the observation split for metric queries), test (final evaluation only)."""

    train: Split
    val: Split
    test: Split

    def to(self, device) -> Splits:
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


class SplitSizes(NamedTuple):
    """How many examples (images, rows, items) train, val and test hold for a task's options, declared
    by the task (`Task.split_sizes`) without loading its data. `approximate` names the splits whose size
    is an estimate: it depends on which classes the split seed draws, and classes differ in size."""

    train: int
    val: int
    test: int
    approximate: tuple[str, ...] = ()
