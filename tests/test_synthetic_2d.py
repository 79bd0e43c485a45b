"""The synthetic 2D dataset: deterministic, thin, branched, with loops, in the nnU-Net layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from skelrecall.data.synthetic.tubes2d import generate, render
from skelrecall.io import read_image


def test_render_is_deterministic_and_thin():
    a = render(np.random.default_rng([1, 0, 5]))
    b = render(np.random.default_rng([1, 0, 5]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    loops, widths = 0, []
    for i in range(12):
        image, label = render(np.random.default_rng([0, 0, i]))
        assert image.shape == label.shape == (256, 256) and image.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1} and 0.005 < label.mean() < 0.2
        # local width = 2 * distance to background on the medial axis
        dist = ndimage.distance_transform_edt(label)
        ridge = (dist > 0) & (dist == ndimage.maximum_filter(dist, 3))
        widths.extend(2 * dist[ridge])
        _, n = ndimage.label(np.pad(label == 0, 1, constant_values=True))
        loops += n - 1  # holes enclosed by the network
    assert np.percentile(widths, 90) <= 6.0 and np.median(widths) >= 1.0
    assert loops > 0


def test_generate_layout_idempotence_and_splits(tmp_path):
    out = generate(tmp_path / "Dataset901_Synthetic2D", seed=1, num_train=6, num_test=2, folds=3, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "structure": 1} and meta["numTraining"] == 6
    assert meta["file_ending"] == ".png" and meta["channel_names"] == {"0": "grey"}
    assert len(list((out / "imagesTr").glob("*_0000.png"))) == 6 and len(list((out / "labelsTs").glob("*.png"))) == 2
    image, _ = read_image(out / "imagesTr/synth_tr_0000_0000.png")
    assert image.shape == (256, 256)
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits) == 3 and sorted(sum((s["val"] for s in splits), [])) == [f"synth_tr_{i:04d}" for i in range(6)]
    stamp = (out / "dataset.json").stat().st_mtime
    assert generate(out, seed=1, num_train=6, num_test=2, folds=3, progress=False) == out
    assert (out / "dataset.json").stat().st_mtime == stamp  # same parameters: kept as is
    with pytest.raises(FileExistsError, match="other settings"):
        generate(out, seed=2, num_train=6, num_test=2, folds=3, progress=False)
    assert not (tmp_path / "Dataset901_Synthetic2D.partial").exists()
