"""Lightning DataModule: cases in memory, patch sampling, augmentation, tubed skeletons.

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

Intensities are normalized per case at load time (nnU-Net style): ``zscore`` per image and channel,
or ``ct``: clip to the 0.5/99.5 percentiles of the training foreground and z-score with the
training foreground's mean and standard deviation. Validation and test cases are whole images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from skelrecall.data.augmentation import build_augmentation
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image
from skelrecall.skeleton import tubed_skeleton

MAX_FG_COORDS = 20_000  # foreground voxels kept per case for oversampling


@dataclass
class Case:
    name: str
    image: np.ndarray  # float32 (C, *spatial), normalized
    label: np.ndarray  # uint8/int16 (1, *spatial)
    meta: dict[str, Any]
    fg_coords: np.ndarray  # (n, ndim) sample of foreground voxel coordinates


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


def read_case_label(layout: DatasetLayout, case: str, split: str, dims: int,
                    ignore_label: int | None = None) -> np.ndarray:
    """The label map of ``case`` as ``(1, *spatial)`` int16; its values are checked against dataset.json."""
    path = layout.label_file(case, split)
    arr, _ = read_image(path)
    if arr.ndim != dims:
        raise ValueError(f"{path}: expected a {dims}D label map, got shape {arr.shape}")
    layout.check_label_values(case, split, arr, ignore_label)
    return arr[None].astype(np.int16)


def zscore(image: np.ndarray) -> np.ndarray:
    """Per-channel z-score over the whole image."""
    mean = image.mean(axis=tuple(range(1, image.ndim)), keepdims=True)
    std = image.std(axis=tuple(range(1, image.ndim)), keepdims=True)
    return (image - mean) / np.maximum(std, 1e-8)


def ct_statistics(images: list[np.ndarray], labels: list[np.ndarray], rng: np.random.Generator) -> dict:
    """nnU-Net's CT statistics: percentiles 0.5/99.5, mean and std of foreground intensities."""
    samples = []
    for img, lab in zip(images, labels):
        values = img[:, lab[0] > 0].T  # (n, C)
        if len(values) > 10_000:
            values = values[rng.choice(len(values), 10_000, replace=False)]
        samples.append(values)
    values = np.concatenate(samples) if samples else np.zeros((0, images[0].shape[0]))
    if len(values) == 0:
        raise ValueError("normalization 'ct' needs foreground in the training labels")
    return {"low": np.percentile(values, 0.5, axis=0), "high": np.percentile(values, 99.5, axis=0),
            "mean": values.mean(axis=0), "std": values.std(axis=0)}


def ct_normalize(image: np.ndarray, stats: dict) -> np.ndarray:
    """Clip each channel to ``[low, high]``, then ``(x - mean) / std`` (nnU-Net's CT normalization)."""
    shape = (-1,) + (1,) * (image.ndim - 1)
    low, high, mean, std = (np.asarray(stats[k], dtype=np.float64).reshape(shape) for k in ("low", "high", "mean", "std"))
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


def crop_patch(case: Case, patch: tuple[int, ...], rng: np.random.Generator, force_fg: bool):
    """A ``patch``-sized crop of image and label, padded where the case is smaller."""
    spatial = case.label.shape[1:]
    if force_fg and len(case.fg_coords):
        centre = case.fg_coords[rng.integers(len(case.fg_coords))]
        start = [int(c) - p // 2 for c, p in zip(centre, patch)]
    else:
        start = [int(rng.integers(min(0, s - p), max(0, s - p) + 1)) for s, p in zip(spatial, patch)]
    start = [min(max(st, min(0, s - p)), max(0, s - p)) for st, s, p in zip(start, spatial, patch)]
    src = tuple(slice(max(st, 0), min(st + p, s)) for st, s, p in zip(start, spatial, patch))
    dst = tuple(slice(sl.start - st, sl.stop - st) for sl, st in zip(src, start))
    image = np.zeros((case.image.shape[0], *patch), np.float32)
    label = np.zeros((1, *patch), case.label.dtype)
    image[(slice(None), *dst)] = case.image[(slice(None), *src)]
    label[(slice(None), *dst)] = case.label[(slice(None), *src)]
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

    def __init__(self, cases: list[Case], patch_size, foreground_fraction: float, augmentation: dict | None,
                 dims: int, skeleton: bool = True, ignore_label: int | None = None, seed: int = 0):
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
            label = np.rint(np.asarray(out["label"])).astype(case.label.dtype)
        sample = {"image": torch.from_numpy(np.ascontiguousarray(image)),
                  "label": torch.from_numpy(label.astype(np.int64))}
        if self.skeleton:
            known = without_ignore(label[0], self.ignore_label)
            sample["skeleton"] = torch.from_numpy(tubed_skeleton(known)[None].astype(np.int64))
        return sample


class CaseDataset(Dataset):
    """Whole cases (for validation), one per item."""

    def __init__(self, cases: list[Case]):
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, Any]:
        case = self.cases[index]
        return {"image": torch.from_numpy(case.image), "label": torch.from_numpy(case.label.astype(np.int64)),
                "case": case.name}


