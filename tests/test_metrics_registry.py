"""The metric registry: selection, columns, display facts, optional dependencies."""

import importlib.util

import pytest

from skelrecall.metrics import evaluate_case
from skelrecall.metrics.case import columns
from skelrecall.metrics.registry import COLUMNS, METRICS, available_metrics, default_metrics, resolve


def test_resolve_orders_and_validates_names():
    assert [m.name for m in resolve("betti, dice")] == ["dice", "betti"]
    assert [m.name for m in resolve(["CLDICE"])] == ["cldice"]
    with pytest.raises(ValueError, match=r"unknown metric\(s\) hd99; available: dice, cldice, betti, hd95, assd"):
        resolve("dice,hd99")
    with pytest.raises(ValueError, match="no metric selected"):
        resolve(" , ")


def test_columns_and_display_facts():
    assert columns(2, "dice,betti") == ["class", "class_id", "headline", "dice", "betti0_pred", "betti0_gt",
                                        "betti1_pred", "betti1_gt", "betti0_error", "betti1_error"]  # fmt: skip
    assert columns(3, "betti")[-3:] == ["betti2_pred", "betti2_gt", "betti2_error"]
    assert (
        COLUMNS["dice"].scale == 100.0 and COLUMNS["dice"].heading == "Dice (%)" and COLUMNS["dice"].better == "higher"
    )
    assert COLUMNS["betti0_error"].better == "lower" and COLUMNS["betti0_pred"].better is None
    assert not COLUMNS["betti0_pred"].summarized and COLUMNS["hd95"].summarized
    assert METRICS["hd95"].unit == "spacing units"


def test_defaults_are_the_installed_default_metrics():
    assert default_metrics() == ["dice", "cldice", "betti", "hd95", "assd"]
    assert "betti_matching" not in default_metrics()  # opt-in: its memory grows ~1 KB per voxel
    assert set(default_metrics()) <= set(available_metrics())


def test_a_metric_whose_dependency_is_missing_is_refused_with_the_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "topolosses" else real(name, *a))
    assert "betti_matching" not in available_metrics()
    with pytest.raises(
        ValueError,
        match=r"betti_matching needs topolosses \(pip install 'skelrecall\[topology\]', .*--no-deps topolosses\)",
    ):
        resolve("betti_matching")
    with pytest.raises(ValueError, match="not installed"):
        evaluate_case([[0, 1]], [[0, 1]], {"background": 0, "v": 1}, metrics="betti_matching")
