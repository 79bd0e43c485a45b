"""Converters from each dataset's published download to the nnU-Net v2 raw layout.

``CONVERTERS[name](raw, out=None, **options) -> Path`` converts the download folder ``raw`` into
the dataset folder ``out`` (default ``data/nnUNet_raw/<folder>``, see ``FOLDERS``), verifies what
it wrote and prints a summary. See data/README.md for each dataset's expected layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from skelrecall.data.converters import cracks, drive, roads, topcow, toothfairy
from skelrecall.data.converters.common import ConversionError

CONVERTERS: dict[str, Callable[..., Path]] = {
    "roads": roads.convert,
    "drive": drive.convert,
    "cracks": cracks.convert,
    "toothfairy": toothfairy.convert,
    "topcow_binary": topcow.convert_binary,
    "topcow_multiclass": topcow.convert_multiclass,
}

#: dataset folder (under data/nnUNet_raw) written by each converter
FOLDERS: dict[str, str] = {
    "roads": roads.FOLDER,
    "drive": drive.FOLDER,
    "cracks": cracks.FOLDER,
    "toothfairy": toothfairy.FOLDER,
    "topcow_binary": topcow.FOLDERS["binary"],
    "topcow_multiclass": topcow.FOLDERS["multiclass"],
}


def get_converter(name: str) -> Callable[..., Path]:
    """The converter registered under ``name``; unknown names list the available ones."""
    if name not in CONVERTERS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[name]


__all__ = ["CONVERTERS", "FOLDERS", "ConversionError", "get_converter"]
