"""``skelrecall-bench throughput`` in quick mode: both files written, every number positive."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from skelrecall.bench import cli, throughput
from skelrecall.bench.common import cpu_model

pytestmark = pytest.mark.slow  # end-to-end: runs in subprocesses or many training steps


def test_quick_throughput_writes_positive_numbers(tmp_path):
    cli.main(["throughput", "--quick", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "throughput.csv")
    report = (tmp_path / "throughput.md").read_text()

    train, loader = table[table["kind"] == "train"], table[table["kind"] == "loader"]
    names = set(train["name"])
    assert {"unet 2D, cpu width", "unet 2D, full width", "unet 3D, cpu width"} <= names
    assert names <= set(throughput.BACKBONES)
    assert ("hrnet w18 2D" in names) == throughput.hrnet_available()
    assert set(loader["dataset"]) == set(throughput.LOADERS)
    assert sorted(loader["name"].unique()) == ["PatchDataset skeleton=False", "PatchDataset skeleton=True"]
    assert len(loader) == 2 * len(throughput.LOADERS)
    for col in ("items", "wall_s", "cpu_s", "items_per_s", "samples_per_s", "batch"):
        assert (table[col] > 0).all(), col
    assert (train["params_m"] > 0).all()
    ratio = train["samples_per_s"] / train["items_per_s"]  # the CSV keeps 5 significant digits
    assert ((ratio - train["batch"]).abs() < 1e-3 * train["batch"]).all()

    rows = throughput.summary(table)
    assert len(rows) == len(train)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float):
                assert math.isfinite(value) and value > 0, (row["backbone"], key, value)
        assert row["backbone"] in report
    assert "QUICK MODE" in report and "skeleton on/off" in report
    assert "## Machine" in report and cpu_model() in report and "same run" in report
