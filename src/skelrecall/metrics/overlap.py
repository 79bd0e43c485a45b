"""Overlap metrics of binary masks: Dice and clDice (with exact skeletons).

* ``dice = 2 |P & G| / (|P| + |G|)``; NaN when both masks are empty (the case says nothing about
  this class), 0 when exactly one is empty.
* ``cldice`` (Shit et al., CVPR 2021) with the exact skeletons of
  ``skimage.morphology.skeletonize`` (Zhang-Suen in 2D, Lee et al. in 3D):
  ``Tprec = |S(P) & G| / |S(P)|``, ``Tsens = |S(G) & P| / |S(G)|``,
  ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` (0 when both terms are 0).
  A term whose skeleton is empty counts as 1 (the Skeleton Recall authors' convention), so two
  empty masks give 1 and exactly one empty mask gives 0.

Any nonzero value is foreground. Skeletons are computed on the bounding box of the mask padded by
one background voxel, which gives the same skeleton as the full array (both algorithms look only
at 3x3(x3) neighbourhoods, and cropping keeps the raster scan order of Lee's sequential pass).
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from skelrecall.metrics._util import as_binary, as_binary_pair, bbox_slices


def dice(pred, gt) -> float:
    """Dice coefficient ``2|P & G| / (|P| + |G|)`` of two binary masks; NaN if both are empty."""
    pred, gt = as_binary_pair(pred, gt)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(pred & gt)) / total


def skeleton(mask) -> np.ndarray:
    """Exact skeleton (bool, same shape) of a binary 2D/3D mask with ``skimage.morphology.skeletonize``.

    Only the bounding box of the foreground, padded by one background voxel, is skeletonized.
    """
    mask = as_binary(mask)
    out = np.zeros(mask.shape, dtype=bool)
    box = bbox_slices(mask)
    if box is None:
        return out
    skel = skeletonize(np.pad(mask[box], 1))
    out[box] = skel[(slice(1, -1),) * mask.ndim]
    return out


def _term(skel: np.ndarray, other: np.ndarray) -> float:
    n = int(np.count_nonzero(skel))
    if n == 0:
        return 1.0
    return int(np.count_nonzero(skel & other)) / n


def cldice_terms(pred, gt) -> tuple[float, float]:
    """``(Tprec, Tsens)`` of clDice; a term whose skeleton is empty is 1."""
    pred, gt = as_binary_pair(pred, gt)
    return _term(skeleton(pred), gt), _term(skeleton(gt), pred)


def cldice(pred, gt) -> float:
    """clDice ``2 Tprec Tsens / (Tprec + Tsens)`` with exact skeletons (see module docstring)."""
    tprec, tsens = cldice_terms(pred, gt)
    if tprec + tsens == 0:
        return 0.0
    return 2.0 * tprec * tsens / (tprec + tsens)
