"""The nnU-Net v2 raw layout that every converter and generator writes and every reader reads.

::

    DatasetNNN_Name/
      dataset.json      channel_names, labels (name -> value, background = 0), numTraining, file_ending
      splits.json       [{"train": [...], "val": [...]}, ...]  (nnU-Net's splits_final.json format)
      imagesTr/CASE_0000<ending>   one file per channel (PNG RGB: one file holding 3 channels)
      labelsTr/CASE<ending>
      imagesTs/CASE_0000<ending>
      labelsTs/CASE<ending>

The same folder can be given to the official nnU-Net / Skeleton Recall code unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.io import JSONFileError, read_image, read_json, write_json

#: what a case identifier may look like: letters, digits, ``_``, ``-``, ``.`` (no path separators, no ``..``)
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DatasetLayoutError(RuntimeError):
    """A dataset folder is missing or does not follow the nnU-Net v2 raw layout."""


def check_case_id(case: Any, where: str) -> str:
    """``case`` if it is a safe case identifier (see ``CASE_ID``), else an error naming ``where``."""
    if not isinstance(case, str) or not CASE_ID.match(case) or ".." in case:
        raise DatasetLayoutError(
            f"{where}: case id {case!r} is not allowed (letters, digits, '_', '-', '.'; no path separators or '..')"
        )
    return case


def write_dataset_json(
    root: str | Path,
    *,
    channel_names: dict[int | str, str],
    labels: dict[str, int],
    num_training: int,
    file_ending: str,
    **extra: Any,
) -> Path:
    """Write ``root/dataset.json`` in nnU-Net v2's format (``extra`` keys are kept as given)."""
    if labels.get("background") != 0:
        raise ValueError(f"labels must map 'background' to 0, got {labels}")
    content = {
        "channel_names": {str(k): v for k, v in channel_names.items()},
        "labels": dict(labels),
        "numTraining": int(num_training),
        "file_ending": file_ending,
        **extra,
    }
    return write_json(Path(root) / "dataset.json", content)


@dataclass(frozen=True)
class DatasetLayout:
    """Read access to one converted dataset folder."""

    root: Path

    @classmethod
    def open(cls, root: str | Path, hint: str = "") -> DatasetLayout:
        """Open ``root``; if it is not a converted dataset, fail with ``hint`` (how to create it)."""
        root = Path(root)
        if not (root / "dataset.json").is_file():
            msg = f"dataset folder {root} not found (no dataset.json)."
            raise DatasetLayoutError(msg + (f" Create it with: {hint}" if hint else ""))
        return cls(root)

    @cached_property
    def meta(self) -> dict[str, Any]:
        """``dataset.json``, checked: an object with ``labels`` (name -> integer value) and ``file_ending``."""
        path = self.root / "dataset.json"
        try:
            meta = read_json(path, "dataset.json")
        except JSONFileError as exc:
            raise DatasetLayoutError(str(exc)) from None
        if not isinstance(meta, dict):
            raise DatasetLayoutError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        for key in ("labels", "file_ending", "channel_names"):
            if key not in meta:
                raise DatasetLayoutError(f"{path}: required field {key!r} is missing")
        labels = meta["labels"]
        if not isinstance(labels, dict) or not labels:
            raise DatasetLayoutError(
                f'{path}: \'labels\' must map names to values, e.g. {{"background": 0, "vessel": 1}}; got {labels!r}'
            )
        for name, value in labels.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise DatasetLayoutError(
                    f"{path}: label {name!r} has value {value!r}; expected an integer >= 0 "
                    "(region-based labels are not supported)"
                )
        return meta

    @property
    def file_ending(self) -> str:
        return self.meta["file_ending"]

    @property
    def labels(self) -> dict[str, int]:
        return dict(self.meta["labels"])

    def check_label_values(self, case: str, split: str, label: np.ndarray, ignore_label: int | None = None) -> None:
        """Fail naming the file and values if ``label`` holds values that ``dataset.json`` does not declare."""
        allowed = set(self.labels.values()) | ({ignore_label} if ignore_label is not None else set())
        bad = sorted(set(np.unique(label).tolist()) - allowed)
        if bad:
            raise DatasetLayoutError(
                f"{self.label_file(case, split)}: label values {bad} are not in "
                f"{self.root / 'dataset.json'} labels {self.labels}"
            )

    def check_labels(self, cases: list[str], split: str, ignore_label: int | None = None) -> None:
        """Read every label file of ``cases`` and check its values (before any training time is spent)."""
        for case in cases:
            label, _ = read_image(self.label_file(case, split))
            self.check_label_values(case, split, label, ignore_label)

    @property
    def num_channels(self) -> int:
        return len(self.meta["channel_names"])

    def cases(self, split: str = "Tr") -> list[str]:
        """Sorted case identifiers that have a label file in ``labels{split}``."""
        folder = self.root / f"labels{split}"
        if not folder.is_dir():
            return []
        ending = self.file_ending
        return sorted(
            p.name[: -len(ending)] for p in folder.iterdir() if p.name.endswith(ending) and not p.name.startswith(".")
        )  # .x.tmp: interrupted writes

    def image_files(self, case: str, split: str = "Tr") -> list[Path]:
        """The channel files of ``case`` (``CASE_0000<ending>``, ...), in channel order."""
        folder = self.root / f"images{split}"
        check_case_id(case, f"case of {folder}")
        files = sorted(folder.glob(f"{case}_[0-9][0-9][0-9][0-9]{self.file_ending}"))
        if not files:
            raise DatasetLayoutError(f"{folder}: no image file for case {case!r}")
        return files

    def label_file(self, case: str, split: str = "Tr") -> Path:
        folder = self.root / f"labels{split}"
        return folder / f"{check_case_id(case, f'case of {folder}')}{self.file_ending}"

    def splits(self) -> list[dict[str, list[str]]]:
        """``splits.json``, checked: a list of ``{"train": [...], "val": [...]}`` with safe case ids."""
        path = self.root / "splits.json"
        if not path.is_file():
            raise DatasetLayoutError(f"{path} not found")
        try:
            splits = read_json(path, "splits.json")
        except JSONFileError as exc:
            raise DatasetLayoutError(str(exc)) from None
        if not isinstance(splits, list) or not all(isinstance(f, dict) and {"train", "val"} <= set(f) for f in splits):
            raise DatasetLayoutError(f'{path}: expected a list of {{"train": [...], "val": [...]}} folds')
        for i, fold in enumerate(splits):
            for part in ("train", "val"):
                for case in fold[part]:
                    check_case_id(case, f"{path} fold {i} {part}")
        return splits
