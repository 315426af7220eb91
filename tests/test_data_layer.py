"""The data layer: index streams reproducible from (seed, step), the three split kinds, batched transforms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from metricbench.tasks.data.partition import class_disjoint_split
from metricbench.tasks.data.sampling import ClassBalancedBatches, ShuffledBatches, class_balanced_sample
from metricbench.tasks.data.splits import ListSplit, StreamConfig, StreamSplit, TensorSplit, list_collate
from metricbench.tasks.data.transforms import compose, random_crop, random_flip_lr


def _take(iterator, n):
    return list(itertools.islice(iterator, n))


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class Squares(torch.utils.data.Dataset):
    """A dataset read on demand: item i is a (1, 4, 4) image filled with i, its target i % 5.
    Per-sample augmentation adds a random integer, so reproducibility of augmentation shows."""

    def __len__(self):
        return 23

    def __getitem__(self, i):
        return torch.full((1, 4, 4), float(i)), torch.tensor(i % 5)


def _jitter(inputs, target, generator):
    return inputs + torch.randint(0, 1000, (1,), generator=generator).float(), target


def _splits():
    inputs = torch.arange(23 * 16, dtype=torch.uint8).reshape(23, 1, 4, 4)
    targets = torch.arange(23) % 5
    tensor = TensorSplit(inputs, targets, transform=compose([random_crop(1), random_flip_lr()]))
    stream = StreamSplit(Squares(), StreamConfig(num_workers=2, transform=_jitter, labels=targets))
    images = [torch.rand(3, 5 + i % 3, 6) for i in range(23)]
    boxes = [{"boxes": torch.tensor([[0.0, 0.0, 2.0, 2.0]]), "labels": torch.tensor([i % 3 + 1])} for i in range(23)]
    return {"tensor": tensor, "stream": stream, "list": ListSplit(images, boxes)}


@pytest.mark.parametrize("kind", ["tensor", "stream", "list"])
def test_restarting_a_batch_stream_at_step_k_gives_the_batches_of_a_stream_run_to_k(kind):
    split = _splits()[kind]
    stream = ShuffledBatches(len(split), 5, seed=3)
    through = _take(split.train_batches(stream), 12)  # 12 steps cross three epochs of 4 batches
    restarted = _take(split.train_batches(ShuffledBatches(len(split), 5, seed=3), start_step=7), 5)
    assert all(_same(a, b) for a, b in zip(through[7:], restarted, strict=True))
    other_seed = _take(split.train_batches(ShuffledBatches(len(split), 5, seed=4)), 12)
    assert not all(_same(a, b) for a, b in zip(through, other_seed, strict=True))


def test_streamed_batches_do_not_depend_on_the_number_of_workers():
    def batches(workers):
        split = StreamSplit(Squares(), StreamConfig(num_workers=workers, transform=_jitter))
        return _take(split.train_batches(ShuffledBatches(len(split), 4, seed=0)), 6)

    assert all(_same(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_each_epoch_visits_every_example_once_and_drops_the_last_partial_batch():
    stream = ShuffledBatches(23, 5, seed=0)
    epoch = torch.cat([stream.indices(step) for step in range(4)])
    assert len(epoch) == 20 and len(set(epoch.tolist())) == 20
    assert not torch.equal(stream.indices(0), stream.indices(4))  # a new permutation next epoch


@pytest.mark.parametrize("kind", ["tensor", "stream", "list"])
def test_eval_batches_visit_every_example_in_order_without_augmentation_and_subsets_too(kind):
    split = _splits()[kind]
    batches = list(split.eval_batches(10))
    assert [len(b.targets) for b in batches] == [10, 10, 3]
    again = list(split.eval_batches(10))
    assert all(_same(a, b) for a, b in zip(batches, again, strict=True))
    part = split.subset(torch.tensor([4, 0, 9]))
    (only,) = list(part.eval_batches(10))
    assert _same(only.targets, [batches[0].targets[i] for i in (4, 0, 9)] if kind == "list" else batches[0].targets[[4, 0, 9]])
    if kind == "stream":
        assert torch.equal(only.inputs[:, 0, 0, 0], torch.tensor([4.0, 0.0, 9.0]))  # no augmentation in evaluation
        assert torch.equal(part.labels(), torch.tensor([4, 0, 4]))


def test_a_streamed_split_collates_variable_size_examples_into_lists():
    images = [(torch.rand(3, 4 + i, 5), {"labels": torch.tensor([i])}) for i in range(6)]
    split = StreamSplit(images, StreamConfig(num_workers=0, collate=list_collate))
    (batch,) = _take(split.train_batches(ShuffledBatches(6, 3, seed=0)), 1)
    assert isinstance(batch.inputs, list) and len(batch.inputs) == 3 and isinstance(batch.targets[0], dict)


def test_class_balanced_batches_hold_p_classes_of_k_and_are_reproducible():
    labels = torch.arange(60) % 12
    stream = ClassBalancedBatches(labels, classes_per_batch=4, per_class=3, seed=1)
    for step in range(5):
        picked = labels[stream.indices(step)]
        counts = torch.bincount(picked)
        assert sorted(counts[counts > 0].tolist()) == [3, 3, 3, 3]
        assert torch.equal(stream.indices(step), ClassBalancedBatches(labels, 4, 3, seed=1).indices(step))


def test_a_class_balanced_sample_always_has_same_class_pairs():
    labels = torch.arange(500) % 125  # 125 classes of 4, like a retrieval val split
    generator = torch.Generator().manual_seed(0)
    for n in (8, 17, 64):
        sample = class_balanced_sample(labels, n, per_class=4, generator=generator)
        counts = torch.bincount(labels[sample])
        assert len(set(sample.tolist())) == len(sample) >= n
        assert (counts[counts > 0] >= 2).all()  # every drawn class has a positive pair


def test_a_class_disjoint_split_puts_no_class_in_two_splits():
    labels = np.repeat(np.arange(50), 7)
    train, val, test = class_disjoint_split(labels, val_fraction=0.2, test_fraction=0.2, split_seed=3)
    classes = [set(labels[idx]) for idx in (train, val, test)]
    assert not (classes[0] & classes[1]) and not (classes[0] & classes[2]) and not (classes[1] & classes[2])
    assert sum(map(len, classes)) == 50 and len(classes[2]) == 10
    assert len(train) + len(val) + len(test) == len(labels)


def test_batched_transforms_keep_dtype_and_pixels_and_are_seeded():
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).reshape(2, 3, 5, 5)
    crop = random_crop(2)
    out = crop(images, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, crop(images, torch.Generator().manual_seed(0)))
    # a crop is a translation: every pixel is either padding (0) or a pixel of the same image
    for i in range(2):
        assert set(out[i].unique().tolist()) <= set(images[i].unique().tolist()) | {0}
    zero_pad = random_crop(0)(images, torch.Generator().manual_seed(0))
    assert torch.equal(zero_pad, images)
    flipped = random_flip_lr()(images, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(-1))
