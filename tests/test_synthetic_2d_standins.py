"""Synthetic 2D stand-ins: synthetic_roads, synthetic_drive, synthetic_cracks."""

import json

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from skelrecall.data.converters.roads import nodata_mask
from skelrecall.data.layout import DatasetLayout
from skelrecall.data.synthetic import GENERATORS, cracks2d, drive2d, get_generator, roads2d
from skelrecall.data.synthetic.draw2d import paint
from skelrecall.data.synthetic.writer import SPLIT_CODES
from skelrecall.io import read_image

MODULES = {"roads": roads2d, "drive": drive2d, "cracks": cracks2d}
GENERATE = {kind: m.generate for kind, m in MODULES.items()}
RENDER = {kind: m.render for kind, m in MODULES.items()}
STYLE = {"roads": roads2d.RoadStyle, "drive": drive2d.DriveStyle, "cracks": cracks2d.CrackStyle}
LABELS = {
    "roads": {"background": 0, "road": 1, "ignore": 2},
    "drive": {"background": 0, "vessel": 1},
    "cracks": {"background": 0, "crack": 1},
}
N_RENDER = 10  # full-size (256 x 256) renders per dataset for the statistics below


@pytest.fixture(scope="module")
def samples():
    """``N_RENDER`` default-style renders of each kind (seed 5, training split)."""
    return {k: [fn(np.random.default_rng([5, 0, i])) for i in range(N_RENDER)] for k, fn in RENDER.items()}


def mean_width(fg: np.ndarray) -> float:
    """Mean structure width: area / centre-line length (skeleton pixel count)."""
    return fg.sum() / max(skeletonize(fg).sum(), 1)


def loops(fg: np.ndarray) -> int:
    """beta1 of an 8-connected foreground: 4-connected background components not touching the border."""
    lab, n = ndimage.label(~fg)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return len(set(range(1, n + 1)) - set(border.tolist()))


