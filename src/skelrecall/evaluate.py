"""Evaluate a folder of predictions against a folder of labels: ``per_case.csv`` and ``summary.json``.

Files are paired by case name in the nnU-Net v2 way: the label of case ``CASE`` is
``label_dir/CASE<ending>`` and its prediction ``pred_dir/CASE<ending>`` (optional field-of-view
mask: ``mask_dir/CASE<ending>``, nonzero = evaluated, zero = ignored). Everything is checked before
any metric is computed (missing cases on either side, shape mismatches, label values outside the
label map, unreadable files); every problem is reported with its case name. Cases are then
evaluated in parallel worker processes with :func:`skelrecall.metrics.evaluate_case`, and both
outputs are written atomically.

``summary.json``::

    {"n_cases": N, "labels": {...}, "file_ending": ".nii.gz",
     "headline": {metric: {"mean", "std", "n"}},          # the headline rows (binary: the class row,
                                                          # multi-class: the per-case class means)
     "per_class": {name: {metric: {"mean", "std", "n"}}}, # per-class rows, one entry per class seen
     "merged": {metric: {...}}}                           # multi-class only: the union of all classes

``mean`` and ``std`` (sample standard deviation, ``ddof=1``) are taken over the cases whose value
is not NaN, ``n`` counts them; ``null`` stands for an undefined value (no case, or ``std`` of one).

CLI: ``skelrecall-evaluate --pred DIR --labels DIR [--dataset-json F] [--masks DIR] [--out DIR]
[--workers N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from skelrecall.data.layout import write_json
from skelrecall.io import ENDINGS, ImageReadError, atomic_write, read_image
from skelrecall.metrics.case import as_label_map, check_values, columns, evaluate_case, foreground_classes

METRICS = ["dice", "cldice", "betti0_error", "betti1_error", "betti2_error"]
MAX_LISTED = 20


class EvaluationError(RuntimeError):
    """The prediction/label folders cannot be evaluated; the message names every problem and case."""


def headline_rows(per_case: pd.DataFrame) -> pd.DataFrame:
    """The headline rows of a ``per_case`` table (one per case: the class row or the class mean)."""
    flag = per_case["headline"]
    if flag.dtype != bool:
        flag = flag.astype(str).str.strip().str.lower() == "true"
    return per_case[flag]


def load_labels(
    labels: dict[str, int] | None, dataset_json: str | os.PathLike | None, label_dir: Path
) -> tuple[dict[str, int], dict[str, Any]]:
    """``(labels, dataset.json content)``: the given labels, or the ``labels`` of ``dataset.json``."""
    path = Path(dataset_json) if dataset_json is not None else label_dir.parent / "dataset.json"
    meta: dict[str, Any] = {}
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}: not valid JSON ({exc})") from exc
    elif dataset_json is not None:
        raise EvaluationError(f"{path}: dataset.json not found")
    if labels is None:
        if "labels" not in meta:
            raise EvaluationError(
                f"no label map: pass labels, or a dataset.json with a 'labels' key (looked for {path})"
            )
        labels = meta["labels"]
    try:
        foreground_classes(labels)
    except ValueError as exc:
        raise EvaluationError(f"bad label map: {exc}") from exc
    return {k: int(v) for k, v in labels.items()}, meta


def _infer_ending(folder: Path) -> str:
    found = {e for p in folder.iterdir() if p.is_file() for e in ENDINGS if p.name.endswith(e)}
    if len(found) != 1:
        raise EvaluationError(
            f"{folder}: cannot infer the file ending (found {sorted(found) or 'no image files'}); "
            "pass file_ending or a dataset.json with 'file_ending'"
        )
    return found.pop()


def _cases(folder: Path, ending: str) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(ending))
    return {p.name[: -len(ending)]: p for p in files}


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _read_label_map(path: Path, what: str) -> np.ndarray:
    array, _ = read_image(path)
    if path.name.endswith(".png") and array.ndim == 3:
        raise ValueError(
            f"{what} {path.name} has {array.shape[-1]} channels; expected a single-channel label map"
        )
    return as_label_map(array, f"{what} {path.name}")


def _load_case(job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pred = _read_label_map(Path(job["pred"]), "prediction")
    gt = _read_label_map(Path(job["gt"]), "label")
    ignore = None
    if job.get("mask"):
        fov, _ = read_image(job["mask"])
        ignore = np.asarray(fov) == 0
    return pred, gt, ignore


def _check_case(job: dict[str, Any]) -> list[str]:
    """Problems of one case (each message starts with the case name); empty if it can be evaluated."""
    case = job["case"]
    try:
        pred, gt, ignore = _load_case(job)
    except (ImageReadError, ValueError) as exc:
        return [f"case {case}: {exc}"]
    problems = []
    if pred.shape != gt.shape:
        problems.append(f"case {case}: prediction shape {pred.shape} differs from label shape {gt.shape}")
    if gt.ndim not in (2, 3):
        problems.append(f"case {case}: expected a 2D or 3D label map, got shape {gt.shape}")
    if ignore is not None and ignore.shape != gt.shape:
        problems.append(f"case {case}: mask shape {ignore.shape} differs from label shape {gt.shape}")
    problems += [f"case {case}: {p}" for p in check_values(pred, gt, job["labels"])]
    return problems


def _evaluate_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        pred, gt, ignore = _load_case(job)
        rows = evaluate_case(pred, gt, job["labels"], ignore_mask=ignore)
    except (ImageReadError, ValueError) as exc:  # e.g. a file changed after the checks
        raise EvaluationError(f"case {job['case']}: {exc}") from None
    return [{"case": job["case"], **row} for row in rows]


def _run_parallel(fn: Callable, jobs: list[dict], workers: int, desc: str) -> list:
    """``[fn(job) for job in jobs]`` (in job order), in ``workers`` processes, with a progress bar."""
    results: list = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="case", file=sys.stderr, disable=None)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                results[i] = fn(job)
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results
    finally:
        bar.close()


def _stats(values: pd.Series) -> dict[str, Any]:
    vals = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    n = int(vals.size)
    mean = float(vals.mean()) if n else None
    std = float(vals.std(ddof=1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def summarize(per_case: pd.DataFrame, labels: dict[str, int]) -> dict[str, Any]:
    """The ``summary.json`` content of a ``per_case`` table (see the module docstring)."""
    metrics = [m for m in METRICS if m in per_case.columns]
    head = headline_rows(per_case)
    summary: dict[str, Any] = {
        "n_cases": int(per_case["case"].nunique()),
        "labels": labels,
        "headline": {m: _stats(head[m]) for m in metrics},
        "per_class": {},
    }
    multi = len(foreground_classes(labels)) > 1
    class_rows = per_case[~per_case["class"].isin(["mean", "merged"])] if multi else per_case
    for name, _ in foreground_classes(labels):
        rows = class_rows[class_rows["class"] == name]
        if len(rows):
            summary["per_class"][name] = {m: _stats(rows[m]) for m in metrics}
    if multi:
        merged = per_case[per_case["class"] == "merged"]
        summary["merged"] = {m: _stats(merged[m]) for m in metrics}
    return summary


def evaluate_folder(
    pred_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    labels: dict[str, int] | None = None,
    dataset_json: str | os.PathLike | None = None,
    file_ending: str | None = None,
    mask_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    cases: list[str] | None = None,
) -> dict[str, Any]:
    """Score every case of ``pred_dir`` against ``label_dir`` (or only ``cases``, e.g. the
    validation fold of a cross-validated dataset whose labels all lie in ``labelsTr``); write ``out_dir/per_case.csv`` and
    ``out_dir/summary.json``; return the summary.

    ``labels`` (name -> value, nnU-Net style) default to the ``labels`` of ``dataset_json``, which
    defaults to ``label_dir/../dataset.json``. ``file_ending`` defaults to the dataset.json's, else
    to the single supported ending found in ``label_dir``. Raises :class:`EvaluationError` naming
    every problem (and its case) before any metric is computed.
    """
    pred_dir, label_dir, out_dir = Path(pred_dir), Path(label_dir), Path(out_dir)
    for what, folder in (("prediction", pred_dir), ("label", label_dir), ("mask", mask_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise EvaluationError(f"{what} folder {folder} does not exist")
    labels, meta = load_labels(labels, dataset_json, label_dir)
    ending = file_ending or meta.get("file_ending") or _infer_ending(label_dir)

    gt_files, pred_files = _cases(label_dir, ending), _cases(pred_dir, ending)
    if not gt_files:
        raise EvaluationError(f"{label_dir}: no label files ending in {ending}")
    problems = []
    if cases is not None:
        if unknown := sorted(set(cases) - set(gt_files)):
            raise EvaluationError(f"{label_dir}: no label for requested cases {_listed(unknown)}")
        gt_files = {c: gt_files[c] for c in cases}
    if missing := sorted(set(gt_files) - set(pred_files)):
        problems.append(f"{pred_dir}: no prediction for cases {_listed(missing)}")
    if extra := sorted(set(pred_files) - set(gt_files)):
        problems.append(f"{label_dir}: no label for predicted cases {_listed(extra)}")
    mask_files: dict[str, Path] = {}
    if mask_dir is not None:
        mask_files = _cases(Path(mask_dir), ending)
        if missing_masks := sorted(set(gt_files) - set(mask_files)):
            problems.append(f"{mask_dir}: no mask for cases {_listed(missing_masks)}")
    if problems:
        raise EvaluationError("cannot evaluate:\n  " + "\n  ".join(problems))

    jobs = [
        {"case": c, "pred": str(pred_files[c]), "gt": str(gt_files[c]),
         "mask": str(mask_files[c]) if mask_files else None, "labels": labels}
        for c in sorted(gt_files)
    ]  # fmt: skip
    workers = num_workers if num_workers is not None else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(jobs)))

    problems = [p for found in _run_parallel(_check_case, jobs, workers, "checking") for p in found]
    if problems:
        shown = problems[:MAX_LISTED]
        if len(problems) > MAX_LISTED:
            shown.append(f"... ({len(problems)} problems in all)")
        raise EvaluationError("cannot evaluate:\n  " + "\n  ".join(shown))

    results = _run_parallel(_evaluate_job, jobs, workers, "evaluating")
    rows = [row for case_rows in results for row in case_rows]
    ndim = 3 if any("betti2_pred" in r for r in rows) else 2
    per_case = pd.DataFrame(rows, columns=["case", *columns(ndim)])
    summary = summarize(per_case, labels)
    summary["file_ending"] = ending

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "per_case.csv", lambda tmp: per_case.to_csv(tmp, index=False))
    write_json(out_dir / "summary.json", _json_safe(summary))
    return summary


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None so the file is strict JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="skelrecall-evaluate",
        description="Dice, clDice and Betti errors of a folder of predictions (nnU-Net file names).",
    )
    parser.add_argument("--pred", required=True, help="folder of predictions CASE<ending>")
    parser.add_argument("--labels", required=True, help="folder of ground-truth label maps CASE<ending>")
    parser.add_argument("--dataset-json", help="dataset.json with 'labels' (default: LABELS/../dataset.json)")
    parser.add_argument("--masks", help="folder of field-of-view masks CASE<ending> (0 = ignored)")
    parser.add_argument("--out", help="output folder for per_case.csv and summary.json (default: PRED)")
    parser.add_argument("--workers", type=int, help="worker processes (default: all CPU cores)")
    parser.add_argument("--file-ending", help="file ending (default: dataset.json's, else inferred)")
    args = parser.parse_args(argv)
    try:
        summary = evaluate_folder(
            args.pred, args.labels, args.out or args.pred,
            dataset_json=args.dataset_json, file_ending=args.file_ending,
            mask_dir=args.masks, num_workers=args.workers,
        )  # fmt: skip
    except EvaluationError as exc:
        print(f"skelrecall-evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['n_cases']} cases -> {Path(args.out or args.pred) / 'summary.json'}")
    for metric, s in summary["headline"].items():
        mean = "nan" if s["mean"] is None else f"{s['mean']:.4f}"
        std = "nan" if s["std"] is None else f"{s['std']:.4f}"
        print(f"  {metric:13s} {mean} +- {std} (n={s['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
