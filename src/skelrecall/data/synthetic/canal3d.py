"""Synthetic 3D stand-in for ToothFairy: thin curved canals in a noisy CBCT-like volume.

Each case holds one or (with probability ``p_two``) two canals, like the left and right inferior
alveolar canals. A canal is a smooth 3D curve running front to back through the volume with a
radius of ``radius`` voxels (varying smoothly along it), so it is 2-4 voxels wide, embedded in a
tube of cancellous "bone" with a cortical shell in "soft tissue". The canal lumen is darker than
bone and lined by a bright cortical rim, except along one or two *low-contrast stretches*
(``low_contrast`` times the normal contrast, no rim) where the canal is hard to see, as in real
CBCT. Blur and Gaussian noise finish the image; values are int16 "grey values" (bone about
1200, soft tissue about 300). Labels: 0 background, 1 canal.

Arrays are (z, y, x) = ``shape`` in memory (the order of :mod:`skelrecall.io`; NIfTI files store
them as (x, y, z)), isotropic ``spacing`` mm. Deterministic in ``(seed, split, index)``.
Defaults (24 x 48 x 48 at 0.6 mm, 20 train + 10 test) take about a second on one CPU core; the
volume is small so that a CPU-scale training patch (16 x 32 x 32) covers 30 % of it (at 48 x 96 x 96
a 200-step Dice+CE training predicted nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

from skelrecall.data.synthetic.writer import make_style, write_synthetic

FOLDER = "Dataset902_SyntheticCanal"
LABELS = {"background": 0, "canal": 1}


@dataclass(frozen=True)
class CanalStyle:
    shape: tuple[int, int, int] = (24, 48, 48)  # (z, y, x)
    spacing: float = 0.6  # mm
    p_two: float = 0.5  # probability of a second canal
    radius: tuple[float, float] = (1.1, 1.9)  # canal radius range in voxels
    bone_radius: tuple[float, float] = (4.5, 6.5)  # radius of the bone tube around the canal
    low_contrast: tuple[float, float] = (0.08, 0.25)  # contrast factor in low-contrast stretches
    stretches: tuple[int, int] = (1, 2)  # number of low-contrast stretches per canal
    stretch_length: tuple[float, float] = (0.08, 0.18)  # fraction of the canal length
    noise: tuple[float, float] = (90.0, 160.0)  # Gaussian noise standard deviation (grey values)


# ----------------------------------------------------------------------------------------------
# tube rendering (shared with cow3d)


def spline_curve(points: np.ndarray, step: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` voxels along a natural cubic spline through ``points`` (K, 3), K >= 2,
    parametrised by chord length; returns ``(curve (N, 3), t (N,) in [0, 1])``."""
    points = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1]) + 1e-9
    n = max(2, int(math.ceil(total / step)) + 1)
    u = np.linspace(0.0, s[-1], n)
    if len(points) == 2:
        curve = points[0] + (u / total)[:, None] * (points[1] - points[0])
    else:
        curve = CubicSpline(s, points, bc_type="natural")(u)
    return curve, u / total


