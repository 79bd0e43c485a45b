"""Evaluate a folder of predictions against a folder of labels: ``per_case.csv`` and ``summary.json``.

Files are paired by case name in the nnU-Net v2 way: the label of case ``CASE`` is
``label_dir/CASE<ending>`` and its prediction ``pred_dir/CASE<ending>`` (optional field-of-view
mask: ``mask_dir/CASE<ending>``, nonzero = evaluated, zero = ignored). Files whose names start with
``.`` or contain ``.tmp`` (left by an interrupted atomic write) are not cases and are ignored.
Missing cases on either side are reported before any file is read. Cases then stream through
worker processes (at most two per worker in flight, so memory stays bounded), each file read
once: a worker checks its case (shapes, label values outside the label map, unreadable files) and
evaluates it with :func:`skelrecall.metrics.evaluate_case`; once any case has a problem the
remaining cases are only checked. Every problem is reported with its case name, and then nothing
is written; otherwise both outputs are written atomically.

``metrics`` selects the metrics (:mod:`skelrecall.metrics.registry`; default: every installed
default metric). ``cases="pred"`` scores exactly the cases that have a prediction and lists the
label cases left out. Surface distances use the voxel spacing of each label file (NIfTI: the
header zooms, as given by the affine's column norms; PNG/NumPy: 1).

``summary.json``::

    {"n_cases": N, "labels": {...}, "file_ending": ".nii.gz",
     "headline": {metric: {"mean", "std", "n"}},          # the headline rows (binary: the class row,
                                                          # multi-class: the per-case class means)
     "per_class": {name: {metric: {"mean", "std", "n"}}}, # per-class rows, one entry per class seen
     "merged": {metric: {...}},                           # multi-class only: the union of all classes
     "metrics": [...],                                    # the selected metrics
     "left_out": {"n": K, "cases": [...]}}                # cases="pred" only: labels without prediction

``mean`` and ``std`` (sample standard deviation, ``ddof=1``) are taken over the cases whose value
is not NaN, ``n`` counts them; ``null`` stands for an undefined value (no case, or ``std`` of one).

CLI: ``skelrecall-evaluate --pred DIR --labels DIR [--dataset-json F] [--masks DIR] [--out DIR]
[--workers N] [--metrics dice,cldice,betti,...] [--cases-from-pred]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from skelrecall.io import ENDINGS, ImageReadError, atomic_write, read_image, write_json
from skelrecall.metrics.case import as_label_map, check_values, columns, evaluate_case, foreground_classes
from skelrecall.metrics.registry import COLUMNS, resolve, summary_columns

METRICS = [name for name, c in COLUMNS.items() if c.summarized]  # summary.json metrics, registry order
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
    """``(labels, dataset.json content)``: the given labels, or the ``labels`` of ``dataset.json``.

    Errors name the file: malformed JSON (with line and column), a missing ``labels`` key, labels
    that are not a name -> value mapping.
    """
    path = Path(dataset_json) if dataset_json is not None else label_dir.parent / "dataset.json"
    meta: dict[str, Any] = {}
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise EvaluationError(
                f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise EvaluationError(f"{path}: cannot be read ({exc})") from None
        if not isinstance(meta, dict):
            raise EvaluationError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    elif dataset_json is not None:
        raise EvaluationError(f"{path}: dataset.json not found")
    source = "the labels argument"
    if labels is None:
        if not meta:
            raise EvaluationError(
                f"no label map: pass labels, or a dataset.json with a 'labels' key (looked for {path})"
            )
        if "labels" not in meta:
            raise EvaluationError(f"{path}: no 'labels' key (keys: {', '.join(sorted(meta)) or 'none'})")
        labels, source = meta["labels"], f"{path}: 'labels'"
    if not isinstance(labels, dict):
        raise EvaluationError(
            f'{source} must map class names to values (nnU-Net v2, e.g. {{"background": 0, "vessel": 1}}), '
            f"got a {type(labels).__name__}: {str(labels)[:80]}"
        )
    try:
        foreground_classes(labels)
    except ValueError as exc:
        raise EvaluationError(f"bad label map ({source}): {exc}") from exc
    return {k: int(v) for k, v in labels.items()}, meta


def is_temporary(name: str) -> bool:
    """Whether a file name is a temporary/hidden file, not a case (``.x.png``, ``a.png.tmp123``)."""
    return name.startswith(".") or ".tmp" in name


def _infer_ending(folder: Path) -> str:
    found = {
        e for p in folder.iterdir() if p.is_file() and not is_temporary(p.name) for e in ENDINGS if p.name.endswith(e)
    }
    if len(found) != 1:
        raise EvaluationError(
            f"{folder}: cannot infer the file ending (found {sorted(found) or 'no image files'}); "
            "pass file_ending or a dataset.json with 'file_ending'"
        )
    return found.pop()


def _cases(folder: Path, ending: str) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(ending) and not is_temporary(p.name))
    return {p.name[: -len(ending)]: p for p in files}


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _read_label_map(path: Path, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    array, meta = read_image(path)
    if path.name.endswith(".png") and array.ndim == 3:
        raise ValueError(f"{what} {path.name} has {array.shape[-1]} channels; expected a single-channel label map")
    return as_label_map(array, f"{what} {path.name}"), meta


def spacing_of(meta: dict[str, Any], ndim: int) -> tuple[float, ...] | None:
    """Voxel spacing in array axis order from ``read_image``'s meta (None: unknown, i.e. 1).

    NIfTI: ``meta["zooms"]`` (the header's, already in array order), else the column norms of the
    affine (nibabel's (x, y, z) order, reversed as the array is); MHA: ``meta["spacing"]`` (SimpleITK's
    (x, y, z) order, reversed).
    """
    if meta.get("zooms") is not None:
        zooms = [float(z) for z in meta["zooms"]]
        return tuple(zooms[-ndim:]) if len(zooms) >= ndim else None
    if meta.get("affine") is not None:
        affine = np.asarray(meta["affine"], dtype=float)
        xyz = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    elif meta.get("spacing") is not None:
        xyz = meta["spacing"]
    else:
        return None
    xyz = [float(z) for z in xyz]
    return tuple(xyz[:ndim][::-1]) if len(xyz) >= ndim else None


def _load_case(job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple | None]:
    pred, _ = _read_label_map(Path(job["pred"]), "prediction")
    gt, meta = _read_label_map(Path(job["gt"]), "label")
    ignore = None
    if job.get("mask"):
        fov, _ = read_image(job["mask"])
        ignore = np.asarray(fov) == 0
    return pred, gt, ignore, spacing_of(meta, gt.ndim)


def _process_job(job: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """``(problems, rows)`` of one case: read once, checked, and evaluated unless ``check_only``.

    Each problem starts with the case name; rows carry the ``case`` column.
    """
    case = job["case"]
    try:
        pred, gt, ignore, spacing = _load_case(job)
    except (ImageReadError, ValueError) as exc:
        return [f"case {case}: {exc}"], []
    problems = []
    if pred.shape != gt.shape:
        problems.append(f"case {case}: prediction shape {pred.shape} differs from label shape {gt.shape}")
    if gt.ndim not in (2, 3):
        problems.append(f"case {case}: expected a 2D or 3D label map, got shape {gt.shape}")
    if ignore is not None and ignore.shape != gt.shape:
        problems.append(f"case {case}: mask shape {ignore.shape} differs from label shape {gt.shape}")
    if problems or job.get("check_only"):
        if pred.shape == gt.shape:
            problems += [f"case {case}: {p}" for p in check_values(pred, gt, job["labels"])]
        return problems, []
    try:
        rows = evaluate_case(pred, gt, job["labels"], ignore_mask=ignore, metrics=job["metrics"], spacing=spacing)
    except ValueError as exc:  # label values outside the label map, a bad spacing, a metric's limit
        return [f"case {case}: {exc}"], []
    return [], [{"case": case, **row} for row in rows]


def _stream(jobs: list[dict], workers: int, desc: str) -> list[tuple[list[str], list[dict]]]:
    """``[_process_job(job) for job in jobs]`` (in job order) in ``workers`` processes.

    At most ``2 * workers`` cases are in flight (bounded memory); once a case reports a problem,
    the cases not yet started are only checked (``check_only``), so the run fails fast but still
    names every problem.
    """
    results: list = [None] * len(jobs)
    failed = False
    bar = tqdm(total=len(jobs), desc=desc, unit="case", file=sys.stderr, disable=None)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                results[i] = _process_job({**job, "check_only": failed})
                failed = failed or bool(results[i][0])
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: dict = {}
            next_job = 0
            while next_job < len(jobs) or pending:
                while next_job < len(jobs) and len(pending) < 2 * workers:
                    future = pool.submit(_process_job, {**jobs[next_job], "check_only": failed})
                    pending[future] = next_job
                    next_job += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    results[i] = future.result()
                    failed = failed or bool(results[i][0])
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
    metrics = summary_columns(list(per_case.columns))
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
    cases: list[str] | str | None = None,
    metrics: str | list[str] | None = None,
) -> dict[str, Any]:
    """Score the cases of ``pred_dir`` against ``label_dir``; write ``out_dir/per_case.csv`` and
    ``out_dir/summary.json``; return the summary.

    ``cases``: None (every label case must have a prediction), a list of case names (e.g. the
    validation fold of a cross-validated dataset whose labels all lie in ``labelsTr``), or
    ``"pred"`` (exactly the cases that have a prediction; the label cases left out are listed in
    ``summary["left_out"]``). ``metrics``: names from :mod:`skelrecall.metrics.registry` (default:
    every installed default metric). ``labels`` (name -> value, nnU-Net style) default to the
    ``labels`` of ``dataset_json``, which defaults to ``label_dir/../dataset.json``.
    ``file_ending`` defaults to the dataset.json's, else to the single supported ending found in
    ``label_dir``. Raises :class:`EvaluationError` naming every problem (and its case); nothing is
    written then.
    """
    pred_dir, label_dir, out_dir = Path(pred_dir), Path(label_dir), Path(out_dir)
    for what, folder in (("prediction", pred_dir), ("label", label_dir), ("mask", mask_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise EvaluationError(f"{what} folder {folder} does not exist")
    try:
        selected = [m.name for m in resolve(metrics)]
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    labels, meta = load_labels(labels, dataset_json, label_dir)
    ending = file_ending or meta.get("file_ending") or _infer_ending(label_dir)

    gt_files, pred_files = _cases(label_dir, ending), _cases(pred_dir, ending)
    if not gt_files:
        raise EvaluationError(f"{label_dir}: no label files ending in {ending}")
    problems = []
    left_out: list[str] | None = None
    if isinstance(cases, str):
        if cases != "pred":
            raise EvaluationError(f"cases must be a list of case names, None or 'pred'; got {cases!r}")
        if not pred_files:
            raise EvaluationError(f"{pred_dir}: no prediction files ending in {ending}")
        left_out = sorted(set(gt_files) - set(pred_files))
        cases = sorted(set(pred_files) & set(gt_files))
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
         "mask": str(mask_files[c]) if mask_files else None, "labels": labels, "metrics": selected}
        for c in sorted(gt_files)
    ]  # fmt: skip
    workers = num_workers if num_workers is not None else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(jobs)))

    results = _stream(jobs, workers, "evaluating")
    problems = [p for found, _ in results for p in found]
    if problems:
        shown = problems[:MAX_LISTED]
        if len(problems) > MAX_LISTED:
            shown.append(f"... ({len(problems)} problems in all)")
        raise EvaluationError("cannot evaluate:\n  " + "\n  ".join(shown))

    rows = [row for _, case_rows in results for row in case_rows]
    # 3D-only columns tell 3D data; without them the 2D and 3D columns are the same
    ndim = 3 if any(c in r for r in rows[:1] for c in set(columns(3, selected)) - set(columns(2, selected))) else 2
    per_case = pd.DataFrame(rows, columns=["case", *columns(ndim, selected)])
    summary = summarize(per_case, labels)
    summary["file_ending"] = ending
    summary["metrics"] = selected
    if left_out is not None:
        summary["left_out"] = {"n": len(left_out), "cases": left_out}

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
    from skelrecall.metrics.registry import METRICS, available_metrics, default_metrics

    parser = argparse.ArgumentParser(
        prog="skelrecall-evaluate",
        description="Dice, clDice, Betti errors and surface distances of a folder of predictions (nnU-Net file names).",
    )
    parser.add_argument("--pred", required=True, help="folder of predictions CASE<ending>")
    parser.add_argument("--labels", required=True, help="folder of ground-truth label maps CASE<ending>")
    parser.add_argument("--dataset-json", help="dataset.json with 'labels' (default: LABELS/../dataset.json)")
    parser.add_argument("--masks", help="folder of field-of-view masks CASE<ending> (0 = ignored)")
    parser.add_argument("--out", help="output folder for per_case.csv and summary.json (default: PRED)")
    parser.add_argument("--workers", type=int, help="worker processes (default: all CPU cores)")
    parser.add_argument("--file-ending", help="file ending (default: dataset.json's, else inferred)")
    parser.add_argument(
        "--metrics",
        help=f"comma-separated metrics out of {', '.join(METRICS)} (installed here: "
        f"{', '.join(available_metrics())}; default: {','.join(default_metrics())})",
    )
    parser.add_argument(
        "--cases-from-pred", action="store_true",
        help="score exactly the cases that have a prediction (a partial folder); the label cases left "
        "out are listed",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        summary = evaluate_folder(
            args.pred, args.labels, args.out or args.pred,
            dataset_json=args.dataset_json, file_ending=args.file_ending,
            mask_dir=args.masks, num_workers=args.workers,
            cases="pred" if args.cases_from_pred else None, metrics=args.metrics,
        )  # fmt: skip
    except EvaluationError as exc:
        print(f"skelrecall-evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['n_cases']} cases -> {Path(args.out or args.pred) / 'summary.json'}")
    if "left_out" in summary:
        n = summary["left_out"]["n"]
        listed = _listed(summary["left_out"]["cases"]) if n else "none"
        print(f"  {n} label case{'s' if n != 1 else ''} without a prediction left out: {listed}")
    for metric, s in summary["headline"].items():
        mean = "nan" if s["mean"] is None else f"{s['mean']:.4f}"
        std = "nan" if s["std"] is None else f"{s['std']:.4f}"
        print(f"  {metric:13s} {mean} +- {std} (n={s['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
