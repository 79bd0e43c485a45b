"""Synthetic 2D stand-ins for the paper's three 2D datasets (no download needed).

* ``synthetic_roads`` (for Massachusetts Roads): an irregular, rotated street grid (straight
  roads 3-7 px wide meeting at junctions and closing loops, plus an occasional curved highway)
  on an aerial-like RGB land-cover texture with buildings and their shadows. Tree canopies cover
  short stretches of road (the label keeps the road), and some images have a pure-white
  (255, 255, 255) no-data region cut off at one border whose label is the ignore label 2.
* ``synthetic_drive`` (for DRIVE): a reddish fundus on a circular field of view (black outside)
  with an optic disc and a darker fovea. Vessel *trees* grow from the disc: each branch is a
  persistent random walk whose width tapers from about 6 px at the root to 1 px at the tips,
  with Murray's-law bifurcations (``w**3 = w1**3 + w2**3``); a branch stops when it would run
  into another branch, so the vessel mask has (almost) no loops. Vessels are darker than the
  background, mostly in the green channel, and thin vessels have low contrast. The FOV mask is
  written to ``masksTr``/``masksTs`` like the DRIVE converter does.
* ``synthetic_cracks`` (for the concrete-crack dataset): grey, granular concrete texture with
  stains and dark pores, and 1-3 thin (1-3 px) jagged cracks (a random walk around a slowly
  drifting direction) that branch occasionally, darkened by a low, spatially varying contrast.

Structures are painted by dilating centre-line pixels with a digital disk of the local width
(:func:`_disk`), so widths are exact in pixels. All images are RGB uint8 PNG (one file with three
channels, nnU-Net's natural-image convention), labels uint8 PNG; every case is deterministic in
``(seed, split, index)``. The datasets are written in the nnU-Net v2 raw layout, staged and
verified by :mod:`skelrecall.data.converters.common`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from skelrecall.data.synthetic.tubes2d import _curve, _smooth_field
from skelrecall.data.synthetic.writer import make_style, write_synthetic

RGB = {0: "R", 1: "G", 2: "B"}
ROADS_IGNORE = 2

# one render call: rng -> (image (H, W, 3) uint8, label (H, W) uint8, {folder prefix: extra uint8 map})


# ----------------------------------------------------------------------------------------------
# painting helpers


@lru_cache(maxsize=None)
def _disk(width: int) -> np.ndarray:
    """Footprint of a digital disk ``width`` px across: offsets ``d`` from the footprint's centre
    (a pixel for odd, a pixel corner for even widths) with ``|d| <= width / 2 - 1/4``; width 1 is
    one pixel, 2 a 2x2 square, 3 a plus sign, 5 and 7 rounded squares."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    d = np.arange(width) - (width - 1) / 2
    return (d[:, None] ** 2 + d[None, :] ** 2) <= (width / 2 - 0.25) ** 2 + 1e-9


def _paint(shape: tuple[int, int], points: np.ndarray, widths: np.ndarray, pinhole: int = 4) -> np.ndarray:
    """Width map: each pixel holds the largest width ``w`` of a centre point ``points[k]`` (row,
    col; rounded) whose disk ``_disk(w)`` covers it, 0 elsewhere. Points outside are dropped.

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
        mask = ndimage.binary_dilation(centre, _disk(int(w))) if w > 1 else centre
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


def _segment(p: np.ndarray, q: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Points every ``step`` px on the straight segment from ``p`` to ``q`` (both included)."""
    n = max(2, int(math.ceil(np.linalg.norm(q - p) / step)) + 1)
    return p[None] + np.linspace(0.0, 1.0, n)[:, None] * (q - p)[None]


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Like :func:`tubes2d._smooth_field` (zero mean, unit std, correlation length ``sigma``), but
    for ``sigma >= 4`` drawn on a grid ``k = sigma // 2`` times coarser and linearly upsampled."""
    k = int(sigma // 2)
    if k < 2:
        return _smooth_field(rng, shape, sigma)
    small = _smooth_field(rng, (shape[0] // k + 2, shape[1] // k + 2), sigma / k)
    field = ndimage.zoom(small, k, order=1)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-12)


def _to_uint8(image: np.ndarray, high: int = 255) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().clip(0, high).astype(np.uint8)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], centres: np.ndarray, radius: tuple[float, float],
           lobes: tuple[int, int] = (1, 1)) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------
# roads


