"""Dice and clDice: known answers, empty-mask conventions and a direct implementation of clDice."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from skelrecall.metrics import cldice, cldice_terms, dice, skeleton


def _line_2d():
    m = np.zeros((32, 32), bool)
    m[10:13, 3:29] = True
    return m


def _tube_3d():
    # odd thickness: skimage's 3D (Lee) skeleton of a straight tube of even thickness is empty
    # (scikit-image issue 3757), see reports/README.md
    m = np.zeros((14, 24, 12), bool)
    m[4:9, 2:22, 4:9] = True
    return m


def test_dice_known_values():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :4] = True  # 40 pixels
    b[:, 2:6] = True  # 40 pixels, 20 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0


def test_dice_empty_conventions():
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    assert math.isnan(dice(empty, empty))
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0


def test_dice_accepts_label_values_and_rejects_bad_shapes():
    a = np.zeros((6, 6), np.uint8)
    a[1:3, 1:3] = 255
    assert dice(a, a > 0) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        dice(a, np.zeros((6, 7), bool))
    with pytest.raises(ValueError, match="2D or 3D"):
        dice(np.zeros(5), np.zeros(5))


@pytest.mark.parametrize("make", [_line_2d, _tube_3d])
def test_cldice_identical_is_one_and_disjoint_is_zero(make):
    m = make()
    assert cldice(m, m) == 1.0
    shifted = np.roll(m, 7, axis=0)
    assert not (shifted & m).any()
    assert cldice(m, shifted) == 0.0


def test_cldice_empty_conventions():
    empty = np.zeros((16, 16), bool)
    line = _line_2d()[:16, :16]
    assert cldice(empty, empty) == 1.0  # both terms have an empty skeleton: 1 and 1
    assert cldice(empty, line) == 0.0  # Tprec = 1 (empty skeleton), Tsens = 0
    assert cldice(line, empty) == 0.0
    assert cldice_terms(empty, line) == (1.0, 0.0)


def test_cldice_broken_line_detects_the_gap():
    gt = _line_2d()
    pred = gt.copy()
    pred[:, 15:17] = False  # a 2-pixel break
    tprec, tsens = cldice_terms(pred, gt)
    assert tprec == 1.0  # every skeleton pixel of the prediction lies inside the ground truth
    assert 0.8 < tsens < 1.0  # the ground-truth skeleton crosses the gap


def _cldice_direct(pred, gt):
    """Straight from the definition, on the full arrays (no cropping)."""
    sp, sg = skeletonize(pred), skeletonize(gt)
    tprec = (sp & gt).sum() / sp.sum() if sp.sum() else 1.0
    tsens = (sg & pred).sum() / sg.sum() if sg.sum() else 1.0
    return 0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens)


def _blobs(rng, shape):
    sigma = rng.uniform(0.8, 2.0)
    field = ndi.gaussian_filter(rng.random(shape), sigma)
    return field > np.quantile(field, rng.uniform(0.3, 0.95))


def test_cldice_equals_direct_definition_on_random_masks():
    rng = np.random.default_rng(1234)
    for i in range(60):
        shape = tuple(rng.integers(8, 40, 2)) if i % 2 else tuple(rng.integers(6, 18, 3))
        pred, gt = _blobs(rng, shape), _blobs(rng, shape)
        if i % 5 == 0:
            pred = gt ^ (rng.random(shape) < 0.05)  # a near miss
        assert cldice(pred, gt) == pytest.approx(_cldice_direct(pred, gt), abs=1e-12), f"mask pair {i}"


def test_skeleton_of_the_bounding_box_equals_skeleton_of_the_array():
    rng = np.random.default_rng(7)
    for i in range(30):
        shape = tuple(rng.integers(10, 50, 2)) if i % 2 else tuple(rng.integers(8, 20, 3))
        m = _blobs(rng, shape)
        np.testing.assert_array_equal(skeleton(m), skeletonize(m), err_msg=f"mask {i}")
