"""Benchmark of the evaluation metrics: ``<out_dir>/metrics.md`` and ``<out_dir>/metrics.csv``.

Everything is measured in one run on one machine, and every goal is a ratio of two times measured
in that run (timings: best of ``rounds`` alternating calls, which damps the noise of a shared
machine). Progress lines are printed while it runs.

1. Betti numbers against cubical persistent homology with the same construction (union of closed
   voxels of the padded mask): gudhi (``CubicalComplex(top_dimensional_cells=1 - mask)``) and
   Cubical Ripser (``cripser.compute_ph(1 - mask, filtration="T")``), on random blob volumes of
   64^3 and 128^3: identical numbers, speed ratios (goal vs gudhi: at least 100x).
2. (a) One 512x512x256 vessel tree (a branching tree of tubes; prediction with breaks, radius
   noise and 30 false-positive blobs): ``evaluate_case`` with the paper's metrics (Dice, clDice,
   Betti) against the two uncropped ``skeletonize`` calls alone (goal: at most 1.2x), and against
   today's computation (:func:`reference_evaluate_case`, the evaluation before the per-component
   rewrite) with identical values. The parts (Betti numbers, clDice, Dice) are timed as before.
3. (b) A volume of the same size holding a few hundred small separate structures scattered over
   the whole volume (broken vessel pieces; the prediction adds false-positive blobs):
   ``evaluate_case`` against today's computation (goal: at least 3x faster), identical values.
4. (c) A folder of 8 such cases (NIfTI) through ``evaluate_folder`` with 1 and 2 worker
   processes (goal: at least 1.7x with 2 workers on 2 cores).
5. (e) HD95 and ASSD (MONAI) timed separately on the vessel tree, and (if the ``topology`` extra
   is installed) the Betti matching error on small volumes.

``quick=True`` uses small sizes to check the code path in seconds; its numbers mean nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from skelrecall.bench.common import format_load, load_average, machine_description, time_calls
from skelrecall.io import atomic_write, write_image
from skelrecall.metrics import betti_errors, betti_numbers, cldice, dice, evaluate_case
from skelrecall.metrics._util import bbox_slices
from skelrecall.metrics.topology import euler_characteristic_padded
from skelrecall.render import markdown_table

SPEEDUP_GOAL = 100.0  # betti_numbers vs gudhi
BETTI_SECONDS_GOAL = 3.0  # Betti numbers of the 512x512x256 pair
TREE_RATIO_GOAL = 1.2  # evaluate_case (paper metrics) / two uncropped skeletonize calls
SCATTERED_SPEEDUP_GOAL = 3.0  # today's computation / evaluate_case on scattered structures
WORKERS_GOAL = 1.7  # evaluate_folder 1 worker / 2 workers
PAPER_METRICS = "dice,cldice,betti"
LABELS = {"background": 0, "vessel": 1}

_START = time.perf_counter()


def progress(message: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[metrics bench {time.perf_counter() - _START:7.1f} s] {message}", flush=True)


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


def scattered_pair(shape: tuple[int, int, int], seed: int = 0, pieces: int = 300, blobs: int = 100):
    """``(pred, gt)``: ``pieces`` short curved tube pieces (radius 1-3, 8-40 steps) scattered over the
    whole volume; the prediction misses 10 % of them, breaks 20 % in two, jitters the radii and adds
    ``blobs`` false-positive blobs."""
    rng = np.random.default_rng(seed)
    dims = np.asarray(shape, dtype=float)
    gt_pts, gt_r, pr_pts, pr_r = [], [], [], []
    for _ in range(pieces):
        p = rng.uniform(0.05, 0.95, 3) * dims
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        r = float(rng.integers(1, 4))
        n = int(rng.integers(8, 40))
        pts = []
        for _ in range(n):
            d = d + rng.normal(scale=0.15, size=3)
            d /= np.linalg.norm(d)
            p = np.clip(p + d, 1, dims - 2)
            pts.append(p)
        pts = np.asarray(pts)
        gt_pts.append(pts)
        gt_r.append(np.full(len(pts), r))
        fate = rng.random()
        if fate < 0.1:
            continue  # missed
        keep = np.ones(len(pts), bool)
        if fate < 0.3:
            cut = int(rng.integers(2, max(3, len(pts) - 4)))
            keep[cut : cut + 4] = False  # broken in two
        pr_pts.append(pts[keep])
        pr_r.append(np.clip(r + rng.normal(scale=0.3, size=int(keep.sum())), 1, None))
    gt = paint_tubes(shape, np.concatenate(gt_pts), np.concatenate(gt_r))
    pred = paint_tubes(shape, np.concatenate(pr_pts), np.concatenate(pr_r))
    centres = rng.uniform(0, 1, (blobs, 3)) * (dims - 1)
    pred |= paint_tubes(shape, centres, rng.integers(1, 4, blobs).astype(float))
    return pred, gt


# --- today's computation (before the per-component rewrite), kept for comparison -----------------


def _ref_count(mask: np.ndarray, connectivity: int) -> int:
    _, n = cc3d.connected_components(
        mask, connectivity=connectivity, return_N=True, binary_image=True, out_dtype=np.uint32
    )
    return int(n)


def _ref_betti(mask: np.ndarray) -> tuple[int, ...]:
    box = bbox_slices(mask)
    if box is None:
        return (0,) * mask.ndim
    crop = np.ascontiguousarray(mask[box])
    padded_bg = np.ones(tuple(n + 2 for n in crop.shape), dtype=bool)
    np.logical_not(crop, out=padded_bg[(slice(1, -1),) * crop.ndim])
    if mask.ndim == 2:
        return (_ref_count(crop, 8), _ref_count(padded_bg, 4) - 1)
    b0 = _ref_count(crop, 26)
    b2 = _ref_count(padded_bg, 6) - 1
    return (b0, b0 + b2 - euler_characteristic_padded(padded_bg, complement=True), b2)


def _ref_skeleton(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, dtype=bool)
    box = bbox_slices(mask)
    if box is not None:
        out[box] = skeletonize(np.pad(mask[box], 1))[(slice(1, -1),) * mask.ndim]
    return out


def _ref_term(skel: np.ndarray, other: np.ndarray) -> float:
    n = int(np.count_nonzero(skel))
    return 1.0 if n == 0 else int(np.count_nonzero(skel & other)) / n


def reference_evaluate_case(pred: np.ndarray, gt: np.ndarray, labels: dict[str, int]) -> list[dict[str, Any]]:
    """Today's ``evaluate_case`` for one foreground class (Dice, clDice, Betti), as it was before
    this change: value check with ``find_objects`` over both maps, whole-volume ``== value`` masks,
    the union box, then Betti numbers, Dice and clDice each on that box (clDice skeletonizes each
    mask's bounding box in one piece)."""
    ((name, value),) = [(k, v) for k, v in labels.items() if k != "ignore" and v != 0]
    for what, arr in (("prediction", pred), ("ground truth", gt)):
        lo, hi = int(arr.min()), int(arr.max())
        found = {v + 1 for v, b in enumerate(ndi.find_objects(arr)) if b is not None} if hi > 0 else set()
        if lo < 0 or found - {value}:
            raise ValueError(f"{what} holds values outside the label map")
    p, g = pred == value, gt == value
    box = ndi.find_objects((p | g).view(np.uint8))
    if box:
        p, g = p[box[0]], g[box[0]]
    bp, bg = _ref_betti(p), _ref_betti(g)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(g))
    row: dict[str, Any] = {"class": name, "class_id": value, "headline": True,
                           "dice": float("nan") if total == 0
                           else 2.0 * int(np.count_nonzero(p & g)) / total}  # fmt: skip
    tprec, tsens = _ref_term(_ref_skeleton(p), g), _ref_term(_ref_skeleton(g), p)
    row["cldice"] = 0.0 if tprec + tsens == 0 else 2.0 * tprec * tsens / (tprec + tsens)
    for k in range(p.ndim):
        row[f"betti{k}_pred"], row[f"betti{k}_gt"] = bp[k], bg[k]
    row["betti0_error"], row["betti1_error"] = abs(bp[0] - bg[0]), abs(bp[1] - bg[1])
    if p.ndim == 3:
        row["betti2_pred"], row["betti2_gt"], row["betti2_error"] = bp[2], bg[2], abs(bp[2] - bg[2])
    return [row]


