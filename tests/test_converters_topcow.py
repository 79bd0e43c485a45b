"""TopCoW converters (binary and multi-class) on a tiny fake release in NIfTI."""

import nibabel as nib
import numpy as np
import pytest

from skelrecall.data.converters import CONVERTERS, ConversionError, topcow
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import TOPCOW_AFFINE as AFFINE
from .fake_downloads import TOPCOW_SHAPE as SHAPE
from .fake_downloads import fake_topcow as _fake
from .fake_downloads import topcow_label as _label


def test_topcow_multiclass_remaps_15_to_13(tmp_path):
    raw = _fake(tmp_path / "raw", patients=range(1, 8))
    ds = DatasetLayout.open(CONVERTERS["topcow_multiclass"](raw, tmp_path / "Dataset806_TopCoWMulticlass"))
    tr, ts = ds.cases("Tr"), ds.cases("Ts")
    assert len(tr) == 12 and len(ts) == 2  # round(0.2 * 7) = 1 patient, both modalities
    assert ts[0].replace("_ct_", "_mr_") == ts[1]
    labels = ds.meta["labels"]
    assert list(labels.values()) == list(range(14)) and labels["3rd-A2"] == 13 and labels["Acom"] == 10
    assert ds.meta["source_label_values"]["3rd-A2"] == 15
    assert ds.meta["modality"][tr[0]] in ("ct", "mr")
    lab, meta = read_image(ds.label_file(tr[0]))
    assert sorted(np.unique(lab).tolist()) == list(range(14))
    assert (lab == 13).sum() == (_label() == 15).sum() and np.allclose(meta["affine"], AFFINE)
    img, imeta = read_image(ds.image_files(tr[0])[0])
    assert img.shape == SHAPE[::-1] and np.allclose(imeta["affine"], AFFINE)
    for fold in ds.splits():  # a patient's CTA and MRA stay on the same side
        pats = lambda cases: {c.rsplit("_", 1)[1] for c in cases}
        assert not pats(fold["train"]) & pats(fold["val"])


def test_topcow_binary(tmp_path):
    raw = _fake(tmp_path / "raw", patients=range(1, 8))
    ds = DatasetLayout(CONVERTERS["topcow_binary"](raw, tmp_path / "bin"))
    multi = DatasetLayout(topcow.convert(raw, tmp_path / "multi"))
    assert ds.meta["labels"] == {"background": 0, "vessel": 1}
    assert ds.cases("Ts") == multi.cases("Ts")  # same held-out patients for both
    lab, _ = read_image(ds.label_file(ds.cases("Tr")[0]))
    assert set(np.unique(lab)) == {0, 1} and lab.sum() == (_label() > 0).sum()


def test_topcow_bad_downloads(tmp_path):
    raw = _fake(tmp_path / "raw", patients=range(1, 8))
    labs = raw / "TopCoW2023_Data_Release" / "cow_seg_labelsTr"
    bad = labs / "topcow_mr_whole_003.nii.gz"
    nib.save(nib.Nifti1Image(np.full(SHAPE, 14, np.uint8), AFFINE), bad)
    with pytest.raises(ConversionError, match="topcow_mr_whole_003.nii.gz: unexpected label values \\[14\\]"):
        topcow.convert(raw, tmp_path / "ds")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), np.diag([0.5, 0.4, 0.6, 1.0])), bad)
    with pytest.raises(ConversionError, match="topcow_mr_whole_003.nii.gz: geometry"):
        topcow.convert(raw, tmp_path / "ds")
    nib.save(nib.Nifti1Image(np.zeros((10, 9, 7), np.uint8), AFFINE), bad)  # nibabel order (x, y, z)
    with pytest.raises(ConversionError, match="topcow_mr_whole_003.nii.gz: label shape"):
        topcow.convert(raw, tmp_path / "ds")
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="topcow_mr_whole_003.nii.gz"):
        topcow.convert(raw, tmp_path / "ds")
    bad.unlink()
    with pytest.raises(ConversionError, match="topcow_mr_whole_003.nii.gz: label missing"):
        topcow.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
