"""Generated glyph images for the embedded retrieval task (`glyphs-retrieval`, stands in for SOP).

Stanford Online Products has many classes with few images each, classes that look alike, and
instances of one class that differ in pose and lighting; retrieval is judged on classes never seen in
training. These glyphs imitate that at a size that trains in seconds on a CPU:

- a class is a random pattern of 2-4 strokes; a stroke is a quadratic Bezier curve (a straight line
  when its middle control point sits on the chord, an arc-like bend otherwise) with its own thickness;
- some classes are "variants" of an earlier class (one stroke replaced), so look-alike classes exist;
- an instance re-draws its class with each control point jittered, a small random affine (rotation,
  scale, shear, shift), its own thickness and stroke intensities, a background level, Gaussian pixel
  noise and a few faint clutter strokes that belong to no class.

Rendering is anti-aliased: a pixel's coverage of a stroke falls linearly from 1 to 0 over the last
pixel of its half-width, measured as the distance from the pixel centre to the stroke's polyline.
Everything is vectorised over instances and pixels; Python only loops over stroke slots.
"""

from __future__ import annotations

import numpy as np

MIN_STROKES, MAX_STROKES = 2, 4
POLYLINE_SEGMENTS = 6  # straight pieces a Bezier stroke is drawn with (enough for a smooth bend at 16-32 px)
RENDER_CHUNK_PIXELS = 2**17  # pixels drawn at once: per-segment temporaries of 512 KB stay in cache


def _random_strokes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random strokes: control points (n, 3, 2) in [-1, 1] coordinates and half-widths in pixels (n,).

    Endpoints are kept apart (a stroke much shorter than the glyph reads as a dot and carries little
    identity), and half of the strokes are straight so that lines and arcs both occur.
    """
    start = rng.uniform(-0.7, 0.7, (n, 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    length = rng.uniform(0.6, 1.3, n)
    end = np.clip(start + length[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1), -0.8, 0.8)
    chord = end - start
    normal = np.stack([-chord[:, 1], chord[:, 0]], 1)
    bend = rng.uniform(0.25, 0.7, n) * rng.choice([-1.0, 1.0], n) * (rng.random(n) < 0.5)
    middle = (start + end) / 2 + bend[:, None] * normal
    half_width = rng.uniform(0.6, 1.4, n)
    return np.stack([start, middle, end], 1), half_width


def _class_prototypes(rng: np.random.Generator, n_classes: int, variant_share: float):
    """Stroke patterns of every class: control points (C, 4, 3, 2), half-widths (C, 4), used (C, 4).

    A share of classes copies an earlier class and replaces one of its strokes, which makes pairs of
    classes that differ in one stroke only (the hard negatives of retrieval).
    """
    points, widths = _random_strokes(rng, n_classes * MAX_STROKES)
    points = points.reshape(n_classes, MAX_STROKES, 3, 2)
    widths = widths.reshape(n_classes, MAX_STROKES)
    n_strokes = rng.integers(MIN_STROKES, MAX_STROKES + 1, n_classes)
    for c in range(1, n_classes):
        if rng.random() < variant_share:
            parent = rng.integers(0, c)
            kept = np.arange(MAX_STROKES) != rng.integers(0, n_strokes[parent])
            points[c, kept] = points[parent, kept]
            widths[c, kept] = widths[parent, kept]
            n_strokes[c] = n_strokes[parent]
    used = np.arange(MAX_STROKES)[None, :] < n_strokes[:, None]
    return points, widths, used


def _random_affine(rng: np.random.Generator, n: int, rotation: float, scale: float, shift: float):
    """`n` small affine maps as (n, 2, 2) matrices and (n, 2) offsets: rotation, log-normal scale, shear, shift."""
    theta = rng.uniform(-rotation, rotation, n)
    zoom = np.exp(rng.normal(0, scale, (n, 2)))
    shear = rng.normal(0, scale, n)
    cos, sin = np.cos(theta), np.sin(theta)
    rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    stretch = np.zeros((n, 2, 2))
    stretch[:, 0, 0], stretch[:, 1, 1], stretch[:, 0, 1] = zoom[:, 0], zoom[:, 1], shear
    return rotate @ stretch, rng.normal(0, shift, (n, 2))


def _polyline(control: np.ndarray) -> np.ndarray:
    """Points along quadratic Bezier curves: control (..., 3, 2) -> (..., POLYLINE_SEGMENTS + 1, 2)."""
    t = np.linspace(0, 1, POLYLINE_SEGMENTS + 1)[:, None]
    p0, p1, p2 = (control[..., i, None, :] for i in range(3))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _coverage(points: np.ndarray, size: int, half_width: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (N, size, size) of one polyline per image, points (N, V, 2) in pixels.

    The distance to the polyline is the minimum over its segments of the pixel's distance to the
    segment (projection clamped to the segment's ends). Pixel-centre x and y are kept as a row and
    a column that broadcast, which does the per-pixel arithmetic on (N, size, size) arrays without
    materialising a coordinate grid per image.
    """
    centres = np.arange(size, dtype=np.float32) + 0.5
    gx, gy = centres[None, None, :], centres[None, :, None]
    nearest = np.full((points.shape[0], size, size), np.inf, np.float32)
    for v in range(points.shape[1] - 1):
        ax, ay = points[:, v, 0, None, None], points[:, v, 1, None, None]
        abx = points[:, v + 1, 0, None, None] - ax
        aby = points[:, v + 1, 1, None, None] - ay
        dx, dy = gx - ax, gy - ay  # (N, 1, size) and (N, size, 1)
        t = np.clip((dx * abx + dy * aby) / np.maximum(abx * abx + aby * aby, 1e-6), 0, 1)
        ox, oy = dx - t * abx, dy - t * aby
        np.minimum(nearest, ox * ox + oy * oy, out=nearest)
    return np.clip(half_width[:, None, None] + 0.5 - np.sqrt(nearest), 0, 1)


