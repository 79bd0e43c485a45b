"""``skelrecall-bench cache`` in quick mode: both files written, every number positive, same patches."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skelrecall.bench import cache, cli
from skelrecall.bench.common import cpu_model

pytestmark = pytest.mark.slow  # end-to-end: runs in subprocesses


def test_quick_cache_benchmark_writes_positive_numbers(tmp_path):
    cli.main(["cache", "--quick", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "cache.csv")
    report = (tmp_path / "cache.md").read_text()

    memory, thr = table[table["kind"] == "memory"], table[table["kind"] == "throughput"]
    assert list(memory["name"].str.split(",").str[0]) == ["cache"] * 2 + ["in memory"] * 3
    assert memory["extrapolated"].tolist() == [False] * 4 + [True]
    measured = memory[~memory["extrapolated"].astype(bool)]
    for col in ("setup_s", "patches_per_s", "peak_rss_main_gb", "rss_after_setup_gb", "peak_rss_worker_gb"):
        assert (measured[col] > 0).all(), col
    assert (measured["peak_rss_main_gb"] >= measured["rss_after_setup_gb"]).all()
    assert (measured["peak_rss_main_gb"] < 100).all()  # bytes, not KiB, were converted to GB
    assert set(thr["dataset"]) == set(cache.QUICK["throughput"]) and thr["identical"].all()
    assert len(thr) == 4 * len(cache.QUICK["throughput"])  # (cache, memory) x (PatchDataset, crop only)
    assert (thr["items_per_s"] > 0).all() and (thr["items"] > 0).all()

    assert "QUICK MODE" in report and "## Machine" in report and cpu_model() in report
    assert "Goal: peak RSS below 3 GB with the cache: met" in report and "EXTRAPOLATED" in report
    assert report.count("| yes |") == len(thr) // 2 and "| NO |" not in report
    assert not list(tmp_path.glob("skelrecall_cache_bench_*"))


def test_toothfairy_like_volumes_hold_two_canals(tmp_path):
    from skelrecall.data.layout import DatasetLayout
    from skelrecall.io import read_image

    folder = cache.toothfairy_like(tmp_path / "D", cases=3, shape=(34, 60, 60))
    layout = DatasetLayout.open(folder)
    assert layout.splits() == [{"train": ["tf_0000"], "val": ["tf_0001", "tf_0002"]}]
    image, _ = read_image(layout.image_files("tf_0000")[0])
    label, _ = read_image(layout.label_file("tf_0000"))
    assert image.dtype == np.float32 and image.shape == label.shape == (34, 60, 60)
    assert set(np.unique(label)) == {0, 1} and 0.001 < label.mean() < 0.05
    assert image[label == 1].mean() < image[label == 0].mean() - 300  # the canal is darker
    assert math.isclose(cache.folder_bytes(folder / "imagesTr"), 3 * (image.nbytes + 128), rel_tol=0.01)
