"""Benchmark of the topology metrics: ``<out_dir>/metrics.md`` and ``<out_dir>/metrics.csv``.

Measured in one run on one machine:

1. ``betti_numbers`` against gudhi's cubical persistent homology (the test oracle) on random blob
   volumes of 64^3 and 128^3: time of each, speed ratio, and whether the Betti numbers are
   identical (goal: at least 100x faster, identical numbers).
2. The full evaluation of one 512x512x256 binary vessel-like volume (a synthetic branching tree of
   tubes, and a prediction with breaks, radius errors and false-positive blobs): time of the Betti
   numbers of prediction and ground truth (goal: at most 3 s), of clDice and of Dice, and of
   ``evaluate_case`` as a whole.

``quick=True`` uses small sizes (16^3, 24^3 and 64x64x32) to check the code path in seconds.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from skelrecall.bench import cpu_model
from skelrecall.io import atomic_write
from skelrecall.metrics import betti_errors, betti_numbers, cldice, dice, evaluate_case

SPEEDUP_GOAL = 100.0
BETTI_SECONDS_GOAL = 3.0


# --- synthetic data -------------------------------------------------------------------------------


def blob_volume(size: int, seed: int) -> np.ndarray:
    """Thresholded smoothed noise: many components, tunnels and cavities."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random((size,) * 3, dtype=np.float32), 1.5)
    return field > np.quantile(field, 0.55)


def _ball_offsets(radius: int) -> np.ndarray:
    g = np.arange(-radius, radius + 1)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    keep = zz**2 + yy**2 + xx**2 <= radius * radius + 0.5
    return np.stack([zz[keep], yy[keep], xx[keep]], axis=1)


