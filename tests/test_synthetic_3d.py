"""Synthetic 3D datasets: synthetic_canal (binary, CBCT-like), synthetic_cow (13 classes, MRA-like) and
synthetic_cow_binary (the same volumes, segments merged)."""

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from skelrecall.data.layout import DatasetLayout
from skelrecall.data.synthetic import canal3d, cow3d, get_generator
from skelrecall.io import read_image

SMALL = {"shape": (32, 64, 64)}


@pytest.fixture(scope="module")
def canal_ds(tmp_path_factory):
    return get_generator("synthetic_canal")(
        tmp_path_factory.mktemp("c") / "Dataset902_SyntheticCanal", seed=3, num_train=5, num_test=2, **SMALL
    )


@pytest.fixture(scope="module")
def cow_ds(tmp_path_factory):
    return get_generator("synthetic_cow")(
        tmp_path_factory.mktemp("w") / "Dataset903_SyntheticCoW", seed=3, num_train=5, num_test=2, **SMALL
    )


def test_canal_layout_and_content(canal_ds):
    ds = DatasetLayout.open(canal_ds)
    assert len(ds.cases("Tr")) == 5 and len(ds.cases("Ts")) == 2
    assert ds.meta["labels"] == {"background": 0, "canal": 1} and ds.file_ending == ".nii.gz"
    assert len(ds.splits()) == 5
    for case in ds.cases("Tr"):
        img, meta = read_image(ds.image_files(case)[0])
        lab, _ = read_image(ds.label_file(case))
        assert img.shape == lab.shape == (32, 64, 64) and img.dtype == np.int16
        assert np.allclose(np.diag(meta["affine"])[:3], canal3d.CanalStyle().spacing)
        assert set(np.unique(lab)) == {0, 1}
        assert 1 <= cc3d.connected_components(lab, connectivity=26).max() <= 2  # one or two canals
        assert ndimage.distance_transform_edt(lab).max() <= 2.5  # thin: a few voxels wide
        assert img[lab == 1].mean() < img[ndimage.binary_dilation(lab, iterations=2) & (lab == 0)].mean()


def test_canal_has_low_contrast_stretches():
    rng = np.random.default_rng(0)
    style = canal3d.CanalStyle(
        p_two=0.0, noise=(0.0, 0.0), stretches=(1, 1), low_contrast=(0.1, 0.1), stretch_length=(0.2, 0.2)
    )
    img, lab = canal3d.render(rng, style)
    # mean canal intensity per coronal slab along y: one stretch is almost as bright as bone
    Y = style.shape[1]
    slab = [img[:, y][lab[:, y] > 0].mean() for y in range(Y // 10, Y - Y // 10) if lab[:, y].any()]
    assert max(slab) - min(slab) > 300


def test_cow_layout_labels_and_thin_communicating_segments(cow_ds):
    ds = DatasetLayout.open(cow_ds)
    assert list(ds.meta["labels"].values()) == list(range(14)) and ds.meta["labels"]["Acom"] == 10
    for case in ds.cases("Tr") + ds.cases("Ts"):
        lab, _ = read_image(ds.label_file(case, "Tr" if "_tr_" in case else "Ts"))
        assert lab.dtype == np.uint8 and set(np.unique(lab)) <= set(range(14))
        assert {1, 2, 3, 4, 5, 6, 7, 10, 11, 12} <= set(np.unique(lab))  # the always-present segments
        acom = lab == 10
        assert not ndimage.binary_erosion(acom).any()  # one erosion removes Acom: easy to break


def test_cow_tree_is_connected_when_pcoms_exist():
    rng = np.random.default_rng(7)
    img, lab = cow3d.render(rng, cow3d.CowStyle(p_no_pcom=0.0, p_third_a2=1.0))
    assert set(np.unique(lab)) == set(range(14))
    assert cc3d.connected_components(lab > 0, connectivity=26).max() == 1
    assert img[lab > 0].mean() > 2 * img[lab == 0].mean()  # bright vessels, MRA-like


@pytest.mark.parametrize("module", [canal3d, cow3d])
def test_render_is_deterministic(module):
    a = module.render(np.random.default_rng([1, 0, 4]))
    b = module.render(np.random.default_rng([1, 0, 4]))
    c = module.render(np.random.default_rng([2, 0, 4]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_generate_is_idempotent_and_refuses_other_params(canal_ds):
    stamp = (canal_ds / "dataset.json").stat().st_mtime_ns
    assert canal3d.generate(canal_ds, seed=3, num_train=5, num_test=2, **SMALL) == canal_ds
    assert (canal_ds / "dataset.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        canal3d.generate(canal_ds, seed=4, num_train=5, num_test=2, **SMALL)


def test_cow_binary_is_the_multiclass_dataset_merged(cow_ds, tmp_path):
    binary = get_generator("synthetic_cow_binary")(
        tmp_path / cow3d.BINARY_FOLDER, seed=3, num_train=5, num_test=2, progress=False, **SMALL
    )
    multi, merged = DatasetLayout.open(cow_ds), DatasetLayout.open(binary)
    assert merged.meta["labels"] == {"background": 0, "vessel": 1} and merged.cases("Ts") == multi.cases("Ts")
    for case in multi.cases("Ts"):
        lab_m, _ = read_image(multi.label_file(case, "Ts"))
        lab_b, _ = read_image(merged.label_file(case, "Ts"))
        img_m, _ = read_image(multi.image_files(case, "Ts")[0])
        img_b, _ = read_image(merged.image_files(case, "Ts")[0])
        assert np.array_equal(lab_b, (lab_m > 0).astype(np.uint8)) and np.array_equal(img_m, img_b)
