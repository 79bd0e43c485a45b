"""Per-mask structure computed once and shared by every metric: components, skeleton, Betti numbers.

:class:`MaskAnalysis` wraps one binary mask (usually a crop of a case, placed by ``origin``) and
computes, lazily and at most once:

* the connected components (cc3d, 8-connected in 2D / 26-connected in 3D) and their boxes;
* the exact skeleton (``skimage.morphology.skeletonize``) as voxel coordinates;
* the Betti numbers (conventions of :mod:`skelrecall.metrics.topology`).

Work per component. Thinning (Zhang-Suen in 2D, Lee in 3D) decides about a voxel from its 3x3(x3)
neighbourhood only, and components are separated by background (no two voxels of different
components are 8/26-neighbours), so the skeleton of a mask is the union of the skeletons of its
components, each computed on its own box padded by one background voxel (Lee's sequential pass
visits a component's voxels in the same raster order in its box as in the whole array). Betti
numbers add up over components in the same way (disjoint closed sets). skimage's thinning costs
in proportion to the array it gets times its passes, so per-component boxes are much cheaper than
one box around scattered pieces. When the components' boxes together are larger than the mask's
own box (interleaved components), the whole box is processed at once instead; both give identical
results (tested in ``tests/test_metrics_analysis.py``).

A mask whose component is also a component of another analysed mask (the "merged" union of a
multi-class case contains every component that has a single class) takes that component's
skeleton and Betti numbers from there instead of recomputing them (:meth:`MaskAnalysis.reuse_from`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from skelrecall.metrics._util import bbox_slices, box_volume, label_components
from skelrecall.metrics.topology import FG_CONNECTIVITY, betti_of_padded


def _pad_skeleton(padded: np.ndarray, fg_coords: np.ndarray | None = None) -> np.ndarray:
    """Coordinates (k, ndim) of the skeleton of a padded mask, in the unpadded frame.

    The skeleton is a subset of the foreground, so with the foreground coordinates ``fg_coords``
    it is read at those voxels only instead of scanning the array.
    """
    skel = skeletonize(padded)
    if fg_coords is not None:
        return fg_coords[skel[tuple(fg_coords.T)]] - 1
    flat = np.flatnonzero(skel)  # much faster than argwhere on large sparse arrays
    return np.stack(np.unravel_index(flat, padded.shape), axis=1) - 1


def _padded(shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A zero bool array of ``shape`` grown by one on every side, and the slices of its interior."""
    out = np.zeros(tuple(n + 2 for n in shape), bool)
    return out, (slice(1, -1),) * len(shape)


SPARSE_FRACTION = 1 / 16  # below this foreground fraction, component boxes come from coordinates


