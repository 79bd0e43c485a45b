"""Massachusetts Roads converter on tiny fake downloads in the three supported layouts."""

import json

import numpy as np
import pytest
from PIL import Image

from skelrecall.data.converters import CONVERTERS, ConversionError, roads
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import ROADS_S as S
from .fake_downloads import fake_roads as _fake


@pytest.mark.parametrize(
    "layout,expected", [("original", "original"), ("tiff", "kaggle_tiff"), ("png", "kaggle_png"), ("ideal", "ideal")]
)
def test_roads_layouts_and_nodata_ignore(tmp_path, layout, expected):
    raw = _fake(tmp_path / "raw", layout, unlabelled=2 if layout == "ideal" else 0)
    out = CONVERTERS["roads"](raw, tmp_path / "Dataset801_Roads")
    ds = DatasetLayout.open(out)
    n_train = 6 + (1 if layout != "ideal" else 0)
    assert len(ds.cases("Tr")) == n_train and len(ds.cases("Ts")) == 2
    meta = ds.meta
    assert meta["labels"] == {"background": 0, "road": 1, "ignore": 2}
    assert meta["source_layout"] == expected and meta["numTraining"] == n_train
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    case = ds.cases("Tr")[0]
    img, _ = read_image(ds.image_files(case)[0])
    lab, _ = read_image(ds.label_file(case))
    assert img.shape == (S, S, 3) and lab.shape == (S, S)
    assert (lab[:15, :15] == 2).all()  # whole no-data block ignored, road inside included
    assert (lab[30, 15:] == 1).all()  # road through the 4-px white patch kept
    assert set(np.unique(lab[15:])) == {0, 1}
    splits = ds.splits()
    assert len(splits) == 5 and sorted(sum((f["val"] for f in splits), [])) == ds.cases("Tr")
    if layout != "ideal":
        assert any("valid" in c for c in ds.cases("Tr"))


def test_roads_nodata_background_and_keep(tmp_path):
    raw = _fake(tmp_path / "raw", "original")
    out = roads.convert(raw, tmp_path / "bg", nodata="background")
    ds = DatasetLayout.open(out)
    lab, _ = read_image(ds.label_file(ds.cases("Tr")[0]))
    assert ds.meta["labels"] == {"background": 0, "road": 1}
    assert (lab[:15, :15] == 0).all() and lab[15:].max() == 1
    out = roads.convert(raw, tmp_path / "keep", nodata="keep")
    lab, _ = read_image(DatasetLayout(out).label_file(ds.cases("Tr")[0]))
    assert lab[:15, :15].max() == 1


def test_roads_nodata_mask_recipe():
    img = np.zeros((30, 30, 3), np.uint8)
    img[2:20, 2:20] = 255
    img[8:10, 8:10] = 17  # a hole inside the no-data block is filled
    img[25:27, 25:27] = 255  # small white component dropped
    mask = roads.nodata_mask(img, min_component=50)
    assert mask[2:20, 2:20].all() and not mask[25:27, 25:27].any() and mask.sum() == 18 * 18


def test_roads_bad_downloads(tmp_path):
    raw = _fake(tmp_path / "raw", "original")
    sat = raw / "mass_roads" / "train" / "sat"
    lab_dir = raw / "mass_roads" / "train" / "map"
    victim = sorted(lab_dir.iterdir())[1]
    data = victim.read_bytes()
    victim.unlink()
    with pytest.raises(ConversionError, match=victim.stem):
        roads.convert(raw, tmp_path / "ds")
    victim.write_bytes(data)
    img_file = sorted(sat.iterdir())[2]
    good = img_file.read_bytes()
    img_file.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConversionError, match=img_file.name):
        roads.convert(raw, tmp_path / "ds")
    img_file.write_bytes(good)
    Image.fromarray(np.full((S, S), 7, np.uint8)).save(victim)
    with pytest.raises(ConversionError, match=f"{victim.name}: unexpected label values"):
        roads.convert(raw, tmp_path / "ds")
    Image.fromarray(np.zeros((S, S + 2), np.uint8)).save(victim)
    with pytest.raises(ConversionError, match=victim.name):
        roads.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_roads_failed_rerun_keeps_previous_dataset(tmp_path):
    raw = _fake(tmp_path / "raw", "original")
    out = roads.convert(raw, tmp_path / "ds")
    before = json.loads((out / "dataset.json").read_text())
    victim = sorted((raw / "mass_roads" / "test" / "map").iterdir())[0]
    victim.unlink()
    with pytest.raises(ConversionError):
        roads.convert(raw, tmp_path / "ds", nodata="background", overwrite=True)
    assert json.loads((out / "dataset.json").read_text()) == before
    assert len(DatasetLayout(out).cases("Ts")) == 2
