"""Synthetic stand-in for DRIVE: ``synthetic_drive`` (``Dataset912_SyntheticDRIVE``).

A reddish fundus on a circular field of view (black outside) with an optic disc and a darker
fovea. Vessel *trees* grow from the disc: each branch is a persistent random walk whose width
tapers from about 7 px at the root to 2 px at the tips (``min_width``; with 1 px capillaries and
lower contrast a 200-step CPU training of HRNet, which predicts at 1/4 resolution, reached a Dice of
0.33), with Murray's-law bifurcations
(``w**3 = w1**3 + w2**3``); a branch stops when it would run into another branch, so the vessel
mask has (almost) no loops. Vessels are darker than the background, mostly in the green channel,
and thin vessels have low contrast. The FOV mask is written to ``masksTr``/``masksTs`` like the
DRIVE converter does. Images are RGB uint8 PNG, labels uint8 PNG; every case is deterministic in
``(seed, split, index)`` (:mod:`skelrecall.data.synthetic.writer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from skelrecall.data.synthetic.draw2d import RGB, coarse_smooth_field, paint, to_uint8
from skelrecall.data.synthetic.writer import make_style, write_synthetic


@dataclass(frozen=True)
class DriveStyle:
    """Parameters of synthetic_drive (ranges are drawn per image or per vessel)."""

    size: int = 256
    fov_radius: float = 0.46  # field of view radius (fraction of size)
    root_width: tuple[float, float] = (5.5, 7.4)  # main vessel width at the disc (px)
    extra_roots: tuple[int, int] = (3, 5)  # smaller vessels leaving the disc besides the 4 arcades
    branch_rate: tuple[float, float] = (0.04, 0.07)  # bifurcations per px of vessel
    taper: tuple[float, float] = (0.0015, 0.0035)  # relative width loss per px
    min_width: float = 1.5  # a branch ends when thinner than this
    contrast: tuple[float, float] = (0.45, 0.6)  # green-channel darkening of a wide vessel
    noise: tuple[float, float] = (0.008, 0.02)


def _grow_vessels(
    rng: np.random.Generator,
    style: DriveStyle,
    fov_c: np.ndarray,
    fov_r: float,
    disc: np.ndarray,
    disc_r: float,
    fovea: np.ndarray,
    side: int,
) -> tuple[np.ndarray, np.ndarray]:
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
        queue.append(
            (
                disc.copy(),
                temporal + tilt * rng.uniform(1.05, 1.35),
                w_main * rng.uniform(0.85, 1.0),
                -tilt * arc_k * rng.uniform(0.9, 1.2),
                0.4 * S,
                0,
            )
        )
        queue.append(
            (
                disc.copy(),
                temporal + math.pi - tilt * rng.uniform(0.5, 1.0),
                w_main * rng.uniform(0.6, 0.8),
                tilt * arc_k * rng.uniform(0, 0.5),
                0.3 * S,
                0,
            )
        )
    for _ in range(int(rng.integers(*style.extra_roots, endpoint=True))):
        queue.append(
            (
                disc.copy(),
                rng.uniform(0, 2 * math.pi),
                w_main * rng.uniform(0.3, 0.55),
                rng.normal(0, 0.3 * arc_k),
                0.3 * S,
                0,
            )
        )
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
            if (
                w < style.min_width
                or math.hypot(p[0] - fov_c[0], p[1] - fov_c[1]) > fov_r - 3
                or math.hypot(p[0] - fovea[0], p[1] - fovea[1]) < 0.045 * S
            ):
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
                queue.append(
                    (p.copy(), heading + side_sign * rng.uniform(0.5, 1.2), w2, rng.normal(0, 0.5 * arc_k), 0.3 * S, me)
                )
                heading -= side_sign * rng.uniform(0.05, 0.25)
                w = w1
    return np.array(pts).reshape(-1, 2), np.array(wid)


def render(
    rng: np.random.Generator, style: DriveStyle = DriveStyle()
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
    width_map = paint(shape, pts, np.clip(np.rint(wid), 1, math.ceil(style.root_width[1])).astype(int))
    vessel = (width_map > 0) & fov

    # background: orange-red fundus, vignetting, choroidal texture, dark fovea, bright disc
    base = np.array([rng.uniform(0.72, 0.9), rng.uniform(0.3, 0.42), rng.uniform(0.1, 0.18)])
    light = 1.0 - 0.35 * (rad / fov_r) ** 2 + 0.05 * coarse_smooth_field(rng, shape, 25)
    light *= 1 + 0.025 * coarse_smooth_field(rng, shape, 3)
    d_fovea = np.hypot(yy - fovea[0], xx - fovea[1])
    light *= 1 - rng.uniform(0.15, 0.3) * np.exp(-0.5 * (d_fovea / (0.07 * S)) ** 2)
    image = base[None, None] * light[..., None]
    d_disc = np.hypot(yy - disc[0], xx - disc[1])
    disc_w = 1.0 / (1.0 + np.exp((d_disc - disc_r) / 1.5))
    image += disc_w[..., None] * np.array([0.12, 0.3, 0.22]) * rng.uniform(0.8, 1.2)

    # vessels: darker, most of all in green; contrast grows with width (thin ones are faint)
    strength = rng.uniform(*style.contrast) * np.clip(0.3 + 0.7 * (width_map - 1) / 4.0, 0.3, 1.0) * (width_map > 0)
    strength *= 0.75 + 0.25 * (1 + coarse_smooth_field(rng, shape, 12)).clip(0, 2) / 2
    strength = ndimage.gaussian_filter(strength, 0.7)
    image *= 1 - strength[..., None] * np.array([0.35, 1.0, 0.7])[None, None]

    image += rng.normal(0, rng.uniform(*style.noise), shape + (3,))
    image = np.where(fov[..., None], image, rng.uniform(0, 0.012, shape + (3,)))
    return to_uint8(image), vessel.astype(np.uint8), {"masks": fov.astype(np.uint8)}


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 40,
    num_test: int = 10,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: Any,
) -> Path:
    """Write ``Dataset912_SyntheticDRIVE`` (labels: 0 background, 1 vessel; FOV masks in
    ``masksTr``/``masksTs``); ``style`` overrides :class:`DriveStyle` fields."""
    st = make_style(DriveStyle, style)
    # "standins2d.drive" names this generator in dataset.json (kept: existing datasets compare it)
    return write_synthetic(
        out_dir,
        channel_names=RGB,
        folder="Dataset912_SyntheticDRIVE",
        generator="standins2d.drive",
        render=lambda rng: render(rng, st),
        style=st,
        labels={"background": 0, "vessel": 1},
        case_prefix="drive",
        description="synthetic stand-in for DRIVE retinal vessels (skelrecall); FOV masks in masksTr/masksTs",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
        extra_meta={"fov_masks": {"Tr": "masksTr", "Ts": "masksTs" if num_test else None}},
    )
