"""Surface distances of binary masks in physical units: HD95 and ASSD (through MONAI).

* Surface ``dP`` of a mask: its foreground voxels with at least one face neighbour (4-neighbour in
  2D, 6-neighbour in 3D) in the background; the image is padded with background, so foreground on
  the image border is surface (MONAI's ``get_mask_edges``: binary erosion XOR mask).
* ``d(p, dG)``: Euclidean distance from the centre of voxel ``p`` to the nearest surface voxel
  centre of ``G``, with the voxel spacing (physical units: the NIfTI header's mm, 1 for PNG/NumPy).
* ``HD95 = max(P95{d(p, dG) : p in dP}, P95{d(g, dP) : g in dG})`` (percentiles with linear
  interpolation, MONAI's ``compute_hausdorff_distance(percentile=95)``).
* ``ASSD = mean of {d(p, dG) : p in dP} concatenated with {d(g, dP) : g in dG}`` (MONAI's
  ``compute_average_surface_distance(symmetric=True)``).
* Both masks empty: NaN (nothing to score, like Dice). Exactly one empty: the length of the image
  diagonal ``sqrt(sum((n_i * s_i)^2))``, larger than any distance inside the image, so that a
  missed or hallucinated structure counts as the worst possible score and means stay finite.

MONAI's ``get_edge_surface_distance`` computes the surfaces and both directed distance sets once
(a KD-tree over the surface voxels on CPU); both metrics are taken from that one result. Inputs are
cropped to the box of the two masks plus one voxel, which changes no distance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from skelrecall.metrics._util import as_binary_pair, bbox_slices, union_box


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """``sqrt(sum((n_i * s_i)^2))``: the value of HD95/ASSD when exactly one mask is empty."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    """``spacing`` as ``ndim`` positive finite floats (None: all 1)."""
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in np.atleast_1d(np.asarray(spacing, dtype=float)))
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing {tuple(spacing)} must hold {ndim} positive finite values")
    return values


def surface_distances(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(d(dP -> dG), d(dG -> dP))`` as float64 arrays for two non-empty bool masks (MONAI)."""
    import torch
    from monai.metrics.utils import get_edge_surface_distance

    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument it passes itself
        warnings.simplefilter("ignore", FutureWarning)
        _, (d_pg, d_gp), _ = get_edge_surface_distance(
            torch.from_numpy(np.ascontiguousarray(pred)), torch.from_numpy(np.ascontiguousarray(gt)),
            distance_metric="euclidean", spacing=list(spacing), symmetric=True,
        )  # fmt: skip
    return d_pg.numpy().astype(np.float64), d_gp.numpy().astype(np.float64)


def distance_metrics(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], full_shape: Sequence[int], which=("hd95", "assd")
) -> dict[str, float]:
    """``{"hd95": ..., "assd": ...}`` (those in ``which``) of two bool masks of the same shape.

    ``full_shape`` is the shape of the whole image (for the one-empty value); ``pred``/``gt`` may
    be crops of it.
    """
    p_any, g_any = bool(pred.any()), bool(gt.any())
    if not (p_any or g_any):
        return {m: float("nan") for m in which}
    if not (p_any and g_any):
        return {m: image_diagonal(full_shape, spacing) for m in which}
    box = union_box(bbox_slices(pred), bbox_slices(gt))
    pred, gt = np.pad(pred[box], 1), np.pad(gt[box], 1)
    d_pg, d_gp = surface_distances(pred, gt, spacing)
    out = {}
    if "hd95" in which:
        out["hd95"] = float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))
    if "assd" in which:
        out["assd"] = float(np.concatenate([d_pg, d_gp]).mean())
    return out


def hd95(pred, gt, spacing=None) -> float:
    """95th-percentile symmetric Hausdorff distance of two binary masks (see module docstring)."""
    pred, gt = as_binary_pair(pred, gt)
    spacing = check_spacing(spacing, pred.ndim)
    return distance_metrics(pred, gt, spacing, pred.shape, ("hd95",))["hd95"]


def assd(pred, gt, spacing=None) -> float:
    """Average symmetric surface distance of two binary masks (see module docstring)."""
    pred, gt = as_binary_pair(pred, gt)
    spacing = check_spacing(spacing, pred.ndim)
    return distance_metrics(pred, gt, spacing, pred.shape, ("assd",))["assd"]
