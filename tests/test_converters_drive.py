"""DRIVE converter on a tiny fake download in the release's layout (tif images, gif labels/masks)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skelrecall.data.converters import CONVERTERS, ConversionError, drive
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import DRIVE_H as H
from .fake_downloads import DRIVE_W as W
from .fake_downloads import fake_drive as _fake_drive

REPO = Path(__file__).resolve().parents[1]


def test_drive_converts_layout_labels_fov_and_splits(tmp_path, capsys):
    raw = _fake_drive(tmp_path / "raw")
    out = CONVERTERS["drive"](raw, tmp_path / "Dataset802_DRIVE")
    layout = DatasetLayout.open(out)
    assert layout.cases("Tr") == [f"drive_{i}" for i in range(21, 41)]
    assert layout.cases("Ts") == ["drive_01", "drive_02"]
    meta = layout.meta
    assert meta["labels"] == {"background": 0, "vessel": 1}
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert meta["numTraining"] == 20 and meta["file_ending"] == ".png"
    img, _ = read_image(layout.image_files("drive_25")[0])
    lab, _ = read_image(layout.label_file("drive_25"))
    assert img.shape == (H, W, 3) and lab.shape == (H, W)
    assert set(np.unique(lab)) == {0, 1}  # 255 -> 1
    assert lab[:, 25 % W].all() and lab.sum() == H
    fov, _ = read_image(out / "masksTr" / "drive_25.png")
    assert fov.shape == (H, W) and fov[0, 0] == 0 and fov.sum() == H * W - 1
    splits = layout.splits()
    committed = json.loads((REPO / "data" / "splits" / "drive.json").read_text())
    assert splits == committed == drive.splits()
    assert len(splits) == 5 and all(len(f["val"]) == 4 for f in splits)
    assert not list(tmp_path.glob("*.partial"))
    assert "20 training + 2 test" in capsys.readouterr().out


def test_drive_rerun_is_idempotent(tmp_path):
    raw = _fake_drive(tmp_path / "raw", test_ids=())
    out = drive.convert(raw, tmp_path / "ds")
    stamp = (out / "labelsTr" / "drive_21.png").stat().st_mtime_ns
    assert drive.convert(raw, tmp_path / "ds") == out
    assert (out / "labelsTr" / "drive_21.png").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        drive.convert(raw, tmp_path / "ds", include_test=False)
    drive.convert(raw, tmp_path / "ds", include_test=False, overwrite=True)
    assert json.loads((out / "dataset.json").read_text())["conversion"]["include_test"] is False


def test_drive_missing_label_names_file(tmp_path):
    raw = _fake_drive(tmp_path / "raw", test_ids=())
    (raw / "DRIVE" / "training" / "1st_manual" / "23_manual1.gif").unlink()
    with pytest.raises(ConversionError, match="23_manual1.gif"):
        drive.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_drive_truncated_image_names_file(tmp_path):
    raw = _fake_drive(tmp_path / "raw", test_ids=())
    path = raw / "DRIVE" / "training" / "images" / "30_training.tif"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ConversionError, match="30_training.tif"):
        drive.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_drive_shape_mismatch_and_bad_values_name_file(tmp_path):
    raw = _fake_drive(tmp_path / "raw", test_ids=())
    bad = raw / "DRIVE" / "training" / "1st_manual" / "22_manual1.gif"
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(bad)
    with pytest.raises(ConversionError, match="22_manual1.gif"):
        drive.convert(raw, tmp_path / "ds")
    values = np.zeros((H, W), np.uint8)
    values[0, :3] = [0, 128, 255]
    Image.fromarray(values).save(bad)
    with pytest.raises(ConversionError, match=r"22_manual1.gif: unexpected label values"):
        drive.convert(raw, tmp_path / "ds")