def make_glyphs(
    n_classes: int,
    per_class: int,
    size: int,
    seed: int,
    *,
    point_jitter: float = 0.11,
    rotation: float = 0.45,
    scale: float = 0.13,
    shift: float = 0.08,
    noise: float = 0.18,
    clutter: float = 1.2,
    variant_share: float = 0.45,
) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` instances of each of `n_classes` glyph classes: images uint8 (N, 1, size, size), labels int64 (N,).

    Instances are ordered class by class (labels 0, 0, ..., 1, 1, ...). The same arguments give the
    same arrays on every machine (one `numpy.random.Generator` seeded with `seed`, drawn in a fixed
    order). Keyword arguments set the difficulty: `point_jitter` (sd of each control point, in units
    of half the image), `rotation` (max radians), `scale` (sd of log-zoom and of shear), `shift`
    (sd, half-image units), `noise` (sd of Gaussian pixel noise on a 0-1 scale), `clutter` (mean
    number of faint foreign strokes per image) and `variant_share` (share of classes that copy an
    earlier class with one stroke replaced).
    """
    rng = np.random.default_rng(seed)
    proto_points, proto_widths, proto_used = _class_prototypes(rng, n_classes, variant_share)
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)
    n = labels.size

    # Each instance: its class's strokes, control points jittered, then one affine for the whole glyph.
    points = proto_points[labels] + rng.normal(0, point_jitter, (n, MAX_STROKES, 3, 2))
    matrix, offset = _random_affine(rng, n, rotation, scale, shift)
    points = np.einsum("nij,nsvj->nsvi", matrix, points) + offset[:, None, None, :]
    widths = proto_widths[labels] * rng.uniform(0.8, 1.25, (n, 1))
    intensity = rng.uniform(0.55, 1.0, (n, MAX_STROKES)) * proto_used[labels]

    # Clutter: up to two short, faint strokes per image that belong to no class.
    n_clutter = np.minimum(rng.poisson(clutter, n), 2)
    clutter_points, clutter_widths = _random_strokes(rng, 2 * n)
    clutter_points = clutter_points.reshape(n, 2, 3, 2)
    clutter_points = clutter_points[:, :, :1] + 0.4 * (clutter_points - clutter_points[:, :, :1])
    clutter_intensity = rng.uniform(0.2, 0.5, (n, 2)) * (np.arange(2)[None, :] < n_clutter[:, None])

    all_points = np.concatenate([points, clutter_points], 1)
    all_widths = np.concatenate([widths, clutter_widths.reshape(n, 2) * 0.8], 1)
    all_intensity = np.concatenate([intensity, clutter_intensity], 1)

    # Control points in pixel units, so half-widths and anti-aliasing are in pixels. Instances are
    # drawn in chunks small enough for the per-segment arrays to stay in cache.
    polylines = ((_polyline(all_points) + 1) * (size / 2)).astype(np.float32)
    all_widths, all_intensity = all_widths.astype(np.float32), all_intensity.astype(np.float32)
    image = np.zeros((n, size, size), np.float32)
    chunk = max(1, RENDER_CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        for s in range(all_points.shape[1]):
            coverage = _coverage(polylines[rows, s], size, all_widths[rows, s])
            np.maximum(image[rows], coverage * all_intensity[rows, s, None, None], out=image[rows])

    background = rng.uniform(0.0, 0.2, (n, 1, 1))
    image = background + (1 - background) * image + rng.normal(0, noise, image.shape)
    image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image.reshape(n, 1, size, size), labels
