"""Per-case evaluation of integer label maps: the rows of ``per_case.csv`` for one case.

Rules (documented in ``reports/README.md``, "Metric conventions"):

* ``labels`` maps names to values as in nnU-Net's ``dataset.json``; value 0 is background, the key
  ``"ignore"`` (if present) names the ignore label. Every other entry is a foreground class.
* Pixels where ``ignore_mask`` is True, and ground-truth pixels equal to the ignore label, are set
  to background in both prediction and ground truth before any metric is computed.
* One foreground class (binary dataset): one row, ``class`` = the class name, ``headline=True``.
* Several classes: one row per class present in the ground truth or the prediction
  (``headline=False``), a ``"mean"`` row (``class_id=-1``, ``headline=True``) holding the mean of
  every metric column over those rows (NaN Dice values excluded; NaN everywhere when no class is
  present), and a ``"merged"`` row (``class_id=-2``, ``headline=False``) for the binary union of
  all foreground classes.
* Metrics per row: Dice, clDice, Betti numbers of prediction and ground truth and their absolute
  differences (``betti2_*`` columns in 3D); see :mod:`skelrecall.metrics.overlap` and
  :mod:`skelrecall.metrics.topology`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from skelrecall.metrics.overlap import cldice, dice
from skelrecall.metrics.topology import betti_numbers

MEAN_ID = -1
MERGED_ID = -2
BASE_COLUMNS = [
    "class", "class_id", "headline", "dice", "cldice",
    "betti0_pred", "betti0_gt", "betti1_pred", "betti1_gt", "betti0_error", "betti1_error",
]  # fmt: skip
COLUMNS_3D = ["betti2_pred", "betti2_gt", "betti2_error"]


def columns(ndim: int) -> list[str]:
    """The per-case columns (without ``case``) for 2D or 3D data."""
    return BASE_COLUMNS + (COLUMNS_3D if ndim == 3 else [])


def foreground_classes(labels: dict[str, Any]) -> list[tuple[str, int]]:
    """``(name, value)`` of the foreground classes of an nnU-Net label map, sorted by value."""
    out = []
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or int(value) != value:
            raise ValueError(
                f"labels[{name!r}] = {value!r}: only integer label values are supported "
                "(nnU-Net region-based labels are not)"
            )
        if name != "ignore" and int(value) != 0:
            out.append((name, int(value)))
    values = [v for _, v in out]
    if len(set(values)) != len(values):
        raise ValueError(f"labels map two names to the same value: {labels}")
    if not out:
        raise ValueError(f"labels has no foreground class: {labels}")
    return sorted(out, key=lambda nv: nv[1])


def as_label_map(array, what: str = "label map") -> np.ndarray:
    """``array`` as an integer array; integral floats are converted, anything else is refused."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.view(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{what}: holds non-integer values (dtype {array.dtype})")
        return array.astype(np.int32)
    raise ValueError(f"{what}: unsupported dtype {array.dtype}")


def present_values(label_map: np.ndarray) -> set[int]:
    """The set of values present in an integer label map (fast for small non-negative values)."""
    label_map = as_label_map(label_map)
    if label_map.size == 0:
        return set()
    lo, hi = int(label_map.min()), int(label_map.max())
    if lo < 0 or hi > 65535:
        return {int(v) for v in np.unique(label_map)}
    found = {v + 1 for v, box in enumerate(ndi.find_objects(label_map)) if box is not None}
    if lo == 0:
        found.add(0)
    return found


def check_values(pred: np.ndarray, gt: np.ndarray, labels: dict[str, Any]) -> list[str]:
    """Messages for values of ``pred``/``gt`` that ``labels`` does not define (empty if none).

    Ground truth may hold 0, the foreground values and the ignore value; predictions may not hold
    the ignore value.
    """
    fg = {v for _, v in foreground_classes(labels)}
    allowed_pred = {0} | fg
    allowed_gt = allowed_pred | ({int(labels["ignore"])} if "ignore" in labels else set())
    problems = []
    for what, arr, allowed in (("prediction", pred, allowed_pred), ("ground truth", gt, allowed_gt)):
        bad = sorted(present_values(arr) - allowed)
        if bad:
            problems.append(f"{what} holds label values {bad} not in the label map {sorted(allowed)}")
    return problems