@pytest.mark.parametrize("kind", ["roads", "drive", "cracks"])
def test_layout_dataset_json_and_determinism(kind, tmp_path):
    out = GENERATE[kind](tmp_path / kind, seed=4, num_train=5, num_test=2, size=96, progress=False)
    ds = DatasetLayout.open(out)
    meta = ds.meta
    assert meta["labels"] == LABELS[kind] and meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert meta["file_ending"] == ".png" and meta["numTraining"] == 5 and meta["synthetic"]["size"] == 96
    assert len(ds.cases("Tr")) == 5 and len(ds.cases("Ts")) == 2
    splits = ds.splits()
    assert len(splits) == 5 and sorted(c for f in splits for c in f["val"]) == ds.cases("Tr")
    style = STYLE[kind](size=96)
    for split in ("Tr", "Ts"):
        for i, case in enumerate(ds.cases(split)):
            img, _ = read_image(ds.image_files(case, split)[0])
            lab, _ = read_image(ds.label_file(case, split))
            assert img.shape == (96, 96, 3) and img.dtype == np.uint8
            assert lab.shape == (96, 96) and lab.dtype == np.uint8
            assert set(np.unique(lab)) <= set(LABELS[kind].values()) and (lab == 1).any()
            # the files are exactly the render of (seed, split, index)
            ref_img, ref_lab, extra = RENDER[kind](np.random.default_rng([4, SPLIT_CODES[split], i]), style)
            assert np.array_equal(img, ref_img) and np.array_equal(lab, ref_lab)
            if kind == "drive":
                fov, _ = read_image(out / f"masks{split}" / f"{case}.png")
                assert np.array_equal(fov, extra["masks"]) and set(np.unique(fov)) == {0, 1}
    if kind == "drive":
        assert meta["fov_masks"] == {"Tr": "masksTr", "Ts": "masksTs"}
    # idempotent with the same parameters, refuses other ones unless overwrite=True
    stamp = (out / "dataset.json").stat().st_mtime_ns
    assert GENERATE[kind](out, seed=4, num_train=5, num_test=2, size=96, progress=False) == out
    assert (out / "dataset.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        GENERATE[kind](out, seed=5, num_train=5, num_test=2, size=96, progress=False)
    with pytest.raises(TypeError, match="unknown"):
        GENERATE[kind](tmp_path / "x", size=96, colour="red", progress=False)


def test_registry_points_at_one_module_per_stand_in():
    for kind, module in MODULES.items():
        assert GENERATORS[f"synthetic_{kind}"] == f"{module.__name__}:generate"
        assert get_generator(f"synthetic_{kind}") is module.generate


def test_render_is_deterministic_in_seed(samples):
    for kind, fn in RENDER.items():
        again = fn(np.random.default_rng([5, 0, 0]))
        assert np.array_equal(again[0], samples[kind][0][0]) and np.array_equal(again[1], samples[kind][0][1])
        assert not np.array_equal(fn(np.random.default_rng([6, 0, 0]))[1], again[1])


def test_disk_paints_exact_widths():
    for w in range(1, 8):
        pts = np.stack([np.full(40, 20.0), np.arange(10, 50.0)], 1)
        width_map = paint((41, 60), pts, np.full(40, w))
        assert (width_map > 0)[:, 30].sum() == w and set(np.unique(width_map)) == {0, w}


def test_roads(samples):
    widths, n_loops, nodata_images, occluded = [], [], 0, []
    for img, lab, extra in samples["roads"]:
        assert img.shape == (256, 256, 3) and extra == {}
        assert set(np.unique(lab)) <= {0, 1, 2}
        # label 2 is exactly the pure-white no-data region, as the Massachusetts Roads converter finds it
        assert np.array_equal(nodata_mask(img), lab == 2)
        assert not np.all(img[lab != 2] == 255, axis=-1).any()
        nodata_images += bool((lab == 2).any())
        road = lab == 1
        widths.append(mean_width(road))
        n_loops.append(loops(road))
        rgb = img[road].astype(int)  # tree canopy over the road: dark green pixels the label keeps
        occluded.append(np.mean((rgb[:, 1] > 1.1 * rgb[:, 0]) & (rgb.sum(1) < 300)))
    assert all(3.0 <= w <= 7.0 for w in widths), widths
    assert sum(b > 0 for b in n_loops) >= 0.8 * N_RENDER and np.median(n_loops) >= 3, n_loops
    assert all(o > 0.005 for o in occluded), occluded
    assert nodata_images >= 1
    # a no-data image at will: style with p_nodata=1
    img, lab, _ = roads2d.render(np.random.default_rng(0), roads2d.RoadStyle(p_nodata=1.0))
    assert 0.05 < (lab == 2).mean() < 0.5 and np.all(img[lab == 2] == 255)


def test_drive(samples):
    widths, n_loops, max_width, thin_fraction = [], [], [], []
    for img, lab, extra in samples["drive"]:
        fov = extra["masks"].astype(bool)
        assert set(np.unique(lab)) == {0, 1} and not lab[~fov].any()
        assert img[~fov].max() <= 5 and img[fov].mean() > 60  # black outside the circular FOV
        assert img[fov][:, 0].mean() > img[fov][:, 1].mean() > img[fov][:, 2].mean()  # reddish fundus
        vessel = lab == 1
        widths.append(mean_width(vessel))
        n_loops.append(loops(vessel))
        dt = ndimage.distance_transform_edt(vessel)
        max_width.append(2 * dt.max() - 1)
        # vessels are darker than their surroundings in green; wide ones more than thin ones
        green = img[..., 1].astype(float)
        ring = ndimage.binary_dilation(vessel, iterations=3) & ~vessel & fov
        thick = vessel & (ndimage.grey_dilation(dt, size=5) >= 2.5)
        thin = vessel & (ndimage.grey_dilation(dt, size=3) <= 1)
        assert green[vessel].mean() < green[ring].mean()
        thick_ring = ndimage.binary_dilation(thick, iterations=3) & ~vessel & fov
        thin_ring = ndimage.binary_dilation(thin, iterations=3) & ~vessel & fov
        assert (green[thick_ring].mean() - green[thick].mean()) > (green[thin_ring].mean() - green[thin].mean())
        thin_fraction.append(thin.sum() / vessel.sum())
    assert all(1.0 <= w <= 6.0 for w in widths), widths
    assert min(max_width) >= 4.0, max_width  # ~6 px at the root
    assert min(thin_fraction) > 0.01, thin_fraction  # thin (2 px, the thinnest) vessels in every image
    assert sum(b == 0 for b in n_loops) >= 0.8 * N_RENDER, n_loops  # trees, (almost) no loops


def test_cracks(samples):
    for img, lab, extra in samples["cracks"]:
        assert img.shape == (256, 256, 3) and extra == {}
        assert set(np.unique(lab)) == {0, 1}
        crack = lab == 1
        assert 2.0 <= mean_width(crack) <= 4.0
        local = 2 * ndimage.distance_transform_edt(crack)[skeletonize(crack)] - 1  # width at the centre line
        assert np.median(local) <= 2 and np.percentile(local, 95) <= 5.01  # 2-4 px (1 px tips, wider at crossings)
        grey = img.astype(float).mean(-1)
        ring = ndimage.binary_dilation(crack, iterations=3) & ~crack
        contrast = grey[ring].mean() - grey[crack].mean()
        assert 3 < contrast < 0.4 * grey[ring].mean()  # darker, but low contrast
        assert np.ptp(img.astype(int), axis=-1).mean() < 20  # grey concrete (a faint tint at most)


def test_dataset_json_is_valid_json_with_ignore(tmp_path):
    out = roads2d.generate(tmp_path / "r", num_train=5, num_test=0, size=64, p_nodata=1.0, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"]["ignore"] == 2 and meta["name"] == "Dataset911_SyntheticRoads"
    labs = [read_image(p)[0] for p in sorted((out / "labelsTr").glob("*.png"))]
    assert all((lab == 2).any() for lab in labs)
