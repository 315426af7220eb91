"""ImageNet-1k (ILSVRC2012) in the standard folder layout: listing it, and writing a same-format fixture.

There is no public download URL: the images are distributed to registered users at
https://image-net.org/download-images (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar). The expected
layout is torchvision's `ImageFolder`, as the PyTorch ImageNet example prepares it:
`imagenet/train/<wnid>/*.JPEG` (1,000 class folders, 1,281,167 images) and `imagenet/val/<wnid>/*.JPEG`
(the 50,000 validation images sorted into the same class folders). Classes are numbered by sorted
folder name (wnid), as torchvision does, so standard ImageNet checkpoints map onto the same indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from metricbench.bench.core.errors import DataError
from metricbench.tasks.formats.images import class_pattern_images, write_jpeg

FOLDER = "imagenet"
MANUAL = (
    "ImageNet has no public download: get ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
    "https://image-net.org/download-images and unpack them as DIR/imagenet/train/<wnid>/*.JPEG and "
    "DIR/imagenet/val/<wnid>/*.JPEG (validation images sorted into class folders)"
)
EXTENSIONS = (".jpeg", ".jpg", ".png")


@dataclass
class ImageFolderIndex:
    paths: list[Path]
    labels: np.ndarray
    classes: list[str]


def list_image_folder(data_dir: str | Path, part: str, classes: list[str] | None = None) -> ImageFolderIndex:
    """Every image under `data_dir/imagenet/<part>/<class>/`, labelled by the class's position in
    `classes` (default: the sorted class folders of this part, as torchvision's `find_classes`)."""
    from torchvision.datasets.folder import find_classes, make_dataset

    root = Path(data_dir) / FOLDER / part
    if not root.is_dir():
        raise DataError(f"{root} not found; {MANUAL.replace('DIR', str(data_dir))}")
    try:
        found, _ = find_classes(str(root))
    except FileNotFoundError as error:
        raise DataError(f"{root}: {error}; {MANUAL.replace('DIR', str(data_dir))}") from None
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(
            f"{root / unknown[0]}: a class folder that imagenet/train does not have; sort val into train's class folders"
        )
    samples = make_dataset(
        str(root), {c: i for i, c in enumerate(classes) if c in found}, extensions=EXTENSIONS, allow_empty=True
    )
    if not samples:
        raise DataError(f"{root}: no images (.JPEG, .jpg or .png) in its class folders; {MANUAL.replace('DIR', str(data_dir))}")
    paths, labels = zip(*samples, strict=True)
    return ImageFolderIndex([Path(p) for p in paths], np.asarray(labels, dtype=np.int64), classes)


def write_imagenet(
    data_dir: str | Path, classes: int = 5, train_per_class: int = 8, val_per_class: int = 4, image_size: int = 64, seed: int = 0
) -> Path:
    """Write a tiny ImageNet in the `ImageFolder` layout under `data_dir/imagenet/` (wnid-like class names)."""
    root = Path(data_dir) / FOLDER
    wnids = [f"n{1440764 + 17 * i:08d}" for i in range(classes)]
    for part, per_class, part_seed in (("train", train_per_class, seed), ("val", val_per_class, seed + 1)):
        labels = np.repeat(np.arange(classes), per_class)
        for number, (label, pixels) in enumerate(
            zip(labels, class_pattern_images(labels, (image_size, image_size), part_seed), strict=True)
        ):
            name = f"{wnids[label]}_{number}.JPEG" if part == "train" else f"ILSVRC2012_val_{number + 1:08d}.JPEG"
            write_jpeg(root / part / wnids[label] / name, pixels)
    return root