def vessel_centerlines(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and radii of a random branching tree of smooth random walks (roots shrink to r=1)."""
    rng = np.random.default_rng(seed)
    dims = np.asarray(shape, dtype=float)
    scale = min(shape) / 256.0
    steps = int(900 * max(scale, 0.1))
    max_r = max(1.0, 4.0 * min(1.0, scale * 2))
    stack = []
    for _ in range(6):
        d = rng.normal(size=3)
        stack.append((rng.uniform(0.15, 0.85, 3) * dims, d / np.linalg.norm(d), max_r, steps))
    points, radii = [], []
    while stack:
        p, d, r, n = stack.pop()
        for _ in range(n):
            d = d + rng.normal(scale=0.1, size=3)
            d /= np.linalg.norm(d)
            p = p + d
            if np.any(p < 1) or np.any(p > dims - 2):
                break
            points.append(p)
            radii.append(r)
            if r > 1.2 and rng.random() < 0.012:
                nd = d + rng.normal(scale=0.8, size=3)
                stack.append((p, nd / np.linalg.norm(nd), r * 0.75, n // 2))
            r = max(1.0, r - 0.002)
    return np.asarray(points), np.asarray(radii)


def paint_tubes(shape: tuple[int, ...], points: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Union of balls of the given radii (rounded) around the given points."""
    vol = np.zeros(shape, dtype=bool)
    if len(points) == 0:
        return vol
    centres = np.rint(points).astype(np.int64)
    rounded = np.rint(radii).astype(int)
    top = np.asarray(shape) - 1
    for r in np.unique(rounded):
        idx = (centres[rounded == r][:, None, :] + _ball_offsets(int(r))[None]).reshape(-1, 3)
        idx = np.clip(idx, 0, top)
        vol[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return vol


def vessel_pair(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, gt)``: a vessel tree and a prediction with 12 breaks, radius noise and 30 blobs."""
    rng = np.random.default_rng(seed + 1)
    points, radii = vessel_centerlines(shape, seed)
    gt = paint_tubes(shape, points, radii)
    keep = np.ones(len(points), bool)
    for start in rng.integers(0, max(1, len(points) - 12), 12):
        keep[start : start + 12] = False  # breaks of about 12 voxels
    jitter = np.clip(radii + rng.normal(scale=0.4, size=len(radii)), 1, None)
    pred = paint_tubes(shape, points[keep], jitter[keep])
    blobs = rng.uniform(0, 1, (30, 3)) * (np.asarray(shape) - 1)
    pred |= paint_tubes(shape, blobs, rng.integers(1, 4, 30).astype(float))
    return pred, gt


# --- measurement ----------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """``(median seconds, first-call seconds, result)`` over ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times[0], result


def gudhi_betti(mask: np.ndarray) -> tuple[int, ...]:
    import gudhi

    cc = gudhi.CubicalComplex(top_dimensional_cells=1.0 - mask.astype(np.float64))
    cc.persistence()
    return tuple(int(b) for b in cc.persistent_betti_numbers(0, 0)[: mask.ndim])


def machine() -> dict[str, str]:
    model = cpu_model()
    from importlib.metadata import PackageNotFoundError, version

    def _version(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "CPU": model,
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "load average at start (1, 5, 15 min)": load,
        "Python": platform.python_version(),
        "versions": ", ".join(
            f"{d} {_version(d)}"
            for d in ("numpy", "connected-components-3d", "scikit-image", "scipy", "gudhi")
        ),
    }


def run(out_dir: str, quick: bool) -> None:
    """Measure and write ``<out_dir>/metrics.md`` and ``<out_dir>/metrics.csv``."""
    out = Path(out_dir)
    info = machine()
    rows: list[dict[str, Any]] = []

    sizes = [16, 24] if quick else [64, 128]
    oracle = []
    for size in sizes:
        mask = blob_volume(size, seed=size)
        ours_s, ours_first, ours = _timed(lambda: betti_numbers(mask), repeats=5)
        gudhi_s, _, ref = _timed(lambda: gudhi_betti(mask), repeats=1)
        oracle.append((size, ours_s, ours_first, gudhi_s, ours, ref))
        for quantity, value in [
            ("ours_seconds_median", ours_s), ("ours_seconds_first", ours_first), ("gudhi_seconds", gudhi_s),
            ("speedup", gudhi_s / ours_s), ("ours_betti", str(ours)), ("gudhi_betti", str(ref)),
            ("identical", ours == ref),
        ]:  # fmt: skip
            rows.append(
                {"benchmark": "betti_vs_gudhi", "size": f"{size}^3", "quantity": quantity, "value": value}
            )

    shape = (64, 64, 32) if quick else (512, 512, 256)
    size_txt = "x".join(map(str, shape))
    gen_start = time.perf_counter()
    pred, gt = vessel_pair(shape, seed=0)
    gen_s = time.perf_counter() - gen_start
    labels = {"background": 0, "vessel": 1}
    betti_s, betti_first, errors = _timed(lambda: betti_errors(pred, gt), repeats=3)
    cldice_s, _, cl = _timed(lambda: cldice(pred, gt), repeats=1)
    dice_s, _, dc = _timed(lambda: dice(pred, gt), repeats=3)
    case_s, _, case_rows = _timed(lambda: evaluate_case(pred.view(np.uint8), gt.view(np.uint8), labels), 1)
    row = case_rows[0]
    evaluation = {
        "foreground_fraction_gt": float(gt.mean()),
        "betti_gt": str(betti_numbers(gt)),
        "betti_pred": str(betti_numbers(pred)),
        "betti_errors_b0_b1": str(errors),
        "dice": dc,
        "cldice": cl,
        "betti_seconds_median_pred_and_gt": betti_s,
        "betti_seconds_first_call": betti_first,
        "cldice_seconds": cldice_s,
        "dice_seconds_median": dice_s,
        "evaluate_case_seconds": case_s,
        "generation_seconds": gen_s,
    }
    for quantity, value in evaluation.items():
        rows.append(
            {"benchmark": "evaluate_vessel_volume", "size": size_txt, "quantity": quantity, "value": value}
        )

    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.csv", lambda tmp: table.to_csv(tmp, index=False))
    md = _markdown(info, oracle, size_txt, evaluation, row, quick)
    atomic_write(out / "metrics.md", lambda tmp: tmp.write_text(md))


def _markdown(info, oracle, size_txt, ev, row, quick) -> str:
    lines = ["# Topology metrics benchmark", ""]
    if quick:
        lines += ["**Quick run (small sizes): checks the code path only; the numbers mean nothing.**", ""]
    lines += ["Written by `skelrecall-bench metrics` (`skelrecall.bench.metrics`); all numbers below were "
              "measured in one run on this machine:", ""]  # fmt: skip
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [
        "",
        "## betti_numbers vs gudhi (cubical persistent homology)",
        "",
        "Random blob volumes (smoothed noise, 45% foreground). Ours: median of 5 calls (first call in "
        "brackets). gudhi: `CubicalComplex(top_dimensional_cells=1 - mask)`, `persistence()`, "
        f"`persistent_betti_numbers(0, 0)`, one call. Goal: at least {SPEEDUP_GOAL:.0f}x faster, "
        "identical numbers.",
        "",
        "| size | ours (s) | gudhi (s) | speed-up | Betti (ours) | Betti (gudhi) | identical | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, ours_s, first, gudhi_s, ours, ref in oracle:
        speed = gudhi_s / ours_s
        met = "yes" if (speed >= SPEEDUP_GOAL and ours == ref) else "no"
        lines.append(
            f"| {size}^3 | {ours_s:.4f} ({first:.4f}) | {gudhi_s:.2f} | {speed:.0f}x | {ours} | {ref} | "
            f"{'yes' if ours == ref else 'NO'} | {met} |"
        )
    betti_met = "yes" if ev["betti_seconds_median_pred_and_gt"] <= BETTI_SECONDS_GOAL else "no"
    lines += [
        "",
        f"## Full evaluation of one {size_txt} binary vessel-like volume",
        "",
        "Ground truth: a synthetic branching tree of tubes (radius 4 down to 1 voxel); prediction: the "
        "same tree with 12 breaks, radius noise and 30 false-positive blobs. Times are for prediction "
        "and ground truth together (Betti: median of 3 calls, first call in brackets; clDice: one call, "
        "both exact skeletons; Dice: median of 3).",
        "",
        f"- foreground fraction (ground truth): {ev['foreground_fraction_gt']:.4f}",
        f"- Betti numbers (b0, b1, b2): ground truth {ev['betti_gt']}, prediction {ev['betti_pred']}; "
        f"errors (b0, b1) {ev['betti_errors_b0_b1']}",
        f"- Dice {ev['dice']:.4f}, clDice {ev['cldice']:.4f}",
        "",
        "| step | seconds | goal |",
        "|---|---|---|",
        f"| Betti numbers, prediction + ground truth | {ev['betti_seconds_median_pred_and_gt']:.2f} "
        f"({ev['betti_seconds_first_call']:.2f}) | <= {BETTI_SECONDS_GOAL:.0f} s: {betti_met} |",
        f"| clDice (two exact skeletons) | {ev['cldice_seconds']:.2f} | (stated) |",
        f"| Dice | {ev['dice_seconds_median']:.3f} | |",
        f"| `evaluate_case` (all metrics, one row) | {ev['evaluate_case_seconds']:.2f} | |",
        "",
        f"`evaluate_case` row: Dice {row['dice']:.4f}, clDice {row['cldice']:.4f}, "
        f"b0 error {row['betti0_error']}, b1 error {row['betti1_error']}, b2 error {row['betti2_error']}.",
        "",
    ]
    return "\n".join(lines)
