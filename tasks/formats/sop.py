"""Stanford Online Products (Song et al., CVPR 2016) in its standard layout: reading its index files,
and writing a same-format fixture.

The archive `Stanford_Online_Products.zip` unpacks to `Stanford_Online_Products/` with `Ebay_train.txt`
(59,551 images of 11,318 products), `Ebay_test.txt` (60,502 images of 11,316 other products) and one
folder per super-category (`bicycle_final/`, `cabinet_final/`, ...). Each index file has the header
`image_id class_id super_class_id path` and one line per image, e.g.
`1 1 1 bicycle_final/111085122871_0.JPG`; `path` is relative to `Stanford_Online_Products/`.
A malformed line raises `DataError` naming the file and the line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from metricbench.bench.core.errors import DataError
from metricbench.tasks.formats.images import class_pattern_images, write_jpeg

FOLDER = "Stanford_Online_Products"
TRAIN_INDEX = "Ebay_train.txt"
TEST_INDEX = "Ebay_test.txt"
HEADER = ("image_id", "class_id", "super_class_id", "path")
SUPER_CLASSES = (
    "bicycle",
    "cabinet",
    "chair",
    "coffee_maker",
    "fan",
    "kettle",
    "lamp",
    "mug",
    "sofa",
    "stapler",
    "table",
    "toaster",
)
URL = "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip"
ARCHIVE_MD5 = "7f73d41a2f44250d4779881525aea32e"  # as used by pytorch-metric-learning and others


@dataclass
class SOPIndex:
    """One index file: image paths (absolute), product (class) ids and super-category ids."""

    paths: list[Path]
    classes: np.ndarray
    super_classes: np.ndarray


def read_index(data_dir: str | Path, name: str, download_hint: str) -> SOPIndex:
    """`Ebay_train.txt` or `Ebay_test.txt` under `data_dir/Stanford_Online_Products/`."""
    root = Path(data_dir) / FOLDER
    path = root / name
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} not found; {download_hint}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; {download_hint}") from None
    if not lines or tuple(lines[0].split()) != HEADER:
        raise DataError(f"{path}: line 1 must be the header '{' '.join(HEADER)}'; {download_hint}")
    paths, classes, supers = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
            raise DataError(f"{path}: line {number} is {line.strip()[:80]!r}, expected 'image_id class_id super_class_id path'")
        paths.append(root / fields[3])
        classes.append(int(fields[1]))
        supers.append(int(fields[2]))
    if not paths:
        raise DataError(f"{path}: lists no images; {download_hint}")
    return SOPIndex(paths, np.asarray(classes, dtype=np.int64), np.asarray(supers, dtype=np.int64))


def write_sop(
    data_dir: str | Path, train_classes: int = 24, test_classes: int = 12, per_class: int = 4, image_size: int = 48, seed: int = 0
) -> Path:
    """Write a tiny Stanford Online Products in the standard layout (index files and JPEG folders) under
    `data_dir/Stanford_Online_Products/`; train and test products are disjoint, as in the real split."""
    root = Path(data_dir) / FOLDER
    n_classes = train_classes + test_classes
    labels = np.repeat(np.arange(n_classes), per_class)
    images = class_pattern_images(labels, (image_size, image_size), seed)
    rows = {TRAIN_INDEX: [], TEST_INDEX: []}
    for image_id, (label, pixels) in enumerate(zip(labels, images, strict=True), start=1):
        super_class = int(label) % len(SUPER_CLASSES)
        relative = f"{SUPER_CLASSES[super_class]}_final/{100000000000 + int(label)}_{image_id % per_class}.JPG"
        write_jpeg(root / relative, pixels)
        index = TRAIN_INDEX if label < train_classes else TEST_INDEX
        rows[index].append(f"{image_id} {int(label) + 1} {super_class + 1} {relative}")
    for name, lines in rows.items():
        (root / name).write_text(" ".join(HEADER) + "\n" + "\n".join(lines) + "\n")
    return root
