"""Fixed splits of a dataset into train / val / test, decided by the data and a split seed (never the run seed).

- `stratified_split`: carve test (unless the dataset has an official test set) and then val out of
  labelled examples, each stratified by label.
- `class_disjoint_split`: whole classes go to train, val or test (retrieval: test classes are never
  seen in training, as in Stanford Online Products).
- `stratified_sizes`, `class_disjoint_counts`: how many examples (classes) those splits give, without
  the data (what a task declares in `split_sizes`).
- `standardize`: scale features with the training part's statistics only.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(
    labels: np.ndarray, test_fraction: float, val_fraction: float, split_seed: int, has_test: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test) into `labels`: test is `test_fraction` of all examples, val
    `val_fraction` of the rest, both stratified. With `has_test` (an official test file), test is
    empty and only val is carved."""
    everything = np.arange(len(labels))
    if has_test:
        rest, test = everything, everything[:0]
    else:
        rest, test = train_test_split(everything, test_size=test_fraction, stratify=labels, random_state=split_seed)
    train, val = train_test_split(rest, test_size=val_fraction, stratify=labels[rest], random_state=split_seed + 1)
    return train, val, test


def _held_out(examples: int, fraction: float) -> int:
    # scikit-learn's `train_test_split` with a float `test_size` holds out ceil(fraction x n), stratified or not
    return math.ceil(fraction * examples)


def stratified_sizes(
    examples: int, test_fraction: float, val_fraction: float, official_test: int | None = None
) -> tuple[int, int, int]:
    """(train, val, test) sizes of `stratified_split` on `examples` labelled examples; with `official_test`
    (the size of an official test set) nothing is carved for test, as with `has_test`."""
    test = official_test if official_test is not None else _held_out(examples, test_fraction)
    rest = examples if official_test is not None else examples - test
    val = _held_out(rest, val_fraction)
    return rest - val, val, test


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Feature vectors `train` (N, F) and `others` scaled by the per-feature mean and std of `train`,
    so nothing about val or test leaks into the inputs (images stay uint8: models scale them)."""
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-8
    return [(x - mean) / std for x in (train, *others)]


def class_disjoint_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test) into `labels` such that no class has examples in two of them.

    Classes (not examples) are shuffled with `split_seed`; the first `test_fraction` of them go to
    test, the next `val_fraction` to val, the rest to train. Each split gets at least one class, except
    test with `test_fraction` 0 (a dataset with its own test classes carves only val).
    """
    classes = np.unique(labels)
    shuffled = np.random.default_rng(split_seed).permutation(classes)
    _, n_val, n_test = class_disjoint_counts(len(classes), val_fraction, test_fraction)
    groups = shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val], shuffled[:n_test]
    return tuple(np.flatnonzero(np.isin(labels, group)) for group in groups)


def class_disjoint_counts(classes: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """How many of `classes` classes `class_disjoint_split` puts in (train, val, test)."""
    if classes < 3:
        raise ValueError(f"a class-disjoint split needs at least 3 classes, got {classes}")
    n_test = max(1, round(test_fraction * classes)) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * classes))
    if n_test + n_val >= classes:
        raise ValueError(f"val and test fractions leave no training class out of {classes}")
    return classes - n_test - n_val, n_val, n_test
