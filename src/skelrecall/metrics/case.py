"""Per-case evaluation of integer label maps: the rows of ``per_case.csv`` for one case.

Rules (documented in ``reports/README.md``, "Metric conventions"):

* ``labels`` maps names to values as in nnU-Net's ``dataset.json``; value 0 is background, the key
  ``"ignore"`` (if present) names the ignore label. Every other entry is a foreground class.
* Pixels where ``ignore_mask`` is True, and ground-truth pixels equal to the ignore label, are set
  to background in both prediction and ground truth before any metric is computed.
* One foreground class (binary dataset): one row, ``class`` = the class name, ``headline=True``.
* Several classes: one row per class present in the ground truth or the prediction
  (``headline=False``), a ``"mean"`` row (``class_id=-1``, ``headline=True``) holding the mean of
  every metric column over those rows (NaN values excluded; NaN everywhere when no class is
  present), and a ``"merged"`` row (``class_id=-2``, ``headline=False``) for the binary union of
  all foreground classes.
* Metrics per row: those selected (``metrics``, names of :mod:`skelrecall.metrics.registry`;
  default: every installed default metric), in registry column order.

Cost. Each label map is scanned once for the box of every value, which also checks the values
(:func:`value_boxes`); every further step works on the box of one class (or of all
classes, for the merged row). Each binary mask is analysed once (:class:`MaskAnalysis`: one
component labeling, one skeleton, Betti numbers per component), and that analysis serves clDice,
the Betti numbers and, for components that carry a single class, the merged row too. An ignore
mask or ignore label costs one extra pass over both maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from skelrecall.metrics._util import bbox_slices, union_box
from skelrecall.metrics.analysis import MaskAnalysis
from skelrecall.metrics.distance import check_spacing, distance_metrics
from skelrecall.metrics.overlap import cldice_from_terms, dice_from_counts, term
from skelrecall.metrics.registry import Metric, per_case_columns, resolve

MEAN_ID = -1
MERGED_ID = -2
ID_COLUMNS = ["class", "class_id", "headline"]
MAX_LISTED_VALUES = 20
FEW_VALUES = 4


def columns(ndim: int, metrics=None) -> list[str]:
    """The per-case columns (without ``case``) for 2D or 3D data and the selected metrics."""
    return ID_COLUMNS + per_case_columns(resolve(metrics), ndim)


def foreground_classes(labels: dict[str, Any]) -> list[tuple[str, int]]:
    """``(name, value)`` of the foreground classes of an nnU-Net label map, sorted by value."""
    if not isinstance(labels, dict):
        raise ValueError(f"labels must map names to values, got {type(labels).__name__}: {labels!r}")
    out = []
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or int(value) != value:
            raise ValueError(
                f"labels[{name!r}] = {value!r}: only integer label values are supported "
                "(nnU-Net region-based labels are not)"
            )
        if int(value) < 0:
            raise ValueError(f"labels[{name!r}] = {value!r}: label values must be non-negative")
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


def value_boxes(
    label_map: np.ndarray, masks: dict[int, np.ndarray] | None = None
) -> dict[int, tuple[slice, ...] | None]:
    """``{value: bounding box}`` of every nonzero value of an integer label map.

    The scan: ``min``/``max`` reductions; then, for maps with at most ``FEW_VALUES`` possible
    nonzero values, one vectorized comparison and two projections per value (binary masks: a few
    milliseconds for 64 M voxels), whose ``label_map == value`` masks are kept in ``masks`` (if
    given) for reuse as the class masks; otherwise one ``scipy.ndimage.find_objects`` pass.
    Negative values (always invalid) get the box None.
    """
    a = label_map.view(np.uint8) if label_map.dtype == bool else label_map
    if a.size == 0:
        return {}
    lo, hi = int(a.min()), int(a.max())
    out: dict[int, tuple[slice, ...] | None] = {}
    if lo < 0:
        out.update({int(v): None for v in np.unique(a[a < 0])})
    if hi <= 0:
        return out
    first = max(lo, 1)
    if hi - first < FEW_VALUES:
        for v in range(first, hi + 1):
            equal = a == v
            box = bbox_slices(equal)
            if box is not None:
                out[v] = box
                if masks is not None:
                    masks[v] = equal
    elif hi <= 65535:
        boxes = ndi.find_objects(np.clip(a, 0, None) if lo < 0 else a, max_label=hi)
        out.update({v + 1: b for v, b in enumerate(boxes) if b is not None})
    else:
        for v in np.unique(a[a > 0])[: MAX_LISTED_VALUES + 1]:
            out[int(v)] = bbox_slices(a == v)
    return out


def present_values(label_map: np.ndarray) -> set[int]:
    """The set of values present in an integer label map (0 included if present)."""
    label_map = as_label_map(label_map)
    found = set(value_boxes(label_map))
    if np.count_nonzero(label_map) < label_map.size:
        found.add(0)
    return found


def _value_problems(pred_values, gt_values, labels: dict[str, Any]) -> list[str]:
    fg = {v for _, v in foreground_classes(labels)}
    allowed_pred = {0} | fg
    allowed_gt = allowed_pred | ({int(labels["ignore"])} if "ignore" in labels else set())
    problems = []
    for what, values, allowed in (("prediction", pred_values, allowed_pred), ("ground truth", gt_values, allowed_gt)):
        bad = sorted(set(values) - allowed)
        if bad:
            shown = bad[:MAX_LISTED_VALUES] + (["..."] if len(bad) > MAX_LISTED_VALUES else [])
            problems.append(f"{what} holds label values {shown} not in the label map {sorted(allowed)}")
    return problems


def check_values(pred: np.ndarray, gt: np.ndarray, labels: dict[str, Any]) -> list[str]:
    """Messages for values of ``pred``/``gt`` that ``labels`` does not define (empty if none).

    Ground truth may hold 0, the foreground values and the ignore value; predictions may not hold
    the ignore value.
    """
    return _value_problems(value_boxes(as_label_map(pred)), value_boxes(as_label_map(gt)), labels)


# --- metrics of one pair of masks ------------------------------------------------------------------


def pair_metrics(p: MaskAnalysis, g: MaskAnalysis, metrics: list[Metric], spacing, full_shape) -> dict[str, Any]:
    """The metric columns of one row from the analyses of prediction and ground truth (same crop)."""
    names = {m.name for m in metrics}
    row: dict[str, Any] = {}
    ndim = p.ndim
    for a in (p, g):
        a.will_need(skeleton="cldice" in names, betti="betti" in names)
    if "cldice" in names:
        row["cldice"] = cldice_from_terms(term(*p.skeleton_hits(g)), term(*g.skeleton_hits(p)))
    if "betti" in names:
        bp, bg = p.betti(), g.betti()
        for k in range(ndim):
            row[f"betti{k}_pred"], row[f"betti{k}_gt"] = bp[k], bg[k]
            row[f"betti{k}_error"] = abs(bp[k] - bg[k])
    if "dice" in names:
        row["dice"] = dice_from_counts(p.count, g.count, p.overlap(g))
    wanted = [m for m in ("hd95", "assd") if m in names]
    if wanted:
        row.update(distance_metrics(p.mask, g.mask, spacing, full_shape, wanted))
    if "betti_matching" in names:
        from skelrecall.metrics.betti_matching import betti_matching_errors

        errors = betti_matching_errors(p.mask, g.mask)
        row["betti_matching_error"] = int(sum(errors))
        for k, e in enumerate(errors):
            row[f"betti_matching{k}_error"] = e
    return row


def _class_mask(label_map, box, value: int | None, boxes: dict, scanned: dict[int, np.ndarray]) -> np.ndarray:
    """``label_map[box] == value`` (``!= 0`` if ``value`` is None), from the scan where possible:
    all False if the scan found no such value, a crop of the scan's mask if it kept one."""
    if value is None:
        return label_map[box] != 0
    if value not in boxes:
        return np.zeros(tuple(s.stop - s.start for s in box), bool)
    if value in scanned:
        return scanned[value][box]
    return label_map[box] == value


