"""Synthetic stand-in for the concrete-crack dataset: ``synthetic_cracks`` (``Dataset913_SyntheticCracks``).

Grey, granular concrete texture with stains and dark pores, and 1-3 thin (2-4 px, 1 px at the
tips) jagged cracks (a random walk around a slowly drifting direction) that branch occasionally,
darkened by a spatially varying contrast. (With 1-3 px cracks at about half that contrast,
200-step CPU trainings reached a Dice of 0.33 with the U-Net and 0.27 with HRNet, which predicts
at 1/4 resolution.)
Images are RGB uint8 PNG, labels uint8 PNG; every case is
deterministic in ``(seed, split, index)`` (:mod:`skelrecall.data.synthetic.writer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from skelrecall.data.synthetic.draw2d import RGB, blobs, coarse_smooth_field, paint, to_uint8
from skelrecall.data.synthetic.writer import make_style, write_synthetic


@dataclass(frozen=True)
class CrackStyle:
    """Parameters of synthetic_cracks (ranges are drawn per image or per crack)."""

    size: int = 256
    cracks: tuple[int, int] = (1, 3)
    width: tuple[float, float] = (2.0, 4.49)  # crack width range (px), rounded when painted
    jag: tuple[float, float] = (0.35, 0.7)  # std of the per-step heading deviation (rad)
    branch_rate: float = 0.006  # side cracks per px of main crack
    depth: tuple[float, float] = (0.3, 0.5)  # relative darkening of a crack
    pores: tuple[int, int] = (15, 70)
    noise: tuple[float, float] = (0.02, 0.04)


def _crack_walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length: int,
    width: tuple[float, float],
    jag: float,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
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


def render(
    rng: np.random.Generator, style: CrackStyle = CrackStyle()
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
            b_path, b_w = _crack_walk(
                rng,
                path[k],
                heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2),
                int(rng.uniform(0.1, 0.35) * S),
                (style.width[0], min(w[k], style.width[1] - 1.0)),
                jag,
                S,
            )
            pts.append(b_path)
            wid.append(b_w)
    pts_a = np.concatenate(pts) if pts else np.zeros((0, 2))
    wid_a = np.clip(np.rint(np.concatenate(wid)), 1, round(style.width[1])).astype(int) if wid else np.zeros(0, int)
    width_map = paint(shape, pts_a, wid_a)
    crack = width_map > 0

    # concrete: grey with a faint tint, granular texture, stains, aggregate, dark pores
    g0 = rng.uniform(0.42, 0.68)
    grey = g0 * (
        1
        + 0.08 * coarse_smooth_field(rng, shape, 30)
        + 0.04 * coarse_smooth_field(rng, shape, 6)
        + 0.05 * coarse_smooth_field(rng, shape, 0.8)
        + 0.03 * coarse_smooth_field(rng, shape, 2.5)
    )
    yy, xx = np.mgrid[0:S, 0:S] / S
    grey *= 1 + rng.uniform(-0.12, 0.12) * (yy - 0.5) + rng.uniform(-0.12, 0.12) * (xx - 0.5)
    pores = blobs(rng, shape, rng.uniform(0, S, (int(rng.integers(*style.pores, endpoint=True)), 2)), (0.6, 2.0))
    grey = np.where(pores, grey * rng.uniform(0.6, 0.85), grey)

    # cracks: multiplicative darkening, varying along the image, slightly blurred
    depth = rng.uniform(*style.depth) * (0.55 + 0.45 / (1 + np.exp(-2 * coarse_smooth_field(rng, shape, 20))))
    depth = depth * (0.7 + 0.15 * width_map) * crack
    grey *= 1 - ndimage.gaussian_filter(depth, 0.5)
    tint = 1 + rng.normal(0, 0.025, 3)
    image = grey[..., None] * tint[None, None] + rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    return to_uint8(image), crack.astype(np.uint8), {}


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 200,
    num_test: int = 40,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: Any,
) -> Path:
    """Write ``Dataset913_SyntheticCracks`` (labels: 0 background, 1 crack); ``style`` overrides
    :class:`CrackStyle` fields."""
    st = make_style(CrackStyle, style)
    # "standins2d.cracks" names this generator in dataset.json (kept: existing datasets compare it)
    return write_synthetic(
        out_dir,
        channel_names=RGB,
        folder="Dataset913_SyntheticCracks",
        generator="standins2d.cracks",
        render=lambda rng: render(rng, st),
        style=st,
        labels={"background": 0, "crack": 1},
        case_prefix="cracks",
        description="synthetic stand-in for concrete cracks (skelrecall)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
    )
