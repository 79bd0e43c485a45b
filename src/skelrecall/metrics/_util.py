"""Small shared helpers of the metrics: input checks, bounding boxes and connected components."""

from __future__ import annotations

import math

import cc3d
import numpy as np
from scipy import ndimage as ndi


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


def box_volume(box: tuple[slice, ...], margin: int = 0) -> int:
    """Number of elements of ``box`` grown by ``margin`` on every side."""
    return math.prod(s.stop - s.start + 2 * margin for s in box)


def union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """The smallest box holding boxes ``a`` and ``b`` (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def label_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """``(labels, n)``: the connected components of a bool 2D/3D ``mask`` (cc3d, uint32 labels 1..n).

    ``connectivity``: 4 or 8 (2D), 6 or 26 (3D). The mask goes to cc3d as uint8 through its
    multi-label path. cc3d 4.1's separate *binary-image* path (``binary_image=True`` or bool
    input) has two bugs that this avoids: it sizes its union-find array as ``floor(V / 4) + 2`` for
    26-connectivity, too small for volumes with short axes (``[[[1, 0, 1]]]`` or the 3x3x3 lattice
    ``m[::2, ::2, ::2]`` raised "maximum length exception"), and its 8-connected 2D labeling writes
    labels onto background pixels (the count stays right). The multi-label path agrees with
    ``scipy.ndimage.label`` on every 2D mask up to 3x4 and every 3D mask up to 2x2x3 and on random
    masks (``tests/test_metrics_betti_exhaustive.py``) and is as fast. Should cc3d still refuse an
    input, ``scipy.ndimage.label`` (same connectivity) labels it instead.
    """
    src = np.ascontiguousarray(mask).view(np.uint8)
    try:
        labels, n = cc3d.connected_components(src, connectivity=connectivity, return_N=True, out_dtype=np.uint32)
    except RuntimeError:  # only if a cc3d version breaks this path too
        full = connectivity in (8, 26)
        structure = ndi.generate_binary_structure(mask.ndim, mask.ndim if full else 1)
        labels = np.zeros(src.shape, np.uint32)
        n = ndi.label(src, structure=structure, output=labels)
    return labels, int(n)


def count_components(mask: np.ndarray, connectivity: int) -> int:
    """Number of connected components of a bool mask (see :func:`label_components`)."""
    return label_components(mask, connectivity)[1]
