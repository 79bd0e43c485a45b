"""Betti matching error (optional extra ``topology``: topolosses' compiled Betti-Matching-3D).

Skipped when topolosses is not installed."""

import numpy as np
import pytest

pytest.importorskip("topolosses")

from skelrecall.metrics import betti_numbers, evaluate_case  # noqa: E402
from skelrecall.metrics.betti_matching import betti_matching_error, betti_matching_errors  # noqa: E402


def ring2d(shift=0, n=24):
    m = np.zeros((n, n), bool)
    m[4:13, 4 + shift : 13 + shift] = True
    m[7:10, 7 + shift : 10 + shift] = False
    return m


def torus3d(shift=0):
    m = np.zeros((9, 24, 14), bool)
    m[3:6, 3 + shift : 10 + shift, 3:10] = True
    m[3:6, 5 + shift : 8 + shift, 5:8] = False
    return m


def test_identical_masks_have_no_error():
    for m in (ring2d(), torus3d()):
        assert betti_matching_errors(m, m) == (0,) * m.ndim


def test_shifted_ring_has_betti_error_zero_but_betti_matching_error():
    a, b = ring2d(0), ring2d(6)  # same topology, the holes do not overlap
    assert betti_numbers(a) == betti_numbers(b) == (1, 1)
    assert betti_matching_errors(a, b) == (0, 2)  # each loop unmatched, in both masks
    assert betti_matching_error(a, ring2d(1)) == 0  # a small shift keeps the loops matched
    t1, t2 = torus3d(0), torus3d(9)
    assert betti_numbers(t1) == betti_numbers(t2) == (1, 1, 0)
    assert betti_matching_errors(t1, t2)[1] == 2


def test_components_and_empty_masks():
    empty = np.zeros((10, 10), bool)
    blob = empty.copy()
    blob[2:5, 2:5] = True
    two = blob.copy()
    two[7:9, 7:9] = True
    assert betti_matching_errors(empty, empty) == (0, 0)
    assert betti_matching_errors(empty, blob) == (1, 0)  # the missed component counts
    assert betti_matching_errors(blob, empty) == (1, 0)
    assert betti_matching_errors(two, blob) == (1, 0)


def test_evaluate_case_columns_and_size_limit(monkeypatch):
    import skelrecall.metrics.betti_matching as bm

    labels = {"background": 0, "vessel": 1}
    (row,) = evaluate_case(ring2d(6).astype(np.uint8), ring2d(0).astype(np.uint8), labels,
                           metrics="betti,betti_matching")  # fmt: skip
    assert row["betti1_error"] == 0 and row["betti_matching_error"] == 2 and row["betti_matching1_error"] == 2
    (row3,) = evaluate_case(torus3d(9).astype(np.uint8), torus3d(0).astype(np.uint8), labels, metrics="betti_matching")
    assert list(row3)[3:] == ["betti_matching_error", "betti_matching0_error", "betti_matching1_error",
                              "betti_matching2_error"]  # fmt: skip
    monkeypatch.setattr(bm, "MAX_VOXELS", 100)
    with pytest.raises(ValueError, match="above the limit of 100"):
        evaluate_case(ring2d().astype(np.uint8), ring2d().astype(np.uint8), labels, metrics="betti_matching")
