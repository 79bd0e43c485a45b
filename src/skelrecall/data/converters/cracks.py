"""Concrete cracks (Tomaszewicz & Owerko, Scientific Data 10:925, 2023) -> ``Dataset803_Cracks``.

2D, RGB PNG, labels 0 = background, 1 = crack, 5-fold cross-validation over all labelled images
(the paper: 5388 images).

Layout: we could not establish the exact folder names of the published archive from the material
available to us (no network here), so this converter reads a documented *generic* image/mask
layout that covers the usual ways such archives are organised:

* one or more folder pairs, found anywhere up to three levels below ``raw``, named
  ``images|image|imgs|img|rgb|input|inputs`` (images) beside
  ``masks|mask|labels|label|gt|groundtruth|ground_truth|bw|annotations|output|outputs`` (masks);
  several pairs (e.g. ``train/`` and ``test/`` subfolders) are merged into one training set;
* images: png, jpg, jpeg, tif, tiff, bmp (grey images are repeated into 3 channels);
* masks: the same file stem as the image, optionally followed by ``_mask``, ``_label``, ``_gt``
  or ``_bw``, in any of those formats; values {0, 1} or {0, 255}. JPEG masks are binarized at
  128 (JPEG artefacts make them non-binary); other masks with other values stop the conversion
  unless ``mask_threshold`` is given.

Every image must have a mask and every mask an image (otherwise the conversion stops naming the
file). Case ids are ``cracks_<pair>_<stem>``. Splits: :func:`common.kfold_splits` with seed
12345 over the sorted case ids.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from skelrecall.data.converters import common as C

NAME = "cracks"
FOLDER = "Dataset803_Cracks"
LABELS = {"background": 0, "crack": 1}
IMAGE_DIRS = ("images", "image", "imgs", "img", "rgb", "input", "inputs")
MASK_DIRS = (
    "masks",
    "mask",
    "labels",
    "label",
    "gt",
    "groundtruth",
    "ground_truth",
    "bw",
    "annotations",
    "output",
    "outputs",
)
ENDINGS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_SUFFIX = re.compile(r"(_mask|_label|_gt|_bw)$", re.IGNORECASE)


def find_pairs(raw: Path, max_depth: int = 3) -> list[tuple[Path, Path]]:
    """All (image folder, mask folder) sibling pairs under ``raw`` (sorted)."""
    pairs = []
    frontier = [raw]
    for _ in range(max_depth + 1):
        nxt = []
        for folder in frontier:
            subs = {p.name.lower(): p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
            img = next((subs[n] for n in IMAGE_DIRS if n in subs), None)
            msk = next((subs[n] for n in MASK_DIRS if n in subs), None)
            if img is not None and msk is not None:
                pairs.append((img, msk))
            nxt.extend(sorted(p for n, p in subs.items() if p not in (img, msk)))
        frontier = nxt
    if not pairs:
        raise C.ConversionError(
            f"{raw}: no image/mask folder pair found; expected folders named one of {IMAGE_DIRS} beside one of "
            f"{MASK_DIRS} (see data/README.md, cracks)"
        )
    return sorted(pairs)


def _match(img_dir: Path, msk_dir: Path, tag: str) -> list[tuple[str, Path, Path]]:
    images = C.list_files(img_dir, ENDINGS)
    masks = {}
    for m in C.list_files(msk_dir, ENDINGS):
        masks.setdefault(MASK_SUFFIX.sub("", m.stem), m)
    if not images:
        raise C.ConversionError(f"{img_dir}: no images ({', '.join(ENDINGS)})")
    out = []
    for img in images:
        m = masks.get(img.stem)
        if m is None:
            raise C.ConversionError(f"{msk_dir / (img.stem + '.png')}: mask missing for image {img}")
        out.append((f"cracks_{tag}{C.safe_case_id(img.stem)}", img, m))
    orphans = sorted(set(masks) - {p.stem for p in images})
    if orphans:
        raise C.ConversionError(f"{masks[orphans[0]]}: mask without an image in {img_dir}")
    return out


def _convert_case(case: str, img_path: Path, msk_path: Path, tmp: Path, threshold: float | None) -> None:
    image = C.to_rgb(C.read_raster(img_path), img_path)
    if threshold is None and msk_path.suffix.lower() in (".jpg", ".jpeg"):
        threshold = 128
    label = C.binary_mask(C.read_raster(msk_path), msk_path, threshold=threshold)
    C.check_same_shape(image.shape[:2], label.shape, img_path, msk_path)
    C.write_png(tmp / "imagesTr" / f"{case}_0000.png", image)
    C.write_png(tmp / "labelsTr" / f"{case}.png", label)


def convert(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    mask_threshold: float | None = None,
    folds: int = 5,
) -> Path:
    """Convert the cracks images/masks at ``raw`` into ``out`` (see the module docstring)."""
    t0 = time.time()
    raw, out = Path(raw), C.default_out(FOLDER, out)
    if not raw.is_dir():
        raise C.ConversionError(f"{raw}: download folder does not exist")
    params = {"converter": NAME, "raw": str(raw.resolve()), "mask_threshold": mask_threshold, "folds": folds}
    stage = C.Staging(out, params, overwrite=overwrite)
    if stage.done:
        print(f"{NAME}: {out} is already converted from {raw} with these settings")
        return out
    pairs = find_pairs(raw)
    jobs = []
    for img_dir, msk_dir in pairs:
        rel = img_dir.parent.relative_to(raw)
        tag = "" if len(pairs) == 1 else C.safe_case_id("_".join(rel.parts) or "root") + "_"
        jobs.extend(_match(img_dir, msk_dir, tag))
    ids = [j[0] for j in jobs]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:
        raise C.ConversionError(f"{raw}: duplicate case ids after sanitising file names: {dupes[:5]}")
    with stage:
        C.map_cases(_convert_case, [(*j, stage.tmp, mask_threshold) for j in jobs], workers=workers, desc=NAME)
        C.finish(
            stage,
            name=FOLDER,
            channel_names={0: "R", 1: "G", 2: "B"},
            labels=LABELS,
            train_cases=ids,
            test_cases=[],
            file_ending=".png",
            dims=2,
            splits=C.kfold_splits(ids, folds),
            started=t0,
            extra_meta={"description": "concrete cracks (Tomaszewicz & Owerko 2023), generic image/mask layout"},
            notes=[f"image/mask folder pairs: {[str(p[0].relative_to(raw)) for p in pairs]}"],
        )
    return out
