"""Lightning DataModule: cases in memory or memory-mapped from a cache, patch sampling, augmentation,
tubed skeletons.

Training samples are produced per item in the DataLoader workers (CPU). Patch ``i`` of epoch ``e``
draws everything random from its own generator, seeded with ``(seed, e, i)`` (``EpochSampler`` hands
the keys to the workers), so patches do not depend on the number of workers, and a run resumed at
epoch ``e`` sees the same patches as one that never stopped:

1. pick a case at random; with probability ``foreground_fraction`` (nnU-Net: 1/3) centre the
   patch on a random foreground voxel, otherwise place it uniformly (images smaller than the patch
   are padded with zeros / background);
2. augment image and label together (``skelrecall.data.augmentation``: rotation and scaling,
   Gaussian noise and blur, brightness, contrast, gamma, low-resolution simulation, mirroring);
3. compute :func:`skelrecall.skeleton.tubed_skeleton` of the *augmented* label patch (pixels with
   the ignore label, e.g. Roads' no-data regions, count as background there).

Intensities are normalized per case (nnU-Net style): ``zscore`` per image and channel,
or ``ct``: clip to the 0.5/99.5 percentiles of the training foreground and z-score with the
training foreground's mean and standard deviation. Validation and test cases are whole images.

Cases are held one of two ways, with identical patches (same normalized values, crops and
foreground samples, so results do not change):

* in memory (``cache=False``, :class:`Case`): every training and validation case of the fold,
  normalized float32, in RAM (and in each loader worker's address space);
* from the preprocessed cache (``cache=True``, :class:`CachedCase`; format, invalidation and
  location in :mod:`skelrecall.data.cache`): each case converted once to ``.npy`` files that the
  loader workers memory-map per crop, so a process reads only its patches' pages and holds no
  whole case. Normalization is applied to the crop (elementwise, the same float32 values as
  normalizing the whole image); the foreground sample for oversampling and the CT statistics are
  drawn at setup from the cached foreground indices with the same generator calls as in memory.
  Validation cases are read from the cache one at a time. Test cases are read from the source
  files one at a time (:meth:`SegmentationDataModule.load_cases`) in either mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from skelrecall.data.augmentation import build_augmentation
from skelrecall.data.cache import CaseCache, Entry, default_cache_dir, jsonable
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image
from skelrecall.skeleton import tubed_skeleton

MAX_FG_COORDS = 20_000  # foreground voxels kept per case for oversampling
CT_SAMPLE = 10_000  # foreground intensities per training case for the CT statistics


@dataclass
class Case:
    """A case in memory: normalized image, label, geometry and foreground sample."""

    name: str
    image: np.ndarray  # float32 (C, *spatial), normalized
    label: np.ndarray  # uint8/int16 (1, *spatial)
    meta: dict[str, Any]
    fg_coords: np.ndarray  # (n, ndim) sample of foreground voxel coordinates

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.label.shape[1:])

    @property
    def channels(self) -> int:
        return int(self.image.shape[0])

    @property
    def label_dtype(self) -> np.dtype:
        return self.label.dtype

    def region(self, src: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Image and label inside the spatial slices ``src``."""
        return self.image[(slice(None), *src)], self.label[(slice(None), *src)]


