"""TopCoW 2023 (Circle of Willis, CTA and MRA) -> ``Dataset805_TopCoWBinary`` / ``Dataset806_TopCoWMulticlass``.

Raw layout (the TopCoW data release on Zenodo, https://topcow23.grand-challenge.org/)::

    imagesTr/topcow_{ct|mr}_whole_<nnn>_0000.nii.gz    (2024 release: topcow_{ct|mr}_<nnn>_0000.nii.gz)
    cow_seg_labelsTr/topcow_{ct|mr}_whole_<nnn>.nii.gz (``labelsTr/`` is accepted too)

Labels of the release: 0 background, 1 BA, 2 R-PCA, 3 L-PCA, 4 R-ICA, 5 R-MCA, 6 L-ICA, 7 L-MCA,
8 R-Pcom, 9 L-Pcom, 10 Acom, 11 R-ACA, 12 L-ACA, 15 3rd-A2 (13 vessel classes). Multi-class:
15 is remapped to 13 so the classes are consecutive (dataset.json keeps the names and the
original values under ``source_label_values``). Binary: any vessel -> 1.

Test set: the challenge's test data are hidden, so we hold out a deterministic 20 % of the
*patients* (seed 12345; a patient's CTA and MRA always fall on the same side), identical for the
binary and the multi-class dataset. Volumes are not resampled (geometry kept from the files).
"""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path

import numpy as np

from skelrecall.data.converters import common as C
from skelrecall.io import write_image

NAME = "topcow"
FOLDERS = {"binary": "Dataset805_TopCoWBinary", "multiclass": "Dataset806_TopCoWMulticlass"}
CLASS_NAMES = (
    "BA",
    "R-PCA",
    "L-PCA",
    "R-ICA",
    "R-MCA",
    "L-ICA",
    "L-MCA",
    "R-Pcom",
    "L-Pcom",
    "Acom",
    "R-ACA",
    "L-ACA",
    "3rd-A2",
)
SOURCE_VALUES = (*range(1, 13), 15)  # release values of CLASS_NAMES
MULTICLASS_LABELS = {"background": 0, **{n: i + 1 for i, n in enumerate(CLASS_NAMES)}}
BINARY_LABELS = {"background": 0, "vessel": 1}
CASE_RE = re.compile(r"^topcow_(ct|mr)(?:_whole)?_(\d+)$")


def remap_multiclass(label: np.ndarray) -> np.ndarray:
    """Release values -> consecutive classes (15 -> 13; 1..12 unchanged)."""
    lut = np.zeros(256, np.uint8)
    for new, old in enumerate(SOURCE_VALUES, start=1):
        lut[old] = new
    return lut[label.astype(np.int64)]


def _convert_case(case: str, img_path: Path, lab_path: Path, split: str, tmp: Path, mode: str) -> None:
    image, imeta = C.read_volume_file(img_path)
    label, lmeta = C.read_volume_file(lab_path)
    if image.ndim != 3:
        raise C.ConversionError(f"{img_path}: expected a 3D volume, got shape {image.shape}")
    C.check_same_shape(image.shape, label.shape, img_path, lab_path)
    C.check_affines(imeta["affine"], lmeta["affine"], img_path, lab_path)
    if np.issubdtype(label.dtype, np.floating):
        if not np.all(label == np.round(label)):
            raise C.ConversionError(f"{lab_path}: non-integer label values")
    label = label.astype(np.int64)
    C.check_values(label, (0, *SOURCE_VALUES), lab_path)
    out_label = remap_multiclass(label) if mode == "multiclass" else (label > 0).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating) or image.dtype == np.float64:
        image = image.astype(np.float32)
    write_image(tmp / f"images{split}" / f"{case}_0000.nii.gz", image, {"affine": imeta["affine"]})
    write_image(tmp / f"labels{split}" / f"{case}.nii.gz", out_label, {"affine": imeta["affine"]})


