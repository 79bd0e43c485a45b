"""Converters from each dataset's published download to the nnU-Net v2 raw layout.

Every entry of ``CONVERTERS`` has one signature::

    convert(raw, out=None, *, workers=1, overwrite=False, **options) -> Path

It converts the download folder ``raw`` into the dataset folder ``out`` (default
``data/nnUNet_raw/<folder>``, see ``FOLDERS``) with ``workers`` processes, verifies what it wrote
and prints a summary; ``overwrite`` replaces a folder converted with other settings. ``options``
are the dataset's own keyword-only settings, each with a default (:func:`converter_options`;
``skelrecall-data convert NAME --option KEY=VALUE``). See data/README.md for each dataset's
expected layout.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skelrecall.data.converters import cracks, drive, roads, toothfairy, topcow
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


#: the keyword arguments every converter takes besides ``raw`` and ``out``
COMMON_OPTIONS = ("workers", "overwrite")


def converter_options(name: str) -> dict[str, Any]:
    """The dataset-specific keyword options of converter ``name`` and their defaults (without
    ``raw``, ``out``, ``workers`` and ``overwrite``)."""
    params = inspect.signature(get_converter(name)).parameters
    return {
        p.name: p.default
        for p in params.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in COMMON_OPTIONS
    }


__all__ = ["COMMON_OPTIONS", "CONVERTERS", "FOLDERS", "ConversionError", "converter_options", "get_converter"]
