"""MaskAnalysis and the fast evaluate_case: identical to the direct computations on random masks.

The speed-ups rest on identities that are checked here on random masks with many separate parts:
the skeleton of a union of separated components equals the union of their skeletons, each
computed on its own padded box; per-component Betti numbers add up to the whole mask's; component
boxes from coordinates equal ``find_objects``; the merged row reuses class components correctly.
"""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from skelrecall.metrics import betti_numbers, evaluate_case
from skelrecall.metrics.analysis import MaskAnalysis


def _scattered(rng, shape, n_parts):
    """Many small separate structures (blobs, short bars, rings) scattered over the array."""
    m = np.zeros(shape, bool)
    for _ in range(n_parts):
        size = np.minimum(rng.integers(2, 7, len(shape)), shape)
        start = [rng.integers(0, max(1, n - s)) for n, s in zip(shape, size)]
        box = tuple(slice(a, a + s) for a, s in zip(start, size))
        kind = rng.integers(3)
        if kind == 0:
            m[box] = rng.random(tuple(size)) < 0.7
        elif kind == 1:
            m[box] = True
            inner = tuple(slice(a + 1, a + s - 1) for a, s in zip(start, size))
            m[inner] = False  # a ring/hollow box when big enough
        else:
            m[box] = ndi.gaussian_filter(rng.random(tuple(size)), 0.8) > 0.5
    return m


def _random_masks(seed, count):
    rng = np.random.default_rng(seed)
    for i in range(count):
        ndim = 2 if i % 2 else 3
        shape = tuple(rng.integers(12, 60, 2)) if ndim == 2 else tuple(rng.integers(8, 24, 3))
        if i % 3 == 0:
            field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.6, 1.5))
            yield field > np.quantile(field, rng.uniform(0.4, 0.9))
        else:
            yield _scattered(rng, shape, int(rng.integers(2, 25)))


@pytest.mark.parametrize("seed", [0, 1])
def test_per_component_skeleton_equals_skeleton_of_the_whole_array(seed):
    for i, m in enumerate(_random_masks(seed, 40)):
        a = MaskAnalysis(m)
        expected = skeletonize(m)  # uncropped, all components at once
        np.testing.assert_array_equal(a.skeleton(), expected, err_msg=f"mask {i}, {a.n_components} parts")
        # the other strategy (whole box at once) gives the same
        b = MaskAnalysis(m)
        b._per_component = not a.per_component
        np.testing.assert_array_equal(b.skeleton(), expected, err_msg=f"mask {i}, other strategy")


@pytest.mark.parametrize("seed", [2, 3])
def test_per_component_betti_numbers_add_up(seed):
    for i, m in enumerate(_random_masks(seed, 40)):
        expected = betti_numbers(m)
        a = MaskAnalysis(m)
        a._per_component = True
        assert a.betti() == expected, f"mask {i}"
        b = MaskAnalysis(m)
        b._per_component = False
        assert b.betti() == expected, f"mask {i}"


def test_component_boxes_from_coordinates_equal_find_objects():
    rng = np.random.default_rng(4)
    for _ in range(20):
        m = _scattered(rng, (40, 50, 30), 30)
        a = MaskAnalysis(m)
        assert a.count < m.size / 16  # the coordinate path
        assert a.boxes == ndi.find_objects(a.labels)


def test_analysis_of_a_crop_reports_positions_in_the_case_frame():
    m = np.zeros((10, 10), bool)
    m[2:5, 3] = True
    a = MaskAnalysis(m[1:8, 2:9].copy(), origin=(1, 2))
    b = MaskAnalysis(m.copy())
    assert a.skeleton_hits(b) == (3, 3)
    assert a.component_at(np.array([3, 3])) == 0 and a.component_at(np.array([0, 0])) is None


# --- evaluate_case against the definitions on whole arrays --------------------------------------


def _direct_row(pred, gt):
    """Dice, clDice and Betti numbers straight from the definitions on the full arrays."""
    total = pred.sum() + gt.sum()
    dice = math.nan if total == 0 else 2 * (pred & gt).sum() / total
    sp, sg = skeletonize(pred), skeletonize(gt)
    tprec = (sp & gt).sum() / sp.sum() if sp.sum() else 1.0
    tsens = (sg & pred).sum() / sg.sum() if sg.sum() else 1.0
    cl = 0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens)
    return dice, cl, betti_numbers(pred), betti_numbers(gt)


