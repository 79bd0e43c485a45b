"""Massachusetts Roads (Mnih 2013) -> ``Dataset801_Roads`` (2D, RGB PNG, labels 0/1 + ignore 2).

Supported raw layouts (the folder given as ``raw`` or up to three levels above them):

* ``original``: the release at https://www.cs.toronto.edu/~vmnih/data/ ::

      train/sat/<id>.tiff  train/map/<id>.tif     (1108 images)
      valid/sat/<id>.tiff  valid/map/<id>.tif     (14)
      test/sat/<id>.tiff   test/map/<id>.tif      (49)

* ``kaggle``: the Kaggle mirror ``balraj98/massachusetts-roads-dataset`` (same 1108/14/49 split)::

      tiff/train/<id>.tiff  tiff/train_labels/<id>.tif   (and val, val_labels, test, test_labels)
      png/train/<id>.png    png/train_labels/<id>.png    (the same images as PNG)

* ``ideal``: the Kaggle mirror ``insaff/massachusetts-roads-dataset`` that nnU-Net's
  Dataset120_RoadSegmentation converts (``road_segmentation_ideal``)::

      training/input/img-<n>.png   training/output/img-<n>.png
      testing/input/img-<n>.png    testing/output/img-<n>.png

  Not every training input has a label there; inputs without one are skipped (as nnU-Net does)
  and counted in the summary. A label without its input is an error.

Training cases = train (+ valid, when the release has one); test cases = test. Label maps hold
0/255 (or 0/1) and become 0 = background, 1 = road.

No-data regions: the aerial mosaics have large pure-white areas (every channel 255) where no
image exists but the road map still draws roads. Pixels that are white in all three channels form
the no-data mask after dropping white components of at most ``min_component`` pixels (a white
roof is real data) and filling holes, exactly the recipe of nnU-Net's conversion. With
``nodata="ignore"`` (default) those pixels get label 2, registered as ``"ignore"`` in
dataset.json (nnU-Net v2's ignore label: no loss, excluded from evaluation);
``nodata="background"`` writes 0 there (what nnU-Net's Dataset120 does); ``nodata="keep"`` leaves
the labels untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from skelrecall.data.converters import common as C

NAME = "roads"
FOLDER = "Dataset801_Roads"
LABELS = {"background": 0, "road": 1}
IGNORE = 2
NODATA_MODES = ("ignore", "background", "keep")


def nodata_mask(image: np.ndarray, min_component: int = 50) -> np.ndarray:
    """Pixels without image data: pure white (255 in every channel), minus white 8-connected
    components of at most ``min_component`` pixels, with holes filled."""
    white = np.all(image[..., :3] == 255, axis=-1)
    if not white.any():
        return white
    lab, n = ndimage.label(white, structure=np.ones((3, 3), bool))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes > min_component
    keep[0] = False
    return ndimage.binary_fill_holes(keep[lab])


def _detect(raw: Path, prefer: str | None) -> tuple[str, dict[str, list[tuple[str, Path, Path | None]]]]:
    """Return (layout, {split: [(split_tag, image_dir, label_dir)]})."""
    tried = []
    if prefer in (None, "original"):
        train = C.find_dir(raw, "train/sat", required=False)
        if train is not None:
            base = train.parent.parent
            out = {
                "Tr": [("train", train, base / "train" / "map")],
                "Ts": [("test", base / "test" / "sat", base / "test" / "map")],
            }
            if (base / "valid" / "sat").is_dir():
                out["Tr"].append(("valid", base / "valid" / "sat", base / "valid" / "map"))
            return "original", out
        tried.append("train/sat")
    if prefer in (None, "kaggle", "kaggle_tiff", "kaggle_png"):
        for fmt in ("tiff", "png") if prefer in (None, "kaggle", "kaggle_tiff") else ("png",):
            train = C.find_dir(raw, f"{fmt}/train", required=False)
            if train is not None and (train.parent / "train_labels").is_dir():
                base = train.parent
                out = {
                    "Tr": [("train", train, base / "train_labels")],
                    "Ts": [("test", base / "test", base / "test_labels")],
                }
                if (base / "val").is_dir():
                    out["Tr"].append(("valid", base / "val", base / "val_labels"))
                return f"kaggle_{fmt}", out
            tried.append(f"{fmt}/train + {fmt}/train_labels")
    if prefer in (None, "ideal"):
        train = C.find_dir(raw, "training/input", required=False)
        if train is not None:
            base = train.parent.parent
            return "ideal", {
                "Tr": [("train", train, base / "training" / "output")],
                "Ts": [("test", base / "testing" / "input", base / "testing" / "output")],
            }
        tried.append("training/input")
    raise C.ConversionError(f"{raw}: no Massachusetts Roads layout found (looked for {', '.join(tried)})")


def _pairs(layout: str, tag: str, img_dir: Path, lab_dir: Path) -> tuple[list[tuple[str, Path, Path]], int]:
    """(case, image, label) pairs of one folder pair and the number of unlabelled images skipped."""
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            raise C.ConversionError(f"{d}: folder missing from the Massachusetts Roads download")
    images = C.list_files(img_dir, (".tiff", ".tif", ".png"))
    labels = {p.stem: p for p in C.list_files(lab_dir, (".tiff", ".tif", ".png"))}
    if not images:
        raise C.ConversionError(f"{img_dir}: no images")
    pairs, skipped = [], 0
    stems = {p.stem for p in images}
    for img in images:
        lab = labels.get(img.stem)
        if lab is None:
            if layout == "ideal":
                skipped += 1
                continue
            raise C.ConversionError(f"{lab_dir / (img.stem + '.tif')}: label map missing for image {img}")
        case = f"roads_{tag}_{C.safe_case_id(img.stem)}"
        pairs.append((case, img, lab))
    orphans = sorted(set(labels) - stems)
    if orphans:
        raise C.ConversionError(f"{labels[orphans[0]]}: label map without an image in {img_dir}")
    return pairs, skipped


def _convert_case(
    case: str,
    img_path: Path,
    lab_path: Path,
    split: str,
    tmp: Path,
    nodata: str,
    min_component: int,
    threshold: float | None,
) -> tuple[int, int]:
    image = C.read_raster(img_path)
    image = C.to_rgb(image, img_path)
    label = C.binary_mask(C.read_raster(lab_path), lab_path, threshold=threshold)
    C.check_same_shape(image.shape[:2], label.shape, img_path, lab_path)
    nd = 0
    if nodata != "keep":
        mask = nodata_mask(image, min_component)
        nd = int(mask.sum())
        label[mask] = IGNORE if nodata == "ignore" else 0
    C.write_png(tmp / f"images{split}" / f"{case}_0000.png", image)
    C.write_png(tmp / f"labels{split}" / f"{case}.png", label)
    return nd, label.size


def convert(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    nodata: str = "ignore",
    min_component: int = 50,
    layout: str | None = None,
    mask_threshold: float | None = None,
    folds: int = 5,
) -> Path:
    """Convert a Massachusetts Roads download at ``raw`` into ``out`` (see the module docstring)."""
    t0 = time.time()
    raw, out = Path(raw), C.default_out(FOLDER, out)
    if nodata not in NODATA_MODES:
        raise ValueError(f"nodata must be one of {NODATA_MODES}, got {nodata!r}")
    found, groups = _detect(raw, layout)
    params = {
        "converter": NAME,
        "raw": str(raw.resolve()),
        "layout": found,
        "nodata": nodata,
        "min_component": min_component,
        "mask_threshold": mask_threshold,
        "folds": folds,
    }
    stage = C.Staging(out, params, overwrite=overwrite)
    if stage.done:
        print(f"{NAME}: {out} is already converted from {raw} with these settings")
        return out
    jobs, skipped, cases = [], 0, {"Tr": [], "Ts": []}
    for split, entries in groups.items():
        for tag, img_dir, lab_dir in entries:
            pairs, n_skip = _pairs(found, tag, img_dir, lab_dir)
            skipped += n_skip
            for case, img, lab in pairs:
                cases[split].append(case)
                jobs.append((case, img, lab, split))
    with stage:
        res = C.map_cases(
            _convert_case,
            [(*j, stage.tmp, nodata, min_component, mask_threshold) for j in jobs],
            workers=workers,
            desc=NAME,
        )
        nd_fraction = sum(r[0] for r in res) / max(1, sum(r[1] for r in res))
        labels = dict(LABELS, ignore=IGNORE) if nodata == "ignore" else dict(LABELS)
        C.finish(
            stage,
            name=FOLDER,
            channel_names={0: "R", 1: "G", 2: "B"},
            labels=labels,
            train_cases=cases["Tr"],
            test_cases=cases["Ts"],
            file_ending=".png",
            dims=2,
            splits=C.kfold_splits(cases["Tr"], folds),
            started=t0,
            extra_meta={
                "source_layout": found,
                "nodata": nodata,
                "description": "Massachusetts Roads (Mnih 2013); label 2 = no-data (ignore)"
                if nodata == "ignore"
                else "Massachusetts Roads (Mnih 2013)",
            },
            notes=[
                f"layout {found}; no-data pixels: {nd_fraction:.4f} of all ({nodata})",
                f"unlabelled training images skipped: {skipped}",
            ],
        )
    return out
