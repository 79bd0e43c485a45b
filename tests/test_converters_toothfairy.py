"""ToothFairy converter on tiny fake downloads of the 2023 (npy) and ToothFairy2 (mha) releases."""

import json
from pathlib import Path

import numpy as np
import pytest

from skelrecall.data.converters import CONVERTERS, ConversionError, toothfairy
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import TOOTHFAIRY_SHAPE as SHAPE
from .fake_downloads import fake_toothfairy_2023 as _fake_2023


def test_toothfairy_2023(tmp_path):
    raw = _fake_2023(tmp_path / "raw")
    out = CONVERTERS["toothfairy"](raw, tmp_path / "Dataset804_ToothFairy")
    ds = DatasetLayout.open(out)
    tr, ts = ds.cases("Tr"), ds.cases("Ts")
    assert len(tr) + len(ts) == 6 and len(ts) == 1  # 20 % of 6 dense patients, sparse ones skipped
    assert "toothfairy_P7" not in tr + ts
    assert ds.meta["labels"] == {"background": 0, "canal": 1} and ds.meta["file_ending"] == ".nii.gz"
    case = tr[0]
    img, imeta = read_image(ds.image_files(case)[0])
    lab, lmeta = read_image(ds.label_file(case))
    src = np.load(raw / "ToothFairy_Dataset" / "Dataset" / case.split("_")[1] / "data.npy")
    assert np.array_equal(img, src) and lab.shape == SHAPE and lab.sum() == 16
    assert np.allclose(imeta["affine"], np.diag([0.3, 0.3, 0.3, 1])) and np.allclose(lmeta["affine"], imeta["affine"])
    assert len(ds.splits()) == 5


def test_toothfairy_2023_uses_published_test_list(tmp_path):
    raw = _fake_2023(tmp_path / "raw", n_dense=7)
    (raw / "ToothFairy_Dataset" / "Dataset" / "splits.json").write_text(
        json.dumps({"train": [], "test": ["P2", "P5", "P9"]})
    )
    ds = DatasetLayout(toothfairy.convert(raw, tmp_path / "ds"))
    assert ds.cases("Ts") == ["toothfairy_P2", "toothfairy_P5"]  # P9 has no dense labels


def test_toothfairy_2023_bad_downloads(tmp_path):
    raw = _fake_2023(tmp_path / "raw")
    base = raw / "ToothFairy_Dataset" / "Dataset"
    (base / "P3" / "data.npy").write_bytes((base / "P3" / "data.npy").read_bytes()[:150])
    with pytest.raises(ConversionError, match="P3/data.npy"):
        toothfairy.convert(raw, tmp_path / "ds")
    np.save(base / "P3" / "data.npy", np.zeros((6, 8, 9), np.int16))
    with pytest.raises(ConversionError, match="P3/gt_alpha.npy: label shape"):
        toothfairy.convert(raw, tmp_path / "ds")
    np.save(base / "P3" / "data.npy", np.zeros(SHAPE, np.int16))
    np.save(base / "P3" / "gt_alpha.npy", np.full(SHAPE, 2, np.uint8))
    with pytest.raises(ConversionError, match="P3/gt_alpha.npy: unexpected label values"):
        toothfairy.convert(raw, tmp_path / "ds")
    (base / "P3" / "data.npy").unlink()
    with pytest.raises(ConversionError, match="P3/data.npy"):
        toothfairy.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def _fake_tf2(root: Path, n=6) -> Path:
    sitk = pytest.importorskip("SimpleITK")
    base = root / "Dataset112_ToothFairy2"
    (base / "imagesTr").mkdir(parents=True)
    (base / "labelsTr").mkdir(parents=True)
    labels = {
        "background": 0,
        "Lower Jawbone": 1,
        "Upper Jawbone": 2,
        "Left Inferior Alveolar Canal": 3,
        "Right Inferior Alveolar Canal": 4,
        "Left Maxillary Sinus": 5,
    }
    (base / "dataset.json").write_text(json.dumps({"labels": labels, "channel_names": {"0": "CT"}}))
    rng = np.random.default_rng(4)
    for i in range(1, n + 1):
        arr = rng.integers(0, 2000, SHAPE).astype(np.int16)  # SimpleITK order (z, y, x)
        lab = np.zeros(SHAPE, np.uint8)
        lab[1, 2, :] = 1  # jawbone -> background
        lab[3, 4, 2:8] = 3  # left IAC
        lab[4, 4, 2:8] = 4  # right IAC
        for a, name in ((arr, "imagesTr/ToothFairy2F_%03d_0000.mha"), (lab, "labelsTr/ToothFairy2F_%03d.mha")):
            img = sitk.GetImageFromArray(a)
            img.SetSpacing((0.3, 0.3, 0.4))
            img.SetOrigin((10.0, 20.0, 30.0))
            sitk.WriteImage(img, str(base / (name % i)))
    return root


def test_toothfairy2_merges_iac_labels_and_keeps_geometry(tmp_path):
    raw = _fake_tf2(tmp_path / "raw")
    ds = DatasetLayout(toothfairy.convert(raw, tmp_path / "ds"))
    assert len(ds.cases("Tr")) == 5 and len(ds.cases("Ts")) == 1
    case = ds.cases("Tr")[0]
    lab, meta = read_image(ds.label_file(case))
    img, imeta = read_image(ds.image_files(case)[0])
    assert lab.shape == SHAPE and img.shape == SHAPE  # (z, y, x) in memory, as SimpleITK gives it
    assert set(np.unique(lab)) == {0, 1} and lab.sum() == 12 and lab[1, 2].sum() == 0 and lab[3, 4, 2:8].all()
    assert np.allclose(np.abs(np.diag(meta["affine"])[:3]), [0.3, 0.3, 0.4])
    assert np.allclose(meta["affine"][:3, 3], [-10.0, -20.0, 30.0])  # LPS origin -> RAS
    assert np.allclose(meta["affine"], imeta["affine"]) and ds.meta["conversion"]["release"] == "2"


def test_toothfairy2_missing_and_bad_labels(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    raw = _fake_tf2(tmp_path / "raw")
    lab_path = raw / "Dataset112_ToothFairy2" / "labelsTr" / "ToothFairy2F_002.mha"
    lab_path.unlink()
    with pytest.raises(ConversionError, match="ToothFairy2F_002.mha: label missing"):
        toothfairy.convert(raw, tmp_path / "ds")
    bad = np.full(SHAPE, 9, np.uint8)
    img = sitk.GetImageFromArray(bad)
    img.SetSpacing((0.3, 0.3, 0.4))
    img.SetOrigin((10.0, 20.0, 30.0))
    sitk.WriteImage(img, str(lab_path))
    with pytest.raises(ConversionError, match="ToothFairy2F_002.mha: unexpected label values"):
        toothfairy.convert(raw, tmp_path / "ds")
    lab_path.write_bytes(lab_path.read_bytes()[:300])
    with pytest.raises(ConversionError, match="ToothFairy2F_002.mha"):
        toothfairy.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
