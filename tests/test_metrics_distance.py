"""HD95 and ASSD (MONAI underneath): equal to a direct scipy implementation, spacing respected,
empty-mask conventions."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from skelrecall.metrics import assd, evaluate_case, hd95
from skelrecall.metrics.distance import image_diagonal


def _direct(pred, gt, spacing):
    """Surfaces by erosion (face neighbours, image padded with background), distances by scipy's
    exact Euclidean distance transform with ``sampling=spacing``."""
    surf_p = pred & ~ndi.binary_erosion(pred, border_value=0)
    surf_g = gt & ~ndi.binary_erosion(gt, border_value=0)
    d_pg = ndi.distance_transform_edt(~surf_g, sampling=spacing)[surf_p]
    d_gp = ndi.distance_transform_edt(~surf_p, sampling=spacing)[surf_g]
    hd = max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))
    return hd, np.concatenate([d_pg, d_gp]).mean()


def _blobs(rng, shape):
    field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.8, 2.0))
    return field > np.quantile(field, rng.uniform(0.5, 0.95))


@pytest.mark.parametrize("ndim", [2, 3])
def test_equal_to_direct_scipy_implementation_on_random_masks(ndim):
    rng = np.random.default_rng(7 + ndim)
    for i in range(25):
        shape = tuple(rng.integers(10, 40, 2)) if ndim == 2 else tuple(rng.integers(8, 20, 3))
        pred, gt = _blobs(rng, shape), _blobs(rng, shape)
        spacing = tuple(rng.uniform(0.3, 3.0, ndim)) if i % 2 else (1.0,) * ndim
        want_hd, want_assd = _direct(pred, gt, spacing)
        assert hd95(pred, gt, spacing) == pytest.approx(want_hd, rel=1e-6, abs=1e-6), f"pair {i}"
        assert assd(pred, gt, spacing) == pytest.approx(want_assd, rel=1e-6, abs=1e-6), f"pair {i}"


def test_anisotropic_spacing_is_respected_per_axis():
    gt = np.zeros((20, 20, 20), bool)
    gt[5:10, 5:10, 5:10] = True
    for axis, expected in ((0, 4 * 3.0), (1, 4 * 0.5), (2, 4 * 1.0)):
        pred = np.roll(gt, 4, axis=axis)
        spacing = (3.0, 0.5, 1.0)
        assert hd95(pred, gt, spacing) == pytest.approx(expected)
        assert hd95(pred, gt, spacing) == pytest.approx(_direct(pred, gt, spacing)[0])
        assert assd(pred, gt, spacing) == pytest.approx(_direct(pred, gt, spacing)[1])
    assert hd95(np.roll(gt, 4, axis=0), gt) == pytest.approx(4.0)  # default spacing 1


def test_identical_masks_and_empty_conventions():
    m = np.zeros((12, 15), bool)
    m[3:8, 4:11] = True
    assert hd95(m, m) == 0.0 and assd(m, m) == 0.0
    empty = np.zeros_like(m)
    assert math.isnan(hd95(empty, empty)) and math.isnan(assd(empty, empty))
    diagonal = math.sqrt((12 * 2.0) ** 2 + 15**2)
    assert image_diagonal(m.shape, (2.0, 1.0)) == pytest.approx(diagonal)
    for a, b in ((m, empty), (empty, m)):
        assert hd95(a, b, (2.0, 1.0)) == pytest.approx(diagonal)
        assert assd(a, b, (2.0, 1.0)) == pytest.approx(diagonal)
    with pytest.raises(ValueError, match="spacing"):
        hd95(m, m, (1.0, 0.0))


def test_evaluate_case_distance_columns_per_class_and_merged():
    labels = {"background": 0, "a": 1, "b": 2}
    gt = np.zeros((20, 30), np.uint8)
    gt[2:6, 2:20] = 1
    gt[10:14, 2:20] = 2
    pred = gt.copy()
    pred[pred == 2] = 0
    pred[11:15, 2:20] = 2  # class b shifted down by one row
    rows = {r["class"]: r for r in evaluate_case(pred, gt, labels, metrics=["hd95", "assd"], spacing=(2.0, 1.0))}
    assert list(rows["a"]) == ["class", "class_id", "headline", "hd95", "assd"]
    assert rows["a"]["hd95"] == 0.0 and rows["a"]["assd"] == 0.0
    want = _direct(pred == 2, gt == 2, (2.0, 1.0))
    assert rows["b"]["hd95"] == pytest.approx(want[0]) and rows["b"]["assd"] == pytest.approx(want[1])
    assert rows["mean"]["hd95"] == pytest.approx(want[0] / 2)
    merged = _direct(pred > 0, gt > 0, (2.0, 1.0))
    assert rows["merged"]["hd95"] == pytest.approx(merged[0]) and rows["merged"]["assd"] == pytest.approx(merged[1])