# --- measurement ----------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """``(median seconds, first-call seconds, result)`` of ``repeats`` calls (``bench.common.time_calls``)."""
    t = time_calls(fn, repeats)
    return t.wall_median, t.wall[0], t.result


def _best_alternating(fns: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Best-of-``rounds`` seconds of each function, calling them in alternating order each round."""
    best = {k: float("inf") for k in fns}
    results: dict[str, Any] = {}
    names = list(fns)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            results[k] = fns[k]()
            best[k] = min(best[k], time.perf_counter() - start)
            progress(f"  {k}: {best[k]:.2f} s (best so far)")
    return best, results


def gudhi_betti(mask: np.ndarray) -> tuple[int, ...]:
    import gudhi

    cc = gudhi.CubicalComplex(top_dimensional_cells=1.0 - np.pad(mask, 1).astype(np.float64))
    cc.persistence()
    return tuple(int(b) for b in cc.persistent_betti_numbers(0, 0)[: mask.ndim])


def cripser_betti(mask: np.ndarray) -> tuple[int, ...] | None:
    """Betti numbers at level 0 from Cubical Ripser's T-construction (None if not installed)."""
    try:
        import cripser
    except ImportError:
        return None
    pairs = cripser.compute_ph(1.0 - np.pad(mask, 1).astype(np.float64), filtration="T", maxdim=mask.ndim - 1)
    alive = (pairs[:, 1] <= 0) & (pairs[:, 2] > 0)
    return tuple(int(np.count_nonzero(alive & (pairs[:, 0] == k))) for k in range(mask.ndim))


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _priority() -> str:
    """This process's nice value, and its scheduler autogroup's where the kernel groups by session
    (there a process's share of the CPU is its session's share, whatever its own nice value)."""
    text = f"process {os.nice(0)}"
    try:
        group = Path("/proc/self/autogroup").read_text().split()
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            text += f", autogroup {group[-1]}"
    except (OSError, IndexError):
        pass
    return text


def _load() -> str:
    return format_load(load_average())


PACKAGES = ("numpy", "connected-components-3d", "scikit-image", "scipy", "gudhi", "cripser", "monai", "topolosses")


def machine() -> dict[str, str]:
    """The machine (``bench.common.machine_description``), the load at start and this process's priority."""
    return {
        **machine_description(PACKAGES),
        "load average at start (1, 5, 15 min)": _load(),
        "process priority (nice)": _priority(),
    }


def _metric_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("class", "class_id", "headline")}