def _crop_masks(pred, gt, box, value: int | None, ndim: int, boxes=None, scanned=None):
    """Analyses of ``pred == value`` and ``gt == value`` (any foreground if ``value`` is None) on
    ``box``; ``boxes``/``scanned``: the scan's value boxes and kept masks of ``pred`` and ``gt``."""
    if box is None:  # the class is absent from both: a one-voxel empty crop
        empty = np.zeros((1,) * ndim, bool)
        return MaskAnalysis(empty), MaskAnalysis(empty.copy())
    origin = tuple(s.start for s in box)
    if value is None:
        pm, gm = pred[box] != 0, gt[box] != 0
    elif boxes is None:
        pm, gm = pred[box] == value, gt[box] == value
    else:
        scanned = scanned or ({}, {})
        pm = _class_mask(pred, box, value, boxes[0], scanned[0])
        gm = _class_mask(gt, box, value, boxes[1], scanned[1])
    return MaskAnalysis(pm, origin), MaskAnalysis(gm, origin)


def _donor_for(merged: MaskAnalysis, label_crop: np.ndarray, by_value: dict[int, MaskAnalysis]):
    """``donor(k)`` for :meth:`MaskAnalysis.reuse_from`: the class component equal to component ``k``
    of the merged mask when all its voxels carry one class (``label_crop``: the label map on the
    merged mask's crop; ``by_value``: the class analyses of the same map)."""

    def donor(k: int):
        box = merged.boxes[k]
        sub = merged.mask[box] if merged.n_components == 1 else merged.labels[box] == k + 1
        values = label_crop[box][sub]
        if values.size == 0 or values.min() != values.max():
            return None
        source = by_value.get(int(values[0]))
        if source is None:
            return None
        first = np.unravel_index(int(np.argmax(sub)), sub.shape)
        point = merged.origin + np.array([s.start for s in box]) + np.array(first)
        j = source.component_at(point)
        return None if j is None else (source, j)

    return donor


