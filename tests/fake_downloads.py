"""Tiny fake downloads in each dataset's published layout, shared by the converter and CLI tests.

Each builder writes a few small files under ``root`` exactly where the real release puts them and
returns ``root`` (the folder a user passes as ``--raw``). Sizes are tiny so a conversion takes well
under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------------------
# DRIVE: DRIVE/{training,test}/{images,1st_manual,mask}

DRIVE_H, DRIVE_W = 12, 10


def fake_drive(root: Path, ids=range(21, 41), test_ids=(1, 2)) -> Path:
    """``DRIVE/training/images/<id>_training.tif`` (RGB), ``1st_manual/<id>_manual1.gif`` (0/255,
    vessel = column ``id % W``), ``mask/<id>_training_mask.gif`` (FOV = all but pixel (0, 0)); the
    same for ``test/`` with ``test_ids``."""
    rng = np.random.default_rng(0)
    for part, numbers in (("training", ids), ("test", test_ids)):
        if not numbers:
            continue
        for d in ("images", "1st_manual", "mask"):
            (root / "DRIVE" / part / d).mkdir(parents=True, exist_ok=True)
        for i in numbers:
            img = rng.integers(0, 255, (DRIVE_H, DRIVE_W, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "DRIVE" / part / "images" / f"{i:02d}_{part}.tif")
            vessel = np.zeros((DRIVE_H, DRIVE_W), np.uint8)
            vessel[:, i % DRIVE_W] = 255
            Image.fromarray(vessel).save(root / "DRIVE" / part / "1st_manual" / f"{i:02d}_manual1.gif")
            fov = np.full((DRIVE_H, DRIVE_W), 255, np.uint8)
            fov[0, 0] = 0
            Image.fromarray(fov).save(root / "DRIVE" / part / "mask" / f"{i:02d}_{part}_mask.gif")
    return root


# --------------------------------------------------------------------------------------------------
# Massachusetts Roads: original (mass_roads/<split>/{sat,map}), Kaggle tiff/png, Kaggle "ideal"

ROADS_S = 40


def roads_pair(rng, i):
    """An image with a 15x15 pure-white no-data block and a 2x2 white patch, and its road map."""
    img = rng.integers(0, 250, (ROADS_S, ROADS_S, 3), dtype=np.uint8)  # never pure white by chance
    img[:15, :15] = 255  # no-data block (225 px)
    img[30:32, 30:32] = 255  # small white patch (4 px): real data, kept
    lab = np.zeros((ROADS_S, ROADS_S), np.uint8)
    lab[5 + i % 3, :] = 255  # a road running through the no-data block
    lab[30, :] = 255  # and one through the small white patch
    return img, lab


def _write_pair(folder_img, folder_lab, stem, img, lab, img_ext, lab_ext):
    folder_img.mkdir(parents=True, exist_ok=True)
    folder_lab.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder_img / f"{stem}{img_ext}")
    if lab is not None:
        Image.fromarray(lab).save(folder_lab / f"{stem}{lab_ext}")


def fake_roads(root: Path, layout: str = "original", n_train=6, n_valid=1, n_test=2, unlabelled=0) -> Path:
    """``layout``: ``original`` (``mass_roads/train/sat/<id>.tiff`` + ``train/map/<id>.tif``, likewise
    valid/test), ``tiff``/``png`` (Kaggle balraj98: ``tiff/train`` + ``tiff/train_labels``, ...),
    ``ideal`` (Kaggle insaff: ``road_segmentation_ideal/{training,testing}/{input,output}``;
    ``unlabelled`` extra training inputs without a label)."""
    rng = np.random.default_rng(1)
    splits = {"train": n_train, "valid": n_valid, "test": n_test}
    for split, n in splits.items():
        for i in range(n + (unlabelled if split == "train" else 0)):
            img, lab = roads_pair(rng, i)
            if i >= n:
                lab = None
            stem = f"1017{i:04d}_15" if layout != "ideal" else f"img-{i + 1}"
            if layout == "original":
                _write_pair(
                    root / "mass_roads" / split / "sat",
                    root / "mass_roads" / split / "map",
                    stem,
                    img,
                    lab,
                    ".tiff",
                    ".tif",
                )
            elif layout in ("tiff", "png"):
                name = {"train": "train", "valid": "val", "test": "test"}[split]
                ext = (".tiff", ".tif") if layout == "tiff" else (".png", ".png")
                _write_pair(root / layout / name, root / layout / f"{name}_labels", stem, img, lab, *ext)
            elif layout == "ideal":
                if split == "valid":
                    continue
                base = root / "road_segmentation_ideal" / ("training" if split == "train" else "testing")
                _write_pair(base / "input", base / "output", stem, img, lab, ".png", ".png")
            else:
                raise ValueError(f"unknown fake roads layout {layout!r}")
    return root


# --------------------------------------------------------------------------------------------------
# cracks: generic <part>/images + <part>/masks

CRACKS_S = 16


def fake_cracks(root: Path, parts=("train", "test"), n=4, mask_ext=".png", suffix="") -> Path:
    """``cracks/<part>/images/<part><i>.jpg`` and ``cracks/<part>/masks/<part><i><suffix><mask_ext>``
    (0/255, crack = row ``i + 2``)."""
    rng = np.random.default_rng(2)
    for part in parts:
        (root / "cracks" / part / "images").mkdir(parents=True)
        (root / "cracks" / part / "masks").mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 255, (CRACKS_S, CRACKS_S, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "cracks" / part / "images" / f"{part}{i:03d}.jpg")
            mask = np.zeros((CRACKS_S, CRACKS_S), np.uint8)
            mask[i + 2, :] = 255
            Image.fromarray(mask).save(root / "cracks" / part / "masks" / f"{part}{i:03d}{suffix}{mask_ext}")
    return root


# --------------------------------------------------------------------------------------------------
# ToothFairy 2023: ToothFairy_Dataset/Dataset/P<n>/{data,gt_alpha,gt_sparse}.npy

TOOTHFAIRY_SHAPE = (6, 8, 10)


def fake_toothfairy_2023(root: Path, n_dense=6, n_sparse=2) -> Path:
    """``n_dense`` patients with ``gt_alpha.npy`` (canal = 16 voxels) and ``n_sparse`` without."""
    base = root / "ToothFairy_Dataset" / "Dataset"
    rng = np.random.default_rng(3)
    for i in range(1, n_dense + n_sparse + 1):
        p = base / f"P{i}"
        p.mkdir(parents=True)
        np.save(p / "data.npy", rng.integers(-1000, 3000, TOOTHFAIRY_SHAPE).astype(np.int16))
        np.save(p / "gt_sparse.npy", np.zeros(TOOTHFAIRY_SHAPE, np.uint8))
        if i <= n_dense:
            gt = np.zeros(TOOTHFAIRY_SHAPE, np.uint8)
            gt[2:4, 3, 1:9] = 1
            np.save(p / "gt_alpha.npy", gt)
    return root


# --------------------------------------------------------------------------------------------------
# TopCoW 2023: TopCoW2023_Data_Release/{imagesTr,cow_seg_labelsTr}/topcow_{ct,mr}_whole_<nnn>...

TOPCOW_SHAPE = (10, 9, 8)
TOPCOW_AFFINE = np.diag([0.4, 0.4, 0.6, 1.0])


def topcow_label() -> np.ndarray:
    """Every release label value (1..12 and 15) on a few voxels each."""
    lab = np.zeros(TOPCOW_SHAPE, np.uint8)
    for k, v in enumerate((*range(1, 13), 15)):
        lab[k % 10, k // 10 + 2, 1:4] = v
    return lab


def fake_topcow(root: Path, patients=range(1, 6)) -> Path:
    """CTA and MRA of each patient with :func:`topcow_label` as label, NIfTI with ``TOPCOW_AFFINE``."""
    import nibabel as nib

    rel = root / "TopCoW2023_Data_Release"
    (rel / "imagesTr").mkdir(parents=True)
    (rel / "cow_seg_labelsTr").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for p in patients:
        for mod in ("ct", "mr"):
            stem = f"topcow_{mod}_whole_{p:03d}"
            nib.save(
                nib.Nifti1Image(rng.normal(size=TOPCOW_SHAPE).astype(np.float32), TOPCOW_AFFINE),
                rel / "imagesTr" / f"{stem}_0000.nii.gz",
            )
            nib.save(nib.Nifti1Image(topcow_label(), TOPCOW_AFFINE), rel / "cow_seg_labelsTr" / f"{stem}.nii.gz")
    return root
