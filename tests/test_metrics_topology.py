"""Betti numbers: known answers, and equality with gudhi's cubical persistent homology."""

import gudhi
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import euler_number

from skelrecall.metrics import betti_errors, betti_numbers, euler_characteristic


def gudhi_betti(mask: np.ndarray) -> tuple[int, ...]:
    """Betti numbers of the union of closed foreground pixels/voxels, by persistent homology."""
    cc = gudhi.CubicalComplex(top_dimensional_cells=1.0 - mask.astype(float))
    cc.persistence()
    betti = cc.persistent_betti_numbers(0, 0)  # one entry per dimension 0..ndim; the last is 0
    assert betti[mask.ndim] == 0
    return tuple(int(b) for b in betti[: mask.ndim])


def ring2d():
    m = np.zeros((9, 9), bool)
    m[2:7, 2:7] = True
    m[4, 4] = False
    return m


def torus3d():
    m = np.zeros((7, 9, 9), bool)
    m[2:5, 2:7, 2:7] = True
    m[2:5, 4, 4] = False  # a tunnel through the block
    return m


def hollow_sphere():
    z, y, x = np.mgrid[-6:7, -6:7, -6:7]
    r = np.sqrt(x**2 + y**2 + z**2)
    return (r <= 5) & (r >= 3)


def test_ring_2d():
    assert betti_numbers(ring2d()) == (1, 1)


def test_two_blobs_touching_diagonally_are_one_component():
    m2 = np.zeros((6, 6), bool)
    m2[1:3, 1:3] = True
    m2[3:5, 3:5] = True  # touches the first block at one corner only
    assert betti_numbers(m2) == (1, 0)
    m3 = np.zeros((6, 6, 6), bool)
    m3[1:3, 1:3, 1:3] = True
    m3[3:5, 3:5, 3:5] = True
    assert betti_numbers(m3) == (1, 0, 0)


def test_background_is_4_connected_in_2d():
    # a diagonal staircase closes a hole: the background inside is only 8-connected to outside
    m = np.zeros((6, 6), bool)
    m[1, 2] = m[2, 1] = m[2, 3] = m[3, 2] = True  # diamond of 4 pixels around (2, 2)
    assert betti_numbers(m) == (1, 1)


def test_torus_3d():
    assert betti_numbers(torus3d()) == (1, 1, 0)


def test_hollow_sphere_3d():
    assert betti_numbers(hollow_sphere()) == (1, 0, 1)


def test_objects_touching_the_border_are_padded_with_background():
    m = np.ones((5, 5), bool)
    m[2, 2] = False
    assert betti_numbers(m) == (1, 1)  # the frame touches every border and still has one hole
    m3 = np.ones((5, 5, 5), bool)
    m3[2, 2, 2] = False
    assert betti_numbers(m3) == (1, 0, 1)


@pytest.mark.parametrize("shape", [(7, 5), (4, 6, 5)])
def test_empty_and_full_masks(shape):
    nd = len(shape)
    assert betti_numbers(np.zeros(shape, bool)) == (0,) * nd
    assert betti_numbers(np.ones(shape, bool)) == (1,) + (0,) * (nd - 1)
    assert betti_errors(np.zeros(shape, bool), np.ones(shape, bool)) == (1, 0)


def test_betti_errors_are_absolute_differences():
    two_rings = np.zeros((9, 20), bool)
    two_rings[:, :9] = ring2d()
    two_rings[:, 10:19] = ring2d()
    assert betti_numbers(two_rings) == (2, 2)
    assert betti_errors(ring2d()[:, :9], two_rings[:, :9]) == (0, 0)
    padded_ring = np.zeros_like(two_rings)
    padded_ring[:, :9] = ring2d()
    assert betti_errors(padded_ring, two_rings) == (1, 1)
    assert betti_errors(two_rings, padded_ring) == (1, 1)
    assert betti_errors(torus3d(), np.zeros_like(torus3d())) == (1, 1)


def test_label_values_count_as_foreground_and_bad_input_is_refused():
    m = ring2d().astype(np.uint8) * 7
    assert betti_numbers(m) == (1, 1)
    with pytest.raises(ValueError, match="2D or 3D"):
        betti_numbers(np.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="shapes differ"):
        betti_errors(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def _random_mask(rng, ndim):
    shape = tuple(int(s) for s in rng.integers(1, 25 if ndim == 2 else 11, ndim))
    if rng.random() < 0.5:
        return rng.random(shape) < rng.uniform(0.05, 0.95)  # i.i.d. noise, varied density
    field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 1.5))
    return field > np.quantile(field, rng.uniform(0.1, 0.9))  # blobs with holes and tunnels


@pytest.mark.parametrize("ndim", [2, 3])
def test_betti_numbers_equal_gudhi_on_random_masks(ndim):
    rng = np.random.default_rng(2024 + ndim)
    nontrivial = 0
    for i in range(150):
        mask = _random_mask(rng, ndim)
        expected = gudhi_betti(mask)
        assert betti_numbers(mask) == expected, f"mask {i}, shape {mask.shape}"
        nontrivial += sum(expected[1:]) > 0
    assert nontrivial > 30  # the sample exercises holes/tunnels/cavities, not only components


@pytest.mark.parametrize("ndim", [2, 3])
def test_euler_characteristic_equals_skimage(ndim):
    rng = np.random.default_rng(99 + ndim)
    for i in range(40):
        mask = _random_mask(rng, ndim)
        assert euler_characteristic(mask) == euler_number(mask, connectivity=ndim), f"mask {i}"


def test_euler_characteristic_is_exact_across_slab_boundaries():
    # > 1 M elements per slab limit forces several slabs along axis 0
    rng = np.random.default_rng(5)
    field = ndi.gaussian_filter(rng.random((40, 200, 200)), 2)
    mask = field > np.quantile(field, 0.6)
    assert euler_characteristic(mask) == euler_number(mask, connectivity=3)


def test_metrics_benchmark_quick_run(tmp_path):
    from skelrecall.bench import metrics as bench

    bench.run(out_dir=str(tmp_path), quick=True)
    md = (tmp_path / "metrics.md").read_text()
    assert "identical" in md and "CPU" in md
    assert (tmp_path / "metrics.csv").read_text().count("\n") >= 4
