"""LIBSVM text files (a9a, covtype.binary): reading them with the right feature count, and writing fixtures.

Each line is `<label> <index>:<value> <index>:<value> ...` with 1-based, increasing feature indices;
absent features are 0. Reading goes through scikit-learn's `load_svmlight_file` with an explicit
`n_features` (a file whose largest index is below the dataset's feature count, like `a9a.t` without
feature 123, would otherwise load with a narrower matrix). When scikit-learn refuses a file, the file
is scanned line by line to name the first bad line, so the one-line error says where to look.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from metricbench.bench.core.errors import DataError

_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_LINE = re.compile(rf"\s*(?P<label>{_NUMBER})(?P<features>(\s+\d+:{_NUMBER})*)\s*(#.*)?")


def first_bad_line(path: Path, n_features: int) -> tuple[int, str] | None:
    """(line number, reason) of the first line that is not LIBSVM with indices 1..n_features, or None."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("ascii").rstrip("\r\n")
            except UnicodeDecodeError:
                return number, "it is not ASCII text"
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if _LINE.fullmatch(line) is None:
                return number, f"{line[:60]!r} is not '<label> <index>:<value> ...'"
            indices = [int(token.split(":")[0]) for token in line.split("#")[0].split()[1:]]
            if any(i < 1 or i > n_features for i in indices):
                return number, f"a feature index outside 1..{n_features}"
            if any(b <= a for a, b in zip(indices, indices[1:], strict=False)):
                return number, "feature indices that do not increase"
    return None


def read_libsvm(path: str | Path, n_features: int, labels: dict[float, int], download_hint: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, n_features) float32 dense, labels (N,) int64 mapped by `labels`) from a LIBSVM file.

    `labels` maps the file's label values to classes, e.g. {-1: 0, 1: 1} for a9a, {1: 0, 2: 1} for covtype;
    another value raises `DataError` naming the file and the first line that has it."""
    from sklearn.datasets import load_svmlight_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; {download_hint}")
    try:
        features, raw_labels = load_svmlight_file(str(path), n_features=n_features, dtype=np.float32, zero_based=False)
    except ValueError as error:
        # scikit-learn's message does not say which line is wrong: find it (only on failure, as a scan is slow)
        bad = first_bad_line(path, n_features)
        where = f"line {bad[0]}: {bad[1]}" if bad else f"not a LIBSVM file ({str(error).splitlines()[0]})"
        raise DataError(f"{path}: {where}; fix it or {download_hint}") from None
    unknown = sorted(set(np.unique(raw_labels).tolist()) - set(labels))
    if unknown:
        line = _line_with_label(path, unknown[0])
        raise DataError(
            f"{path}: line {line}: label {unknown[0]:g}, expected one of "
            f"{', '.join(f'{v:g}' for v in sorted(labels))}; {download_hint}"
        )
    mapped = np.zeros(len(raw_labels), dtype=np.int64)
    for value, cls in labels.items():
        mapped[raw_labels == value] = cls
    return features.toarray(), mapped


def _line_with_label(path: Path, value: float) -> int:
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields and not fields[0].startswith("#") and float(fields[0]) == value:
                return number
    return 0


def write_libsvm(path: str | Path, features: np.ndarray, labels: np.ndarray, label_values: tuple[int, int]) -> Path:
    """Write `features` (N, F; zeros left out) with class c written as `label_values[c]`, in LIBSVM's text format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row, cls in zip(features, labels, strict=True):
        entries = " ".join(f"{i + 1}:{value:g}" for i, value in enumerate(row) if value != 0)
        lines.append(f"{label_values[int(cls)]} {entries}".rstrip() + "\n")
    path.write_text("".join(lines))
    return path


def binary_fixture(
    n: int, n_features: int, seed: int, density: float = 0.1, binary_values: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable sparse binary problem shaped like a LIBSVM dataset: (features (n, F), classes (n,))."""
    rng = np.random.default_rng(seed)
    present = rng.random((n, n_features)) < density
    values = np.ones((n, n_features)) if binary_values else np.round(rng.random((n, n_features)), 3) + 0.001
    features = np.where(present, values, 0.0)
    weights = rng.normal(size=n_features)
    score = (features - features.mean(axis=0)) @ weights
    return features, (score > np.median(score)).astype(np.int64)