def _same(a: list[dict], b: list[dict]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if set(x) != set(y):
            return False
        for k in x:
            if x[k] != y[k] and not (isinstance(x[k], float) and np.isnan(x[k]) and np.isnan(y[k])):
                return False
    return True


def run(out_dir: str, quick: bool) -> None:
    """Measure and write ``<out_dir>/metrics.md`` and ``<out_dir>/metrics.csv``."""
    global _START
    _START = time.perf_counter()
    out = Path(out_dir)
    info = machine()
    rows: list[dict[str, Any]] = []

    def record(bench: str, size: str, values: dict[str, Any]) -> None:
        rows.extend({"benchmark": bench, "size": size, "quantity": k, "value": v} for k, v in values.items())

    rounds = 1 if quick else 3

    # 1. Betti numbers vs gudhi and cripser
    oracle = []
    warm = blob_volume(8, seed=0)
    gudhi_betti(warm), cripser_betti(warm)  # imports outside the timings
    for size in [16, 24] if quick else [64, 128]:
        progress(f"Betti numbers vs gudhi and cripser, blob volume {size}^3")
        mask = blob_volume(size, seed=size)
        ours_s, ours_first, ours = _timed(lambda: betti_numbers(mask), repeats=5)
        gudhi_s, _, ref = _timed(lambda: gudhi_betti(mask), repeats=1)
        crip_s, _, crip = _timed(lambda: cripser_betti(mask), repeats=1)
        oracle.append((size, ours_s, ours_first, gudhi_s, crip_s if crip is not None else None, ours, ref, crip))
        record("betti_vs_gudhi", f"{size}^3", {
            "ours_seconds_median": ours_s, "ours_seconds_first": ours_first, "gudhi_seconds": gudhi_s,
            "speedup": gudhi_s / ours_s, "cripser_seconds": crip_s if crip is not None else "",
            "cripser_speedup": crip_s / ours_s if crip is not None else "", "ours_betti": str(ours),
            "gudhi_betti": str(ref), "cripser_betti": str(crip), "identical": ours == ref and crip in (None, ref),
        })  # fmt: skip

    # 2. (a) the vessel tree
    shape = (64, 64, 32) if quick else (512, 512, 256)
    size_txt = "x".join(map(str, shape))
    progress(f"(a) vessel tree {size_txt}: generating")
    gen_start = time.perf_counter()
    pred, gt = vessel_pair(shape, seed=0)
    gen_s = time.perf_counter() - gen_start
    pred8, gt8 = pred.view(np.uint8), gt.view(np.uint8)
    progress("(a) parts: Betti numbers, clDice, Dice")
    betti_s, betti_first, errors = _timed(lambda: betti_errors(pred, gt), repeats=1 if quick else 3)
    cldice_s, _, cl = _timed(lambda: cldice(pred, gt), repeats=1)
    dice_s, _, dc = _timed(lambda: dice(pred, gt), repeats=3)
    progress("(a) evaluate_case vs two uncropped skeletonize calls vs today's computation")
    tree_t, tree_r = _best_alternating({
        "skeletonize x2 (uncropped)": lambda: (skeletonize(pred), skeletonize(gt)),
        "evaluate_case": lambda: evaluate_case(pred8, gt8, LABELS, metrics=PAPER_METRICS),
        "today's evaluate_case": lambda: reference_evaluate_case(pred8, gt8, LABELS),
    }, rounds + (0 if quick else 1))  # fmt: skip
    tree_same = _same(tree_r["evaluate_case"], tree_r["today's evaluate_case"])
    tree = {
        "foreground_fraction_gt": float(gt.mean()), "betti_gt": str(betti_numbers(gt)),
        "betti_pred": str(betti_numbers(pred)), "betti_errors_b0_b1": str(errors), "dice": dc, "cldice": cl,
        "betti_seconds_median_pred_and_gt": betti_s, "betti_seconds_first_call": betti_first,
        "cldice_seconds": cldice_s, "dice_seconds_median": dice_s,
        "skeletonize_x2_seconds": tree_t["skeletonize x2 (uncropped)"],
        "evaluate_case_seconds": tree_t["evaluate_case"], "today_seconds": tree_t["today's evaluate_case"],
        "ratio_to_skeletonize": tree_t["evaluate_case"] / tree_t["skeletonize x2 (uncropped)"],
        "today_ratio_to_skeletonize": tree_t["today's evaluate_case"] / tree_t["skeletonize x2 (uncropped)"],
        "identical_to_today": tree_same, "generation_seconds": gen_s,
    }  # fmt: skip
    record("evaluate_vessel_tree", size_txt, tree)
    tree_row = tree_r["evaluate_case"][0]

    # 5. (e) surface distances on the tree
    progress("(e) HD95 and ASSD on the vessel tree")
    evaluate_case(pred8[:16, :16, :16], gt8[:16, :16, :16], LABELS, metrics="hd95,assd")  # imports MONAI, torch
    dist_t, dist_r = _best_alternating({
        "hd95": lambda: evaluate_case(pred8, gt8, LABELS, metrics="hd95"),
        "assd": lambda: evaluate_case(pred8, gt8, LABELS, metrics="assd"),
        "hd95+assd": lambda: evaluate_case(pred8, gt8, LABELS, metrics="hd95,assd"),
    }, 1 if quick else 2)  # fmt: skip
    dist = {"hd95_seconds": dist_t["hd95"], "assd_seconds": dist_t["assd"], "both_seconds": dist_t["hd95+assd"],
            "hd95": dist_r["hd95+assd"][0]["hd95"], "assd": dist_r["hd95+assd"][0]["assd"]}  # fmt: skip
    record("surface_distances_vessel_tree", size_txt, dist)
    pred = gt = pred8 = gt8 = None  # free the volumes before the next part

    # 3. (b) scattered structures
    n_pieces, n_blobs = (20, 10) if quick else (300, 100)
    progress(f"(b) {n_pieces} scattered pieces + {n_blobs} blobs, {size_txt}: generating")
    spred, sgt = scattered_pair(shape, seed=1, pieces=n_pieces, blobs=n_blobs)
    sp8, sg8 = spred.view(np.uint8), sgt.view(np.uint8)
    progress("(b) evaluate_case vs today's computation")
    scat_t, scat_r = _best_alternating({
        "evaluate_case": lambda: evaluate_case(sp8, sg8, LABELS, metrics=PAPER_METRICS),
        "today's evaluate_case": lambda: reference_evaluate_case(sp8, sg8, LABELS),
    }, rounds)  # fmt: skip
    srow = scat_r["evaluate_case"][0]
    scattered = {
        "components_pred": srow["betti0_pred"], "components_gt": srow["betti0_gt"],
        "evaluate_case_seconds": scat_t["evaluate_case"], "today_seconds": scat_t["today's evaluate_case"],
        "speedup": scat_t["today's evaluate_case"] / scat_t["evaluate_case"],
        "identical_to_today": _same(scat_r["evaluate_case"], scat_r["today's evaluate_case"]),
    }  # fmt: skip
    record("evaluate_scattered", size_txt, scattered)
    spred = sgt = sp8 = sg8 = None

    # 4. (c) a folder through evaluate_folder with 1 and 2 workers
    from skelrecall.evaluate import evaluate_folder

    n_cases = 3 if quick else 8
    with tempfile.TemporaryDirectory(prefix="metrics_bench_") as tmp:
        root = Path(tmp)
        progress(f"(c) writing {n_cases} scattered cases as NIfTI")
        for i in range(n_cases):
            p, g = scattered_pair(shape, seed=100 + i, pieces=n_pieces, blobs=n_blobs)
            write_image(root / "labels" / f"case_{i:02d}.nii.gz", g.view(np.uint8))
            write_image(root / "pred" / f"case_{i:02d}.nii.gz", p.view(np.uint8))
        load_before = _load()

        cores: dict[int, list[float]] = {1: [], 2: []}

        def folder(workers: int) -> dict:
            before = _cpu_seconds()
            start = time.perf_counter()
            summary = evaluate_folder(root / "pred", root / "labels", root / f"out{workers}", labels=LABELS,
                                      num_workers=workers, metrics=PAPER_METRICS)  # fmt: skip
            cores[workers].append((_cpu_seconds() - before) / (time.perf_counter() - start))
            return summary

        progress(f"(c) evaluate_folder, 1 and 2 workers (load average now {load_before})")
        fold_t, _ = _best_alternating({"1 worker": lambda: folder(1), "2 workers": lambda: folder(2)}, rounds)
        same = (root / "out1" / "per_case.csv").read_text() == (root / "out2" / "per_case.csv").read_text()
    workers = {
        "cases": n_cases, "one_worker_seconds": fold_t["1 worker"], "two_workers_seconds": fold_t["2 workers"],
        "speedup": fold_t["1 worker"] / fold_t["2 workers"], "identical_per_case_csv": same,
        "load_average_before": load_before, "load_average_after": _load(), "nice": os.nice(0),
        "cores_obtained_1_worker": max(cores[1]), "cores_obtained_2_workers": max(cores[2]),
    }  # fmt: skip
    record("evaluate_folder_workers", f"{n_cases} x {size_txt}", workers)

    # Betti matching (optional)
    bm = _betti_matching_timings(quick)
    for name, values in bm.items():
        record("betti_matching", name, values)

    progress("writing the report")
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.csv", lambda tmp: table.to_csv(tmp, index=False))
    info["load average at end (1, 5, 15 min)"] = _load()
    md = _markdown(info, oracle, size_txt, tree, tree_row, dist, scattered, workers, bm, quick, rounds)
    atomic_write(out / "metrics.md", lambda tmp: tmp.write_text(md))
    progress(f"done: {out / 'metrics.md'}")


def _betti_matching_timings(quick: bool) -> dict[str, dict[str, Any]]:
    try:
        from skelrecall.metrics.betti_matching import betti_matching_errors, compiled_extension

        compiled_extension()
    except ImportError:
        return {}
    out = {}
    for shape in [(64, 64), (16, 16, 16)] if quick else [(512, 512), (64, 64, 64), (96, 96, 96)]:
        progress(f"Betti matching error, {'x'.join(map(str, shape))}")
        if len(shape) == 3:
            pred, gt = vessel_pair(shape, seed=3)
        else:  # a thin slab of a vessel tree, projected: a 2D vessel image
            p3, g3 = vessel_pair((*shape, 16), seed=3)
            pred, gt = p3.any(axis=2), g3.any(axis=2)
        seconds, _, errors = _timed(lambda: betti_matching_errors(pred, gt), 1)
        betti = tuple(abs(a - b) for a, b in zip(betti_numbers(pred), betti_numbers(gt)))
        out["x".join(map(str, shape))] = {"seconds": seconds, "errors_by_dim": str(errors), "betti_errors": str(betti)}
    return out


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _markdown(info, oracle, size_txt, ev, row, dist, scat, workers, bm, quick, rounds) -> str:
    lines = ["# Metrics benchmark", ""]
    if quick:
        lines += ["**Quick run (small sizes): checks the code path only; the numbers mean nothing.**", ""]
    lines += ["Written by `skelrecall-bench metrics` (`skelrecall.bench.metrics`); all numbers below were "
              f"measured in one run on this machine. Times of compared computations: best of {rounds} "
              f"alternating calls ({rounds + (0 if quick else 1)} for the vessel tree), which damps the "
              "noise of other processes on a shared machine.", ""]  # fmt: skip
    lines += [f"- {k}: {v}" for k, v in info.items()]

    goals = [
        ("Betti numbers vs gudhi (128^3 or largest)", f">= {SPEEDUP_GOAL:.0f}x",
         f"{oracle[-1][3] / oracle[-1][1]:.0f}x", oracle[-1][3] / oracle[-1][1] >= SPEEDUP_GOAL),
        (f"(a) `evaluate_case` (Dice, clDice, Betti) / two uncropped `skeletonize`, tree {size_txt}",
         f"<= {TREE_RATIO_GOAL}x",
         f"{ev['ratio_to_skeletonize']:.2f}x (today: {ev['today_ratio_to_skeletonize']:.2f}x)",
         ev["ratio_to_skeletonize"] <= TREE_RATIO_GOAL),
        (f"(b) today's computation / `evaluate_case`, scattered structures {size_txt}",
         f">= {SCATTERED_SPEEDUP_GOAL:.0f}x", f"{scat['speedup']:.1f}x", scat["speedup"] >= SCATTERED_SPEEDUP_GOAL),
        (f"(c) `evaluate_folder` 1 worker / 2 workers, {workers['cases']} cases", f">= {WORKERS_GOAL}x",
         f"{workers['speedup']:.2f}x", workers["speedup"] >= WORKERS_GOAL),
        ("metric values identical to today's computation (a, b)", "identical",
         f"{'yes' if ev['identical_to_today'] else 'NO'}, {'yes' if scat['identical_to_today'] else 'NO'}",
         ev["identical_to_today"] and scat["identical_to_today"]),
    ]  # fmt: skip
    lines += [
        "",
        "## Goals",
        "",
        markdown_table(["goal", "target", "measured", "met"], [(g, t, m, _met(ok)) for g, t, m, ok in goals]),
    ]

    lines += [
        "",
        "## Betti numbers vs cubical persistent homology (gudhi, Cubical Ripser)",
        "",
        "Random blob volumes (smoothed noise, 45% foreground), the union of closed voxels of the padded "
        "mask in all three. Ours: median of 5 calls (first call in brackets). gudhi: "
        "`CubicalComplex(top_dimensional_cells=1 - mask)`, `persistence()`, `persistent_betti_numbers(0, 0)`; "
        "cripser: `compute_ph(1 - mask, filtration=\"T\")`, bars alive at level 0; one call each.",
        "",
    ]  # fmt: skip
    rows = []
    for size, ours_s, first, gudhi_s, crip_s, ours, ref, crip in oracle:
        rows.append((f"{size}^3", f"{ours_s:.4f} ({first:.4f})", f"{gudhi_s:.2f}",
                     "n/a" if crip_s is None else f"{crip_s:.2f}", f"{gudhi_s / ours_s:.0f}x",
                     "n/a" if crip_s is None else f"{crip_s / ours_s:.0f}x", ours, ref,
                     crip if crip is not None else "not installed",
                     "yes" if ours == ref and crip in (None, ref) else "NO"))  # fmt: skip
    lines.append(
        markdown_table(
            [
                "size",
                "ours (s)",
                "gudhi (s)",
                "cripser (s)",
                "gudhi / ours",
                "cripser / ours",
                "Betti (ours)",
                "gudhi",
                "cripser",
                "identical",
            ],
            rows,
        )
    )
    betti_met = "yes" if ev["betti_seconds_median_pred_and_gt"] <= BETTI_SECONDS_GOAL else "no"
    lines += [
        "",
        f"## (a) Full evaluation of one {size_txt} vessel tree",
        "",
        "Ground truth: a synthetic branching tree of tubes (radius 4 down to 1 voxel); prediction: the "
        "same tree with 12 breaks, radius noise and 30 false-positive blobs.",
        "",
        f"- foreground fraction (ground truth): {ev['foreground_fraction_gt']:.4f}",
        f"- Betti numbers (b0, b1, b2): ground truth {ev['betti_gt']}, prediction {ev['betti_pred']}; "
        f"errors (b0, b1) {ev['betti_errors_b0_b1']}",
        f"- Dice {ev['dice']:.4f}, clDice {ev['cldice']:.4f}",
        "",
        markdown_table(["step", "seconds", "goal"], [
            ("two uncropped `skeletonize` calls (prediction, ground truth)", f"{ev['skeletonize_x2_seconds']:.2f}",
             "the reference of the ratio"),
            ("`evaluate_case`, metrics dice,cldice,betti", f"{ev['evaluate_case_seconds']:.2f}",
             f"<= {TREE_RATIO_GOAL} x the line above: {ev['ratio_to_skeletonize']:.2f}x, "
             f"{'met' if ev['ratio_to_skeletonize'] <= TREE_RATIO_GOAL else 'not met'}"),
            ("today's `evaluate_case` (`reference_evaluate_case`)", f"{ev['today_seconds']:.2f}",
             f"{ev['today_ratio_to_skeletonize']:.2f}x"),
            ("`betti_errors`, prediction + ground truth (median of 3, first call)",
             f"{ev['betti_seconds_median_pred_and_gt']:.2f} ({ev['betti_seconds_first_call']:.2f})",
             f"<= {BETTI_SECONDS_GOAL:.0f} s: {betti_met}"),
            ("`cldice` (two exact skeletons, per component)", f"{ev['cldice_seconds']:.2f}", ""),
            ("`dice`", f"{ev['dice_seconds_median']:.3f}", ""),
        ]),
        "",
        f"`evaluate_case` row: Dice {row['dice']:.4f}, clDice {row['cldice']:.4f}, b0 error {row['betti0_error']}, "
        f"b1 error {row['betti1_error']}, b2 error {row['betti2_error']}; identical to today's: "
        f"{'yes' if ev['identical_to_today'] else 'NO'}.",
        "",
        f"## (b) {size_txt} volume with scattered small structures",
        "",
        "Ground truth: short curved tube pieces (radius 1-3) scattered over the whole volume; prediction: "
        "10 % of them missed, 20 % broken in two, radius noise, plus false-positive blobs. "
        f"Components: prediction {scat['components_pred']}, ground truth {scat['components_gt']}.",
        "",
        markdown_table(["computation", "seconds"], [
            ("today's `evaluate_case` (one skeleton and one background labeling of the whole union box)",
             f"{scat['today_seconds']:.2f}"),
            ("`evaluate_case` (per-component boxes)", f"{scat['evaluate_case_seconds']:.2f}"),
            ("speed-up", f"{scat['speedup']:.1f}x (goal >= {SCATTERED_SPEEDUP_GOAL:.0f}x); identical values: "
                         f"{'yes' if scat['identical_to_today'] else 'NO'}"),
        ]),
        "",
        f"## (c) A folder of {workers['cases']} such cases, 1 vs 2 worker processes",
        "",
        "`evaluate_folder(metrics=\"dice,cldice,betti\")` on NIfTI files (reading included). Load average "
        f"before: {workers['load_average_before']}; after: {workers['load_average_after']} (other processes "
        "on the machine take CPU from the two workers).",
        "",
        markdown_table(["workers", "seconds"], [
            ("1", f"{workers['one_worker_seconds']:.2f}"), ("2", f"{workers['two_workers_seconds']:.2f}"),
            ("speed-up", f"{workers['speedup']:.2f}x (goal >= {WORKERS_GOAL}x); same per_case.csv: "
                         f"{'yes' if workers['identical_per_case_csv'] else 'NO'}"),
        ]),
        "",
        "Cores this benchmark obtained (CPU seconds of the evaluation processes / wall seconds, best round): "
        f"{workers['cores_obtained_1_worker']:.2f} with 1 worker, {workers['cores_obtained_2_workers']:.2f} "
        "with 2 workers; with 2 free cores the second figure is close to 2.",
        "",
        f"## (e) Surface distances on the {size_txt} vessel tree",
        "",
        "`evaluate_case` with only that metric, best of 2 (MONAI's `get_edge_surface_distance` on the class box: "
        "surfaces by erosion, a KD-tree over the surface voxels); HD95 and ASSD share one distance "
        "computation when both are selected.",
        "",
        markdown_table(["metrics", "seconds", "value"], [
            ("hd95", f"{dist['hd95_seconds']:.2f}", f"{dist['hd95']:.3f}"),
            ("assd", f"{dist['assd_seconds']:.2f}", f"{dist['assd']:.3f}"),
            ("hd95,assd", f"{dist['both_seconds']:.2f}", ""),
        ]),
        "",
    ]  # fmt: skip
    lines += ["## Betti matching error (optional `topology` extra)", ""]
    if not bm:
        lines += ["topolosses is not installed: not measured.", ""]
    else:
        lines += [
            "Betti-Matching-3D through topolosses' compiled extension, on vessel-tree crops (2D: the "
            "projection of a thin slab). Its memory grows about 1 KB per voxel, hence not a default metric.",
            "",
            markdown_table(
                ["size", "seconds", "Betti matching error by dimension", "Betti errors"],
                [(k, f"{v['seconds']:.2f}", v["errors_by_dim"], v["betti_errors"]) for k, v in bm.items()],
            ),
        ]
        lines.append("")
    return "\n".join(lines)
