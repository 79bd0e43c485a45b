"""Shared machinery of the dataset converters: reading raw files, checks, splits, staging.

Every converter follows the same recipe:

1. find the raw files in the dataset's published layout (:func:`find_dir`, :func:`pair_files`);
   a missing partner file stops with :class:`ConversionError` naming the expected path;
2. write all cases into a temporary sibling folder ``<out>.partial`` (:class:`Staging`);
3. write ``dataset.json`` and ``splits.json`` there, re-read every written file and check counts,
   shapes, label values and image/label geometry (:func:`verify_dataset`);
4. only then rename the folder into place (an older folder is replaced only once the new one is
   complete), so nothing half-written ever looks like a finished dataset.

A corrupt or truncated raw file surfaces as a :class:`ConversionError` whose message starts with
the file's path. Re-running with the same source and options returns the existing folder
(idempotent); other options need ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.data.layout import write_dataset_json
from skelrecall.io import ImageReadError, read_image, write_image, write_json

#: default root of converted datasets (``data/nnUNet_raw/<folder>``), relative to the working dir
DEFAULT_RAW_ROOT = Path("data") / "nnUNet_raw"
#: seed of every split that is not fixed by the dataset's publishers
SPLIT_SEED = 12345
RASTER_ENDINGS = (".tif", ".tiff", ".gif", ".png", ".jpg", ".jpeg", ".bmp")


class ConversionError(RuntimeError):
    """A raw download is incomplete, corrupt or not in the expected layout (the message names the file)."""


# ----------------------------------------------------------------------------------------------
# reading raw files


def read_raster(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D raster file (tif, gif, png, jpg, bmp) fully into an array (H, W) or (H, W, C).

    Palette images (GIF) are returned as their palette indices mapped to grey values, i.e.
    ``convert("L")`` for palette images. Truncated files raise :class:`ConversionError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: file does not exist")
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                arr = np.asarray(im)
                # a grey palette comes back as three equal channels: collapse it
                if (
                    arr.ndim == 3
                    and np.array_equal(arr[..., 0], arr[..., 1])
                    and np.array_equal(arr[..., 0], arr[..., 2])
                ):
                    arr = arr[..., 0]
                return np.array(arr)
            if im.mode in ("1",):
                im = im.convert("L")
            return np.array(im)
    except Exception as exc:  # PIL raises many types for truncated/corrupt files
        pil_error = exc
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            return np.asarray(tifffile.imread(path))
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    raise ConversionError(f"{path}: cannot be read ({type(pil_error).__name__}: {pil_error})") from pil_error


def read_volume_file(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a .nii.gz/.npy volume via :func:`skelrecall.io.read_image` (NIfTI in (z, y, x) order)."""
    try:
        arr, meta = read_image(path)
        return np.asarray(arr), meta
    except ImageReadError as exc:
        raise ConversionError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. gzip EOF while decompressing the data
        raise ConversionError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def read_mha(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a MetaImage (.mha/.mhd) with SimpleITK into ``(array (z, y, x), RAS affine)``.

    The array keeps SimpleITK's (z, y, x) order, the in-memory order of :mod:`skelrecall.io`
    (``write_image`` stores it as NIfTI (x, y, z)). The geometry comes in LPS; the NIfTI (RAS)
    affine of the (x, y, z) voxel indices is ``diag(-1, -1, 1) @ [direction @ diag(spacing) | origin]``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: file does not exist")
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConversionError(f"{path}: reading .mha needs SimpleITK (pip install SimpleITK)") from exc
    try:
        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 3:
        raise ConversionError(f"{path}: expected a 3D volume, got shape {arr.shape}")
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(img.GetSpacing(), dtype=float)
    origin = np.asarray(img.GetOrigin(), dtype=float)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return arr, affine


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """``np.load`` without pickles; truncated files raise :class:`ConversionError`."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: file does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------------------------
# array checks


def to_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    """Grey (H, W) -> (H, W, 3) by repetition; RGBA -> RGB; 8-bit only."""
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ConversionError(f"{path}: expected 8-bit image data, got {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[..., :3])
    raise ConversionError(f"{path}: expected a grey or RGB image, got shape {arr.shape}")


def binary_mask(arr: np.ndarray, path: Path, *, threshold: float | None = None) -> np.ndarray:
    """A 0/1 uint8 mask from a label file holding {0, 1} or {0, 255} (or thresholded).

    RGB(A) masks whose colour channels are equal are reduced to one channel. Without
    ``threshold`` any other value stops the conversion (naming the file and the values);
    with it, ``mask = arr >= threshold``.
    """
    if arr.ndim == 3:
        chans = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        if not all(np.array_equal(chans[..., 0], chans[..., c]) for c in range(chans.shape[2])):
            raise ConversionError(f"{path}: expected a grey label map, got colour data of shape {arr.shape}")
        arr = chans[..., 0]
    if arr.ndim != 2:
        raise ConversionError(f"{path}: expected a 2D label map, got shape {arr.shape}")
    if threshold is not None:
        return (arr >= threshold).astype(np.uint8)
    values = np.unique(arr)
    if set(values.tolist()) <= {0, 1}:
        return arr.astype(np.uint8)
    if set(values.tolist()) <= {0, 255}:
        return (arr == 255).astype(np.uint8)
    shown = values[:10].tolist()
    raise ConversionError(
        f"{path}: unexpected label values {shown}{' ...' if len(values) > 10 else ''}; "
        "expected {0, 1} or {0, 255} (pass mask_threshold=... to binarize other masks)"
    )


def check_values(arr: np.ndarray, allowed: Iterable[int], path: Path) -> None:
    """Stop if ``arr`` holds a value outside ``allowed`` (the message names the file)."""
    values = np.unique(arr)
    bad = sorted(set(values.tolist()) - set(int(a) for a in allowed))
    if bad:
        raise ConversionError(f"{path}: unexpected label values {bad[:10]}; allowed: {sorted(allowed)}")


def check_same_shape(image_shape: Sequence[int], label_shape: Sequence[int], image: Path, label: Path) -> None:
    """Stop if the spatial shapes of image and label differ."""
    if tuple(image_shape) != tuple(label_shape):
        raise ConversionError(
            f"{label}: label shape {tuple(label_shape)} does not match image {image} of shape {tuple(image_shape)}"
        )


def check_affines(a: np.ndarray, b: np.ndarray, image: Path, label: Path, atol: float = 1e-3) -> None:
    """Stop if the geometry (affine) of image and label differ by more than ``atol`` (mm)."""
    if not np.allclose(np.asarray(a, float), np.asarray(b, float), atol=atol):
        raise ConversionError(f"{label}: geometry (affine) differs from image {image}:\n{a}\nvs\n{b}")


# ----------------------------------------------------------------------------------------------
# finding files


def find_dir(root: Path, *candidates: str, required: bool = True, max_depth: int = 3) -> Path | None:
    """The first folder under ``root`` (itself or up to ``max_depth`` levels down) whose path ends
    with one of ``candidates`` (relative paths like ``"training/images"``), case-insensitively."""
    root = Path(root)
    wanted = [tuple(c.lower().split("/")) for c in candidates]
    frontier = [root]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for folder in frontier:
            for parts in wanted:
                probe = folder.joinpath(*parts)
                if probe.is_dir():
                    return probe
                # case-insensitive match of the last components
                hit = _ci_join(folder, parts)
                if hit is not None:
                    return hit
            if folder.is_dir():
                nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
        frontier = nxt
    if required:
        raise ConversionError(f"{root}: none of {', '.join(candidates)} found (up to {max_depth} levels down)")
    return None


def _ci_join(folder: Path, parts: tuple[str, ...]) -> Path | None:
    cur = folder
    for part in parts:
        if not cur.is_dir():
            return None
        match = [p for p in cur.iterdir() if p.name.lower() == part and p.is_dir()]
        if not match:
            return None
        cur = match[0]
    return cur


def list_files(folder: Path, endings: Iterable[str]) -> list[Path]:
    """Sorted files in ``folder`` whose lower-cased name ends with one of ``endings``."""
    endings = tuple(e.lower() for e in endings)
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(endings) and not p.name.startswith(".")
    )


def safe_case_id(name: str) -> str:
    """A case identifier made only of ``[A-Za-z0-9_-]`` (other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "case"


# ----------------------------------------------------------------------------------------------
# splits


def kfold_splits(
    case_ids: Iterable[str], folds: int = 5, seed: int = SPLIT_SEED, groups: dict[str, str] | None = None
) -> list[dict[str, list[str]]]:
    """``folds`` cross-validation folds in nnU-Net's splits_final.json format.

    Deterministic: the sorted case ids (or, with ``groups`` (case -> group, e.g. patient), the
    sorted group ids, so that a group never straddles train and validation) are permuted with
    ``numpy.random.default_rng(seed)`` and cut into ``folds`` nearly equal consecutive chunks
    (``numpy.array_split``); fold k validates on chunk k and trains on the rest. Lists inside each
    fold are sorted.
    """
    ids = sorted(case_ids)
    keys = sorted({groups[c] for c in ids}) if groups is not None else ids
    if len(keys) < folds:
        raise ConversionError(f"need at least {folds} training cases (groups) for {folds}-fold splits, got {len(keys)}")
    order = np.random.default_rng(seed).permutation(len(keys))
    chunks = np.array_split(order, folds)
    out = []
    for k in range(folds):
        val_keys = {keys[i] for i in chunks[k]}
        val = sorted(c for c in ids if (groups[c] if groups is not None else c) in val_keys)
        out.append({"train": sorted(set(ids) - set(val)), "val": val})
    return out


def holdout(groups: dict[str, str], fraction: float = 0.2, seed: int = SPLIT_SEED) -> set[str]:
    """Deterministic held-out test cases: ``round(fraction * n_groups)`` groups chosen by a seeded
    permutation of the sorted group ids; returns the case ids of those groups.

    ``groups`` maps case id -> group id (e.g. the patient), so all cases of one patient fall on
    the same side of the split.
    """
    group_ids = sorted(set(groups.values()))
    n_test = int(round(fraction * len(group_ids)))
    order = np.random.default_rng(seed).permutation(len(group_ids))
    test_groups = {group_ids[i] for i in order[:n_test]}
    return {case for case, g in groups.items() if g in test_groups}


# ----------------------------------------------------------------------------------------------
# staging, verification, summary


class Staging:
    """Write a dataset into ``<out>.partial`` and move it to ``out`` only when complete.

    ``params`` (JSON-able) describe the conversion; they are stored in dataset.json under
    ``conversion``. If ``out`` already holds a dataset with equal params, :attr:`done` is True and
    nothing needs to be written (idempotent re-run); other params need ``overwrite=True``.
    """

    def __init__(self, out: Path, params: dict[str, Any], *, overwrite: bool = False, key: str = "conversion"):
        self.out = Path(out)
        self.params = json.loads(json.dumps(params, default=str))
        self.key = key
        self.tmp = self.out.with_name(self.out.name + ".partial")
        self.done = False
        meta_path = self.out / "dataset.json"
        if meta_path.is_file():
            try:
                existing = json.loads(meta_path.read_text()).get(key)
            except (OSError, ValueError):
                existing = None
            if existing == self.params and not overwrite:
                self.done = True
            elif not overwrite:
                raise FileExistsError(
                    f"{self.out} holds a dataset made with other settings ({existing}); "
                    "pass overwrite=True (--overwrite) to replace it"
                )
        elif self.out.exists() and any(self.out.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{self.out} exists but is not a converted dataset (no dataset.json); remove it or pass overwrite=True"
            )

    def __enter__(self) -> Staging:
        if not self.done:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = self.out.with_name(self.out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        shutil.rmtree(old, ignore_errors=True)


def map_cases(fn: Callable, jobs: Sequence, workers: int = 1, desc: str = "") -> list:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes when ``workers > 1``."""
    if workers <= 1 or len(jobs) <= 1:
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(*job))
            if desc and len(jobs) >= 50 and (i + 1) % max(1, len(jobs) // 10) == 0:
                print(f"  {desc}: {i + 1}/{len(jobs)}", flush=True)
        return out
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        return [f.result() for f in futures]


def verify_dataset(
    root: Path,
    *,
    num_train: int,
    num_test: int,
    allowed_labels: Iterable[int],
    dims: int,
    num_channels: int = 1,
    extra_folders: Sequence[str] = (),
) -> dict[str, Any]:
    """Re-read everything written under ``root`` and check it; return summary statistics.

    Checks: dataset.json's numTraining and the number of label files per split; one image file per
    channel for every label file and nothing else; image/label spatial shapes agree (2D PNG:
    ``(H, W)`` vs ``(H, W[, 3])``); NIfTI affines agree; label values within ``allowed_labels``;
    splits.json names exactly the training cases, each once per fold as validation; the optional
    ``extra_folders`` (e.g. ``masksTr``) hold one file per training case with the label's shape.
    """
    meta = json.loads((root / "dataset.json").read_text())
    ending = meta["file_ending"]
    allowed = set(int(v) for v in allowed_labels)
    if meta["numTraining"] != num_train:
        raise ConversionError(f"{root / 'dataset.json'}: numTraining {meta['numTraining']} != {num_train}")
    stats: dict[str, Any] = {"label_voxels": {}, "shapes": set()}
    cases: dict[str, list[str]] = {}
    for split, expected in (("Tr", num_train), ("Ts", num_test)):
        lab_dir, img_dir = root / f"labels{split}", root / f"images{split}"
        labels = sorted(p.name[: -len(ending)] for p in lab_dir.glob(f"*{ending}")) if lab_dir.is_dir() else []
        if len(labels) != expected:
            raise ConversionError(f"{lab_dir}: {len(labels)} label files written, expected {expected}")
        images = sorted(p.name for p in img_dir.glob(f"*{ending}")) if img_dir.is_dir() else []
        want = sorted(f"{c}_{k:04d}{ending}" for c in labels for k in range(num_channels if ending != ".png" else 1))
        if images != want:
            missing = sorted(set(want) - set(images))[:3]
            extra = sorted(set(images) - set(want))[:3]
            raise ConversionError(f"{img_dir}: image files do not match labels (missing {missing}, extra {extra})")
        for case in labels:
            lab_path = lab_dir / f"{case}{ending}"
            img_path = img_dir / f"{case}_0000{ending}"
            lab, lmeta = read_volume_or_png(lab_path)
            img, imeta = read_volume_or_png(img_path)
            spatial = img.shape[:2] if (ending == ".png") else img.shape
            if ending == ".png" and img.ndim == 3 and img.shape[2] != num_channels:
                raise ConversionError(f"{img_path}: {img.shape[2]} channels, expected {num_channels}")
            check_same_shape(spatial, lab.shape, img_path, lab_path)
            if lab.ndim != dims:
                raise ConversionError(f"{lab_path}: {lab.ndim}D label, expected {dims}D")
            if "affine" in lmeta or "affine" in imeta:
                check_affines(imeta.get("affine"), lmeta.get("affine"), img_path, lab_path)
            check_values(lab, allowed, lab_path)
            vals, counts = np.unique(lab, return_counts=True)
            for v, c in zip(vals.tolist(), counts.tolist()):
                stats["label_voxels"][v] = stats["label_voxels"].get(v, 0) + int(c)
            stats["shapes"].add(tuple(lab.shape))
            if split == "Tr":
                for folder in extra_folders:
                    extra_path = root / folder / f"{case}{ending}"
                    extra, _ = read_volume_or_png(extra_path)
                    check_same_shape(lab.shape, extra.shape, lab_path, extra_path)
        cases[split] = labels
    splits = json.loads((root / "splits.json").read_text())
    train = set(cases["Tr"])
    seen_val: list[str] = []
    for k, fold in enumerate(splits):
        if set(fold["train"]) | set(fold["val"]) != train or set(fold["train"]) & set(fold["val"]):
            raise ConversionError(f"{root / 'splits.json'}: fold {k} does not partition the training cases")
        seen_val.extend(fold["val"])
    if len(splits) > 1 and sorted(seen_val) != sorted(train):
        raise ConversionError(f"{root / 'splits.json'}: validation sets do not cover each training case once")
    stats["num_train"], stats["num_test"] = len(cases["Tr"]), len(cases["Ts"])
    return stats


def read_volume_or_png(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        arr, meta = read_image(path)
    except ImageReadError as exc:
        raise ConversionError(f"verification failed: {exc}") from exc
    return np.asarray(arr), meta


def finish(
    stage: Staging,
    *,
    name: str,
    channel_names: dict[int, str],
    labels: dict[str, int],
    train_cases: Sequence[str],
    test_cases: Sequence[str],
    file_ending: str,
    dims: int,
    splits: list[dict[str, list[str]]],
    extra_meta: dict[str, Any] | None = None,
    extra_folders: Sequence[str] = (),
    allowed_labels: Iterable[int] | None = None,
    started: float | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write dataset.json + splits.json into the staging folder, verify, print a summary."""
    root = stage.tmp
    write_dataset_json(
        root,
        channel_names=channel_names,
        labels=labels,
        num_training=len(train_cases),
        file_ending=file_ending,
        name=name,
        numTest=len(test_cases),
        **{stage.key: stage.params},
        **(extra_meta or {}),
    )
    write_json(root / "splits.json", splits)
    allowed = allowed_labels if allowed_labels is not None else labels.values()
    stats = verify_dataset(
        root,
        num_train=len(train_cases),
        num_test=len(test_cases),
        allowed_labels=allowed,
        dims=dims,
        num_channels=len(channel_names),
        extra_folders=extra_folders,
    )
    total = sum(stats["label_voxels"].values()) or 1
    shapes = sorted(stats["shapes"])
    lines = [
        f"{name}: {stats['num_train']} training + {stats['num_test']} test cases -> {stage.out}",
        f"  labels {labels}; voxel fractions "
        + ", ".join(f"{v}: {c / total:.4f}" for v, c in sorted(stats["label_voxels"].items())),
        f"  shapes: {shapes[0]}" + (f" ... {shapes[-1]} ({len(shapes)} distinct)" if len(shapes) > 1 else ""),
        f"  splits.json: {len(splits)} fold(s), validation sizes {[len(f['val']) for f in splits]}",
        *[f"  {n}" for n in notes],
    ]
    if started is not None:
        lines.append(f"  verified; took {time.time() - started:.1f} s")
    print("\n".join(lines), flush=True)
    return stats


def write_png(path: Path, arr: np.ndarray) -> None:
    write_image(path, np.ascontiguousarray(arr))


def default_out(folder: str, out: str | os.PathLike | None) -> Path:
    return Path(out) if out is not None else DEFAULT_RAW_ROOT / folder