@dataclass(frozen=True)
class RoadStyle:
    """Parameters of synthetic_roads (ranges are drawn per image)."""

    size: int = 256
    spacing: tuple[float, float] = (35.0, 85.0)  # mean distance between parallel roads (px)
    keep: tuple[float, float] = (0.7, 0.92)  # fraction of grid segments that are roads
    jitter: tuple[float, float] = (0.0, 5.0)  # standard deviation of junction displacement (px)
    widths: tuple[int, ...] = (3, 4, 5, 6, 7)  # road widths (px), one per street
    width_weights: tuple[float, ...] = (0.3, 0.25, 0.2, 0.15, 0.1)
    p_highway: float = 0.35  # probability of a curved highway (width 6-7) across the image
    buildings: tuple[int, int] = (0, 90)
    trees: tuple[int, int] = (5, 16)  # tree canopies placed on roads (occluders)
    tree_radius: tuple[float, float] = (3.5, 7.5)
    p_nodata: float = 0.3  # probability of a white no-data region (label = ignore)
    nodata_depth: tuple[float, float] = (0.1, 0.45)  # its depth from the border (fraction of size)
    noise: tuple[float, float] = (0.012, 0.03)


# land cover classes: forest, grass, field / bare soil, urban ground
_LAND = np.array([[0.17, 0.24, 0.14], [0.33, 0.40, 0.25], [0.52, 0.48, 0.37], [0.46, 0.45, 0.43]])
_ROOFS = np.array([[0.72, 0.72, 0.70], [0.50, 0.36, 0.30], [0.33, 0.33, 0.35], [0.60, 0.55, 0.48]])


