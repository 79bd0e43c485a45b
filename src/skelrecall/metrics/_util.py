"""Small shared helpers of the metrics: input checks and bounding-box crops."""

from __future__ import annotations

import numpy as np


def as_binary(mask, name: str = "mask") -> np.ndarray:
    """``mask != 0`` as a bool array; only 2D and 3D arrays are accepted."""
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a 2D or 3D mask, got shape {mask.shape}")
    return mask if mask.dtype == bool else mask != 0


def as_binary_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays of the same 2D/3D shape (ValueError otherwise)."""
    pred, gt = as_binary(pred, "pred"), as_binary(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    return pred, gt


def bbox_slices(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The tightest box holding every nonzero element of ``mask`` (None if it is empty).

    Two passes over the data: one for axis 0, one projection along axis 0 for the others.
    """
    hit0 = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if hit0.size == 0:
        return None
    first = slice(int(hit0[0]), int(hit0[-1]) + 1)
    if mask.ndim == 1:
        return (first,)
    rest = bbox_slices(mask[first].any(axis=0))
    return (first, *rest)
