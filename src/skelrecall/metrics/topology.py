"""Betti numbers and Betti errors of binary 2D images and 3D volumes.

Convention (the one of the TopCoW / ToothFairy evaluations and of gudhi's cubical homology of the
mask as a union of *closed* pixels/voxels, i.e. ``gudhi.CubicalComplex(top_dimensional_cells=1 -
mask)`` with ``persistent_betti_numbers(0, 0)``):

* the whole image/volume is used (no patches) and is padded by one background pixel/voxel;
* foreground is 8-connected (2D) / 26-connected (3D); background is 4- / 6-connected;
* 2D: ``b0`` = foreground components, ``b1`` = background components of the padded image - 1
  (holes);
* 3D: ``b0`` = foreground components, ``b2`` = background components of the padded volume - 1
  (cavities), ``chi`` = Euler characteristic of the union of closed voxels
  (``V - E + F - C``, equal to skimage's ``euler_number(connectivity=3)``), ``b1 = b0 + b2 - chi``
  (tunnels/loops);
* any nonzero value is foreground; an empty mask has all Betti numbers 0; an all-foreground
  mask has ``b0 = 1`` and the others 0.

Only the bounding box of the foreground (plus the one-voxel background pad) is processed, which
changes no number and makes sparse vessel volumes cheap.
"""

from __future__ import annotations

import cc3d
import numpy as np

from skelrecall.metrics._util import as_binary, as_binary_pair, bbox_slices


def _count_components(mask: np.ndarray, connectivity: int) -> int:
    # uint32 labels (instead of the automatic uint64 for large volumes) halve the memory traffic.
    out_dtype = np.uint32 if mask.size < 2**32 - 1 else np.uint64
    _, n = cc3d.connected_components(
        mask, connectivity=connectivity, return_N=True, binary_image=True, out_dtype=out_dtype
    )
    return int(n)


def _or_pairs(a: np.ndarray, axis: int) -> np.ndarray:
    """``a[..., i, ...] | a[..., i+1, ...]`` along ``axis`` (one element shorter there)."""
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    return np.logical_or(a[tuple(lo)], a[tuple(hi)])


def euler_characteristic(mask) -> int:
    """Euler characteristic of the union of the closed foreground pixels/voxels of ``mask``.

    A cell of the cubical grid (vertex, edge, face) belongs to the union iff one of the pixels/
    voxels around it is foreground; the cells are counted with logical ORs of shifted copies of the
    padded mask: ``chi = V - E + C`` (2D), ``chi = V - E + F - C`` (3D). Equals
    ``skimage.measure.euler_number(mask, connectivity=mask.ndim)``.
    """
    mask = as_binary(mask)
    box = bbox_slices(mask)
    if box is None:
        return 0
    return _euler_padded(np.pad(mask[box], 1))


def _euler_padded(padded: np.ndarray, complement: bool = False) -> int:
    """Euler characteristic of a bool mask whose outer layer is background (of ``~padded`` if
    ``complement``).

    For a set S of axes, OR-ing the mask over neighbouring pairs along every axis in S marks the
    cells of the union that are thin (a single coordinate) along S and one voxel wide along the
    other axes; such cells have dimension ``ndim - |S|``. The mask is processed in slabs along
    axis 0 (about 1 M elements each) to keep the temporaries in cache.
    """
    ndim, n0 = padded.ndim, padded.shape[0]
    subsets = sorted((s for s in _subsets(ndim) if s), key=len)
    rows = max(1, (1 << 20) // max(1, padded[0].size))
    chi = 0
    for start in range(0, n0, rows):
        stop = min(start + rows, n0)
        slab = padded[start : min(stop + 1, n0)]
        ors = {(): ~slab if complement else slab}
        for axes in subsets:
            ors[axes] = _or_pairs(ors[axes[:-1]], axes[-1])
        for axes, cells in ors.items():
            if 0 not in axes:  # cells one voxel wide along axis 0: rows start..stop-1 only
                cells = cells[: stop - start]
            chi += (-1) ** (ndim - len(axes)) * int(np.count_nonzero(cells))
    return chi


def _subsets(n: int) -> list[tuple[int, ...]]:
    return [tuple(a for a in range(n) if bits >> a & 1) for bits in range(2**n)]


def betti_numbers(mask) -> tuple[int, ...]:
    """Betti numbers ``(b0, b1)`` of a 2D mask or ``(b0, b1, b2)`` of a 3D mask.

    See the module docstring for the convention (whole image, background padding, foreground
    8/26-connected, background 4/6-connected, ``b1 = b0 + b2 - chi`` in 3D).
    """
    mask = as_binary(mask)
    box = bbox_slices(mask)
    if box is None:
        return (0,) * (mask.ndim)
    crop = np.ascontiguousarray(mask[box])
    padded_bg = np.ones(tuple(n + 2 for n in crop.shape), dtype=bool)
    np.logical_not(crop, out=padded_bg[(slice(1, -1),) * crop.ndim])
    if mask.ndim == 2:
        b0 = _count_components(crop, 8)
        b1 = _count_components(padded_bg, 4) - 1
        return (b0, b1)
    b0 = _count_components(crop, 26)
    b2 = _count_components(padded_bg, 6) - 1
    chi = _euler_padded(padded_bg, complement=True)
    return (b0, b0 + b2 - chi, b2)


def betti_errors(pred, gt) -> tuple[int, int]:
    """Absolute Betti errors ``(|b0(pred) - b0(gt)|, |b1(pred) - b1(gt)|)`` (2D and 3D).

    The 3D ``b2`` error is ``abs(betti_numbers(pred)[2] - betti_numbers(gt)[2])``
    (``evaluate_case`` reports it).
    """
    pred, gt = as_binary_pair(pred, gt)
    bp, bg = betti_numbers(pred), betti_numbers(gt)
    return (abs(bp[0] - bg[0]), abs(bp[1] - bg[1]))