def evaluate_case(
    pred: np.ndarray,
    gt: np.ndarray,
    labels: dict[str, int],
    ignore_mask: np.ndarray | None = None,
    *,
    metrics=None,
    spacing=None,
) -> list[dict[str, Any]]:
    """Rows of ``per_case.csv`` (without the ``case`` column) for one prediction/ground-truth pair.

    ``pred`` and ``gt`` are integer label maps of the same 2D or 3D shape; ``ignore_mask`` (True =
    ignore) has that shape too. ``metrics``: names (list or comma-separated string) from
    :mod:`skelrecall.metrics.registry` (default: every installed default metric); unknown names
    raise ValueError listing the available ones. ``spacing``: voxel size per axis in the arrays'
    axis order (default 1), used by the surface distances. See the module docstring for the rules.
    """
    selected = resolve(metrics)
    pred, gt = as_label_map(pred, "prediction"), as_label_map(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected 2D or 3D label maps, got shape {pred.shape}")
    ndim = gt.ndim
    classes = foreground_classes(labels)
    spacing = check_spacing(spacing, ndim)

    scanned: tuple[dict, dict] = ({}, {})  # value -> full-size ``map == value`` masks of the scan
    pred_boxes, gt_boxes = value_boxes(pred, scanned[0]), value_boxes(gt, scanned[1])
    problems = _value_problems(pred_boxes, gt_boxes, labels)
    if problems:
        raise ValueError("; ".join(problems))

    ignore = None
    if ignore_mask is not None:
        ignore_mask = np.asarray(ignore_mask)
        if ignore_mask.shape != gt.shape:
            raise ValueError(f"ignore mask shape {ignore_mask.shape} differs from label shape {gt.shape}")
        ignore = ignore_mask.astype(bool, copy=False)
    if "ignore" in labels and int(labels["ignore"]) in gt_boxes:
        by_label = gt == int(labels["ignore"])
        ignore = by_label if ignore is None else (ignore | by_label)
    if ignore is not None and ignore.any():
        pred = np.where(ignore, 0, pred).astype(pred.dtype, copy=False)
        gt = np.where(ignore, 0, gt).astype(gt.dtype, copy=False)
        scanned = ({}, {})
        pred_boxes, gt_boxes = value_boxes(pred, scanned[0]), value_boxes(gt, scanned[1])

    cols = columns(ndim, [m.name for m in selected])

    def row_of(name, class_id, headline, p, g):
        row = {"class": name, "class_id": class_id, "headline": headline}
        row.update(pair_metrics(p, g, selected, spacing, gt.shape))
        return {c: row[c] for c in cols}

    if len(classes) == 1:
        name, value = classes[0]
        p, g = _crop_masks(
            pred,
            gt,
            union_box(pred_boxes.get(value), gt_boxes.get(value)),
            value,
            ndim,
            (pred_boxes, gt_boxes),
            scanned,
        )
        return [row_of(name, value, True, p, g)]

    rows, pred_by_value, gt_by_value = [], {}, {}
    for name, value in classes:
        box = union_box(pred_boxes.get(value), gt_boxes.get(value))
        if box is None:
            continue  # absent from both: Dice would be NaN; the class is left out of the means
        p, g = _crop_masks(pred, gt, box, value, ndim, (pred_boxes, gt_boxes), scanned)
        pred_by_value[value], gt_by_value[value] = p, g
        rows.append(row_of(name, value, False, p, g))

    mean = {"class": "mean", "class_id": MEAN_ID, "headline": True}
    for c in cols[len(ID_COLUMNS) :]:
        vals = np.array([r[c] for r in rows], dtype=float)
        vals = vals[~np.isnan(vals)]
        mean[c] = float(vals.mean()) if vals.size else float("nan")

    merged_box = None
    for box in (*pred_boxes.values(), *gt_boxes.values()):
        merged_box = union_box(merged_box, box)
    if len(pred_by_value) == 1:  # one class present: the merged masks are that class's masks
        (value,) = pred_by_value
        p, g = pred_by_value[value], gt_by_value[value]
    else:
        p, g = _crop_masks(pred, gt, merged_box, None, ndim)
        if merged_box is not None:
            p.reuse_from(_donor_for(p, pred[merged_box], pred_by_value))
            g.reuse_from(_donor_for(g, gt[merged_box], gt_by_value))
    merged = row_of("merged", MERGED_ID, False, p, g)
    return [*rows, {c: mean[c] for c in cols}, merged]
