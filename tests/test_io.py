"""Image I/O: round trips in every format, nnU-Net axis order for NIfTI, atomic writes."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest

from skelrecall.io import ImageReadError, atomic_write, read_image, write_image


@pytest.mark.parametrize("ending", [".png", ".nii.gz", ".npy", ".npz"])
def test_round_trip(tmp_path, ending):
    data = np.random.default_rng(0).integers(0, 255, (5, 7) if ending == ".png" else (3, 5, 7)).astype(np.uint8)
    affine = np.diag([0.5, 0.6, 0.7, 1.0])
    path = write_image(tmp_path / f"case{ending}", data, {"affine": affine})
    back, meta = read_image(path)
    np.testing.assert_array_equal(back, data)
    if ending == ".nii.gz":
        np.testing.assert_allclose(meta["affine"], affine)
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044  # readable by others, not mkstemp's 0600


def test_nifti_arrays_are_z_y_x(tmp_path):
    xyz = np.zeros((4, 5, 6), np.uint8)  # nibabel order (x, y, z)
    xyz[3, 0, 0] = 1
    nib.save(nib.Nifti1Image(xyz, np.eye(4)), str(tmp_path / "a.nii.gz"))
    zyx, _ = read_image(tmp_path / "a.nii.gz")
    assert zyx.shape == (6, 5, 4) and zyx[0, 0, 3] == 1


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(tmp_path / "x.jpg")


def test_interrupted_write_leaves_nothing(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "result.json", fail)
    assert list(tmp_path.iterdir()) == []
