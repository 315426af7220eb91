"""Which examples make up each training batch: index streams reproducible from (seed, step).

A stream answers `indices(step)` for any step without replaying the steps before it: each epoch's
order comes from a generator seeded with (seed, epoch), and class-balanced draws from (seed, step).
So a batch stream restarted at step k yields exactly the batches a stream run to k would have
(what mid-cell resume needs), and two streams with different seeds never share a generator.

- `ShuffledBatches`: a fresh permutation each epoch, the last partial batch dropped.
- `ClassBalancedBatches`: P classes x K examples per batch (metric learning needs positives in a batch).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator

import torch
from metricbench.bench.core.seeding import seeded_generator


class IndexStream(abc.ABC):
    """Endless batches of example indices; `indices(step)` is a pure function of (seed, step)."""

    seed: int

    @abc.abstractmethod
    def indices(self, step: int) -> torch.Tensor:
        """The (int64, CPU) indices of batch number `step` (0-based)."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.from_step(0)

    def from_step(self, start_step: int) -> Iterator[torch.Tensor]:
        step = start_step
        while True:
            yield self.indices(step)
            step += 1


class ShuffledBatches(IndexStream):
    """Uniformly shuffled batches: epoch e visits a permutation seeded by (seed, e)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("cannot draw batches from an empty split")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.seed = seed
        self.per_epoch = n // self.batch_size
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.int64)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:  # one permutation per epoch, kept while the epoch lasts
            self._order = torch.randperm(self.n, generator=seeded_generator("epoch", self.seed, epoch))
            self._epoch = epoch
        return self._order

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        start = position * self.batch_size
        return self._epoch_order(epoch)[start : start + self.batch_size]


class ClassBalancedBatches(IndexStream):
    """`classes_per_batch` classes, `per_class` examples of each, drawn anew each step.

    Only classes with at least two examples are drawn (a class seen once has no positive pair);
    a class with fewer than `per_class` examples is drawn with replacement.
    """

    def __init__(self, labels: torch.Tensor, classes_per_batch: int, per_class: int, seed: int):
        labels = torch.as_tensor(labels).reshape(-1).cpu()
        classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        order = torch.argsort(inverse, stable=True)
        members = torch.split(order, counts.tolist())
        self._members = [m for m, c in zip(members, counts.tolist(), strict=True) if c >= 2]
        if not self._members:
            raise ValueError("class-balanced batches need at least one class with two or more examples")
        self.classes_per_batch = min(classes_per_batch, len(self._members))
        self.per_class = per_class
        self.seed = seed

    def indices(self, step: int) -> torch.Tensor:
        generator = seeded_generator("classes", self.seed, step)
        chosen = torch.randperm(len(self._members), generator=generator)[: self.classes_per_batch]
        picks = []
        for c in chosen.tolist():
            members = self._members[c]
            if len(members) >= self.per_class:
                picks.append(members[torch.randperm(len(members), generator=generator)[: self.per_class]])
            else:
                picks.append(members[torch.randint(len(members), (self.per_class,), generator=generator)])
        return torch.cat(picks)


def class_balanced_sample(labels: torch.Tensor, n: int, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """About `n` indices drawn as whole groups of `per_class` examples of one class (no repeats).

    For queries that need same-class pairs (Recall@K on a mini-batch): a uniform draw from many
    small classes has almost none. Classes with fewer than two examples are never drawn; a class
    with fewer than `per_class` examples contributes all it has.
    """
    labels = torch.as_tensor(labels).reshape(-1).cpu()
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    eligible = (counts >= 2).nonzero().reshape(-1)
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    picks, total = [], 0
    for c in eligible[torch.randperm(len(eligible), generator=generator)].tolist():
        if total >= n:
            break
        members = order[starts[c] : starts[c] + counts[c]]
        take = min(per_class, len(members), max(2, n - total))
        picks.append(members[torch.randperm(len(members), generator=generator)[:take]])
        total += take
    if not picks:
        raise ValueError("no class has two or more examples, so a class-balanced sample is impossible")
    return torch.cat(picks)
