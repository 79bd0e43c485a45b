"""Overlap metrics of binary masks: Dice and clDice (with exact skeletons).

* ``dice = 2 |P & G| / (|P| + |G|)``; NaN when both masks are empty (the case says nothing about
  this class), 0 when exactly one is empty.
* ``cldice`` (Shit et al., CVPR 2021) with the exact skeletons of
  ``skimage.morphology.skeletonize`` (Zhang-Suen in 2D, Lee et al. in 3D):
  ``Tprec = |S(P) & G| / |S(P)|``, ``Tsens = |S(G) & P| / |S(G)|``,
  ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` (0 when both terms are 0).
  A term whose skeleton is empty counts as 1 (the Skeleton Recall authors' convention), so two
  empty masks give 1 and exactly one empty mask gives 0.

Any nonzero value is foreground. Skeletons are computed per connected component, each on its box
padded by one background voxel, which gives the same skeleton as the full array (both algorithms
look only at 3x3(x3) neighbourhoods, components are separated by background, and cropping keeps the
raster scan order of Lee's sequential pass); see :mod:`skelrecall.metrics.analysis`.
"""

from __future__ import annotations

import numpy as np

from skelrecall.metrics._util import as_binary, as_binary_pair, bbox_slices, union_box
from skelrecall.metrics.analysis import MaskAnalysis


def dice(pred, gt) -> float:
    """Dice coefficient ``2|P & G| / (|P| + |G|)`` of two binary masks; NaN if both are empty."""
    pred, gt = as_binary_pair(pred, gt)
    return dice_from_counts(int(np.count_nonzero(pred)), int(np.count_nonzero(gt)), int(np.count_nonzero(pred & gt)))


def dice_from_counts(n_pred: int, n_gt: int, n_both: int) -> float:
    """``2 n_both / (n_pred + n_gt)``; NaN if both counts are 0."""
    total = n_pred + n_gt
    if total == 0:
        return float("nan")
    return 2.0 * n_both / total


def skeleton(mask) -> np.ndarray:
    """Exact skeleton (bool, same shape) of a binary 2D/3D mask with ``skimage.morphology.skeletonize``.

    Computed per connected component on its padded box (identical to skeletonizing the full array).
    """
    mask = as_binary(mask)
    out = np.zeros(mask.shape, dtype=bool)
    box = bbox_slices(mask)
    if box is None:
        return out
    out[box] = MaskAnalysis(np.ascontiguousarray(mask[box])).skeleton()
    return out


def term(skeleton_size: int, hits: int) -> float:
    """A clDice term ``hits / skeleton_size``; 1 when the skeleton is empty."""
    return 1.0 if skeleton_size == 0 else hits / skeleton_size


def cldice_from_terms(tprec: float, tsens: float) -> float:
    """``2 Tprec Tsens / (Tprec + Tsens)``; 0 when both terms are 0."""
    if tprec + tsens == 0:
        return 0.0
    return 2.0 * tprec * tsens / (tprec + tsens)


def cldice_terms(pred, gt) -> tuple[float, float]:
    """``(Tprec, Tsens)`` of clDice; a term whose skeleton is empty is 1."""
    pred, gt = as_binary_pair(pred, gt)
    box = union_box(bbox_slices(pred), bbox_slices(gt))
    if box is None:
        return 1.0, 1.0
    p = MaskAnalysis(np.ascontiguousarray(pred[box]))
    g = MaskAnalysis(np.ascontiguousarray(gt[box]))
    return term(*p.skeleton_hits(g)), term(*g.skeleton_hits(p))


def cldice(pred, gt) -> float:
    """clDice ``2 Tprec Tsens / (Tprec + Tsens)`` with exact skeletons (see module docstring)."""
    return cldice_from_terms(*cldice_terms(pred, gt))