def _check_row(row, pred, gt):
    dice, cl, bp, bg = _direct_row(pred, gt)
    assert (math.isnan(row["dice"]) and math.isnan(dice)) or row["dice"] == pytest.approx(dice, abs=1e-12)
    assert row["cldice"] == pytest.approx(cl, abs=1e-12)
    for k in range(pred.ndim):
        assert (row[f"betti{k}_pred"], row[f"betti{k}_gt"]) == (bp[k], bg[k])


@pytest.mark.parametrize("ndim", [2, 3])
def test_multiclass_rows_and_reused_merged_row_equal_direct_computation(ndim):
    rng = np.random.default_rng(10 + ndim)
    labels = {"background": 0, "a": 1, "b": 2, "c": 3}
    shape = (48, 56) if ndim == 2 else (20, 24, 22)
    for _ in range(6):
        gt = np.zeros(shape, np.uint8)
        pred = np.zeros(shape, np.uint8)
        for value in (1, 2, 3):
            gt[_scattered(rng, shape, 8)] = value
            pred[_scattered(rng, shape, 8)] = value
        pred[gt == 2] = 2  # some overlap
        rows = {r["class"]: r for r in evaluate_case(pred, gt, labels, metrics="dice,cldice,betti")}
        for name, value in (("a", 1), ("b", 2), ("c", 3)):
            _check_row(rows[name], pred == value, gt == value)
        _check_row(rows["merged"], pred > 0, gt > 0)


def test_merged_row_of_a_case_with_one_class_reuses_the_class_analysis():
    labels = {"background": 0, "a": 1, "b": 2}
    gt = np.zeros((30, 30), np.uint8)
    gt[5:25, 10:13] = 2
    pred = gt.copy()
    pred[14:16, :] = 0
    rows = {r["class"]: r for r in evaluate_case(pred, gt, labels, metrics="dice,cldice,betti")}
    assert set(rows) == {"b", "mean", "merged"}
    for col in ("dice", "cldice", "betti0_pred", "betti1_gt"):
        assert rows["merged"][col] == rows["b"][col] == rows["mean"][col]


def test_scan_finds_boxes_and_values_of_wide_and_signed_maps():
    from skelrecall.metrics.case import value_boxes

    m = np.zeros((6, 7), np.int32)
    m[1:3, 2:4] = 5
    m[4, 6] = 70000
    m[0, 0] = -2
    boxes = value_boxes(m)
    assert boxes[5] == (slice(1, 3), slice(2, 4)) and boxes[70000] == (slice(4, 5), slice(6, 7))
    assert boxes[-2] is None
    with pytest.raises(ValueError, match=r"prediction holds label values \[-2, 70000\]"):
        evaluate_case(m, np.zeros_like(m), {"background": 0, "v": 5}, metrics="dice")
    u8 = (m == 5).astype(np.uint8) * 3
    assert value_boxes(u8) == {3: (slice(1, 3), slice(2, 4))}
    many = np.arange(42, dtype=np.uint16).reshape(6, 7)
    assert set(value_boxes(many)) == set(range(1, 42))


@pytest.mark.parametrize("ndim", [2, 3])
def test_enclosed_background_from_coordinates_equals_background_labeling(ndim):
    from skelrecall.metrics._util import count_components
    from skelrecall.metrics.topology import BG_CONNECTIVITY, enclosed_background

    rng = np.random.default_rng(20 + ndim)
    nontrivial = 0
    for i in range(150):
        shape = tuple(rng.integers(3, 30, 2)) if ndim == 2 else tuple(rng.integers(3, 14, 3))
        if i % 3 == 0:
            m = rng.random(shape) < rng.uniform(0.2, 0.8)
        elif i % 3 == 1:
            field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 1.5))
            m = field > np.quantile(field, rng.uniform(0.2, 0.8))
        else:
            m = _scattered(rng, shape, int(rng.integers(1, 8)))
        padded = np.pad(m, 1)
        expected = count_components(~padded, BG_CONNECTIVITY[ndim]) - 1
        got = enclosed_background(padded, np.argwhere(padded), max_fraction=1.0)
        assert got == expected, f"mask {i}:\n{m.astype(int)}"
        nontrivial += expected > 0
    assert nontrivial > 30
    solid = np.pad(np.ones((5,) * ndim, bool), 1)
    assert enclosed_background(solid, np.argwhere(solid), max_fraction=1.0) == 0