@dataclass
class CachedCase:
    """A case in the preprocessed cache (:mod:`skelrecall.data.cache`): files mapped per access, nothing
    held but paths, statistics and the foreground sample, so pickling it to a loader worker is cheap.

    ``stats``: ``zscore``: this case's per-channel ``mean``/``std`` (float32, shaped to broadcast);
    ``ct``: the fold's CT statistics. ``image``/``label`` read the whole case (validation);
    :meth:`region` reads only a crop's pages.
    """

    name: str
    entry: Entry
    normalization: str
    stats: dict[str, Any]
    fg_coords: np.ndarray  # (n, ndim) sample of foreground voxel coordinates (compact integer type)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.entry.arrays["label"]["shape"][1:])

    @property
    def channels(self) -> int:
        return int(self.entry.arrays["image"]["shape"][0])

    @property
    def label_dtype(self) -> np.dtype:
        return np.dtype(np.int16)  # what read_case_label gives; the file may hold uint8

    @property
    def meta(self) -> dict[str, Any]:
        """The JSON-safe part of the image's geometry (see :func:`skelrecall.data.cache.jsonable`)."""
        return self.entry.info.get("meta", {})

    def _normalize(self, image: np.ndarray) -> np.ndarray:
        if self.normalization == "zscore":
            return zscore(image, (self.stats["mean"], self.stats["std"])).astype(np.float32, copy=False)
        return normalize(image, self.normalization, self.stats).astype(np.float32, copy=False)

    def region(self, src: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Normalized image and label inside the spatial slices ``src``, read from the mapped files."""
        image, label = self.entry.map("image"), self.entry.map("label")
        return self._normalize(image[(slice(None), *src)]), label[(slice(None), *src)].astype(np.int16)

    @property
    def image(self) -> np.ndarray:
        """The whole normalized image (read from the cache on each access)."""
        return self._normalize(self.entry.map("image"))

    @property
    def label(self) -> np.ndarray:
        """The whole label map, int16 (read from the cache on each access)."""
        return self.entry.read("label").astype(np.int16)


def read_channels(paths, dims: int) -> tuple[np.ndarray, dict]:
    """Channel files stacked to ``(C, *spatial)`` float32 (an RGB(A) file gives 3 channels, alpha
    dropped) and the last file's ``meta`` (its geometry)."""
    channels, meta = [], {}
    for path in paths:
        arr, meta = read_image(path)
        if arr.ndim == dims + 1 and arr.shape[-1] in (3, 4):  # (H, W, RGB[A]) -> channels first
            channels.extend(np.moveaxis(arr[..., :3], -1, 0))
        elif arr.ndim == dims:
            channels.append(arr)
        else:
            raise ValueError(f"{path}: expected a {dims}D image, got shape {arr.shape}")
    return np.stack(channels).astype(np.float32), meta


def read_case_image(layout: DatasetLayout, case: str, split: str, dims: int) -> tuple[np.ndarray, dict]:
    """All channel files of ``case`` stacked to ``(C, *spatial)`` float32 (see ``read_channels``)."""
    return read_channels(layout.image_files(case, split), dims)


def read_case_label(
    layout: DatasetLayout, case: str, split: str, dims: int, ignore_label: int | None = None
) -> np.ndarray:
    """The label map of ``case`` as ``(1, *spatial)`` int16; its values are checked against dataset.json."""
    path = layout.label_file(case, split)
    arr, _ = read_image(path)
    if arr.ndim != dims:
        raise ValueError(f"{path}: expected a {dims}D label map, got shape {arr.shape}")
    layout.check_label_values(case, split, arr, ignore_label)
    return arr[None].astype(np.int16)


def zscore_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``image`` (``(C, *spatial)``), shaped ``(C, 1, ...)``."""
    mean = image.mean(axis=tuple(range(1, image.ndim)), keepdims=True)
    std = image.std(axis=tuple(range(1, image.ndim)), keepdims=True)
    return mean, std


def zscore(image: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per-channel z-score over the whole image (``stats``: its :func:`zscore_statistics`, if known; then
    ``image`` may be any crop of it and gets the values the whole image would)."""
    mean, std = zscore_statistics(image) if stats is None else stats
    return (image - mean) / np.maximum(std, 1e-8)


def foreground_intensities(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` (``(n, C)`` foreground intensities of a case), subsampled to ``CT_SAMPLE`` rows."""
    if len(values) > CT_SAMPLE:
        values = values[rng.choice(len(values), CT_SAMPLE, replace=False)]
    return values


def ct_statistics_of(samples: list[np.ndarray], channels: int) -> dict:
    """Percentiles 0.5/99.5, mean and std of the pooled foreground intensity ``samples`` (``(n, C)`` each)."""
    values = np.concatenate(samples) if samples else np.zeros((0, channels))
    if len(values) == 0:
        raise ValueError("normalization 'ct' needs foreground in the training labels")
    return {
        "low": np.percentile(values, 0.5, axis=0),
        "high": np.percentile(values, 99.5, axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
    }


def ct_statistics(images: list[np.ndarray], labels: list[np.ndarray], rng: np.random.Generator) -> dict:
    """nnU-Net's CT statistics: percentiles 0.5/99.5, mean and std of foreground intensities."""
    samples = [foreground_intensities(img[:, lab[0] > 0].T, rng) for img, lab in zip(images, labels)]
    return ct_statistics_of(samples, images[0].shape[0] if images else 0)


def ct_normalize(image: np.ndarray, stats: dict) -> np.ndarray:
    """Clip each channel to ``[low, high]``, then ``(x - mean) / std`` (nnU-Net's CT normalization)."""
    shape = (-1,) + (1,) * (image.ndim - 1)
    low, high, mean, std = (
        np.asarray(stats[k], dtype=np.float64).reshape(shape) for k in ("low", "high", "mean", "std")
    )
    return (np.clip(image, low, high) - mean) / np.maximum(std, 1e-8)


def normalize(image: np.ndarray, scheme: str, ct_stats: dict | None = None) -> np.ndarray:
    """``image`` (``(C, *spatial)``) normalized with ``scheme``: ``zscore`` or ``ct`` (needs ``ct_stats``)."""
    if scheme == "zscore":
        return zscore(image)
    if scheme == "ct":
        if ct_stats is None:
            raise ValueError("normalization 'ct' needs the training foreground statistics")
        return ct_normalize(image, ct_stats)
    raise ValueError(f"normalization must be 'zscore' or 'ct', got {scheme!r}")


def without_ignore(label: np.ndarray, ignore_label: int | None) -> np.ndarray:
    """``label`` with the ignore label (e.g. Roads' no-data) set to background."""
    return label if ignore_label is None else np.where(label == ignore_label, 0, label)


def crop_patch(case: Case | CachedCase, patch: tuple[int, ...], rng: np.random.Generator, force_fg: bool):
    """A ``patch``-sized crop of image and label, padded where the case is smaller."""
    spatial = case.shape
    if force_fg and len(case.fg_coords):
        centre = case.fg_coords[rng.integers(len(case.fg_coords))]
        start = [int(c) - p // 2 for c, p in zip(centre, patch)]
    else:
        start = [int(rng.integers(min(0, s - p), max(0, s - p) + 1)) for s, p in zip(spatial, patch)]
    start = [min(max(st, min(0, s - p)), max(0, s - p)) for st, s, p in zip(start, spatial, patch)]
    src = tuple(slice(max(st, 0), min(st + p, s)) for st, s, p in zip(start, spatial, patch))
    dst = tuple(slice(sl.start - st, sl.stop - st) for sl, st in zip(src, start))
    image = np.zeros((case.channels, *patch), np.float32)
    label = np.zeros((1, *patch), case.label_dtype)
    image[(slice(None), *dst)], label[(slice(None), *dst)] = case.region(src)
    return image, label


class EpochSampler(Sampler):
    """Yields the keys ``(epoch, rank * length + i)``, ``i < length``; Lightning calls ``set_epoch``
    before each epoch. Each of ``world`` processes of a distributed run draws its own ``length`` keys
    (global batch = processes x batch size), so rank 0 of any run sees the keys of a single process."""

    def __init__(self, length: int, rank: int = 0, world: int = 1):
        self.length, self.epoch, self.rank, self.world = length, 0, rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        offset = self.rank * self.length
        return iter([(self.epoch, offset + i) for i in range(self.length)])

    def __len__(self) -> int:
        return self.length


class PatchDataset(Dataset):
    """Random training patches with ``image``, ``label`` and tubed ``skeleton``, keyed by ``(epoch, i)``.

    Everything random about a patch comes from ``numpy.random.default_rng((seed, epoch, i))``.
    """

    def __init__(
        self,
        cases: list[Case] | list[CachedCase],
        patch_size,
        foreground_fraction: float,
        augmentation: dict | None,
        dims: int,
        skeleton: bool = True,
        ignore_label: int | None = None,
        seed: int = 0,
    ):
        self.cases, self.patch = cases, tuple(int(p) for p in patch_size)
        self.ignore_label, self.seed = ignore_label, int(seed)
        self.fg_fraction, self.dims = foreground_fraction, dims
        self.augmentation, self.skeleton = augmentation, skeleton
        self._aug: tuple[int, Any] | None = None

    def _augmentation(self):
        """The augmentation transform, built once per process."""
        if self._aug is None or self._aug[0] != os.getpid():
            if torch.utils.data.get_worker_info() is not None:  # one thread per loader worker
                torch.set_num_threads(1)
            self._aug = (os.getpid(), build_augmentation(self.dims, self.augmentation))
        return self._aug[1]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng((self.seed, int(epoch), int(index)))
        aug = self._augmentation()
        case = self.cases[int(rng.integers(len(self.cases)))]
        image, label = crop_patch(case, self.patch, rng, force_fg=rng.random() < self.fg_fraction)
        if aug is not None:
            aug.set_random_state(seed=int(rng.integers(2**32)))
            out = aug({"image": image, "label": label.astype(np.float32)})
            image = np.asarray(out["image"], dtype=np.float32)
            label = np.rint(np.asarray(out["label"])).astype(case.label_dtype)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(label.astype(np.int64)),
        }
        if self.skeleton:
            known = without_ignore(label[0], self.ignore_label)
            sample["skeleton"] = torch.from_numpy(tubed_skeleton(known)[None].astype(np.int64))
        return sample


class CaseDataset(Dataset):
    """Whole cases (for validation), one per item."""

    def __init__(self, cases: list[Case] | list[CachedCase]):
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, Any]:
        case = self.cases[index]
        return {
            "image": torch.from_numpy(case.image),
            "label": torch.from_numpy(case.label.astype(np.int64)),
            "case": case.name,
        }


class SegmentationDataModule(L.LightningDataModule):
    """Training patches and whole validation cases of one fold of a converted dataset.

    ``cache``: read training and validation cases from the preprocessed cache in ``cache_dir``
    (default :func:`skelrecall.data.cache.default_cache_dir`: ``<nnunet_raw>/../cache/<dataset folder>``),
    building missing or stale entries at :meth:`setup`; else hold them in memory. Same patches either way.
    """

    def __init__(
        self,
        layout: DatasetLayout,
        *,
        dims: int,
        patch_size,
        batch_size: int,
        iterations_per_epoch: int,
        fold: int = 0,
        normalization: str = "zscore",
        foreground_fraction: float = 1 / 3,
        augmentation: dict | None = None,
        num_workers: int = 0,
        max_train_cases: int | None = None,
        max_val_cases: int | None = None,
        skeleton: bool = True,
        ignore_label: int | None = None,
        seed: int = 0,
        cache: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        if normalization not in ("zscore", "ct"):
            raise ValueError(f"dataset.normalization must be 'zscore' or 'ct', got {normalization!r}")
        self.layout, self.dims, self.patch_size = layout, dims, tuple(patch_size)
        self.batch_size, self.iterations = batch_size, iterations_per_epoch
        self.fold, self.normalization, self.fg_fraction = fold, normalization, foreground_fraction
        self.augmentation, self.num_workers, self.skeleton, self.seed = augmentation, num_workers, skeleton, seed
        self.max_train_cases, self.max_val_cases = max_train_cases, max_val_cases
        self.ignore_label = ignore_label
        self.cache = bool(cache)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(layout)
        self.ct_stats: dict | None = None
        self.train_cases: list[Case] | list[CachedCase] = []
        self.val_cases: list[Case] | list[CachedCase] = []

    def fold_cases(self) -> tuple[list[str], list[str]]:
        splits = self.layout.splits()
        if not 0 <= self.fold < len(splits):
            raise ValueError(f"fold {self.fold} out of range: {self.layout.root}/splits.json has {len(splits)} folds")
        return list(splits[self.fold]["train"]), list(splits[self.fold]["val"])

    def load_cases(self, names: list[str], split: str) -> list[Case]:
        """Read and normalize ``names`` from ``images{split}``/``labels{split}``."""
        raw = [(n, *read_case_image(self.layout, n, split, self.dims)) for n in names]
        labels = [read_case_label(self.layout, n, split, self.dims, self.ignore_label) for n in names]
        rng = np.random.default_rng(self.seed)
        if self.normalization == "ct" and self.ct_stats is None:
            self.ct_stats = ct_statistics([r[1] for r in raw], [self.foreground(lab) for lab in labels], rng)
        cases = []
        for (name, image, meta), label in zip(raw, labels):
            self._check_shapes(name, split, image, label)
            image = normalize(image, self.normalization, self.ct_stats)
            coords = np.argwhere(self.foreground(label[0]))
            if len(coords) > MAX_FG_COORDS:
                coords = coords[rng.choice(len(coords), MAX_FG_COORDS, replace=False)]
            cases.append(Case(name, image.astype(np.float32), label, meta, coords))
        return cases

    def _check_shapes(self, name: str, split: str, image: np.ndarray, label: np.ndarray) -> None:
        if image.shape[1:] != label.shape[1:]:
            raise ValueError(
                f"case {name}: image shape {image.shape[1:]} != label shape {label.shape[1:]} "
                f"({self.layout.image_files(name, split)[0]}, {self.layout.label_file(name, split)})"
            )

    # --- the preprocessed cache ---------------------------------------------------------------------
    def cache_entry(self, name: str, split: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What the cache stores for case ``name`` (format in :mod:`skelrecall.data.cache`): the
        unnormalized image, the checked label (uint8 where it fits), the flat indices of every
        foreground voxel, the per-channel z-score statistics and the JSON-safe geometry."""
        image, meta = read_case_image(self.layout, name, split, self.dims)
        label = read_case_label(self.layout, name, split, self.dims, self.ignore_label)
        self._check_shapes(name, split, image, label)
        fg = np.flatnonzero(self.foreground(label[0]))
        fg = fg.astype(np.uint32 if label[0].size <= 2**32 else np.int64)
        small = label.size == 0 or (label.min() >= 0 and label.max() <= 255)
        mean, std = zscore_statistics(image)
        info = {
            "zscore": {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()},
            "n_fg": int(len(fg)),
            "meta": jsonable(meta),
        }
        return {"image": image, "label": label.astype(np.uint8) if small else label, "fg": fg}, info

    def cached_cases(self, names: list[str], entries: list[Entry]) -> list[CachedCase]:
        """``names`` opened from their cache ``entries``, with the CT statistics (first call) and foreground
        samples drawn exactly as :meth:`load_cases` draws them (same generator, same calls, same order)."""
        rng = np.random.default_rng(self.seed)
        if self.normalization == "ct" and self.ct_stats is None:
            samples = []
            for entry in entries:
                flat = entry.map("fg")
                if len(flat) > CT_SAMPLE:
                    flat = flat[rng.choice(len(flat), CT_SAMPLE, replace=False)]
                image = entry.map("image")
                samples.append(np.asarray(image.reshape(image.shape[0], -1)[:, np.asarray(flat, np.intp)]).T)
            channels = int(entries[0].arrays["image"]["shape"][0]) if entries else 0
            self.ct_stats = ct_statistics_of(samples, channels)
        cases = []
        for name, entry in zip(names, entries):
            shape = tuple(entry.arrays["label"]["shape"][1:])
            flat = entry.map("fg")
            if len(flat) > MAX_FG_COORDS:
                flat = flat[rng.choice(len(flat), MAX_FG_COORDS, replace=False)]
            coords = np.stack(np.unravel_index(np.asarray(flat, np.intp), shape), axis=1)  # = argwhere(fg)[...]
            coords = coords.astype(np.uint16 if max(shape) <= 2**16 else np.int64)  # small to hold and to pickle
            if self.normalization == "zscore":
                broadcast = (-1,) + (1,) * len(shape)
                stats = {k: np.asarray(entry.info["zscore"][k], np.float32).reshape(broadcast) for k in ("mean", "std")}
            else:
                stats = self.ct_stats
            cases.append(CachedCase(name, entry, self.normalization, stats, coords))
        return cases

    def preprocessing(self) -> dict[str, Any]:
        """What turns a raw image into network input (``preprocessing.json`` of a run; ``skelrecall-predict``
        reads it): the normalization scheme, the CT statistics of the training foreground (per channel),
        the number of input channels and the dataset's file ending."""
        stats = None if self.ct_stats is None else {k: np.asarray(v).tolist() for k, v in self.ct_stats.items()}
        return {
            "normalization": self.normalization,
            "ct_statistics": stats,
            "dims": self.dims,
            "in_channels": self.layout.num_channels,
            "file_ending": self.layout.file_ending,
        }

    def foreground(self, label: np.ndarray) -> np.ndarray:
        """Foreground voxels (label > 0, the ignore label excluded)."""
        return without_ignore(label, self.ignore_label) > 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_cases:
            return
        train, val = self.fold_cases()
        train = train[: self.max_train_cases] if self.max_train_cases else train
        val = val[: self.max_val_cases] if self.max_val_cases else val
        if not self.cache:
            self.train_cases = self.load_cases(train, "Tr")
            self.val_cases = self.load_cases(val, "Tr")
            return
        cache = CaseCache(self.cache_dir, self.layout, dims=self.dims, ignore_label=self.ignore_label)
        names = list(dict.fromkeys(train + val))
        entries = dict(zip(names, cache.ensure(names, "Tr", self.cache_entry)))
        self.train_cases = self.cached_cases(train, [entries[n] for n in train])
        self.val_cases = self.cached_cases(val, [entries[n] for n in val])

    def train_dataloader(self) -> DataLoader:
        ds = PatchDataset(
            self.train_cases,
            self.patch_size,
            self.fg_fraction,
            self.augmentation,
            self.dims,
            self.skeleton,
            self.ignore_label,
            seed=self.seed,
        )
        trainer = self.trainer  # None outside a Trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(self.iterations * self.batch_size, rank, world)
        return DataLoader(
            ds,
            sampler=sampler,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(CaseDataset(self.val_cases), batch_size=1, num_workers=0, collate_fn=lambda items: items[0])
