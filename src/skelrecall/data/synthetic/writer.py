"""The one writer behind every synthetic dataset (2D PNG and 3D NIfTI, nnU-Net v2 raw layout).

Case ``i`` of split ``s`` is ``render(numpy.random.default_rng([seed, SPLIT_CODES[s], i]))`` and
is named ``<prefix>_<tr|ts>_<i:04d>``. ``render`` returns ``(image, label)`` or
``(image, label, extras)`` where ``extras`` maps a folder prefix (e.g. ``"masks"``) to an array
written to ``<prefix>Tr``/``<prefix>Ts``. The generator's parameters are stored in dataset.json
under ``synthetic``: an existing folder made with the same parameters is kept (idempotent), other
parameters need ``overwrite=True``. Data are staged in ``<folder>.partial``, verified, then moved
into place (:class:`skelrecall.data.converters.common.Staging`), so an interrupted run never
leaves a folder that looks complete. Splits: :func:`~skelrecall.data.converters.common.kfold_splits`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from skelrecall.data.converters import common as C
from skelrecall.io import write_image

SPLIT_CODES = {"Tr": 0, "Ts": 1}


def make_style(cls: type, overrides: dict[str, Any]) -> Any:
    """``cls(**overrides)`` with lists turned into tuples; unknown names list the known ones."""
    names = {f.name for f in fields(cls)}
    if unknown := sorted(set(overrides) - names):
        raise TypeError(f"unknown {cls.__name__} option(s) {unknown}; available: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def write_synthetic(
    out_dir: str | Path | None,
    *,
    folder: str,
    generator: str,
    render: Callable,
    style: Any,
    labels: dict[str, int],
    channel_names: dict[int, str],
    case_prefix: str,
    description: str,
    seed: int,
    num_train: int,
    num_test: int,
    folds: int,
    overwrite: bool = False,
    progress: bool = True,
    affine: np.ndarray | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``num_train`` + ``num_test`` rendered cases to ``out_dir`` (default
    ``data/nnUNet_raw/<folder>``); PNG for 2D labels, NIfTI (with ``affine``) for 3D."""
    started = time.time()
    out = C.default_out(folder, out_dir)
    params = {
        "generator": generator,
        "seed": seed,
        "num_train": num_train,
        "num_test": num_test,
        "folds": folds,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(style).items()},
    }
    stage = C.Staging(out, params, overwrite=overwrite, key="synthetic")
    if stage.done:
        return out
    cases: dict[str, list[str]] = {"Tr": [], "Ts": []}
    extra_folders: set[str] = set()
    ending, dims, meta = ".png", 2, {}
    jobs = [(split, i) for split, n in (("Tr", num_train), ("Ts", num_test)) for i in range(n)]
    with stage:
        for split, i in tqdm(jobs, desc=f"synthesize {out.name}", disable=not progress, unit="case"):
            image, label, *rest = render(np.random.default_rng([seed, SPLIT_CODES[split], i]))
            if label.ndim == 3:
                ending, dims, meta = ".nii.gz", 3, {"affine": np.eye(4) if affine is None else affine}
            case = f"{case_prefix}_{split.lower()}_{i:04d}"
            write_image(stage.tmp / f"images{split}" / f"{case}_0000{ending}", image, meta)
            write_image(stage.tmp / f"labels{split}" / f"{case}{ending}", label, meta)
            for prefix, arr in (rest[0] if rest else {}).items():
                write_image(stage.tmp / f"{prefix}{split}" / f"{case}{ending}", arr, meta)
                extra_folders.add(prefix)
            cases[split].append(case)
        C.finish(
            stage,
            name=folder,
            channel_names=channel_names,
            labels=labels,
            train_cases=cases["Tr"],
            test_cases=cases["Ts"],
            file_ending=ending,
            dims=dims,
            splits=C.kfold_splits(cases["Tr"], folds, seed),
            extra_meta={"description": description, **(extra_meta or {})},
            extra_folders=tuple(f"{p}Tr" for p in sorted(extra_folders)),
            started=started if progress else None,
        )
    return out
