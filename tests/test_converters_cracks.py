"""Cracks converter on a tiny fake download in the documented generic image/mask layout."""

import numpy as np
import pytest
from PIL import Image

from skelrecall.data.converters import CONVERTERS, ConversionError, cracks
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import CRACKS_S as S
from .fake_downloads import fake_cracks as _fake


def test_cracks_generic_layout(tmp_path):
    raw = _fake(tmp_path / "raw", suffix="_mask")
    out = CONVERTERS["cracks"](raw, tmp_path / "Dataset803_Cracks")
    ds = DatasetLayout.open(out)
    assert len(ds.cases("Tr")) == 8 and ds.cases("Ts") == []
    assert ds.meta["labels"] == {"background": 0, "crack": 1} and ds.meta["numTraining"] == 8
    case = "cracks_cracks_test_test002"
    assert case in ds.cases("Tr")
    img, _ = read_image(ds.image_files(case)[0])
    lab, _ = read_image(ds.label_file(case))
    assert img.shape == (S, S, 3) and lab.dtype == np.uint8
    assert lab[4].all() and lab.sum() == S
    splits = ds.splits()
    assert len(splits) == 5 and sorted(sum((f["val"] for f in splits), [])) == ds.cases("Tr")


def test_cracks_jpeg_masks_are_thresholded_and_grey_images_become_rgb(tmp_path):
    raw = _fake(tmp_path / "raw", parts=("all",), n=5, mask_ext=".jpg")
    grey = raw / "cracks" / "all" / "images" / "all000.jpg"
    Image.fromarray(np.full((S, S), 90, np.uint8)).save(grey)
    out = cracks.convert(raw, tmp_path / "ds")
    ds = DatasetLayout(out)
    lab, _ = read_image(ds.label_file("cracks_all001"))
    img, _ = read_image(ds.image_files("cracks_all000")[0])
    assert set(np.unique(lab)) <= {0, 1} and lab[3].mean() > 0.8 and lab[8:].sum() == 0
    assert img.shape == (S, S, 3)


def test_cracks_bad_downloads(tmp_path):
    raw = _fake(tmp_path / "raw", parts=("all",), n=5)
    masks = raw / "cracks" / "all" / "masks"
    (masks / "all001.png").unlink()
    with pytest.raises(ConversionError, match="all001"):
        cracks.convert(raw, tmp_path / "ds")
    Image.fromarray(np.full((S, S), 3, np.uint8)).save(masks / "all001.png")
    with pytest.raises(ConversionError, match="all001.png: unexpected label values"):
        cracks.convert(raw, tmp_path / "ds")
    Image.fromarray(np.zeros((S, 2 * S), np.uint8)).save(masks / "all001.png")
    with pytest.raises(ConversionError, match="all001.png"):
        cracks.convert(raw, tmp_path / "ds")
    Image.fromarray(np.zeros((S, S), np.uint8)).save(masks / "all001.png")
    img = raw / "cracks" / "all" / "images" / "all004.jpg"
    img.write_bytes(img.read_bytes()[:200])
    with pytest.raises(ConversionError, match="all004.jpg"):
        cracks.convert(raw, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    with pytest.raises(ConversionError, match="no image/mask folder pair"):
        cracks.convert(masks, tmp_path / "ds2")