class SegmentationDataModule(L.LightningDataModule):
    """Training patches and whole validation cases of one fold of a converted dataset."""

    def __init__(self, layout: DatasetLayout, *, dims: int, patch_size, batch_size: int,
                 iterations_per_epoch: int, fold: int = 0, normalization: str = "zscore",
                 foreground_fraction: float = 1 / 3, augmentation: dict | None = None, num_workers: int = 0,
                 max_train_cases: int | None = None, max_val_cases: int | None = None,
                 skeleton: bool = True, ignore_label: int | None = None, seed: int = 0):
        super().__init__()
        if normalization not in ("zscore", "ct"):
            raise ValueError(f"dataset.normalization must be 'zscore' or 'ct', got {normalization!r}")
        self.layout, self.dims, self.patch_size = layout, dims, tuple(patch_size)
        self.batch_size, self.iterations = batch_size, iterations_per_epoch
        self.fold, self.normalization, self.fg_fraction = fold, normalization, foreground_fraction
        self.augmentation, self.num_workers, self.skeleton, self.seed = augmentation, num_workers, skeleton, seed
        self.max_train_cases, self.max_val_cases = max_train_cases, max_val_cases
        self.ignore_label = ignore_label
        self.ct_stats: dict | None = None
        self.train_cases: list[Case] = []
        self.val_cases: list[Case] = []

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
            if image.shape[1:] != label.shape[1:]:
                raise ValueError(f"case {name}: image shape {image.shape[1:]} != label shape {label.shape[1:]}")
            image = normalize(image, self.normalization, self.ct_stats)
            coords = np.argwhere(self.foreground(label[0]))
            if len(coords) > MAX_FG_COORDS:
                coords = coords[rng.choice(len(coords), MAX_FG_COORDS, replace=False)]
            cases.append(Case(name, image.astype(np.float32), label, meta, coords))
        return cases

    def preprocessing(self) -> dict[str, Any]:
        """What turns a raw image into network input (``preprocessing.json`` of a run; ``skelrecall-predict``
        reads it): the normalization scheme, the CT statistics of the training foreground (per channel),
        the number of input channels and the dataset's file ending."""
        stats = None if self.ct_stats is None else {k: np.asarray(v).tolist() for k, v in self.ct_stats.items()}
        return {"normalization": self.normalization, "ct_statistics": stats, "dims": self.dims,
                "in_channels": self.layout.num_channels, "file_ending": self.layout.file_ending}

    def foreground(self, label: np.ndarray) -> np.ndarray:
        """Foreground voxels (label > 0, the ignore label excluded)."""
        return without_ignore(label, self.ignore_label) > 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_cases:
            return
        train, val = self.fold_cases()
        train = train[: self.max_train_cases] if self.max_train_cases else train
        val = val[: self.max_val_cases] if self.max_val_cases else val
        self.train_cases = self.load_cases(train, "Tr")
        self.val_cases = self.load_cases(val, "Tr")

    def train_dataloader(self) -> DataLoader:
        ds = PatchDataset(self.train_cases, self.patch_size, self.fg_fraction, self.augmentation, self.dims,
                          self.skeleton, self.ignore_label, seed=self.seed)
        trainer = self.trainer  # None outside a Trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(self.iterations * self.batch_size, rank, world)
        return DataLoader(ds, sampler=sampler, batch_size=self.batch_size,
                          num_workers=self.num_workers, drop_last=True, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(CaseDataset(self.val_cases), batch_size=1, num_workers=0,
                          collate_fn=lambda items: items[0])
