"""ToothFairy (inferior alveolar canal in CBCT) -> ``Dataset804_ToothFairy`` (3D NIfTI, binary).

Two published releases are read (chosen automatically, or with ``release=``):

* ``2023``: the ToothFairy challenge dataset (https://toothfairy.grand-challenge.org/,
  https://ditto.ing.unimore.it/toothfairy/)::

      ToothFairy_Dataset/Dataset/P<n>/data.npy       CBCT volume (int16/uint16), array order (z, y, x)
      ToothFairy_Dataset/Dataset/P<n>/gt_alpha.npy   dense canal annotation 0/1 (about 153 patients)
      ToothFairy_Dataset/Dataset/P<n>/gt_sparse.npy  sparse 2D annotation (not used)

  Only patients with ``gt_alpha.npy`` are converted (the others carry sparse labels only; their
  number is printed). The .npy files carry no geometry: we write them unchanged with an
  isotropic affine of ``spacing`` mm (default 0.3 mm, the release's voxel size). If a
  ``splits.json`` with a ``"test"`` list of patient names lies beside the patient folders, its
  test patients become the test set; otherwise a deterministic 20 % hold-out (seed 12345).

* ``2``: ToothFairy2 (https://ditto.ing.unimore.it/toothfairy2/), in nnU-Net layout::

      Dataset112_ToothFairy2/imagesTr/<case>_0000.mha
      Dataset112_ToothFairy2/labelsTr/<case>.mha
      Dataset112_ToothFairy2/dataset.json     (42 labels; 3 = Left, 4 = Right Inferior Alveolar Canal)

  Labels 3 and 4 (looked up by name in the release's dataset.json when present) are merged into
  one canal class 1; every other structure becomes background. Geometry is kept (read with
  SimpleITK, written as NIfTI with the equivalent RAS affine). Test set: deterministic 20 %
  hold-out (seed 12345); the challenge's own test set is hidden.

Volumes are not resampled: their spacing is written into the NIfTI affine and anisotropy, if any,
is left to the training pipeline. 5-fold splits over the training cases in splits.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from skelrecall.data.converters import common as C
from skelrecall.io import write_image

NAME = "toothfairy"
FOLDER = "Dataset804_ToothFairy"
LABELS = {"background": 0, "canal": 1}
TF2_IAC_NAMES = ("Left Inferior Alveolar Canal", "Right Inferior Alveolar Canal")
TF2_IAC_DEFAULT = (3, 4)


def _detect(raw: Path, release: str | None) -> tuple[str, Path]:
    if release in (None, "2023"):
        for cand in (raw, raw / "Dataset", raw / "ToothFairy_Dataset" / "Dataset"):
            if cand.is_dir() and any((p / "data.npy").is_file() for p in cand.glob("P*")):
                return "2023", cand
    if release in (None, "2"):
        imgs = C.find_dir(raw, "imagesTr", required=False)
        if imgs is not None and any(imgs.glob("*.mha")):
            return "2", imgs.parent
    raise C.ConversionError(
        f"{raw}: no ToothFairy release found (expected P<n>/data.npy folders, or imagesTr/*.mha of ToothFairy2)"
    )


def _patient_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def _convert_2023(case: str, folder: Path, split: str, tmp: Path, spacing: float) -> None:
    img_path, lab_path = folder / "data.npy", folder / "gt_alpha.npy"
    image = C.load_npy(img_path)
    label = C.load_npy(lab_path)
    if image.ndim != 3:
        raise C.ConversionError(f"{img_path}: expected a 3D volume, got shape {image.shape}")
    C.check_same_shape(image.shape, label.shape, img_path, lab_path)
    C.check_values(label, (0, 1), lab_path)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    write_image(tmp / f"images{split}" / f"{case}_0000.nii.gz", image, {"affine": affine})
    write_image(tmp / f"labels{split}" / f"{case}.nii.gz", label.astype(np.uint8), {"affine": affine})


def _convert_tf2(
    case: str,
    img_path: Path,
    lab_path: Path,
    split: str,
    tmp: Path,
    iac: tuple[int, ...],
    allowed: tuple[int, ...] | None,
) -> None:
    image, affine = C.read_mha(img_path)
    label, laff = C.read_mha(lab_path)
    C.check_same_shape(image.shape, label.shape, img_path, lab_path)
    C.check_affines(affine, laff, img_path, lab_path)
    if allowed is not None:
        C.check_values(label, allowed, lab_path)
    canal = np.isin(label, iac).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    write_image(tmp / f"images{split}" / f"{case}_0000.nii.gz", image, {"affine": affine})
    write_image(tmp / f"labels{split}" / f"{case}.nii.gz", canal, {"affine": affine})


def convert(
    raw: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    release: str | None = None,
    spacing: float = 0.3,
    test_fraction: float = 0.2,
    folds: int = 5,
) -> Path:
    """Convert a ToothFairy (2023) or ToothFairy2 download at ``raw`` into ``out``."""
    t0 = time.time()
    raw, out = Path(raw), C.default_out(FOLDER, out)
    found, base = _detect(raw, None if release is None else str(release))
    params = {
        "converter": NAME,
        "raw": str(raw.resolve()),
        "release": found,
        "spacing": spacing,
        "test_fraction": test_fraction,
        "folds": folds,
    }
    stage = C.Staging(out, params, overwrite=overwrite)
    if stage.done:
        print(f"{NAME}: {out} is already converted from {raw} with these settings")
        return out
    notes = []
    if found == "2023":
        patients = sorted((p for p in base.glob("P*") if p.is_dir()), key=lambda p: _patient_key(p.name))
        dense = [p for p in patients if (p / "gt_alpha.npy").is_file()]
        for p in dense:
            if not (p / "data.npy").is_file():
                raise C.ConversionError(f"{p / 'data.npy'}: CBCT volume missing beside {p / 'gt_alpha.npy'}")
        if not dense:
            raise C.ConversionError(f"{base}: no patient folder holds gt_alpha.npy (dense annotation)")
        notes.append(
            f"ToothFairy 2023: {len(dense)} patients with dense labels used, "
            f"{len(patients) - len(dense)} without skipped"
        )
        cases = {f"toothfairy_{p.name}": p for p in dense}
        split_file = base / "splits.json"
        test = set()
        if split_file.is_file():
            listed = json.loads(split_file.read_text()).get("test", [])
            test = {f"toothfairy_{n}" for n in listed} & set(cases)
            notes.append(f"test set from {split_file} ({len(test)} dense patients)")
        if not test:
            test = C.holdout({c: c for c in cases}, test_fraction)
            notes.append(f"test set: deterministic {test_fraction:.0%} hold-out (seed {C.SPLIT_SEED})")
        jobs = [(c, p, "Ts" if c in test else "Tr", stage.tmp, spacing) for c, p in cases.items()]
        fn = _convert_2023
    else:
        img_dir, lab_dir = base / "imagesTr", base / "labelsTr"
        iac, allowed = TF2_IAC_DEFAULT, None
        meta_path = base / "dataset.json"
        if meta_path.is_file():
            meta_labels = {k: int(v) for k, v in json.loads(meta_path.read_text()).get("labels", {}).items()}
            missing = [n for n in TF2_IAC_NAMES if n not in meta_labels]
            if missing:
                raise C.ConversionError(f"{meta_path}: labels {missing} not found")
            iac = tuple(meta_labels[n] for n in TF2_IAC_NAMES)
            allowed = tuple(sorted(set(meta_labels.values()) | {0}))
        cases = {}
        for img in sorted(img_dir.glob("*_0000.mha")):
            stem = img.name[: -len("_0000.mha")]
            lab = lab_dir / f"{stem}.mha"
            if not lab.is_file():
                raise C.ConversionError(f"{lab}: label missing for image {img}")
            cases[f"toothfairy2_{C.safe_case_id(stem)}"] = (img, lab)
        if not cases:
            raise C.ConversionError(f"{img_dir}: no *_0000.mha images")
        test = C.holdout({c: c for c in cases}, test_fraction)
        notes.append(
            f"ToothFairy2: labels {iac} (left/right IAC) merged into 1; others -> 0; "
            f"test set: deterministic {test_fraction:.0%} hold-out (seed {C.SPLIT_SEED})"
        )
        jobs = [(c, i, lab, "Ts" if c in test else "Tr", stage.tmp, iac, allowed) for c, (i, lab) in cases.items()]
        fn = _convert_tf2
    train_cases = sorted(c for c in cases if c not in test)
    with stage:
        C.map_cases(fn, jobs, workers=workers, desc=NAME)
        C.finish(
            stage,
            name=FOLDER,
            channel_names={0: "CT"},
            labels=LABELS,
            train_cases=train_cases,
            test_cases=sorted(test),
            file_ending=".nii.gz",
            dims=3,
            splits=C.kfold_splits(train_cases, folds),
            started=t0,
            notes=notes,
            extra_meta={
                "source_release": found,
                "resampled": False,
                "description": "ToothFairy inferior alveolar canal in CBCT (binary)",
            },
        )
    return out
