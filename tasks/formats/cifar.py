"""CIFAR-10 in its standard "python version" layout: reading it, and writing a same-format fixture.

The archive `cifar-10-python.tar.gz` (https://www.cs.toronto.edu/~kriz/cifar.html) unpacks to
`cifar-10-batches-py/` with `data_batch_1` .. `data_batch_5` (10,000 training images each),
`test_batch` (10,000) and `batches.meta`. Each batch is a pickled dict (written by Python 2's cPickle)
with `data`, a (N, 3072) uint8 array of 32x32 images stored as 1024 red, then green, then blue values
row by row, `labels` (N ints 0-9), `filenames` and `batch_label`; `batches.meta` holds `label_names`.
Python 2 wrote the keys as byte strings, so they are read with `encoding="latin1"` and normalised to
`str`; a fixture written here (with `str` keys, pickle protocol 2) reads back through the same code.

A missing, truncated or malformed batch raises `DataError` naming the file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from metricbench.bench.core.errors import DataError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FILES = (*TRAIN_BATCHES, TEST_BATCH, META)
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # as published by the dataset's page and used by torchvision


@dataclass
class CifarArrays:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of the training batches and of the test batch."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    label_names: tuple[str, ...]


def _unpickle(path: Path, download_hint: str) -> dict:
    try:
        with open(path, "rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except FileNotFoundError:
        raise DataError(f"{path} not found; {download_hint}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{path}: not a readable CIFAR-10 python batch, truncated or corrupt ({reason}); {download_hint}"
        ) from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: holds a {type(content).__name__}, expected the dict of a CIFAR-10 batch; {download_hint}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _read_batch(path: Path, download_hint: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path, download_hint)
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise DataError(f"{path}: the batch has no '{missing[0]}' entry; {download_hint}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072); {download_hint}")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(labels)} labels for {len(data)} images; {download_hint}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be 0-9, found {labels.min()}..{labels.max()}; {download_hint}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar10(data_dir: str | Path, download_hint: str = "download it again") -> CifarArrays:
    """The five training batches (in order) and the test batch under `data_dir/cifar-10-batches-py/`."""
    root = Path(data_dir) / FOLDER
    train = [_read_batch(root / name, download_hint) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(root / TEST_BATCH, download_hint)
    meta = _unpickle(root / META, download_hint)
    names = tuple(meta.get("label_names", LABEL_NAMES))
    return CifarArrays(
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        test_images,
        test_labels,
        names,
    )


def write_cifar10(data_dir: str | Path, per_batch: int = 20, test_images: int = 40, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10 in the standard layout under `data_dir/cifar-10-batches-py/` (for tests and
    demos): `per_batch` images in each of the five training batches, `test_images` in the test batch.

    Each class has its own mean colour and a coarse random pattern, so a small model can learn it."""
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(30, 225, size=(10, 3))

    def images(n: int, batch_label: str) -> dict:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        noise = rng.normal(0, 25, size=(n, 3, 32, 32))
        pattern = np.kron(rng.normal(0, 30, size=(10, 3, 4, 4)), np.ones((8, 8)))[labels]
        pixels = np.clip(palette[labels][:, :, None, None] + pattern + noise, 0, 255).astype(np.uint8)
        return {
            "batch_label": batch_label,
            "labels": labels.tolist(),
            "data": pixels.reshape(n, 3072),
            "filenames": [f"fixture_{batch_label.replace(' ', '_')}_{i}.png" for i in range(n)],
        }

    batches = {name: images(per_batch, f"training batch {i} of 5") for i, name in enumerate(TRAIN_BATCHES, 1)}
    batches[TEST_BATCH] = images(test_images, "testing batch 1 of 1")
    batches[META] = {"num_cases_per_batch": per_batch, "label_names": list(LABEL_NAMES), "num_vis": 3072}
    for name, content in batches.items():
        with open(root / name, "wb") as handle:
            pickle.dump(content, handle, protocol=2)
    return root
