"""Patch sampling, augmentation and the tubed skeleton of the augmented label patch."""

from __future__ import annotations

import numpy as np
import pytest

from skelrecall.data.datamodule import Case, PatchDataset, SegmentationDataModule, crop_patch, zscore
from skelrecall.data.layout import DatasetLayout
from skelrecall.skeleton import tubed_skeleton


def _nnunet_augmentation() -> dict:
    from omegaconf import OmegaConf

    from skelrecall.configs import compose

    return OmegaConf.to_container(compose().augmentation)


def _module(root, **kw):
    layout = DatasetLayout.open(root / "data/nnUNet_raw/Dataset901_Synthetic2D")
    options = dict(
        dims=2, patch_size=[64, 64], batch_size=2, iterations_per_epoch=4, augmentation=_nnunet_augmentation()
    )
    dm = SegmentationDataModule(layout, **{**options, **kw})
    dm.setup()
    return dm


def test_training_samples_carry_the_skeleton_of_their_augmented_label(tiny_root):
    dm = _module(tiny_root)
    assert len(dm.train_cases) == 8 and len(dm.val_cases) == 2  # fold 0 of 10 cases
    ds = dm.train_dataloader().dataset
    for i in range(12):
        s = ds[(0, i)]
        assert s["image"].shape == (1, 64, 64) and s["label"].shape == (1, 64, 64)
        label = s["label"][0].numpy()
        assert set(np.unique(label)) <= {0, 1}
        np.testing.assert_array_equal(s["skeleton"][0].numpy(), tubed_skeleton(label))


def test_foreground_oversampling(tiny_root):
    dm = _module(tiny_root, augmentation=None)
    always = PatchDataset(dm.train_cases, (32, 32), 1.0, augmentation=None, dims=2)
    assert all(always[(0, i)]["label"].sum() > 0 for i in range(40))
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "label", "skeleton"} and batch["image"].shape == (2, 1, 64, 64)


@pytest.mark.parametrize("cache", [False, True], ids=["in_memory", "cached"])
def test_patches_depend_only_on_seed_epoch_and_index(tiny_root, tmp_path, cache):
    """The same (epoch, i) gives the same patch whatever the workers or the order; epochs differ; in memory
    or read from the preprocessed cache (tests/test_cache.py: both give the same patches)."""
    import torch

    dm = _module(tiny_root, augmentation=_nnunet_augmentation(), cache=cache, cache_dir=tmp_path / "cache")
    ds = dm.train_dataloader().dataset
    first = [ds[(3, i)] for i in range(6)]
    torch.manual_seed(123)
    np.random.seed(7)  # process-wide generators play no part
    again = [ds[(3, i)] for i in reversed(range(6))][::-1]
    for a, b in zip(first, again):
        for key in a:
            assert torch.equal(a[key], b[key])
    other_epoch = ds[(4, 0)]
    assert not torch.equal(first[0]["image"], other_epoch["image"])
    # two loader workers give the batches of one process, in the same order
    dm_workers = _module(
        tiny_root, augmentation=_nnunet_augmentation(), num_workers=2, cache=cache, cache_dir=tmp_path / "cache"
    )
    single = [b["image"] for b in dm.train_dataloader()]
    multi = [b["image"] for b in dm_workers.train_dataloader()]
    assert len(single) == len(multi) == 4 and all(torch.equal(a, b) for a, b in zip(single, multi))


def test_label_values_outside_dataset_json_fail_naming_the_file(tiny_root, tmp_path):
    import shutil

    from PIL import Image

    from skelrecall.data.layout import DatasetLayoutError

    root = tmp_path / "Dataset901_Synthetic2D"
    shutil.copytree(tiny_root / "data/nnUNet_raw/Dataset901_Synthetic2D", root)
    layout = DatasetLayout.open(root)
    case = layout.splits()[0]["train"][0]
    label = np.asarray(Image.open(layout.label_file(case))).copy()
    label[0, 0] = 7
    Image.fromarray(label).save(layout.label_file(case))
    dm = SegmentationDataModule(layout, dims=2, patch_size=[64, 64], batch_size=2, iterations_per_epoch=4)
    with pytest.raises(DatasetLayoutError, match=rf"labelsTr/{case}\.png: label values \[7\]"):
        dm.setup()


def test_crop_pads_small_cases_and_centres_on_foreground():
    label = np.zeros((1, 10, 12), np.int16)
    label[0, 4, 5] = 1
    case = Case("c", np.ones((1, 10, 12), np.float32), label, {}, np.argwhere(label[0] > 0))
    rng = np.random.default_rng(0)
    image, lab = crop_patch(case, (16, 16), rng, force_fg=True)
    assert image.shape == (1, 16, 16) and lab.sum() == 1 and image.sum() == 120  # all 10x12 pixels inside
    _, lab = crop_patch(case, (4, 4), rng, force_fg=True)
    assert lab.sum() == 1


def test_zscore_and_bad_normalization(tiny_root):
    x = np.random.default_rng(0).normal(5, 3, (2, 20, 20)).astype(np.float32)
    z = zscore(x)
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="normalization"):
        _module(tiny_root, normalization="minmax")


def test_ignore_label_is_background_for_the_skeleton_and_oversampling():
    label = np.zeros((1, 32, 32), np.int16)
    label[0, 14:19, 2:30] = 1
    label[0, :, 20:] = np.where(label[0, :, 20:] == 1, 1, 2)  # an ignore region beside the bar
    case = Case("c", np.zeros((1, 32, 32), np.float32), label, {}, np.argwhere(label[0] == 1))
    ds = PatchDataset([case], (32, 32), 1.0, augmentation=None, dims=2, ignore_label=2)
    skeleton = ds[(0, 0)]["skeleton"][0].numpy()
    known = np.where(label[0] == 2, 0, label[0])
    np.testing.assert_array_equal(skeleton, tubed_skeleton(known))
    assert set(np.unique(skeleton)) == {0, 1}


def test_ct_normalization_uses_training_foreground_statistics():
    from skelrecall.data.datamodule import ct_normalize, ct_statistics

    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, 40, 40)).astype(np.float32)
    label = np.zeros((1, 40, 40), bool)
    label[0, 10:30, 10:30] = True
    image[0, 10:30, 10:30] = rng.normal(300, 50, (20, 20))  # foreground intensities
    stats = ct_statistics([image], [label], rng)
    fg = image[0, 10:30, 10:30]
    np.testing.assert_allclose(stats["low"], np.percentile(fg, 0.5), rtol=1e-6)
    np.testing.assert_allclose(stats["high"], np.percentile(fg, 99.5), rtol=1e-6)
    out = ct_normalize(image, stats)
    expected = (np.clip(image, stats["low"][0], stats["high"][0]) - fg.mean()) / fg.std()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert abs(out[0, 10:30, 10:30].mean()) < 0.05  # foreground ends up near zero mean
