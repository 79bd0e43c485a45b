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

import numpy as np

from skelrecall.metrics._util import as_binary, as_binary_pair, bbox_slices, count_components

FG_CONNECTIVITY = {2: 8, 3: 26}  # foreground: 8-connected (2D), 26-connected (3D)
BG_CONNECTIVITY = {2: 4, 3: 6}  # background: 4-connected (2D), 6-connected (3D)


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
    return euler_characteristic_padded(np.pad(mask[box], 1))


def euler_characteristic_padded(padded: np.ndarray, complement: bool = False) -> int:
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
    8/26-connected, background 4/6-connected, ``b1 = b0 + b2 - chi`` in 3D). Any mask shape works,
    down to a single pixel.
    """
    mask = as_binary(mask)
    box = bbox_slices(mask)
    if box is None:
        return (0,) * (mask.ndim)
    return betti_of_padded(np.pad(mask[box], 1))


def betti_of_padded(padded: np.ndarray, b0: int | None = None, fg_coords: np.ndarray | None = None) -> tuple[int, ...]:
    """Betti numbers of a bool mask whose outer layer is background (``b0`` if already known).

    ``b0`` = foreground components; enclosed background parts (background components of the whole
    array - 1) = holes (2D) or cavities (3D); in 3D ``b1 = b0 + b2 - chi``. Betti numbers add up
    over separate components, so this may be called per component and summed. With the foreground
    coordinates ``fg_coords`` (m, ndim) of a sparse mask, the enclosed parts are found by
    :func:`enclosed_background` instead of labeling the whole background.
    """
    ndim = padded.ndim
    if b0 is None:
        b0 = count_components(padded, FG_CONNECTIVITY[ndim])
    if b0 == 0:
        return (0,) * ndim
    enclosed = enclosed_background(padded, fg_coords) if fg_coords is not None else None
    if enclosed is None:
        enclosed = count_components(~padded, BG_CONNECTIVITY[ndim]) - 1
    if ndim == 2:
        return (b0, enclosed)
    chi = euler_characteristic_padded(padded)
    return (b0, b0 + enclosed - chi, enclosed)


def _groups(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unique keys, min value, max value)`` per key."""
    if len(keys) > 1 and not np.all(keys[1:] >= keys[:-1]):  # coordinates in raster order need no sort
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)


def enclosed_background(padded: np.ndarray, fg_coords: np.ndarray, max_fraction: float = 1 / 8) -> int | None:
    """Number of enclosed background parts (holes in 2D, cavities in 3D) of a padded bool mask,
    from its foreground coordinates, without labeling the whole background; None when the
    candidate set is too large for this to pay off (then label the background instead).

    An enclosed part is a background component (4-/6-connected) that does not reach the border.
    Each of its voxels has foreground before and after it along every axis: walking along an axis
    from an enclosed voxel, consecutive voxels are face neighbours, so the walk stays in the part
    until it meets foreground. The candidates ``C`` = background voxels with foreground on both
    sides along every axis therefore hold every enclosed part, while every other background
    component reaches the border, which is outside ``C``. So the enclosed parts are exactly the
    components of ``C`` (face adjacency) none of whose voxels has a background neighbour outside
    ``C``. ``C`` is built from the per-line first/last foreground positions, in time proportional
    to the foreground and the candidates rather than to the box.
    """
    ndim, shape = padded.ndim, padded.shape
    coords = np.asarray(fg_coords, dtype=np.intp)
    last_axis = ndim - 1
    # 1. candidates along the last axis: between the first and last foreground voxel of each row
    row_keys = np.ravel_multi_index(tuple(coords[:, :last_axis].T), shape[:last_axis])
    rows, first, last = _groups(row_keys, coords[:, last_axis])
    lengths = np.maximum(last - first - 1, 0)
    total = int(lengths.sum())
    if total > padded.size * max_fraction:
        return None
    if total == 0:
        return 0
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    row_of = np.repeat(rows, lengths)
    cand = np.empty((total, ndim), np.intp)
    cand[:, :last_axis] = np.stack(np.unravel_index(row_of, shape[:last_axis]), axis=1)
    cand[:, last_axis] = np.repeat(first, lengths) + 1 + offsets
    cand = cand[~padded[tuple(cand.T)]]
    # 2. keep those with foreground on both sides along every other axis
    for axis in range(last_axis):
        others = [a for a in range(ndim) if a != axis]
        other_shape = tuple(shape[a] for a in others)
        keys, lo, hi = _groups(np.ravel_multi_index(tuple(coords[:, others].T), other_shape), coords[:, axis])
        ck = np.ravel_multi_index(tuple(cand[:, others].T), other_shape)
        at = np.minimum(np.searchsorted(keys, ck), len(keys) - 1)
        inside = (keys[at] == ck) & (lo[at] < cand[:, axis]) & (cand[:, axis] < hi[at])
        cand = cand[inside]
        if len(cand) == 0:
            return 0
    # 3. components of C under face adjacency; parts touching background outside C are not enclosed
    flat = np.sort(np.ravel_multi_index(tuple(cand.T), shape))
    strides = [int(np.prod(shape[a + 1 :])) for a in range(ndim)]
    src, dst = [], []
    touches = np.zeros(len(flat), bool)
    cells = padded.reshape(-1)  # a view: ``padded`` is contiguous
    for stride in strides:
        for step in (stride, -stride):
            nb = flat + step
            at = np.minimum(np.searchsorted(flat, nb), len(flat) - 1)
            in_c = flat[at] == nb
            touches |= ~in_c & ~cells[nb]
            if step > 0:
                src.append(np.flatnonzero(in_c))
                dst.append(at[in_c])
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(len(flat), len(flat)))
    n, labels = connected_components(graph, directed=False)
    return int(n - len(np.unique(labels[touches])))


def betti_errors(pred, gt) -> tuple[int, int]:
    """Absolute Betti errors ``(|b0(pred) - b0(gt)|, |b1(pred) - b1(gt)|)`` (2D and 3D).

    The 3D ``b2`` error is ``abs(betti_numbers(pred)[2] - betti_numbers(gt)[2])``
    (``evaluate_case`` reports it).
    """
    pred, gt = as_binary_pair(pred, gt)
    bp, bg = betti_numbers(pred), betti_numbers(gt)
    return (abs(bp[0] - bg[0]), abs(bp[1] - bg[1]))
