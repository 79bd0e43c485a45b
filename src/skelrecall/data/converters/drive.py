"""DRIVE (Staal et al. 2004) -> ``Dataset802_DRIVE`` (2D, RGB PNG, labels 0/1, FOV masks).

Raw layout (the official DRIVE.zip, possibly inside a ``DRIVE/`` folder)::

    training/images/<id>_training.tif       id 21..40, 565 x 584 RGB
    training/1st_manual/<id>_manual1.gif    vessel annotation, 0/255
    training/mask/<id>_training_mask.gif    field of view (FOV), 0/255
    test/images/<id>_test.tif               id 01..20
    test/1st_manual/<id>_manual1.gif        present in the full release only
    test/mask/<id>_test_mask.gif

The 20 labelled training images are the training set (``drive_21`` ... ``drive_40``) and are
split into 5 cross-validation folds as in the paper (``data/splits/drive.json``, reproduced by
:func:`splits`). Test images are converted to imagesTs/labelsTs only where ``test/1st_manual``
exists (``include_test=True``); the paper does not use them.

The FOV masks are written as 0/1 PNGs to ``masksTr/<case>.png`` (and ``masksTs``) so the
evaluator can restrict metrics to the FOV when asked; they are not used in training.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from skelrecall.data.converters import common as C

NAME = "drive"
FOLDER = "Dataset802_DRIVE"
LABELS = {"background": 0, "vessel": 1}
TRAIN_IDS = tuple(range(21, 41))


def splits(folds: int = 5) -> list[dict[str, list[str]]]:
    """The committed 5-fold split over the 20 DRIVE training images (ids 21..40)."""
    return C.kfold_splits([f"drive_{i:02d}" for i in TRAIN_IDS], folds)


def _cases(root: Path, part: str, required_manual: bool) -> list[tuple[str, Path, Path | None, Path]]:
    img_dir = root / part / "images"
    if not img_dir.is_dir():
        raise C.ConversionError(f"{img_dir}: folder missing from the DRIVE download")
    images = C.list_files(img_dir, (".tif", ".tiff"))
    if not images:
        raise C.ConversionError(f"{img_dir}: no *_{part}.tif images")
    out = []
    for img in images:
        m = re.match(rf"^(\d+)_{part}$", img.stem)
        if not m:
            raise C.ConversionError(f"{img}: unexpected file name (expected <id>_{part}.tif)")
        num = int(m.group(1))
        manual = root / part / "1st_manual" / f"{m.group(1)}_manual1.gif"
        mask = root / part / "mask" / f"{m.group(1)}_{part}_mask.gif"
        if not manual.is_file():
            if required_manual:
                raise C.ConversionError(f"{manual}: vessel annotation missing for {img}")
            manual = None
        if not mask.is_file():
            raise C.ConversionError(f"{mask}: FOV mask missing for {img}")
        out.append((f"drive_{num:02d}", img, manual, mask))
    return out


def _convert_case(case: str, img_path: Path, manual: Path, mask: Path, split: str, tmp: Path) -> None:
    image = C.to_rgb(C.read_raster(img_path), img_path)
    label = C.binary_mask(C.read_raster(manual), manual)
    fov = C.binary_mask(C.read_raster(mask), mask)
    C.check_same_shape(image.shape[:2], label.shape, img_path, manual)
    C.check_same_shape(image.shape[:2], fov.shape, img_path, mask)
    C.write_png(tmp / f"images{split}" / f"{case}_0000.png", image)
    C.write_png(tmp / f"labels{split}" / f"{case}.png", label)
    C.write_png(tmp / f"masks{split}" / f"{case}.png", fov)


def convert(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    include_test: bool = True,
    folds: int = 5,
) -> Path:
    """Convert a DRIVE download at ``raw`` into ``out`` (see the module docstring); ``workers``
    processes convert the images in parallel."""
    t0 = time.time()
    raw, out = Path(raw), C.default_out(FOLDER, out)
    root = C.find_dir(raw, "training/images").parent.parent
    params = {"converter": NAME, "raw": str(raw.resolve()), "include_test": include_test, "folds": folds}
    stage = C.Staging(out, params, overwrite=overwrite)
    if stage.done:
        print(f"{NAME}: {out} is already converted from {raw} with these settings")
        return out
    train = _cases(root, "training", required_manual=True)
    test = []
    if include_test and (root / "test" / "images").is_dir():
        test = [c for c in _cases(root, "test", required_manual=False) if c[2] is not None]
    train_ids = sorted(c[0] for c in train)
    expected = sorted(f"drive_{i:02d}" for i in TRAIN_IDS)
    note = "" if train_ids == expected else f"training ids differ from the release's 21..40: {train_ids}"
    with stage:
        jobs = [(*c, "Tr", stage.tmp) for c in train] + [(*c, "Ts", stage.tmp) for c in test]
        C.map_cases(_convert_case, jobs, workers=workers, desc=NAME)
        fold_list = splits(folds) if train_ids == expected else C.kfold_splits(train_ids, folds)
        C.finish(
            stage,
            name=FOLDER,
            channel_names={0: "R", 1: "G", 2: "B"},
            labels=LABELS,
            train_cases=train_ids,
            test_cases=[c[0] for c in test],
            file_ending=".png",
            dims=2,
            splits=fold_list,
            extra_folders=("masksTr",),
            started=t0,
            extra_meta={
                "fov_masks": {"Tr": "masksTr", "Ts": "masksTs" if test else None},
                "description": "DRIVE retinal vessels (Staal et al. 2004); FOV masks in masksTr/masksTs",
            },
            notes=[n for n in (note, f"FOV masks written to masksTr{'/masksTs' if test else ''}") if n],
        )
    return out
