"""Image files for the streamed image tasks (ImageNet, Stanford Online Products): decoding, the standard
ImageNet-style crops, and a dataset of (file, label) pairs read in `DataLoader` workers.

Images leave the workers as uint8 (3, S, S) tensors (4x less to copy and transfer than floats); the
model normalises them on the device (`tasks.models.small.Normalized`). The training crop is the
Inception-style random-resized crop (scale 0.08-1, aspect ratio 3/4-4/3) plus a horizontal flip,
drawn from the per-sample generator the data layer seeds from (stream, step, position), so an
augmented batch is reproducible; evaluation resizes the shorter side to size / 0.875 and takes the
centre crop (224 from 256), as torchvision's and timm's ImageNet references do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from metricbench.bench.core.errors import DataError
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as F

EVAL_CROP_FRACTION = 0.875  # 224 / 256


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 (3, H, W) RGB tensor; `DataError` naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path} not found (listed in the dataset's index); restore it or download the dataset again") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: cannot decode the image ({reason}); replace it or download the dataset again") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def random_resized_crop(size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
    """Training augmentation `(image, target, generator) -> (crop, target)`: a random area and aspect
    ratio resized to `size` x `size`, then a left-right flip with probability 1/2."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def transform(image: torch.Tensor, target, generator: torch.Generator):
        height, width = image.shape[-2:]
        area = height * width
        for _ in range(10):
            u = torch.rand(4, generator=generator).tolist()
            target_area = area * (scale[0] + u[0] * (scale[1] - scale[0]))
            aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
            w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top, left = int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1))
                break
        else:  # no crop fitted: the largest centred crop within the ratio range
            h, w = height, width
            if width / height < ratio[0]:
                h = round(width / ratio[0])
            elif width / height > ratio[1]:
                w = round(height * ratio[1])
            top, left = (height - h) // 2, (width - w) // 2
        crop = F.resized_crop(image, top, left, h, w, [size, size], antialias=True)
        if flip and torch.rand(1, generator=generator).item() < 0.5:
            crop = crop.flip(-1)
        return crop, target

    return transform


def center_crop(size: int, crop_fraction: float = EVAL_CROP_FRACTION):
    """Evaluation preprocessing `(image, target) -> (crop, target)`: the shorter side resized to
    size / crop_fraction, then the centre `size` x `size`."""
    resize = round(size / crop_fraction)

    def transform(image: torch.Tensor, target):
        return F.center_crop(F.resize(image, [resize], antialias=True), [size, size]), target

    return transform


class ImageFiles(torch.utils.data.Dataset):
    """(uint8 image, int64 label) pairs from a list of image files, decoded on each access (in the workers)."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int]):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} image paths but {len(labels)} labels")
        self.paths = [str(p) for p in paths]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return read_image(self.paths[index]), self.labels[index]


def write_jpeg(path: Path, pixels: np.ndarray, quality: int = 90) -> None:
    """Write an (H, W, 3) uint8 array as a JPEG (fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=quality)


def class_pattern_images(labels: np.ndarray, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Fixture pictures: per class a colour and a coarse pattern, per image noise and a random size
    between half and all of `size` (so the loaders' resizing is exercised). (H, W, 3) uint8 each."""
    rng = np.random.default_rng(seed)
    classes = int(labels.max()) + 1 if len(labels) else 0
    palette = rng.integers(30, 225, size=(classes, 3))
    patterns = rng.normal(0, 40, size=(classes, 4, 4, 3))
    images = []
    for label in labels:
        h, w = (int(rng.integers(s // 2, s + 1)) for s in size)
        pattern = np.kron(patterns[label], np.ones((-(-h // 4), -(-w // 4), 1)))[:h, :w]
        noise = rng.normal(0, 20, size=(h, w, 3))
        images.append(np.clip(palette[label] + pattern + noise, 0, 255).astype(np.uint8))
    return images