class MaskAnalysis:
    """Components, skeleton and Betti numbers of one bool mask, computed once when first needed.

    ``mask``: bool 2D/3D array; ``origin``: position of ``mask[0, ..., 0]`` in the case (so that
    analyses of different crops can be compared).
    """

    def __init__(self, mask: np.ndarray, origin: tuple[int, ...] | None = None):
        if mask.dtype != bool:
            raise TypeError(f"MaskAnalysis needs a bool mask, got {mask.dtype}")
        self.mask = np.ascontiguousarray(mask)
        self.ndim = mask.ndim
        self.origin = np.asarray(origin if origin is not None else (0,) * mask.ndim, dtype=np.intp)
        self._count: int | None = None
        self._labels: np.ndarray | None = None
        self._n: int | None = None
        self._boxes: list[tuple[slice, ...]] | None = None
        self._voxels: tuple[np.ndarray, ...] | None = None  # sparse masks: flat indices by label, boxes
        self._per_component: bool | None = None
        self._component_skel: dict[int, np.ndarray] = {}
        self._component_betti: dict[int, tuple[int, ...]] = {}
        self._skeleton: np.ndarray | None = None
        self._betti: tuple[int, ...] | None = None
        self._donor: Callable[[int], tuple[MaskAnalysis, int] | None] | None = None
        self._wanted = {"skeleton": False, "betti": False}

    def will_need(self, skeleton: bool = False, betti: bool = False) -> MaskAnalysis:
        """Announce what will be asked, so that each component's padded mask is built once for both."""
        self._wanted["skeleton"] |= skeleton
        self._wanted["betti"] |= betti
        return self

    # --- basic quantities -------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of foreground voxels."""
        if self._count is None:
            self._count = int(np.count_nonzero(self.mask))
        return self._count

    def _components(self) -> None:
        if self._labels is not None:
            return
        if self.count == 0:
            self._labels, self._n, self._boxes = np.broadcast_to(np.uint32(0), self.mask.shape), 0, []
            return
        self._labels, self._n = label_components(self.mask, FG_CONNECTIVITY[self.ndim])
        if self.count > self.mask.size * SPARSE_FRACTION:
            self._boxes = ndi.find_objects(self._labels, max_label=self._n)
            return
        # sparse masks: min/max of the foreground coordinates per label (no pass over the labels)
        flat = np.flatnonzero(self.mask)
        labels = self._labels.ravel()[flat]
        order = np.argsort(labels, kind="stable")
        labels = labels[order]
        coords = np.unravel_index(flat[order], self.mask.shape)
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        lo = [np.minimum.reduceat(c, starts) for c in coords]
        hi = [np.maximum.reduceat(c, starts) for c in coords]
        self._voxels = (flat[order], np.r_[starts, len(flat)], np.stack(lo, 1), np.stack(hi, 1) + 1)
        self._boxes = [tuple(slice(int(lo[d][k]), int(hi[d][k]) + 1) for d in range(self.ndim)) for k in range(self._n)]

    @property
    def n_components(self) -> int:
        self._components()
        return self._n

    @property
    def boxes(self) -> list[tuple[slice, ...]]:
        """Box of each component (component ``k`` has label ``k + 1``), in the mask's frame."""
        self._components()
        return self._boxes

    @property
    def labels(self) -> np.ndarray:
        self._components()
        return self._labels

    @property
    def per_component(self) -> bool:
        """Whether skeleton and Betti numbers are computed per component (else on the whole box)."""
        if self._per_component is None:
            n = self.n_components
            if n <= 1:
                self._per_component = True
            else:
                parts = sum(box_volume(b, 1) for b in self.boxes)
                self._per_component = parts <= box_volume(bbox_slices(self.mask), 1)
        return self._per_component

    def component_mask(self, k: int) -> np.ndarray:
        """Component ``k`` alone, cropped to its box and padded by one background voxel."""
        return self._component_padded(k)[0]

    def _component_padded(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(padded mask of component k, its voxel coordinates in that array or None)``.

        Sparse masks build it from the component's voxel list (no pass over the box); dense ones
        compare the labels in the box.
        """
        box = self.boxes[k]
        out, inner = _padded(tuple(s.stop - s.start for s in box))
        if self._voxels is not None:
            flat, bounds, lo, _ = self._voxels
            coords = np.stack(np.unravel_index(flat[bounds[k] : bounds[k + 1]], self.mask.shape), axis=1)
            coords -= lo[k] - 1
            out[tuple(coords.T)] = True
            return out, coords
        if self.n_components == 1:
            out[inner] = self.mask[box]
        else:
            np.equal(self.labels[box], k + 1, out=out[inner])
        return out, None

    def _whole_padded(self, box: tuple[slice, ...]) -> np.ndarray:
        out, inner = _padded(tuple(s.stop - s.start for s in box))
        out[inner] = self.mask[box]
        return out

    def component_at(self, point: np.ndarray) -> int | None:
        """Component index at a position of the case (None outside the mask or its frame)."""
        local = np.asarray(point) - self.origin
        if np.any(local < 0) or np.any(local >= self.mask.shape):
            return None
        label = int(self.labels[tuple(local)])
        return label - 1 if label else None

    # --- per-component results --------------------------------------------------------------------

    def reuse_from(self, donor: Callable[[int], tuple[MaskAnalysis, int] | None]) -> None:
        """Take component results from other analyses: ``donor(k)`` returns ``(analysis, index)`` of
        a component with exactly the voxels of this mask's component ``k``, or None."""
        self._donor = donor

    def _component(self, k: int, skeleton: bool, betti: bool) -> None:
        skeleton, betti = skeleton or self._wanted["skeleton"], betti or self._wanted["betti"]
        need_skel = skeleton and k not in self._component_skel
        need_betti = betti and k not in self._component_betti
        if not (need_skel or need_betti):
            return
        if self._donor is not None:
            found = self._donor(k)
            if found is not None:
                other, j = found
                other._component(j, need_skel, need_betti)
                shift = other.origin - self.origin
                if need_skel:
                    self._component_skel[k] = other._component_skel[j] + shift
                if need_betti:
                    self._component_betti[k] = other._component_betti[j]
                return
        padded, coords = self._component_padded(k)
        start = np.array([s.start for s in self.boxes[k]], dtype=np.intp)
        if need_betti:  # before thinning: skimage may not leave the array untouched in future versions
            self._component_betti[k] = betti_of_padded(padded, b0=1, fg_coords=coords)
        if need_skel:
            self._component_skel[k] = _pad_skeleton(padded, coords) + start

    def component_skeleton(self, k: int) -> np.ndarray:
        """Skeleton voxels of component ``k`` as (m, ndim) coordinates in the mask's frame."""
        self._component(k, True, False)
        return self._component_skel[k]

    # --- whole-mask results -----------------------------------------------------------------------

    def skeleton_coords(self) -> np.ndarray:
        """Skeleton voxels of the mask as (m, ndim) coordinates in the mask's frame."""
        if self._skeleton is None:
            if self.n_components == 0:
                self._skeleton = np.zeros((0, self.ndim), np.intp)
            elif self.per_component:
                for k in range(self.n_components):
                    self._component(k, True, False)
                self._skeleton = np.concatenate([self._component_skel[k] for k in range(self.n_components)])
            else:
                box = bbox_slices(self.mask)
                start = np.array([s.start for s in box], dtype=np.intp)
                self._skeleton = _pad_skeleton(self._whole_padded(box)) + start
        return self._skeleton

    def skeleton(self) -> np.ndarray:
        """The skeleton as a bool array of the mask's shape."""
        out = np.zeros(self.mask.shape, bool)
        coords = self.skeleton_coords()
        out[tuple(coords.T)] = True
        return out

    def overlap(self, other: MaskAnalysis) -> int:
        """``|self & other|`` for an analysis of the same frame (from the foreground list if known)."""
        if self.count == 0 or other.count == 0:
            return 0
        if self.mask.shape != other.mask.shape or np.any(self.origin != other.origin):
            raise ValueError("overlap needs two analyses of the same crop")
        if self._voxels is not None:
            return int(np.count_nonzero(other.mask.ravel()[self._voxels[0]]))
        return int(np.count_nonzero(self.mask & other.mask))

    def skeleton_hits(self, other: MaskAnalysis) -> tuple[int, int]:
        """``(|S(self)|, |S(self) & other|)``: skeleton size and how much of it lies in ``other``."""
        coords = self.skeleton_coords() + (self.origin - other.origin)
        inside = np.all((coords >= 0) & (coords < other.mask.shape), axis=1)
        hits = int(np.count_nonzero(other.mask[tuple(coords[inside].T)]))
        return len(coords), hits

    def betti(self) -> tuple[int, ...]:
        """Betti numbers ``(b0, b1[, b2])`` (equal to :func:`skelrecall.metrics.betti_numbers`)."""
        if self._betti is None:
            n = self.n_components
            if n == 0:
                self._betti = (0,) * self.ndim
            elif self.per_component:
                for k in range(n):
                    self._component(k, False, True)
                sums = np.sum([self._component_betti[k] for k in range(n)], axis=0)
                self._betti = tuple(int(v) for v in sums)
            else:
                self._betti = betti_of_padded(self._whole_padded(bbox_slices(self.mask)), b0=n)
        return self._betti
