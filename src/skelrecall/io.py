"""Reading and writing images and label maps in the formats of the nnU-Net v2 raw layout.

Supported endings: ``.png``, ``.tif``/``.tiff`` (2D, grey or RGB, via Pillow), ``.nii.gz`` (2D/3D, via
nibabel), ``.mha`` (via SimpleITK, the ``mha`` extra), ``.npy`` and ``.npz`` (the single array in the
file, or the array named ``data``).

Axis order follows nnU-Net (which reads through SimpleITK): PNG gives ``(H, W)`` or ``(H, W, 3)``;
volumes are returned as ``(z, y, x)`` (for NIfTI the reverse of nibabel's ``(x, y, z)``), so that
patch sizes in our configs read like nnU-Net's plans (e.g. 80x160x192). ``write_image`` reverses
the axes back. Geometry is returned in ``meta`` (NIfTI: ``affine``, ``header``, ``zooms`` in
``(z, y, x)`` order; MHA: ``spacing``, ``origin``, ``direction`` in SimpleITK's order) so that a label
map can be written with the geometry of its image. Every write goes to a temporary name first and is
then renamed, so an interrupted write never leaves a file that looks complete; ``staged_dir`` does the
same for a whole folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ENDINGS = (".png", ".tif", ".tiff", ".nii.gz", ".mha", ".npy", ".npz")


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class ImageReadError(RuntimeError):
    """A file could not be read as an image (missing, truncated, corrupt, unsupported)."""


def file_ending(path: str | os.PathLike) -> str:
    """The supported ending of ``path`` (``.nii.gz`` counts as one ending)."""
    name = Path(path).name
    for ending in ENDINGS:
        if name.endswith(ending):
            return ending
    raise ImageReadError(f"{path}: unsupported file ending; expected one of {', '.join(ENDINGS)}")


def _existing(path: str | os.PathLike) -> tuple[Path, str]:
    """``(path, its supported ending)``, or ``ImageReadError`` if it is missing or unsupported."""
    path = Path(path)
    ending = file_ending(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file does not exist")
    return path, ending


def _pillow(path: Path):
    from PIL import Image

    return Image.open(path)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``path`` into ``(array, meta)`` (geometry in ``meta``, see the module docstring)."""
    path, ending = _existing(path)
    try:
        if ending in (".png", ".tif", ".tiff"):
            with _pillow(path) as im:
                if getattr(im, "n_frames", 1) > 1:
                    raise ImageReadError(f"{path}: holds {im.n_frames} frames; expected one 2D image")
                im.load()
                return np.asarray(im), {}
        if ending == ".nii.gz":
            import nibabel as nib

            img = nib.load(str(path))
            return np.asanyarray(img.dataobj).transpose(), {
                "affine": img.affine,
                "header": img.header,
                "zooms": tuple(float(z) for z in img.header.get_zooms()[::-1]),
            }
        if ending == ".mha":
            sitk = _simpleitk(path)
            img = sitk.ReadImage(str(path))
            return sitk.GetArrayFromImage(img), {
                "spacing": img.GetSpacing(),
                "origin": img.GetOrigin(),
                "direction": img.GetDirection(),
            }
        if ending == ".npy":
            return np.load(path, allow_pickle=False), {}
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "data" if "data" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ImageReadError(f"{path}: .npz holds {keys}; expected one array or one named 'data'")
            return z[key], {}
    except ImageReadError:
        raise
    except Exception as exc:  # corrupt or truncated files surface as many exception types
        raise ImageReadError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _simpleitk(path: Path):
    try:
        import SimpleITK as sitk
    except ImportError:
        raise ImageReadError(f"{path}: .mha files need SimpleITK (pip install 'skelrecall[mha]')") from None
    return sitk


def image_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape :func:`read_image` gives for ``path``, from the file's header where the format has one."""
    path, ending = _existing(path)
    try:
        if ending in (".png", ".tif", ".tiff"):
            with _pillow(path) as im:
                bands = len(im.getbands())
                return (im.height, im.width) + ((bands,) if bands > 1 else ())
        if ending == ".nii.gz":
            import nibabel as nib

            return tuple(nib.load(str(path)).shape[::-1])
        if ending == ".mha":
            reader = _simpleitk(path).ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            comps = reader.GetNumberOfComponents()
            return tuple(reader.GetSize()[::-1]) + ((comps,) if comps > 1 else ())
        if ending == ".npy":
            return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return tuple(read_image(path)[0].shape)


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_write` (``.<name>.<random>.tmp<ending>``)."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


def atomic_write(path: str | os.PathLike, writer, *, fsync: bool = False) -> Path:
    """Call ``writer(tmp_path)`` and rename the result to ``path`` only once it is complete.

    The temporary file lies in the same folder (so the rename is atomic); ``fsync=True`` also
    flushes file and folder to disk, so a power cut cannot leave a renamed but empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ending = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{ending}", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, _file_mode())
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JSONFileError(ValueError):
    """A JSON file is missing, malformed, or lacks a required field; the message names file and place."""


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse ``path``; errors name the file, and for syntax errors the line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise JSONFileError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONFileError(
            f"{path}: {what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def write_image(path: str | os.PathLike, array: np.ndarray, meta: dict[str, Any] | None = None) -> Path:
    """Write ``array`` to ``path`` in the format its ending names (atomically), with the geometry in
    ``meta`` (as :func:`read_image` returns it: a label map written with its image's ``meta`` gets the
    image's affine and header, its data type and no intensity scaling)."""
    meta = meta or {}
    ending = file_ending(path)
    array = np.asarray(array)

    def _write(tmp: Path) -> None:
        if ending in (".png", ".tif", ".tiff"):
            from PIL import Image

            if ending == ".png" and array.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"{path}: PNG needs uint8/uint16 data, got {array.dtype}")
            Image.fromarray(array).save(tmp, format="PNG" if ending == ".png" else "TIFF")
        elif ending == ".nii.gz":
            import nibabel as nib

            header = meta.get("header")
            if header is not None:
                header = header.copy()
                header.set_data_dtype(array.dtype)
                header.set_slope_inter(None, None)  # stored as given, no scaling
                header["cal_min"], header["cal_max"] = 0, 0  # the image's display window does not fit
            nib.save(nib.Nifti1Image(array.transpose(), meta.get("affine", np.eye(4)), header), str(tmp))
        elif ending == ".mha":
            sitk = _simpleitk(Path(path))
            img = sitk.GetImageFromArray(array)
            for key, setter in (
                ("spacing", img.SetSpacing),
                ("origin", img.SetOrigin),
                ("direction", img.SetDirection),
            ):
                if key in meta:
                    setter(meta[key])
            sitk.WriteImage(img, str(tmp), True)
        elif ending == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, array)
        else:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, data=array)

    return atomic_write(path, _write)


@contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty ``<path>.partial`` folder to fill; when the block ends without an error, replace
    ``path`` with it. An interrupted fill leaves only the ``.partial`` folder (emptied on the next use)."""
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
