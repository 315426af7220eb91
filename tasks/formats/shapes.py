"""Generated detection data: coloured shapes on textured backgrounds, written in the VOC2007 layout.

This is the data of the embedded `shapes-detection` task, which stands in for voc2007 on machines
without the real dataset. Writing it to disk in the exact VOC layout (and reading it back through
`tasks.formats.voc`) means the VOC loader that the real task uses is exercised by every run.

Each image has a textured background (stripes, checks or smooth noise in two random colours) and 1 to 4
solid shapes (circle, square, triangle; rotated; sizes from 1/12 to 1/2 of the image side, log-uniform)
in a colour chosen to contrast with the background; shapes drawn later cover earlier ones, and shapes
near the border are cut by it. Gaussian pixel noise goes over everything, then the image is stored as a
JPEG.

Annotation rules, following the VOC guidelines:
- the box is the tight box of the object's *visible* pixels (occluded and cut-off parts excluded);
- an object with no visible pixel is not annotated;
- `truncated` = the shape extends beyond the image border;
- `difficult` = fewer than `MIN_VISIBLE_PIXELS` visible pixels (too small to recognise), or less than
  `MIN_VISIBLE_FRACTION` of the shape visible (mostly hidden by other shapes or the border). The VOC
  metrics ignore difficult objects: detecting one is neither rewarded nor punished.

Every image is drawn from its own NumPy generator seeded by (seed, split, index), so the output is a
pure function of the arguments: the same arguments give byte-identical files, and changing `n_test`
does not change the training images.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch
from metricbench.tasks.formats.voc import VOCObject, write_voc

SHAPE_CLASSES = ("circle", "square", "triangle")
GENERATOR_VERSION = 1  # bump when the images change, so stale generated folders are not reused
MARKER = "metricbench-shapes.json"  # written last inside the folder; records the arguments it was made with

MIN_VISIBLE_PIXELS = 40  # below this many visible pixels (about 6 x 6) an object is difficult
MIN_VISIBLE_FRACTION = 0.4  # below this share of its own area visible, an object is difficult
SIZE_RANGE = (1 / 12, 1 / 2)  # shape size (diameter or side) as a share of the image side
MIN_CONTRAST = 110.0  # least RGB distance between a shape's colour and each background colour, when possible

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- shapes
# Each shape function takes pixel-centre coordinate grids x, y (H, W), a centre, a size and a rotation,
# and returns (mask, extent, area): the boolean mask, the exact x1, y1, x2, y2 of the whole shape
# (which may lie outside the image), and its exact area.


def _circle(x, y, cx, cy, size, angle):
    r = size / 2
    mask = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    return mask, (cx - r, cy - r, cx + r, cy + r), np.pi * r**2


def _square(x, y, cx, cy, size, angle):
    cos, sin = np.cos(angle), np.sin(angle)
    u = (x - cx) * cos + (y - cy) * sin  # coordinates in the square's own frame
    v = -(x - cx) * sin + (y - cy) * cos
    mask = (np.abs(u) <= size / 2) & (np.abs(v) <= size / 2)
    half = size / 2 * (abs(cos) + abs(sin))
    return mask, (cx - half, cy - half, cx + half, cy + half), size**2


def _triangle(x, y, cx, cy, size, angle):
    """An equilateral triangle whose circumscribed circle has diameter `size`."""
    r = size / 2
    corners = angle + np.array([0, 2, 4]) * np.pi / 3
    vx, vy = cx + r * np.cos(corners), cy + r * np.sin(corners)
    inside = np.ones(x.shape, dtype=bool)
    for k in range(3):  # inside = on the inner side of all three edges (corners go counter-clockwise)
        ex, ey = vx[(k + 1) % 3] - vx[k], vy[(k + 1) % 3] - vy[k]
        inside &= ex * (y - vy[k]) - ey * (x - vx[k]) >= 0
    area = 3 * np.sqrt(3) / 4 * r**2
    return inside, (vx.min(), vy.min(), vx.max(), vy.max()), area


SHAPES = {"circle": _circle, "square": _square, "triangle": _triangle}


# ----------------------------------------------------------------------------- backgrounds
# Each returns a blend weight t (H, W) in [0, 1] between the two background colours.


def _stripes(rng, x, y, side):
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, side / 6)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    return (wave > 0).astype(float) if rng.random() < 0.5 else (wave + 1) / 2


def _checks(rng, x, y, side):
    period = rng.uniform(4, side / 6)
    return ((np.floor(x / period) + np.floor(y / period)) % 2).astype(float)


def _smooth_noise(rng, x, y, side):
    """Random values on a coarse k x k grid, bilinearly interpolated to every pixel."""
    k = int(rng.integers(3, 9))
    grid = rng.random((k, k))
    gx, gy = x / side * (k - 1), y / side * (k - 1)
    x0, y0 = np.minimum(gx.astype(int), k - 2), np.minimum(gy.astype(int), k - 2)
    fx, fy = gx - x0, gy - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


BACKGROUNDS = (_stripes, _checks, _smooth_noise)


def _contrasting_colour(rng, background: np.ndarray) -> np.ndarray:
    """A random colour far (in RGB) from every background colour; the farthest of 32 draws if none is far enough."""
    candidates = rng.integers(0, 256, size=(32, 3)).astype(float)
    distance = np.linalg.norm(candidates[:, None, :] - background[None, :, :], axis=2).min(axis=1)
    far = np.flatnonzero(distance >= MIN_CONTRAST)
    return candidates[far[0] if far.size else distance.argmax()]


# ----------------------------------------------------------------------------- one image


def render_image(rng: np.random.Generator, image_size: int, classes=SHAPE_CLASSES) -> tuple[torch.Tensor, list[VOCObject]]:
    """One image (uint8 CHW RGB tensor) and its annotated objects, drawn from `rng`."""
    side = image_size
    y, x = np.mgrid[0:side, 0:side] + 0.5  # pixel centres

    colours = rng.integers(0, 256, size=(2, 3)).astype(float)
    colours[1] = np.clip(colours[0] + rng.normal(0, 70, size=3), 0, 255)  # a texture, not two unrelated colours
    blend = BACKGROUNDS[rng.integers(len(BACKGROUNDS))](rng, x, y, side)
    image = colours[0] * (1 - blend[..., None]) + colours[1] * blend[..., None]

    drawn = []  # (class name, mask, extent, area), in drawing order
    for _ in range(int(rng.integers(1, 5))):
        name = classes[rng.integers(len(classes))]
        size = side * np.exp(rng.uniform(np.log(SIZE_RANGE[0]), np.log(SIZE_RANGE[1])))
        cx, cy = rng.uniform(0.2 * size, side - 0.2 * size, size=2)  # up to 0.3 * size may fall outside
        mask, extent, area = SHAPES[name](x, y, cx, cy, size, rng.uniform(0, 2 * np.pi))
        image[mask] = _contrasting_colour(rng, colours)
        drawn.append((name, mask, extent, area))

    image += rng.normal(0, rng.uniform(3, 12), size=image.shape)
    pixels = torch.from_numpy(np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(2, 0, 1)))

    objects = []
    covered = np.zeros((side, side), dtype=bool)  # pixels of shapes drawn later (on top)
    for name, mask, extent, area in reversed(drawn):
        visible = mask & ~covered
        covered |= mask
        count = int(visible.sum())
        if count == 0:
            continue
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        x1, y1, x2, y2 = extent
        objects.append(
            VOCObject(
                name=name,
                bbox=(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)),
                difficult=count < MIN_VISIBLE_PIXELS or count < MIN_VISIBLE_FRACTION * area,
                truncated=x1 < 0 or y1 < 0 or x2 > side or y2 > side,
            )
        )
    objects.reverse()  # back to drawing order
    return pixels, objects


# ----------------------------------------------------------------------------- the dataset folder


def _samples(sizes: dict[str, int], image_size: int, seed: int, classes):
    """(image_id, image, objects) for every image; ids run 000001, 000002, ... over train, val, test."""
    number = 0
    for split_index, split in enumerate(SPLITS):
        for index in range(sizes[split]):
            number += 1
            image, objects = render_image(np.random.default_rng((seed, split_index, index)), image_size, classes)
            yield f"{number:06d}", image, objects


def _check_existing(root: Path, parameters: dict) -> Path:
    """Return `root` if it was generated with `parameters`; refuse to reuse a folder made otherwise."""
    marker = root / MARKER
    if not marker.exists():
        raise FileExistsError(
            f"{root} exists but is not a generated shapes dataset (no {MARKER}); remove it or pick another folder"
        )
    found = json.loads(marker.read_text())
    if found != parameters:
        raise FileExistsError(f"{root} holds shapes generated with {found}, not {parameters}; remove it or pick another folder")
    return root


def generate_shapes_voc(
    root: str | Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    image_size: int,
    seed: int,
    classes: tuple[str, ...] = SHAPE_CLASSES,
) -> Path:
    """Generate the shapes dataset into `root` (VOC layout, image sets train, val, trainval, test); return `root`.

    If `root` already holds a dataset generated with the same arguments it is returned untouched. The
    data is written into a temporary sibling folder and renamed into place, so a reader (or a second
    process generating the same data at the same time) never sees a half-written folder.
    """
    unknown = [name for name in classes if name not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape classes {unknown}; known: {', '.join(SHAPES)}")
    root = Path(root)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    parameters = {"version": GENERATOR_VERSION, **sizes, "image_size": image_size, "seed": seed, "classes": list(classes)}
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):  # an empty folder is ours to fill
        return _check_existing(root, parameters)

    root.parent.mkdir(parents=True, exist_ok=True)
    temporary = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        ids = [f"{n:06d}" for n in range(1, n_train + n_val + n_test + 1)]
        train, val, test = ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]
        image_sets = {"train": train, "val": val, "trainval": train + val, "test": test}
        write_voc(temporary, _samples(sizes, image_size, seed, classes), image_sets, folder="shapes")
        (temporary / MARKER).write_text(json.dumps(parameters, sort_keys=True) + "\n")
        try:
            os.rename(temporary, root)  # replaces an empty folder; fails if another process got there first
        except OSError:
            if not root.exists():
                raise
            return _check_existing(root, parameters)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return root