def render_roads(rng: np.random.Generator, style: RoadStyle = RoadStyle()
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One aerial-like ``(image (S, S, 3) uint8, label (S, S) uint8 in {0, 1, 2}, {})``.

    The grid lives in coordinates ``(u, v)`` rotated by a random angle about the image centre:
    ``x - S/2 = cos(a) u - sin(a) v``, ``y - S/2 = sin(a) u + cos(a) v``.
    """
    S = style.size
    shape = (S, S)
    a = rng.uniform(0.0, math.pi / 2)
    ca, sa = math.cos(a), math.sin(a)
    to_yx = np.array([[sa, ca], [ca, -sa]])  # (u, v) -> (y, x) - S/2

    # irregular grid: junctions at jittered crossings, each grid segment kept with prob. `keep`
    half = 0.75 * S
    spacing = rng.uniform(*style.spacing)

    def lines() -> np.ndarray:
        pos = [-half + rng.uniform(0.0, spacing)]
        while pos[-1] < half:
            pos.append(pos[-1] + spacing * rng.uniform(0.6, 1.4))
        return np.array(pos)

    us, vs = lines(), lines()
    nodes = np.stack(np.meshgrid(us, vs, indexing="ij"), -1)
    nodes += rng.normal(0, rng.uniform(*style.jitter), nodes.shape)
    p_w = np.array(style.width_weights) / np.sum(style.width_weights)
    col_w = rng.choice(style.widths, size=len(us), p=p_w)
    row_w = rng.choice(style.widths, size=len(vs), p=p_w)
    keep = rng.uniform(*style.keep)
    keep_col = rng.random((len(us), len(vs) - 1)) < keep
    keep_row = rng.random((len(us) - 1, len(vs))) < keep
    segs: list[tuple[np.ndarray, np.ndarray, int, int]] = []  # (p, q, width, axis of the road: 1 = along v)
    for i, j in zip(*np.nonzero(keep_col)):
        segs.append((nodes[i, j], nodes[i, j + 1], int(col_w[i]), 1))
    for i, j in zip(*np.nonzero(keep_row)):
        segs.append((nodes[i, j], nodes[i + 1, j], int(row_w[j]), 0))
    pts_uv, pts_w = [], []
    for p, q, w, _ in segs:
        pts = _segment(p, q)
        pts_uv.append(pts)
        pts_w.append(np.full(len(pts), w))
    centre = S / 2
    pts_yx = [uv @ to_yx.T + centre for uv in pts_uv]
    if rng.random() < style.p_highway:  # a long curved road from one border to the opposite one
        t = rng.uniform(0, 2 * math.pi)
        d = np.array([math.sin(t), math.cos(t)]) * 0.8 * S
        off = rng.uniform(-0.25 * S, 0.25 * S, 2)
        hw = _curve(rng, centre + off - d, centre + off + d, 0.08)
        pts_yx.append(hw)
        pts_w.append(np.full(len(hw), int(rng.integers(6, 7, endpoint=True))))
    width_map = _paint(shape, np.concatenate(pts_yx), np.concatenate(pts_w))
    road = width_map > 0

    # land cover: argmax of smooth random fields, each class with its own texture
    yy, xx = np.mgrid[0:S, 0:S].astype(float)
    bias = rng.normal(0, 0.6, len(_LAND))
    cover = np.argmax(np.stack([_field(rng, shape, 14) + b for b in bias]), axis=0)
    image = _LAND[cover] * (1 + rng.normal(0, 0.02, 3))[None, None]
    image = ndimage.gaussian_filter(image, (1.2, 1.2, 0))
    fine = _field(rng, shape, 1.0)
    image *= (1 + np.where(cover == 0, 0.25, 0.08) * fine)[..., None]
    image *= (1 + 0.06 * _field(rng, shape, 6))[..., None]

    # buildings beside roads, aligned with the grid, with shadows away from the sun
    U = ca * (xx - centre) + sa * (yy - centre)
    V = -sa * (xx - centre) + ca * (yy - centre)
    near_road = ndimage.binary_dilation(road, iterations=2)
    buildings = np.zeros(shape, bool)
    roof = np.zeros(shape + (3,))
    n_build = int(rng.integers(*style.buildings, endpoint=True)) if segs else 0
    for _ in range(n_build):
        p, q, w, axis = segs[int(rng.integers(len(segs)))]
        bu, bv = rng.uniform(3, 7, 2)  # half sizes along u and v
        c_uv = p + rng.uniform(0.1, 0.9) * (q - p)
        across = 1 - axis  # offset perpendicular to the road
        c_uv[across] += rng.choice([-1, 1]) * (w / 2 + rng.uniform(2, 6) + (bu, bv)[across])
        cy, cx = to_yx @ c_uv + centre
        r = int(math.hypot(bu, bv)) + 2
        y0, y1, x0, x1 = max(0, int(cy) - r), min(S, int(cy) + r + 1), max(0, int(cx) - r), min(S, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        m = (np.abs(U[box] - c_uv[0]) <= bu) & (np.abs(V[box] - c_uv[1]) <= bv)
        if (m & near_road[box]).any():
            continue
        buildings[box] |= m
        roof[box][m] = _ROOFS[int(rng.integers(len(_ROOFS)))] * rng.uniform(0.85, 1.15)
    if buildings.any():
        sun = rng.uniform(0, 2 * math.pi)
        shadow = ndimage.shift(buildings.astype(float), (2.5 * math.sin(sun), 2.5 * math.cos(sun)), order=0) > 0.5
        image[shadow & ~buildings] *= 0.55
        image = np.where(buildings[..., None], roof * (1 + 0.04 * fine[..., None]), image)

    # roads: asphalt (grey, brightness varying smoothly) blended in with soft edges
    asphalt = rng.uniform(0.42, 0.68) * (1 + 0.12 * _field(rng, shape, 20))
    asphalt_rgb = asphalt[..., None] * (1 + rng.normal(0, 0.03, 3))[None, None] * (1 + 0.04 * fine[..., None])
    alpha = ndimage.gaussian_filter(road.astype(float), 0.6)
    alpha = np.clip(alpha / max(alpha.max(), 1e-9) * 1.15, 0, 1)[..., None]
    image = (1 - alpha) * image + alpha * asphalt_rgb

    # tree canopies over roads (occluders: the label keeps the road)
    on_road = np.argwhere(road)
    if len(on_road):
        n_trees = int(rng.integers(*style.trees, endpoint=True))
        canopy = _blobs(rng, shape, on_road[rng.integers(len(on_road), size=n_trees)], style.tree_radius, (1, 3))
        crown = _LAND[0] * (1 + 0.3 * _field(rng, shape, 1.0))[..., None]
        image = np.where(canopy[..., None], crown, image)

    image = ndimage.gaussian_filter(image, (0.5, 0.5, 0)) + rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    image = _to_uint8(image, high=250)  # pure white is reserved for no-data
    label = road.astype(np.uint8)

    if rng.random() < style.p_nodata:  # white region cut off at one border by a slanted line
        angle = int(rng.integers(4)) * math.pi / 2 + rng.uniform(-0.3, 0.3)
        proj = (yy - centre) * math.sin(angle) + (xx - centre) * math.cos(angle)
        nodata = proj > S / 2 - rng.uniform(*style.nodata_depth) * S
        image[nodata] = 255
        label[nodata] = ROADS_IGNORE
    return image, label, {}


# ----------------------------------------------------------------------------------------------
# DRIVE-like fundus images


@dataclass(frozen=True)
class DriveStyle:
    """Parameters of synthetic_drive (ranges are drawn per image or per vessel)."""

    size: int = 256
    fov_radius: float = 0.46  # field of view radius (fraction of size)
    root_width: tuple[float, float] = (4.5, 6.4)  # main vessel width at the disc (px)
    extra_roots: tuple[int, int] = (3, 5)  # smaller vessels leaving the disc besides the 4 arcades
    branch_rate: tuple[float, float] = (0.04, 0.07)  # bifurcations per px of vessel
    taper: tuple[float, float] = (0.0015, 0.0035)  # relative width loss per px
    min_width: float = 0.8  # a branch ends when thinner than this
    contrast: tuple[float, float] = (0.35, 0.5)  # green-channel darkening of a wide vessel
    noise: tuple[float, float] = (0.008, 0.02)


def _grow_vessels(rng: np.random.Generator, style: DriveStyle, fov_c: np.ndarray, fov_r: float, disc: np.ndarray,
                  disc_r: float, fovea: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre points (N, 2) and widths (N,) of vessel trees grown from the optic disc.

    Headings ``h`` are angles in the (row, col) plane, a step being ``(sin h, cos h)``. A branch
    walks 1 px per step; its heading changes by a curvature ``k0 * exp(-s / L)`` (``s`` the
    length walked; the four arcades bend round the fovea, the others barely) plus a smoothed
    random turn rate; its width shrinks by ``taper`` per px. Bifurcations happen at rate
    ``branch_rate``: the side branch gets width ``w2 = w * U(0.45, 0.8)`` and the main branch
    ``w1 = (w**3 - w2**3)**(1/3)`` (Murray's law). A branch ends below ``min_width``, at the FOV
    border, in the fovea, or where an earlier centre line lies within ``ceil(w / 2) + 4`` px
    (its parent's only after ``2 r + 2`` steps, its own only ``2 r + 8`` steps back), which keeps
    the trees free of loops. Branches grow breadth-first, so thick vessels claim space first.
    """
    S = style.size
    owner = np.zeros((S, S), np.int32)  # branch id of the centre line through each pixel
    age = np.zeros((S, S), np.int32)  # step index at which that branch passed
    pts: list[tuple[float, float]] = []
    wid: list[float] = []
    temporal = 0.0 if side < 0 else math.pi  # heading from the disc towards the fovea
    arc_k = 1.0 / (0.27 * S)
    w_main = rng.uniform(*style.root_width)
    # (start, heading, width, initial curvature, curvature decay length, parent id)
    queue: list[tuple[np.ndarray, float, float, float, float, int]] = []
    for up in (-1, 1):  # up = -1: superior, +1: inferior; `turn` maps "towards temporal" to a heading sign
        tilt = up if side < 0 else -up
        queue.append((disc.copy(), temporal + tilt * rng.uniform(1.05, 1.35), w_main * rng.uniform(0.85, 1.0),
                      -tilt * arc_k * rng.uniform(0.9, 1.2), 0.4 * S, 0))
        queue.append((disc.copy(), temporal + math.pi - tilt * rng.uniform(0.5, 1.0), w_main * rng.uniform(0.6, 0.8),
                      tilt * arc_k * rng.uniform(0, 0.5), 0.3 * S, 0))
    for _ in range(int(rng.integers(*style.extra_roots, endpoint=True))):
        queue.append((disc.copy(), rng.uniform(0, 2 * math.pi), w_main * rng.uniform(0.3, 0.55),
                      rng.normal(0, 0.3 * arc_k), 0.3 * S, 0))
    rate, taper = rng.uniform(*style.branch_rate), rng.uniform(*style.taper)
    next_id, head = 1, 0
    while head < len(queue):
        p, heading, w, k0, k_len, parent = queue[head]
        head += 1
        me, next_id = next_id, next_id + 1
        turn = 0.0
        for step in range(1, 4 * S):
            turn = 0.85 * turn + rng.normal(0.0, 0.012)
            heading += k0 * math.exp(-step / k_len) + turn
            p = p + (math.sin(heading), math.cos(heading))
            w *= 1.0 - taper
            iy, ix = int(round(p[0])), int(round(p[1]))
            if (w < style.min_width or math.hypot(p[0] - fov_c[0], p[1] - fov_c[1]) > fov_r - 3
                    or math.hypot(p[0] - fovea[0], p[1] - fovea[1]) < 0.045 * S):
                break
            in_disc = math.hypot(p[0] - disc[0], p[1] - disc[1]) < disc_r
            r = int(math.ceil(w / 2)) + 4
            box = (slice(max(0, iy - r), iy + r + 1), slice(max(0, ix - r), ix + r + 1))
            ids, ages = owner[box], age[box]
            hit = (ids != 0) & (ids != me) & ((ids != parent) | (step > 2 * r + 2))
            hit |= (ids == me) & (ages < step - (2 * r + 8))
            if not in_disc and hit.any():
                break
            owner[iy, ix], age[iy, ix] = me, step
            pts.append((p[0], p[1]))
            wid.append(w)
            if w > 1.4 and step > 6 and not in_disc and rng.random() < rate:
                w2 = w * rng.uniform(0.45, 0.8)
                w1 = (w**3 - w2**3) ** (1 / 3)
                side_sign = rng.choice([-1, 1])
                queue.append((p.copy(), heading + side_sign * rng.uniform(0.5, 1.2), w2,
                              rng.normal(0, 0.5 * arc_k), 0.3 * S, me))
                heading -= side_sign * rng.uniform(0.05, 0.25)
                w = w1
    return np.array(pts).reshape(-1, 2), np.array(wid)


def render_drive(rng: np.random.Generator, style: DriveStyle = DriveStyle()
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One fundus-like ``(image (S, S, 3) uint8, label (S, S) uint8 in {0, 1}, {"masks": FOV 0/1})``."""
    S = style.size
    shape = (S, S)
    yy, xx = np.mgrid[0:S, 0:S].astype(float)
    fov_c = S / 2 + rng.normal(0, 0.01 * S, 2)
    fov_r = style.fov_radius * S
    rad = np.hypot(yy - fov_c[0], xx - fov_c[1])
    fov = rad <= fov_r
    side = int(rng.choice([-1, 1]))  # optic disc left (-1) or right (+1) of the centre
    disc = fov_c + np.array([rng.normal(0, 0.03 * S), side * rng.uniform(0.27, 0.31) * S])
    disc_r = rng.uniform(0.055, 0.07) * S
    fovea = fov_c + np.array([rng.normal(0, 0.03 * S), -side * rng.uniform(0.02, 0.06) * S])

    pts, wid = _grow_vessels(rng, style, fov_c, fov_r, disc, disc_r, fovea, side)
    width_map = _paint(shape, pts, np.clip(np.rint(wid), 1, 6).astype(int))
    vessel = (width_map > 0) & fov

    # background: orange-red fundus, vignetting, choroidal texture, dark fovea, bright disc
    base = np.array([rng.uniform(0.72, 0.9), rng.uniform(0.3, 0.42), rng.uniform(0.1, 0.18)])
    light = 1.0 - 0.35 * (rad / fov_r) ** 2 + 0.05 * _field(rng, shape, 25)
    light *= 1 + 0.025 * _field(rng, shape, 3)
    d_fovea = np.hypot(yy - fovea[0], xx - fovea[1])
    light *= 1 - rng.uniform(0.15, 0.3) * np.exp(-0.5 * (d_fovea / (0.07 * S)) ** 2)
    image = base[None, None] * light[..., None]
    d_disc = np.hypot(yy - disc[0], xx - disc[1])
    disc_w = 1.0 / (1.0 + np.exp((d_disc - disc_r) / 1.5))
    image += disc_w[..., None] * np.array([0.12, 0.3, 0.22]) * rng.uniform(0.8, 1.2)

    # vessels: darker, most of all in green; contrast grows with width (thin ones are faint)
    strength = rng.uniform(*style.contrast) * np.clip(0.3 + 0.7 * (width_map - 1) / 4.0, 0.3, 1.0) * (width_map > 0)
    strength *= 0.75 + 0.25 * (1 + _field(rng, shape, 12)).clip(0, 2) / 2
    strength = ndimage.gaussian_filter(strength, 0.7)
    image *= 1 - strength[..., None] * np.array([0.35, 1.0, 0.7])[None, None]

    image += rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    image = np.where(fov[..., None], image, rng.uniform(0, 0.012, shape + (3,)))
    return _to_uint8(image), vessel.astype(np.uint8), {"masks": fov.astype(np.uint8)}


# ----------------------------------------------------------------------------------------------
# concrete cracks


@dataclass(frozen=True)
class CrackStyle:
    """Parameters of synthetic_cracks (ranges are drawn per image or per crack)."""

    size: int = 256
    cracks: tuple[int, int] = (1, 3)
    width: tuple[float, float] = (1.0, 3.49)  # crack width range (px), rounded when painted
    jag: tuple[float, float] = (0.35, 0.7)  # std of the per-step heading deviation (rad)
    branch_rate: float = 0.006  # side cracks per px of main crack
    depth: tuple[float, float] = (0.15, 0.35)  # relative darkening of a crack (low contrast)
    pores: tuple[int, int] = (15, 70)
    noise: tuple[float, float] = (0.02, 0.04)


def _crack_walk(rng: np.random.Generator, start: np.ndarray, heading: float, length: int, width: tuple[float, float],
                jag: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre points and widths of one jagged crack: each 1-px step deviates ``N(0, jag)`` from a
    mean heading that itself drifts slowly; the width follows a smooth random profile in
    ``width``, thinning to 1 px over the last 15 % of the length."""
    n = int(length)
    drift = np.cumsum(rng.normal(0, 0.05, n)) + heading
    steps = drift + rng.normal(0, jag, n)
    path = start[None] + np.cumsum(np.stack([np.sin(steps), np.cos(steps)], 1), axis=0)
    profile = ndimage.gaussian_filter1d(rng.standard_normal(n + 40), 15)[20:-20]
    profile = (profile - profile.min()) / (np.ptp(profile) + 1e-9)
    w = width[0] + (width[1] - width[0]) * profile
    t = np.arange(n) / max(n - 1, 1)
    w = np.minimum(w, 1 + (w - 1) * np.clip((1 - t) / 0.15, 0, 1))
    inside = ((path >= -2) & (path < size + 2)).all(axis=1)
    stop = n if inside.all() else int(np.argmin(inside))
    return path[:stop], w[:stop]


def render_cracks(rng: np.random.Generator, style: CrackStyle = CrackStyle()
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One concrete-like ``(image (S, S, 3) uint8, label (S, S) uint8 in {0, 1}, {})``."""
    S = style.size
    shape = (S, S)
    pts, wid = [], []
    for _ in range(int(rng.integers(*style.cracks, endpoint=True))):
        if rng.random() < 0.7:  # from a border point, heading inwards
            side = int(rng.integers(4))
            along = rng.uniform(0.1, 0.9) * S
            start = np.array([[0.0, along], [S - 1.0, along], [along, 0.0], [along, S - 1.0]][side])
            heading = [math.pi / 2, -math.pi / 2, 0.0, math.pi][side] + rng.uniform(-0.7, 0.7)
            length = int(rng.uniform(0.8, 1.6) * S)
        else:
            start = rng.uniform(0.2, 0.8, 2) * S
            heading = rng.uniform(0, 2 * math.pi)
            length = int(rng.uniform(0.3, 0.8) * S)
        hi = rng.uniform(max(style.width[0], 1.8), style.width[1])
        jag = rng.uniform(*style.jag)
        path, w = _crack_walk(rng, start, heading, length, (style.width[0], hi), jag, S)
        pts.append(path)
        wid.append(w)
        n_branch = rng.poisson(style.branch_rate * len(path)) if len(path) > 20 else 0
        for k in rng.integers(10, max(11, len(path) - 10), size=n_branch):
            b_path, b_w = _crack_walk(rng, path[k], heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2),
                                      int(rng.uniform(0.1, 0.35) * S), (style.width[0], min(w[k], 2.49)), jag, S)
            pts.append(b_path)
            wid.append(b_w)
    pts_a = np.concatenate(pts) if pts else np.zeros((0, 2))
    wid_a = np.clip(np.rint(np.concatenate(wid)), 1, 3).astype(int) if wid else np.zeros(0, int)
    width_map = _paint(shape, pts_a, wid_a)
    crack = width_map > 0

    # concrete: grey with a faint tint, granular texture, stains, aggregate, dark pores
    g0 = rng.uniform(0.42, 0.68)
    grey = g0 * (1 + 0.08 * _field(rng, shape, 30) + 0.04 * _field(rng, shape, 6)
                 + 0.05 * _field(rng, shape, 0.8) + 0.03 * _field(rng, shape, 2.5))
    yy, xx = np.mgrid[0:S, 0:S] / S
    grey *= 1 + rng.uniform(-0.12, 0.12) * (yy - 0.5) + rng.uniform(-0.12, 0.12) * (xx - 0.5)
    pores = _blobs(rng, shape, rng.uniform(0, S, (int(rng.integers(*style.pores, endpoint=True)), 2)), (0.6, 2.0))
    grey = np.where(pores, grey * rng.uniform(0.6, 0.85), grey)

    # cracks: multiplicative darkening, varying along the image, slightly blurred
    depth = rng.uniform(*style.depth) * (0.55 + 0.45 / (1 + np.exp(-2 * _field(rng, shape, 20))))
    depth = depth * (0.7 + 0.15 * width_map) * crack
    grey *= 1 - ndimage.gaussian_filter(depth, 0.5)
    tint = 1 + rng.normal(0, 0.025, 3)
    image = grey[..., None] * tint[None, None] + rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    return _to_uint8(image), crack.astype(np.uint8), {}


# ----------------------------------------------------------------------------------------------
# dataset writers


def generate_roads(out_dir: str | Path | None = None, *, seed: int = 0, num_train: int = 200, num_test: int = 50,
                   folds: int = 5, overwrite: bool = False, progress: bool = True, **style: Any) -> Path:
    """Write ``Dataset911_SyntheticRoads`` (labels: 0 background, 1 road, 2 ignore = no-data);
    ``style`` overrides :class:`RoadStyle` fields."""
    st = make_style(RoadStyle, style)
    return write_synthetic(out_dir, channel_names=RGB, folder="Dataset911_SyntheticRoads", generator="standins2d.roads",
                           render=lambda rng: render_roads(rng, st), style=st,
                           labels={"background": 0, "road": 1, "ignore": ROADS_IGNORE}, case_prefix="roads",
                           description="synthetic stand-in for Massachusetts Roads (skelrecall); 2 = no-data (ignore)",
                           seed=seed, num_train=num_train, num_test=num_test, folds=folds, overwrite=overwrite,
                           progress=progress)


def generate_drive(out_dir: str | Path | None = None, *, seed: int = 0, num_train: int = 40, num_test: int = 10,
                   folds: int = 5, overwrite: bool = False, progress: bool = True, **style: Any) -> Path:
    """Write ``Dataset912_SyntheticDRIVE`` (labels: 0 background, 1 vessel; FOV masks in
    ``masksTr``/``masksTs``); ``style`` overrides :class:`DriveStyle` fields."""
    st = make_style(DriveStyle, style)
    return write_synthetic(out_dir, channel_names=RGB, folder="Dataset912_SyntheticDRIVE", generator="standins2d.drive",
                           render=lambda rng: render_drive(rng, st), style=st,
                           labels={"background": 0, "vessel": 1}, case_prefix="drive",
                           description="synthetic stand-in for DRIVE retinal vessels (skelrecall); "
                                       "FOV masks in masksTr/masksTs",
                           seed=seed, num_train=num_train, num_test=num_test, folds=folds, overwrite=overwrite,
                           progress=progress,
                           extra_meta={"fov_masks": {"Tr": "masksTr", "Ts": "masksTs" if num_test else None}})


def generate_cracks(out_dir: str | Path | None = None, *, seed: int = 0, num_train: int = 200, num_test: int = 40,
                    folds: int = 5, overwrite: bool = False, progress: bool = True, **style: Any) -> Path:
    """Write ``Dataset913_SyntheticCracks`` (labels: 0 background, 1 crack); ``style`` overrides
    :class:`CrackStyle` fields."""
    st = make_style(CrackStyle, style)
    return write_synthetic(out_dir, channel_names=RGB, folder="Dataset913_SyntheticCracks", generator="standins2d.cracks",
                           render=lambda rng: render_cracks(rng, st), style=st,
                           labels={"background": 0, "crack": 1}, case_prefix="cracks",
                           description="synthetic stand-in for concrete cracks (skelrecall)",
                           seed=seed, num_train=num_train, num_test=num_test, folds=folds, overwrite=overwrite,
                           progress=progress)