def convert(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    mode: str = "multiclass",
    modality: str = "both",
    test_fraction: float = 0.2,
    folds: int = 5,
) -> Path:
    """Convert a TopCoW 2023 download at ``raw`` into ``out`` (``mode``: binary | multiclass;
    ``modality``: both | ct | mr)."""
    t0 = time.time()
    if mode not in FOLDERS:
        raise ValueError(f"mode must be one of {sorted(FOLDERS)}, got {mode!r}")
    if modality not in ("both", "ct", "mr"):
        raise ValueError(f"modality must be both, ct or mr, got {modality!r}")
    raw, out = Path(raw), C.default_out(FOLDERS[mode], out)
    img_dir = C.find_dir(raw, "imagesTr")
    lab_dir = None
    for cand in ("cow_seg_labelsTr", "labelsTr"):
        if (img_dir.parent / cand).is_dir():
            lab_dir = img_dir.parent / cand
            break
    if lab_dir is None:
        raise C.ConversionError(f"{img_dir.parent / 'cow_seg_labelsTr'}: label folder missing beside {img_dir}")
    params = {
        "converter": f"topcow_{mode}",
        "raw": str(raw.resolve()),
        "modality": modality,
        "test_fraction": test_fraction,
        "folds": folds,
    }
    stage = C.Staging(out, params, overwrite=overwrite)
    if stage.done:
        print(f"topcow_{mode}: {out} is already converted from {raw} with these settings")
        return out
    cases, groups, modalities = {}, {}, {}
    for img in sorted(img_dir.glob("*_0000.nii.gz")):
        stem = img.name[: -len("_0000.nii.gz")]
        m = CASE_RE.match(stem)
        mod = m.group(1) if m else "unknown"
        if modality != "both" and mod != modality:
            continue
        lab = lab_dir / f"{stem}.nii.gz"
        if not lab.is_file():
            raise C.ConversionError(f"{lab}: label missing for image {img}")
        case = C.safe_case_id(stem)
        cases[case] = (img, lab)
        groups[case] = m.group(2).lstrip("0") if m else case
        modalities[case] = mod
    if not cases:
        raise C.ConversionError(
            f"{img_dir}: no *_0000.nii.gz images" + ("" if modality == "both" else f" of modality {modality}")
        )
    orphans = sorted(
        {p.name[: -len(".nii.gz")] for p in lab_dir.glob("*.nii.gz")}
        - {p.name[: -len("_0000.nii.gz")] for p in img_dir.glob("*_0000.nii.gz")}
    )
    if orphans:
        raise C.ConversionError(f"{lab_dir / (orphans[0] + '.nii.gz')}: label without an image in {img_dir}")
    test = C.holdout(groups, test_fraction)
    train_cases = sorted(c for c in cases if c not in test)
    labels = MULTICLASS_LABELS if mode == "multiclass" else BINARY_LABELS
    extra = {
        "modality": modalities,
        "resampled": False,
        "description": f"TopCoW 2023 Circle of Willis ({mode}); test = {test_fraction:.0%} of patients held out",
    }
    if mode == "multiclass":
        extra["source_label_values"] = dict(zip(CLASS_NAMES, SOURCE_VALUES))
    with stage:
        C.map_cases(
            partial(_convert_case, mode=mode),
            [(c, i, lab, "Ts" if c in test else "Tr", stage.tmp) for c, (i, lab) in cases.items()],
            workers=workers,
            desc=f"topcow_{mode}",
        )
        C.finish(
            stage,
            name=FOLDERS[mode],
            channel_names={0: "angio"},
            labels=labels,
            train_cases=train_cases,
            test_cases=sorted(test),
            file_ending=".nii.gz",
            dims=3,
            splits=C.kfold_splits(train_cases, folds, groups=groups),
            started=t0,
            extra_meta=extra,
            notes=[
                f"{len(set(groups.values()))} patients; test = {len(set(groups[c] for c in test))} "
                f"patients held out (seed {C.SPLIT_SEED})"
                + ("; label 15 (3rd-A2) -> 13" if mode == "multiclass" else "; any vessel -> 1")
            ],
        )
    return out


def convert_binary(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    modality: str = "both",
    test_fraction: float = 0.2,
    folds: int = 5,
) -> Path:
    """TopCoW -> ``Dataset805_TopCoWBinary`` (any vessel -> 1); see :func:`convert`."""
    return convert(
        raw,
        out,
        workers=workers,
        overwrite=overwrite,
        mode="binary",
        modality=modality,
        test_fraction=test_fraction,
        folds=folds,
    )


def convert_multiclass(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    modality: str = "both",
    test_fraction: float = 0.2,
    folds: int = 5,
) -> Path:
    """TopCoW -> ``Dataset806_TopCoWMulticlass`` (13 consecutive vessel classes); see :func:`convert`."""
    return convert(
        raw,
        out,
        workers=workers,
        overwrite=overwrite,
        mode="multiclass",
        modality=modality,
        test_fraction=test_fraction,
        folds=folds,
    )
