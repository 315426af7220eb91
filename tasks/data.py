"""Turning an in-memory (features, labels) dataset into fixed, stratified train / val / test splits."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tasks.base import Splits, TensorSplit


def stratified_splits(
    features: np.ndarray,
    labels: np.ndarray,
    test_fraction: float,
    val_fraction: float,
    split_seed: int,
    standardize: bool = True,
) -> Splits:
    """Carve test from the data, then val from what is left; both stratified by label.

    Standardisation uses the mean and std of the training part only, so nothing about val or test
    leaks into the inputs.
    """
    x_rest, x_test, y_rest, y_test = train_test_split(
        features, labels, test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction, stratify=y_rest, random_state=split_seed + 1
    )
    if standardize:
        axes = 0 if x_train.ndim == 2 else tuple(range(x_train.ndim))
        mean, std = x_train.mean(axis=axes), x_train.std(axis=axes) + 1e-8
        x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))

    def split(x, y):
        return TensorSplit(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))

    return Splits(split(x_train, y_train), split(x_val, y_val), split(x_test, y_test))
