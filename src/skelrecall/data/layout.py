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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skelrecall.io import atomic_write


class DatasetLayoutError(RuntimeError):
    """A dataset folder is missing or does not follow the nnU-Net v2 raw layout."""


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


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
    def open(cls, root: str | Path, hint: str = "") -> "DatasetLayout":
        """Open ``root``; if it is not a converted dataset, fail with ``hint`` (how to create it)."""
        root = Path(root)
        if not (root / "dataset.json").is_file():
            msg = f"dataset folder {root} not found (no dataset.json)."
            raise DatasetLayoutError(msg + (f" Create it with: {hint}" if hint else ""))
        return cls(root)

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.root / "dataset.json").read_text())

    @property
    def file_ending(self) -> str:
        return self.meta["file_ending"]

    @property
    def labels(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.meta["labels"].items() if isinstance(v, (int, float))}

    @property
    def num_channels(self) -> int:
        return len(self.meta["channel_names"])

    def cases(self, split: str = "Tr") -> list[str]:
        """Sorted case identifiers that have a label file in ``labels{split}``."""
        folder = self.root / f"labels{split}"
        if not folder.is_dir():
            return []
        ending = self.file_ending
        return sorted(p.name[: -len(ending)] for p in folder.iterdir() if p.name.endswith(ending))

    def image_files(self, case: str, split: str = "Tr") -> list[Path]:
        """The channel files of ``case`` (``CASE_0000<ending>``, ...), in channel order."""
        folder = self.root / f"images{split}"
        files = sorted(folder.glob(f"{case}_[0-9][0-9][0-9][0-9]{self.file_ending}"))
        if not files:
            raise DatasetLayoutError(f"{folder}: no image file for case {case!r}")
        return files

    def label_file(self, case: str, split: str = "Tr") -> Path:
        return self.root / f"labels{split}" / f"{case}{self.file_ending}"

    def splits(self) -> list[dict[str, list[str]]]:
        path = self.root / "splits.json"
        if not path.is_file():
            raise DatasetLayoutError(f"{path} not found")
        return json.loads(path.read_text())
