"""Drawing helpers shared by the 2D synthetic generators: smooth random fields, curves and
segments, structures painted with exact pixel widths, blobs, and conversion to uint8.

Structures are painted by dilating centre-line pixels with a digital disk of the local width
(:func:`disk`, :func:`paint`), so widths are exact in pixels. Every function that draws random
numbers takes the generator ``rng`` first; the order of draws is part of each dataset's definition
(changing it changes the data).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy import ndimage

RGB = {0: "R", 1: "G", 2: "B"}  # channel names of an RGB PNG (one file, three channels)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def coarse_smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Like :func:`smooth_field` (zero mean, unit std, correlation length ``sigma``), but for
    ``sigma >= 4`` drawn on a grid ``k = sigma // 2`` times coarser and linearly upsampled."""
    k = int(sigma // 2)
    if k < 2:
        return smooth_field(rng, shape, sigma)
    small = smooth_field(rng, (shape[0] // k + 2, shape[1] // k + 2), sigma / k)
    field = ndimage.zoom(small, k, order=1)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-12)


def curve(rng: np.random.Generator, p: np.ndarray, q: np.ndarray, wiggle: float) -> np.ndarray:
    """Points every half pixel along a smooth random curve from ``p`` to ``q``."""
    d = q - p
    length = float(np.linalg.norm(d)) + 1e-9
    normal = np.array([-d[1], d[0]]) / length
    t = np.linspace(0.0, 1.0, max(2, int(2 * length * (1 + 2 * wiggle))))
    a1, a2 = rng.normal(0, wiggle * length, 2)
    phase = rng.uniform(0, 2 * np.pi)
    offset = a1 * np.sin(np.pi * t) + 0.5 * a2 * np.sin(2 * np.pi * t + phase) * np.sin(np.pi * t)
    return p[None] + t[:, None] * d[None] + offset[:, None] * normal[None]


def segment(p: np.ndarray, q: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Points every ``step`` px on the straight segment from ``p`` to ``q`` (both included)."""
    n = max(2, int(math.ceil(np.linalg.norm(q - p) / step)) + 1)
    return p[None] + np.linspace(0.0, 1.0, n)[:, None] * (q - p)[None]


@cache
def disk(width: int) -> np.ndarray:
    """Footprint of a digital disk ``width`` px across: offsets ``d`` from the footprint's centre
    (a pixel for odd, a pixel corner for even widths) with ``|d| <= width / 2 - 1/4``; width 1 is
    one pixel, 2 a 2x2 square, 3 a plus sign, 5 and 7 rounded squares."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    d = np.arange(width) - (width - 1) / 2
    return (d[:, None] ** 2 + d[None, :] ** 2) <= (width / 2 - 0.25) ** 2 + 1e-9


def paint(shape: tuple[int, int], points: np.ndarray, widths: np.ndarray, pinhole: int = 4) -> np.ndarray:
    """Width map: each pixel holds the largest width ``w`` of a centre point ``points[k]`` (row,
    col; rounded) whose disk ``disk(w)`` covers it, 0 elsewhere. Points outside are dropped.

    Enclosed background pockets of at most ``pinhole`` pixels (4-connected; rounding artefacts
    where two centre lines part at a small angle) are filled with the largest neighbouring width,
    so they do not count as loops."""
    out = np.zeros(shape, np.uint8)
    if len(points) == 0:
        return out
    idx = np.rint(points).astype(int)
    inside = (idx[:, 0] >= 0) & (idx[:, 0] < shape[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < shape[1])
    idx, widths = idx[inside], np.asarray(widths, int)[inside]
    for w in np.unique(widths):
        centre = np.zeros(shape, bool)
        sel = idx[widths == w]
        centre[sel[:, 0], sel[:, 1]] = True
        mask = ndimage.binary_dilation(centre, disk(int(w))) if w > 1 else centre
        out[mask] = np.maximum(out[mask], w)
    if pinhole > 0:
        lab, n = ndimage.label(out == 0)
        small = np.bincount(lab.ravel(), minlength=n + 1) <= pinhole
        small[0] = False
        small[np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))] = False
        holes = small[lab]
        if holes.any():
            out[holes] = ndimage.maximum_filter(out, 3)[holes]
    return out


def to_uint8(image: np.ndarray, high: int = 255) -> np.ndarray:
    """``image`` in [0, 1] (clipped) as uint8 0-255, capped at ``high``."""
    return (np.clip(image, 0.0, 1.0) * 255).round().clip(0, high).astype(np.uint8)


def blobs(
    rng: np.random.Generator,
    shape: tuple[int, int],
    centres: np.ndarray,
    radius: tuple[float, float],
    lobes: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Union of irregular blobs: around each centre, ``lobes`` disks of radius in ``radius``
    scattered up to one radius from it."""
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros(shape, bool)
    for cy, cx in centres:
        for _ in range(int(rng.integers(lobes[0], lobes[1], endpoint=True))):
            r = rng.uniform(*radius)
            oy, ox = rng.normal(0.0, 0.5 * r, 2) if lobes[1] > 1 else (0.0, 0.0)
            y0, y1 = max(0, int(cy + oy - r - 1)), min(shape[0], int(cy + oy + r + 2))
            x0, x1 = max(0, int(cx + ox - r - 1)), min(shape[1], int(cx + ox + r + 2))
            if y0 < y1 and x0 < x1:
                out[y0:y1, x0:x1] |= (yy[y0:y1] - cy - oy) ** 2 + (xx[:, x0:x1] - cx - ox) ** 2 <= r * r
    return out
