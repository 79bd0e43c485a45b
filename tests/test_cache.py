"""The preprocessed case cache: same patches as in memory, invalidation, atomic builds, small workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from skelrecall.data import cache as cache_mod
from skelrecall.data import datamodule as dm_mod
from skelrecall.data.cache import CacheError, CaseCache, default_cache_dir
from skelrecall.data.datamodule import CachedCase, SegmentationDataModule
from skelrecall.data.layout import DatasetLayout, write_dataset_json
from skelrecall.io import write_image, write_json

from .conftest import compose_train

TINY = "data/nnUNet_raw/Dataset901_Synthetic2D"


def _augmentation() -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_train().augmentation)


def _dataset_3d(root: Path, cases: int = 5, shape=(12, 20, 24)) -> Path:
    """Two-channel CT-like volumes (NIfTI) with classes 1 and 2 and an ignore label 3 beside them."""
    folder = root / "Dataset990_Cache3D"
    names = [f"vol_{i:03d}" for i in range(cases)]
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        label = np.zeros(shape, np.uint8)
        label[:, 4 + i % 3 : 9 + i % 3, 3:20] = 1  # a slab per case: thousands of foreground voxels
        label[2:10, 12:15, 5:22] = 2
        label[:, :, -3:] = np.where(label[:, :, -3:] == 0, 3, label[:, :, -3:])  # no-data strip
        ct = rng.normal(-500, 200, shape) + 1500 * (label == 1) + 900 * (label == 2)
        affine = np.diag([0.3, 0.3, 0.5, 1.0])
        write_image(folder / "imagesTr" / f"{name}_0000.nii.gz", ct.astype(np.int16), {"affine": affine})
        write_image(
            folder / "imagesTr" / f"{name}_0001.nii.gz", rng.normal(3, 2, shape).astype(np.float32), {"affine": affine}
        )
        write_image(folder / "labelsTr" / f"{name}.nii.gz", label, {"affine": affine})
    write_dataset_json(
        folder,
        channel_names={0: "CT", 1: "other"},
        num_training=cases,
        file_ending=".nii.gz",
        labels={"background": 0, "a": 1, "b": 2, "ignore": 3},
    )
    write_json(
        folder / "splits.json", [{"train": names[:-1], "val": names[-1:]}, {"train": names[1:], "val": names[:1]}]
    )
    return folder


def _module(
    folder: Path, *, cache: bool, cache_dir: Path | None = None, dims: int = 2, patch=(64, 64), **kw
) -> SegmentationDataModule:
    kw.setdefault("augmentation", _augmentation())
    dm = SegmentationDataModule(
        DatasetLayout.open(folder),
        dims=dims,
        patch_size=list(patch),
        batch_size=2,
        iterations_per_epoch=4,
        cache=cache,
        cache_dir=cache_dir,
        **kw,
    )
    dm.setup()
    return dm


def _assert_same_data(memory: SegmentationDataModule, cached: SegmentationDataModule, keys) -> None:
    """Identical patches (image, label, skeleton), CT statistics, foreground samples and validation cases."""
    assert all(isinstance(c, CachedCase) for c in cached.train_cases + cached.val_cases)
    assert [c.name for c in memory.train_cases] == [c.name for c in cached.train_cases]
    assert (memory.ct_stats is None) == (cached.ct_stats is None)
    for key in memory.ct_stats or {}:
        np.testing.assert_array_equal(memory.ct_stats[key], cached.ct_stats[key])
    assert memory.preprocessing() == cached.preprocessing()
    for a, b in zip(memory.train_cases + memory.val_cases, cached.train_cases + cached.val_cases):
        np.testing.assert_array_equal(a.fg_coords, b.fg_coords)
        assert a.image.dtype == b.image.dtype == np.float32 and a.label.dtype == b.label.dtype
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
    ds_mem, ds_cache = memory.train_dataloader().dataset, cached.train_dataloader().dataset
    for key in keys:
        a, b = ds_mem[key], ds_cache[key]
        assert set(a) == set(b) == {"image", "label", "skeleton"}
        for name in a:
            assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), (key, name)
    for a, b in zip(memory.val_dataloader(), cached.val_dataloader()):
        assert a["case"] == b["case"] and torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


@pytest.mark.parametrize("normalization", ["zscore", "ct"])
def test_cached_2d_patches_equal_in_memory(tiny_root, tmp_path, normalization):
    folder = tiny_root / TINY
    memory = _module(folder, cache=False, normalization=normalization, seed=4)
    cached = _module(folder, cache=True, cache_dir=tmp_path / "cache", normalization=normalization, seed=4)
    _assert_same_data(memory, cached, [(e, i) for e in (0, 3) for i in range(10)])


def test_cached_3d_patches_equal_in_memory_with_ct_ignore_label_and_subsampling(tmp_path, monkeypatch):
    """3D, two channels, CT statistics, an ignore label; foreground and CT samples subsampled (small caps
    here, so that the generator calls of the subsampling are exercised); a patch wider than the volume."""
    monkeypatch.setattr(dm_mod, "MAX_FG_COORDS", 300)
    monkeypatch.setattr(dm_mod, "CT_SAMPLE", 200)
    folder = _dataset_3d(tmp_path)
    options = dict(dims=3, patch=(8, 16, 32), normalization="ct", ignore_label=3, foreground_fraction=0.5, seed=7)
    memory = _module(folder, cache=False, **options)
    cached = _module(folder, cache=True, cache_dir=tmp_path / "cache", **options)
    assert all(len(c.fg_coords) == 300 for c in memory.train_cases)  # subsampled
    _assert_same_data(memory, cached, [(e, i) for e in (0, 1) for i in range(12)])
    zscored = [
        _module(folder, cache=c, cache_dir=tmp_path / "cache", **{**options, "normalization": "zscore"})
        for c in (False, True)
    ]
    _assert_same_data(*zscored, [(0, i) for i in range(6)])
    entry = json.loads((tmp_path / "cache/Tr/vol_000/entry.json").read_text())
    assert entry["arrays"]["image"]["shape"] == [2, 12, 20, 24] and entry["arrays"]["label"]["dtype"] == "|u1"
    meta = entry["info"]["meta"]
    assert meta["zooms"] == pytest.approx([0.5, 0.3, 0.3]) and len(meta["affine"]) == 4 and "header" not in meta
    label, fg = (np.load(tmp_path / f"cache/Tr/vol_000/{name}.npy") for name in ("label", "fg"))
    assert np.all(np.isin(label.ravel()[fg], [1, 2])) and len(fg) == np.isin(label, [1, 2]).sum()


def test_default_location_and_gitignore(tiny_root, tmp_path):
    folder = tmp_path / "data/nnUNet_raw/Dataset901_Synthetic2D"
    shutil.copytree(tiny_root / TINY, folder)
    dm = _module(folder, cache=True, max_train_cases=2, max_val_cases=1)
    where = tmp_path / "data/cache/Dataset901_Synthetic2D"
    assert dm.cache_dir == where == default_cache_dir(dm.layout)
    assert (where / ".gitignore").read_text().splitlines()[-1] == "*"
    manifest = json.loads((where / "manifest.json").read_text())
    assert manifest["format"] == cache_mod.FORMAT_VERSION and len(manifest["entries"]["Tr"]) == 3
    assert sorted(p.name for p in (where / "Tr").iterdir()) == sorted(c.name for c in dm.train_cases + dm.val_cases)


def test_unwritable_cache_folder_fails_naming_it_and_the_config_keys(tiny_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match=rf"{blocker}/cache.*data.cache.dir.*data.cache.enabled=false"):
        _module(tiny_root / TINY, cache=True, cache_dir=blocker / "cache")


class _Counter:
    """Counts entry builds (wraps ``SegmentationDataModule.cache_entry``)."""

    def __init__(self, monkeypatch):
        self.built: list[str] = []
        original = SegmentationDataModule.cache_entry

        def counting(dm, name, split):
            self.built.append(name)
            return original(dm, name, split)

        monkeypatch.setattr(SegmentationDataModule, "cache_entry", counting)

    def take(self) -> list[str]:
        out, self.built = sorted(self.built), []
        return out


def test_an_entry_is_rebuilt_when_and_only_when_what_it_was_made_from_changes(tiny_root, tmp_path, monkeypatch):
    folder = tmp_path / "Dataset901_Synthetic2D"
    shutil.copytree(tiny_root / TINY, folder)
    where = tmp_path / "cache"
    counter = _Counter(monkeypatch)
    layout = DatasetLayout.open(folder)
    everything = sorted(layout.splits()[0]["train"] + layout.splits()[0]["val"])
    assert counter.take() == [] and _module(folder, cache=True, cache_dir=where) and counter.take() == everything

    # nothing changed; nor does a different normalization, seed, fold or patch: nothing rebuilt
    for kw in ({}, {"normalization": "ct"}, {"seed": 5}, {"fold": 1}, {"patch": (32, 32)}):
        _module(folder, cache=True, cache_dir=where, **kw)
        assert counter.take() == [], kw

    # a source file touched (mtime), or replaced by new content: that case only
    case = layout.splits()[0]["train"][2]
    image_file = layout.image_files(case)[0]
    os.utime(image_file, ns=(image_file.stat().st_atime_ns, image_file.stat().st_mtime_ns + 10**9))
    _module(folder, cache=True, cache_dir=where)
    assert counter.take() == [case]
    from PIL import Image

    label_file = layout.label_file(case)
    label = np.asarray(Image.open(label_file)).copy()
    label[:8, :8] = 1
    write_image(label_file, label)
    cached = _module(folder, cache=True, cache_dir=where, augmentation=None)
    assert counter.take() == [case]
    memory = _module(folder, cache=False, augmentation=None)
    _assert_same_data(memory, cached, [(0, i) for i in range(8)])  # the new label is what is read

    # a damaged entry (truncated file, garbled entry.json): that entry only
    image_npy = where / "Tr" / case / "image.npy"
    image_npy.write_bytes(image_npy.read_bytes()[:-10])
    other = layout.splits()[0]["train"][0]
    (where / "Tr" / other / "entry.json").write_text("{not json")
    _module(folder, cache=True, cache_dir=where)
    assert counter.take() == sorted([case, other])

    # the ignore label, dataset.json, or the cache format: every entry
    _module(folder, cache=True, cache_dir=where, ignore_label=2)
    assert counter.take() == everything
    meta = json.loads((folder / "dataset.json").read_text())
    write_json(folder / "dataset.json", {**meta, "description": "edited"})
    _module(folder, cache=True, cache_dir=where)
    assert counter.take() == everything
    monkeypatch.setattr(cache_mod, "FORMAT_VERSION", cache_mod.FORMAT_VERSION + 1)
    _module(folder, cache=True, cache_dir=where)
    assert counter.take() == everything
    assert not [p for p in (where / "Tr").iterdir() if p.name.startswith(".")]  # no replaced entries left


def test_an_entry_rebuilt_while_in_use_is_detected(tiny_root, tmp_path):
    folder = tmp_path / "Dataset901_Synthetic2D"
    shutil.copytree(tiny_root / TINY, folder)
    dm = _module(folder, cache=True, cache_dir=tmp_path / "cache", augmentation=None)
    ds = dm.train_dataloader().dataset
    ds[(0, 0)]
    for case in dm.train_cases:  # another process rebuilds every entry after the sources changed
        path = DatasetLayout.open(folder).label_file(case.name)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    _module(folder, cache=True, cache_dir=tmp_path / "cache")
    with pytest.raises(CacheError, match="rebuilt by another process while in use"):
        ds[(0, 1)]


def _crash_on_save(call: int, *, kill: bool):
    """An ``np.save`` that fails (raises, or SIGKILLs the process) on its ``call``-th call."""
    original, calls = np.save, []

    def save(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            if kill:
                os.kill(os.getpid(), 9)
            raise OSError("disk full (simulated)")
        return original(*args, **kwargs)

    return save


def _build_in_child(folder: str, where: str, crash_call: int) -> None:
    np.save = _crash_on_save(crash_call, kill=True)
    _module(Path(folder), cache=True, cache_dir=Path(where))


@pytest.mark.parametrize("kill", [False, True], ids=["exception", "sigkill"])
def test_a_crash_mid_build_leaves_no_complete_looking_entry(tiny_root, tmp_path, monkeypatch, kill):
    folder, where = tmp_path / "Dataset901_Synthetic2D", tmp_path / "cache"
    shutil.copytree(tiny_root / TINY, folder)
    layout = DatasetLayout.open(folder)
    order = list(dict.fromkeys(layout.splits()[0]["train"] + layout.splits()[0]["val"]))
    crash = 3 * 3 + 2  # the 4th case's second file (image, label, fg per case)
    if kill:
        child = multiprocessing.get_context("fork").Process(
            target=_build_in_child, args=(str(folder), str(where), crash)
        )
        child.start()
        child.join(120)
        assert child.exitcode == -9
    else:
        with monkeypatch.context() as m:
            m.setattr(np, "save", _crash_on_save(crash, kill=False))
            with pytest.raises(OSError, match="simulated"):
                _module(folder, cache=True, cache_dir=where)
    cache = CaseCache(where, layout, dims=2)
    assert [cache.lookup(c, "Tr") is not None for c in order] == [True] * 3 + [False] * (len(order) - 3)
    assert not (where / "Tr" / order[3]).exists()  # only a dot-named temporary, if anything
    leftovers = [p.name for p in (where / "Tr").iterdir() if p.name.startswith(".")]
    assert len(leftovers) == int(kill)  # a kill leaves the temporary folder of the entry it was writing
    assert all(p.startswith(f".{order[3]}.") and p.endswith(".tmp") for p in leftovers)
    counter = _Counter(monkeypatch)
    dm = _module(folder, cache=True, cache_dir=where)  # the next build succeeds and clears the leftovers
    assert counter.take() == sorted(order[3:])
    assert sorted(p.name for p in (where / "Tr").iterdir()) == sorted(order)
    _assert_same_data(_module(folder, cache=False), dm, [(0, i) for i in range(4)])


def _build_slowly(folder: str, where: str, log: str) -> None:
    import time

    layout = DatasetLayout.open(Path(folder))
    dm = SegmentationDataModule(layout, dims=2, patch_size=[64, 64], batch_size=2, iterations_per_epoch=1)

    def build(case, split):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {case}\n")
        time.sleep(0.05)
        return dm.cache_entry(case, split)

    CaseCache(where, layout, dims=2).ensure(layout.cases("Tr"), "Tr", build, progress=False)


def test_two_processes_building_at_once_build_each_entry_once(tiny_root, tmp_path):
    folder, where, log = tmp_path / "Dataset901_Synthetic2D", tmp_path / "cache", tmp_path / "builds.log"
    shutil.copytree(tiny_root / TINY, folder)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_build_slowly, args=(str(folder), str(where), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    built = [line.split()[1] for line in log.read_text().splitlines()]
    cases = DatasetLayout.open(folder).cases("Tr")
    assert sorted(built) == cases  # each once, by whichever process held the lock
    cache = CaseCache(where, DatasetLayout.open(folder), dims=2)
    assert all(cache.lookup(c, "Tr") is not None for c in cases)


def test_loader_workers_get_paths_not_arrays(tiny_root, tmp_path):
    """The training dataset pickles (spawned workers) to a few kB per case plus the foreground sample; in
    memory it carries every image. Workers map the files themselves and give the same batches."""
    folder = tiny_root / TINY
    cached = _module(folder, cache=True, cache_dir=tmp_path / "cache", num_workers=2)
    memory = _module(folder, cache=False)
    ds_cache, ds_mem = cached.train_dataloader().dataset, memory.train_dataloader().dataset
    image_bytes = sum(c.image.nbytes for c in memory.train_cases)
    coords = sum(c.fg_coords.nbytes for c in ds_cache.cases)
    size = len(pickle.dumps(ds_cache))
    assert size < coords + 2_000 * len(ds_cache.cases) and size < image_bytes / 4
    assert len(pickle.dumps(ds_mem)) > image_bytes  # what the cache avoids
    for case in pickle.loads(pickle.dumps(ds_cache)).cases:
        assert not [v for v in vars(case).values() if isinstance(v, np.ndarray) and v.nbytes > case.fg_coords.nbytes]
    batches = [b for b in cached.train_dataloader()]  # two worker processes reading the cache
    assert all(torch.equal(a[k], b[k]) for a, b in zip(batches, memory.train_dataloader()) for k in a)


@pytest.mark.slow
def test_training_with_the_cache_gives_the_results_of_training_in_memory(tiny_root, tmp_path):
    """A smoke run with the cache (and two loader workers reading it) and one in memory: the same per-step
    losses and per_case.csv, and the same run identity."""
    import pandas as pd

    from skelrecall.runs import config_hash
    from skelrecall.train import run

    root = tmp_path / "root"
    shutil.copytree(tiny_root / TINY, root / TINY)
    from omegaconf import OmegaConf

    results, configs = {}, {}
    for enabled in (True, False):
        cfg = compose_train(
            "profile=smoke",
            "logger=csv",
            f"paths.root={root}",
            f"data.cache.enabled={enabled}",
            f"experiment_name=cache_{enabled}",
            f"data.num_workers={2 if enabled else 0}",
        )
        run(cfg)
        run_dir = Path(cfg.run_dir)
        log = pd.read_csv(run_dir / "csv/attempt_0/metrics.csv")
        results[enabled] = (
            pd.read_csv(run_dir / "per_case.csv"),
            log.dropna(subset=["train/loss_step"])["train/loss_step"].tolist(),
        )
        cfg.experiment_name = "same"
        configs[enabled] = OmegaConf.to_container(cfg, resolve=True)
    assert (root / "data/cache/Dataset901_Synthetic2D/Tr").is_dir()
    pd.testing.assert_frame_equal(results[True][0], results[False][0])
    assert results[True][1] == results[False][1] and len(results[True][1]) == 6
    assert config_hash(configs[True]) == config_hash(configs[False])  # data.cache is not part of a run's identity