def render_tubes(
    shape: tuple[int, ...], curves: list[np.ndarray], radii: list[np.ndarray], pad: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rasterize tubes around centerlines.

    ``curves[k]`` (N_k, 3) are densely sampled centerline points in voxel coordinates and
    ``radii[k]`` (N_k,) the radius at each point. For each voxel and tube the *margin*
    ``r(nearest centerline voxel) - distance`` is computed with an exact Euclidean distance
    transform on the tube's bounding box (padded by ``max radius + pad`` voxels); ``index`` names the tube with the
    largest margin (0 where no tube's box reaches), so the tubes themselves are
    ``(index > 0) & (margin >= 0)``. Returns ``(index (k + 1 = tube k), margin, t, dist)``, where
    ``t`` is the nearest centerline point's position along its curve (0..1) and ``dist`` the
    distance to the winning tube's centerline (``inf`` / ``-inf`` margin where no box reaches).
    """
    shape = tuple(shape)
    index = np.zeros(shape, np.int16)
    best = np.full(shape, -np.inf, np.float32)
    tpar = np.zeros(shape, np.float32)
    dist = np.full(shape, np.inf, np.float32)
    for k, (pts, rad) in enumerate(zip(curves, radii)):
        vox = np.clip(np.round(pts).astype(int), 0, np.array(shape) - 1)
        margin_px = int(math.ceil(float(np.max(rad)))) + pad
        lo = np.maximum(vox.min(0) - margin_px, 0)
        hi = np.minimum(vox.max(0) + margin_px + 1, shape)
        sub = tuple(slice(a, b) for a, b in zip(lo, hi))
        local = vox - lo
        mask = np.zeros(tuple(hi - lo), bool)
        mask[tuple(local.T)] = True
        rad_map = np.zeros(mask.shape, np.float32)
        t_map = np.zeros(mask.shape, np.float32)
        t = np.linspace(0.0, 1.0, len(pts), dtype=np.float32)
        rad_map[tuple(local.T)] = rad
        t_map[tuple(local.T)] = t
        d, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
        near = tuple(idx)
        margin = (rad_map[near] - d).astype(np.float32)
        win = margin > best[sub]
        best[sub] = np.where(win, margin, best[sub])
        index[sub] = np.where(win, k + 1, index[sub])
        tpar[sub] = np.where(win, t_map[near], tpar[sub])
        dist[sub] = np.where(win, d, dist[sub])
    return index, best, tpar, dist


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, scaled to zero mean and unit standard deviation.

    For ``sigma >= 6`` the noise is filtered on a grid coarser by ``f = sigma // 3`` and
    linearly upsampled (same look, a fraction of the cost)."""
    f = int(sigma // 3) if sigma >= 6 else 1
    small = tuple(int(math.ceil(n / f)) + 1 for n in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(small), sigma / f)
    if f > 1:
        field = ndimage.zoom(field, f, order=1)[tuple(slice(0, n) for n in shape)]
    else:
        field = field[tuple(slice(0, n) for n in shape)]
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


# ----------------------------------------------------------------------------------------------


def _canal_curve(rng: np.random.Generator, shape, x_center: float) -> np.ndarray:
    """Control points of one canal: front to back along y, descending in z, bending in x."""
    Z, Y, X = shape
    ys = np.linspace(0.08 * Y, 0.92 * Y, 5)
    z_hi, z_lo = rng.uniform(0.6, 0.75) * Z, rng.uniform(0.3, 0.45) * Z
    zs = z_hi + (z_lo - z_hi) * np.sin(np.linspace(0, np.pi / 2, 5)) + rng.normal(0, 1.5, 5)
    xs = (
        x_center
        + rng.uniform(-0.06, 0.06) * X * np.sin(np.linspace(0, np.pi, 5) + rng.uniform(0, np.pi))
        + rng.normal(0, 1.0, 5)
    )
    return np.stack([zs, ys, xs], axis=1)


def render(rng: np.random.Generator, style: CanalStyle = CanalStyle()) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic CBCT-like volume (int16) and its canal label (uint8), both ``style.shape``."""
    shape = style.shape
    Z, Y, X = shape
    n = 2 if rng.random() < style.p_two else 1
    centers = [0.3 * X, 0.7 * X] if n == 2 else [rng.uniform(0.35, 0.65) * X]
    canals, canal_r, bones, bone_r, contrasts = [], [], [], [], []
    for xc in centers:
        curve, t = spline_curve(_canal_curve(rng, shape, xc))
        r0, r1 = rng.uniform(*style.radius, size=2)
        r = r0 + (r1 - r0) * t + 0.15 * np.sin(2 * np.pi * t * rng.uniform(1, 3))
        canals.append(curve)
        canal_r.append(np.clip(r, 0.9, None).astype(np.float32))
        bones.append(curve)
        bone_r.append(np.full(len(curve), rng.uniform(*style.bone_radius), np.float32))
        c = np.ones(len(curve), np.float32)
        for _ in range(int(rng.integers(style.stretches[0], style.stretches[1] + 1))):
            length = rng.uniform(*style.stretch_length)
            start = rng.uniform(0.05, 0.95 - length)
            c[(t >= start) & (t < start + length)] = rng.uniform(*style.low_contrast)
        contrasts.append(c)
    idx, margin, tpar, dist = render_tubes(shape, canals, canal_r)
    label = ((idx > 0) & (margin >= 0)).astype(np.uint8)
    bidx, bmargin, _, _ = render_tubes(shape, bones, bone_r)
    # contrast factor of the nearest canal point, looked up through (tube index, t)
    contrast = np.ones(shape, np.float32)
    for k, c in enumerate(contrasts):
        sel = idx == k + 1
        pos = np.clip((tpar[sel] * (len(c) - 1)).round().astype(int), 0, len(c) - 1)
        contrast[sel] = c[pos]
    # around the canal (rim region) use the contrast of the nearest canal point as well
    near_canal = (margin > -2.5) & (idx > 0)

    soft, bone, cortex, lumen = 300.0, 1200.0, 1900.0, 450.0
    img = np.full(shape, soft, np.float32) + 60.0 * smooth_noise(rng, shape, 6.0)
    in_bone = bmargin >= 0
    img[in_bone] = bone + 150.0 * smooth_noise(rng, shape, 1.5)[in_bone]
    shell = (bmargin >= 0) & (bmargin < 1.5)
    img[shell] = cortex
    rim = near_canal & (margin < 0) & (margin >= -1.5)
    img[rim] = img[rim] + contrast[rim] * (cortex - bone) * 0.6
    inside = label > 0
    img[inside] = img[inside] - contrast[inside] * (img[inside] - lumen)
    img = ndimage.gaussian_filter(img, 0.7)
    img += rng.normal(0.0, rng.uniform(*style.noise), shape).astype(np.float32)
    img = np.clip(img, -1000, 4000).round().astype(np.int16)
    return img, label


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 20,
    num_test: int = 10,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: object,
) -> Path:
    """Write the synthetic canal dataset (nnU-Net v2 raw layout, NIfTI) to ``out_dir`` and return it.

    ``style`` overrides :class:`CanalStyle` fields (e.g. ``shape=(32, 64, 64)``). An existing
    folder written with the same parameters is kept (idempotent); data are written into a
    temporary sibling folder and renamed into place once verified.
    """
    st = make_style(CanalStyle, style)
    return write_synthetic(
        out_dir,
        folder=FOLDER,
        generator="canal3d",
        render=lambda rng: render(rng, st),
        style=st,
        labels=LABELS,
        channel_names={0: "CT"},
        case_prefix="canal",
        description="synthetic thin canals in CBCT-like volumes (skelrecall)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
        affine=np.diag([st.spacing] * 3 + [1.0]),
    )
