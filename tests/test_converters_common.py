"""Shared converter machinery: splits, hold-outs, staging, dataset configs agreeing with the code."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from skelrecall.data.converters import CONVERTERS, FOLDERS, common, cracks, drive, roads, toothfairy, topcow
from skelrecall.data.synthetic import canal3d, cow3d

REPO = Path(__file__).resolve().parents[1]


def test_kfold_is_a_deterministic_partition():
    ids = [f"c{i:02d}" for i in range(23)]
    folds = common.kfold_splits(reversed(ids), 5)
    assert folds == common.kfold_splits(ids, 5)
    assert sorted(sum((f["val"] for f in folds), [])) == ids
    assert all(set(f["train"]) | set(f["val"]) == set(ids) and not set(f["train"]) & set(f["val"]) for f in folds)
    assert sorted(len(f["val"]) for f in folds) == [4, 4, 5, 5, 5]
    assert folds != common.kfold_splits(ids, 5, seed=1)


def test_kfold_keeps_groups_together_and_holdout_by_group():
    cases = [f"p{i}_{m}" for i in range(10) for m in ("ct", "mr")]
    groups = {c: c.split("_")[0] for c in cases}
    for f in common.kfold_splits(cases, 5, groups=groups):
        assert not {groups[c] for c in f["train"]} & {groups[c] for c in f["val"]}
    test = common.holdout(groups, 0.2)
    assert len(test) == 4 and len({groups[c] for c in test}) == 2
    assert test == common.holdout(groups, 0.2)


def test_staging_removes_partial_folder_on_error(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with common.Staging(out, {"a": 1}) as st:
            (st.tmp / "x").write_text("half")
            raise RuntimeError("boom")
    assert not out.exists() and not (tmp_path / "ds.partial").exists()


def test_binary_mask_rules(tmp_path):
    p = tmp_path / "m.png"
    assert common.binary_mask(np.array([[0, 255]], np.uint8), p).tolist() == [[0, 1]]
    assert common.binary_mask(np.array([[0, 1]], np.uint8), p).tolist() == [[0, 1]]
    with pytest.raises(common.ConversionError, match="m.png: unexpected label values \\[0, 7\\]"):
        common.binary_mask(np.array([[0, 7]], np.uint8), p)
    assert common.binary_mask(np.array([[0, 200]], np.uint8), p, threshold=128).tolist() == [[0, 1]]


def test_topcow_remap_lut():
    lab = np.array([0, 1, 12, 15], np.uint8)
    assert topcow.remap_multiclass(lab).tolist() == [0, 1, 12, 13]


@pytest.mark.parametrize("name", sorted(CONVERTERS) + ["synthetic_canal", "synthetic_cow", "synthetic_cow_binary"])
def test_dataset_configs_match_the_code(name):
    cfg = yaml.safe_load((REPO / "configs" / "dataset" / f"{name}.yaml").read_text())
    keys = {
        "name",
        "folder",
        "dims",
        "in_channels",
        "num_classes",
        "ignore_label",
        "normalization",
        "evaluation",
        "patch_size",
        "batch_size",
        "create",
    }
    assert keys <= set(cfg) and cfg["name"] == name
    assert cfg["normalization"] in ("zscore", "ct") and cfg["evaluation"] in ("test_set", "cross_validation")
    assert len(cfg["patch_size"]) == cfg["dims"]
    code_labels = {
        "synthetic_canal": canal3d.LABELS,
        "synthetic_cow": cow3d.LABELS,
        "synthetic_cow_binary": {"background": 0, "vessel": 1},
        "drive": drive.LABELS,
        "roads": roads.LABELS,
        "cracks": cracks.LABELS,
        "toothfairy": toothfairy.LABELS,
        "topcow_multiclass": topcow.MULTICLASS_LABELS,
        "topcow_binary": topcow.BINARY_LABELS,
    }
    folder = {
        "synthetic_canal": canal3d.FOLDER,
        "synthetic_cow": cow3d.FOLDER,
        "synthetic_cow_binary": cow3d.BINARY_FOLDER,
    }.get(name) or FOLDERS[name]
    assert cfg["folder"] == folder
    assert cfg["num_classes"] == len(code_labels[name])  # the labels themselves live in dataset.json only
    assert name in cfg["create"]
