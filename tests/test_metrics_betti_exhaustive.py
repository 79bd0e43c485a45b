"""betti_numbers on every small mask: all 2D masks up to 3x4 (and 4x3), all 3D masks up to 2x2x3
(every axis order), against gudhi's cubical persistent homology of the padded mask.

Tiny masks once crashed cc3d ("maximum length exception" on ``[[[1, 0, 1]]]`` and on the 3x3x3
lattice ``m[::2, ::2, ::2]``); these tests cover every shape and every mask of that size.
"""

import itertools

import gudhi
import numpy as np
import pytest
from scipy import ndimage as ndi

from skelrecall.metrics import betti_numbers
from skelrecall.metrics._util import label_components


def gudhi_betti(mask: np.ndarray) -> tuple[int, ...]:
    """REFERENCE.md: ``CubicalComplex(top_dimensional_cells=1 - padded mask)``, persistent Betti at 0."""
    cc = gudhi.CubicalComplex(top_dimensional_cells=1.0 - np.pad(mask, 1).astype(float))
    cc.persistence()
    return tuple(int(b) for b in cc.persistent_betti_numbers(0, 0)[: mask.ndim])


def gudhi_betti_batch(masks: np.ndarray) -> np.ndarray:
    """Betti numbers of every mask in ``masks`` (N, *shape) from ONE gudhi cubical complex.

    The masks are laid side by side along axis 0 with one background layer between them (and
    around them); mask ``i`` enters the filtration at value ``i`` and the background at ``N``.
    The pieces do not touch, so below level ``N`` the complex is the disjoint union of the first
    masks and each persistence bar is born at the value of the mask it belongs to: the Betti
    numbers of mask ``i`` are the counts of bars born at ``i``, per dimension.
    """
    n, shape = len(masks), masks.shape[1:]
    step = shape[0] + 1
    values = np.full((n * step + 1, *(s + 2 for s in shape[1:])), float(n))
    tiles = values[1:].reshape(n, step, *values.shape[1:])  # a view: tile i starts at row 1 + i * step
    inner = tiles[(slice(None), slice(0, shape[0]), *[slice(1, -1)] * (len(shape) - 1))]
    ids = np.arange(n, dtype=float).reshape(-1, *([1] * len(shape)))
    inner[...] = np.where(masks, ids, float(n))
    cc = gudhi.CubicalComplex(top_dimensional_cells=values)
    cc.compute_persistence()
    out = np.zeros((n, len(shape)), int)
    for dim in range(len(shape)):
        births = cc.persistence_intervals_in_dimension(dim)[:, 0]
        births = births[births < n].astype(int)
        out[:, dim] = np.bincount(births, minlength=n)
    return out


def all_masks(shape: tuple[int, ...]) -> np.ndarray:
    """Every bool mask of ``shape`` (2 ** size of them), mask k having bit j of k at element j."""
    size = int(np.prod(shape))
    bits = (np.arange(2**size)[:, None] >> np.arange(size)) & 1
    return bits.astype(bool).reshape(-1, *shape)


SHAPES_2D = [s for s in itertools.product(range(1, 5), repeat=2) if min(s) <= 3]  # up to 3x4 and 4x3
SHAPES_3D = [s for s in itertools.product(range(1, 4), repeat=3) if sorted(s)[1] <= 2]  # up to 2x2x3


def test_reported_crashes_are_fixed():
    assert betti_numbers(np.array([[[1, 0, 1]]])) == (2, 0, 0)
    m = np.zeros((3, 3, 3))
    m[::2, ::2, ::2] = 1
    assert betti_numbers(m) == (8, 0, 0)
    for shape in [(1, 1, 9), (1, 9, 9), (5, 5, 5), (3, 7, 1)]:  # larger lattices with short axes
        m = np.zeros(shape, bool)
        m[::2, ::2, ::2] = True
        assert betti_numbers(m) == (int(m.sum()), 0, 0), shape
        assert label_components(m, 26)[1] == int(m.sum())


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images split the same foreground into the same parts (any numbering)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


@pytest.mark.parametrize("connectivity,ndim", [(4, 2), (8, 2), (6, 3), (26, 3)])
def test_component_labels_equal_scipy(connectivity, ndim):
    # cc3d 4.1's binary path labelled background pixels in 2D (8-connected); ours must not
    structure = ndi.generate_binary_structure(ndim, ndim if connectivity in (8, 26) else 1)
    rng = np.random.default_rng(connectivity)
    shapes = [s for s in (SHAPES_2D if ndim == 2 else SHAPES_3D) if np.prod(s) <= 8]
    masks = [m for s in shapes for m in all_masks(s)]
    for i in range(300):
        shape = tuple(rng.integers(1, 30 if ndim == 2 else 12, ndim))
        field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 1.5))
        masks.append(field > np.quantile(field, rng.uniform(0.2, 0.8)) if i % 2 else rng.random(shape) < 0.5)
    for k, m in enumerate(masks):
        labels, n = label_components(m, connectivity)
        expected, n_expected = ndi.label(m, structure)
        assert n == n_expected and _same_partition(labels, expected), f"mask {k}:\n{m.astype(int)}"


def test_batched_oracle_equals_the_per_mask_oracle():
    rng = np.random.default_rng(0)
    for shape in [(3, 4), (2, 2, 3), (3, 2, 2)]:
        masks = rng.random((60, *shape)) < 0.5
        expected = np.array([gudhi_betti(m) for m in masks])
        np.testing.assert_array_equal(gudhi_betti_batch(masks), expected)


@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
def test_every_2d_mask_matches_gudhi(shape):
    masks = all_masks(shape)
    expected = gudhi_betti_batch(masks)
    for k, mask in enumerate(masks):
        assert betti_numbers(mask) == tuple(expected[k]), f"shape {shape}, mask {k}:\n{mask.astype(int)}"


@pytest.mark.parametrize("shape", SHAPES_3D, ids=lambda s: "x".join(map(str, s)))
def test_every_3d_mask_matches_gudhi(shape):
    masks = all_masks(shape)
    expected = gudhi_betti_batch(masks)
    for k, mask in enumerate(masks):
        assert betti_numbers(mask) == tuple(expected[k]), f"shape {shape}, mask {k}:\n{mask.astype(int)}"


def test_label_components_falls_back_to_scipy_when_cc3d_refuses(monkeypatch):
    import cc3d

    def refuse(*args, **kwargs):
        raise RuntimeError("maximum length exception")

    monkeypatch.setattr(cc3d, "connected_components", refuse)
    m = np.zeros((3, 3, 3), bool)
    m[::2, ::2, ::2] = True
    m[1, 1, 1] = True  # joins all eight corners (26-connectivity)
    labels, n = label_components(m, 26)
    assert n == 1 and labels.dtype == np.uint32 and (labels > 0).sum() == 9
    assert label_components(m, 6)[1] == 9
    assert betti_numbers(m) == (1, 0, 0)
