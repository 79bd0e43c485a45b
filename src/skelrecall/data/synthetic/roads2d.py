"""Synthetic stand-in for Massachusetts Roads: ``synthetic_roads`` (``Dataset911_SyntheticRoads``).

An irregular, rotated street grid (straight roads 3-7 px wide meeting at junctions and closing
loops, plus an occasional curved highway) on an aerial-like RGB land-cover texture with buildings
and their shadows. Tree canopies cover short stretches of road (the label keeps the road), and some
images have a pure-white (255, 255, 255) no-data region cut off at one border whose label is the
ignore label 2. Images are RGB uint8 PNG, labels uint8 PNG; every case is deterministic in
``(seed, split, index)`` (:mod:`skelrecall.data.synthetic.writer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from skelrecall.data.synthetic.draw2d import RGB, blobs, coarse_smooth_field, curve, paint, segment, to_uint8
from skelrecall.data.synthetic.writer import make_style, write_synthetic

IGNORE = 2  # label of the no-data region


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


def render(
    rng: np.random.Generator, style: RoadStyle = RoadStyle()
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
        pts = segment(p, q)
        pts_uv.append(pts)
        pts_w.append(np.full(len(pts), w))
    centre = S / 2
    pts_yx = [uv @ to_yx.T + centre for uv in pts_uv]
    if rng.random() < style.p_highway:  # a long curved road from one border to the opposite one
        t = rng.uniform(0, 2 * math.pi)
        d = np.array([math.sin(t), math.cos(t)]) * 0.8 * S
        off = rng.uniform(-0.25 * S, 0.25 * S, 2)
        hw = curve(rng, centre + off - d, centre + off + d, 0.08)
        pts_yx.append(hw)
        pts_w.append(np.full(len(hw), int(rng.integers(6, 7, endpoint=True))))
    width_map = paint(shape, np.concatenate(pts_yx), np.concatenate(pts_w))
    road = width_map > 0

    # land cover: argmax of smooth random fields, each class with its own texture
    yy, xx = np.mgrid[0:S, 0:S].astype(float)
    bias = rng.normal(0, 0.6, len(_LAND))
    cover = np.argmax(np.stack([coarse_smooth_field(rng, shape, 14) + b for b in bias]), axis=0)
    image = _LAND[cover] * (1 + rng.normal(0, 0.02, 3))[None, None]
    image = ndimage.gaussian_filter(image, (1.2, 1.2, 0))
    fine = coarse_smooth_field(rng, shape, 1.0)
    image *= (1 + np.where(cover == 0, 0.25, 0.08) * fine)[..., None]
    image *= (1 + 0.06 * coarse_smooth_field(rng, shape, 6))[..., None]

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
    asphalt = rng.uniform(0.42, 0.68) * (1 + 0.12 * coarse_smooth_field(rng, shape, 20))
    asphalt_rgb = asphalt[..., None] * (1 + rng.normal(0, 0.03, 3))[None, None] * (1 + 0.04 * fine[..., None])
    alpha = ndimage.gaussian_filter(road.astype(float), 0.6)
    alpha = np.clip(alpha / max(alpha.max(), 1e-9) * 1.15, 0, 1)[..., None]
    image = (1 - alpha) * image + alpha * asphalt_rgb

    # tree canopies over roads (occluders: the label keeps the road)
    on_road = np.argwhere(road)
    if len(on_road):
        n_trees = int(rng.integers(*style.trees, endpoint=True))
        canopy = blobs(rng, shape, on_road[rng.integers(len(on_road), size=n_trees)], style.tree_radius, (1, 3))
        crown = _LAND[0] * (1 + 0.3 * coarse_smooth_field(rng, shape, 1.0))[..., None]
        image = np.where(canopy[..., None], crown, image)

    image = ndimage.gaussian_filter(image, (0.5, 0.5, 0)) + rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    image = to_uint8(image, high=250)  # pure white is reserved for no-data
    label = road.astype(np.uint8)

    if rng.random() < style.p_nodata:  # white region cut off at one border by a slanted line
        angle = int(rng.integers(4)) * math.pi / 2 + rng.uniform(-0.3, 0.3)
        proj = (yy - centre) * math.sin(angle) + (xx - centre) * math.cos(angle)
        nodata = proj > S / 2 - rng.uniform(*style.nodata_depth) * S
        image[nodata] = 255
        label[nodata] = IGNORE
    return image, label, {}


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 200,
    num_test: int = 50,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: Any,
) -> Path:
    """Write ``Dataset911_SyntheticRoads`` (labels: 0 background, 1 road, 2 ignore = no-data);
    ``style`` overrides :class:`RoadStyle` fields."""
    st = make_style(RoadStyle, style)
    # "standins2d.roads" names this generator in dataset.json (kept: existing datasets compare it)
    return write_synthetic(
        out_dir,
        channel_names=RGB,
        folder="Dataset911_SyntheticRoads",
        generator="standins2d.roads",
        render=lambda rng: render(rng, st),
        style=st,
        labels={"background": 0, "road": 1, "ignore": IGNORE},
        case_prefix="roads",
        description="synthetic stand-in for Massachusetts Roads (skelrecall); 2 = no-data (ignore)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
    )