def _binary_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    union = pred | gt
    box = ndi.find_objects(union.view(np.uint8))
    if box:  # every metric is unchanged by cropping to the box holding both masks
        pred, gt = pred[box[0]], gt[box[0]]
    bp, bg = betti_numbers(pred), betti_numbers(gt)
    row: dict[str, Any] = {"dice": dice(pred, gt), "cldice": cldice(pred, gt)}
    for k in range(2):
        row[f"betti{k}_pred"], row[f"betti{k}_gt"] = bp[k], bg[k]
    row["betti0_error"], row["betti1_error"] = abs(bp[0] - bg[0]), abs(bp[1] - bg[1])
    if pred.ndim == 3:
        row["betti2_pred"], row["betti2_gt"], row["betti2_error"] = bp[2], bg[2], abs(bp[2] - bg[2])
    return row


def evaluate_case(
    pred: np.ndarray,
    gt: np.ndarray,
    labels: dict[str, int],
    ignore_mask: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``per_case.csv`` (without the ``case`` column) for one prediction/ground-truth pair.

    ``pred`` and ``gt`` are integer label maps of the same 2D or 3D shape; ``ignore_mask`` (True =
    ignore) has that shape too. See the module docstring for the rules.
    """
    pred, gt = as_label_map(pred, "prediction"), as_label_map(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected 2D or 3D label maps, got shape {pred.shape}")
    classes = foreground_classes(labels)
    problems = check_values(pred, gt, labels)
    if problems:
        raise ValueError("; ".join(problems))

    ignore = None
    if ignore_mask is not None:
        ignore_mask = np.asarray(ignore_mask)
        if ignore_mask.shape != gt.shape:
            raise ValueError(f"ignore mask shape {ignore_mask.shape} differs from label shape {gt.shape}")
        ignore = ignore_mask.astype(bool, copy=False)
    if "ignore" in labels:
        by_label = gt == int(labels["ignore"])
        ignore = by_label if ignore is None else (ignore | by_label)
    if ignore is not None and ignore.any():
        pred = np.where(ignore, 0, pred)
        gt = np.where(ignore, 0, gt)

    cols = columns(gt.ndim)
    if len(classes) == 1:
        name, value = classes[0]
        metrics = _binary_metrics(pred == value, gt == value)
        row = {"class": name, "class_id": value, "headline": True, **metrics}
        return [{c: row[c] for c in cols}]

    boxes_pred, boxes_gt = _boxes(pred), _boxes(gt)
    rows = []
    for name, value in classes:
        bp, bg = boxes_pred.get(value), boxes_gt.get(value)
        if bp is None and bg is None:
            continue  # absent from both: Dice would be NaN; the class is left out of the means
        box = _union_box(bp, bg)
        metrics = _binary_metrics(pred[box] == value, gt[box] == value)
        rows.append({"class": name, "class_id": value, "headline": False, **metrics})
    metric_cols = cols[3:]
    mean = {"class": "mean", "class_id": MEAN_ID, "headline": True}
    for c in metric_cols:
        vals = np.array([r[c] for r in rows], dtype=float)
        vals = vals[~np.isnan(vals)]
        mean[c] = float(vals.mean()) if vals.size else float("nan")
    merged = {"class": "merged", "class_id": MERGED_ID, "headline": False}
    merged.update(_binary_metrics(pred > 0, gt > 0))
    return [{c: r[c] for c in cols} for r in (*rows, mean, merged)]


def _boxes(label_map: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of every positive value present (one pass with ``scipy.ndimage.find_objects``)."""
    if label_map.size == 0 or int(label_map.max()) <= 0:
        return {}
    return {v + 1: box for v, box in enumerate(ndi.find_objects(label_map)) if box is not None}


def _union_box(a, b) -> tuple[slice, ...]:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
