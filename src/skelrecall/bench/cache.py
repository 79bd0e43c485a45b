"""Cache benchmark: ``<out_dir>/cache.{csv,md}``: memory of training from the preprocessed cache on a
large 3D dataset, and loader throughput with the cache against the in-memory DataModule.

Measured in one run, on data generated into a temporary folder (``$TMPDIR``; deleted afterwards):

1. **Peak memory.** A synthetic 3D dataset at ToothFairy size (``FULL``: 176 cases of 170x300x300,
   float32 images and uint8 labels as ``.npy``, two curved canals per volume: 13.5 GB of source files,
   10.8 GB of them images) and the ToothFairy setup (CT normalization, 80x160x192 patches, batch 2,
   nnU-Net augmentation, tubed skeleton). Each measurement is a fresh Python process that runs
   ``SegmentationDataModule.setup`` and iterates the training DataLoader (2 workers) for ``steps``
   batches: peak resident memory (``getrusage``: ``ru_maxrss`` of the process, and of its largest
   worker; plus the largest sum over the process tree, sampled with psutil every 0.25 s, an upper
   bound since shared pages count once per process). (a) cache, first run: builds the cache, then
   trains; (b) cache, a later run: opens it. (c) In memory on two subsets of the training cases,
   measured, and extrapolated linearly to all cases (the full dataset is not loaded: it would not
   fit). Goal: peak RSS of (a) and (b) below 3 GB.
2. **Throughput.** ``PatchDataset`` samples per second (crop, foreground oversampling, augmentation,
   tubed skeleton) with cached and with in-memory cases on small datasets (the stand-ins
   ``synthetic_2d`` and ``synthetic_canal``, and six ToothFairy-size volumes), in this process with
   one torch thread (one loader worker), rounds alternating between the two; and the crop alone
   (``crop_patch``), where the cost of mapping the files shows. Both sides must give identical
   samples (checked; the benchmark fails otherwise). Page cache warm (the files were just written).

``quick=True``: tiny sizes to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.bench.common import (
    format_load,
    load_average,
    machine_description,
    machine_lines,
    memory_gib,
    time_calls,
    write_outputs,
)
from skelrecall.render import markdown_table

GB = 1e9
RSS_GOAL_GB = 3.0

FULL = {
    "cases": 176,
    "shape": (170, 300, 300),
    "patch": [80, 160, 192],
    "batch": 2,
    "workers": 2,
    "steps": 300,
    "subsets": (4, 12),
    "subset_steps": 20,
    "throughput": {
        "synthetic_2d": dict(num_train=10),
        "synthetic_canal": dict(num_train=6),
        "toothfairy-size": dict(cases=6, shape=(170, 300, 300), patch=[80, 160, 192]),
    },
    "rounds": 3,
    "min_samples": 6,
    "min_seconds": 4.0,
    "crops": 200,
}
QUICK = {
    "cases": 4,
    "shape": (24, 40, 40),
    "patch": [8, 16, 16],
    "batch": 2,
    "workers": 1,
    "steps": 3,
    "subsets": (1, 2),
    "subset_steps": 2,
    "throughput": {
        "synthetic_2d": dict(num_train=2, size=64, patch=[32, 32]),
        "synthetic_canal": dict(num_train=2, shape=(16, 32, 32), patch=[8, 16, 16]),
        "toothfairy-size": dict(cases=3, shape=(24, 40, 40), patch=[8, 16, 16]),
    },
    "rounds": 1,
    "min_samples": 2,
    "min_seconds": 0.0,
    "crops": 5,
}


def progress(message: str) -> None:
    print(f"[cache] {message}", flush=True)


# --- data --------------------------------------------------------------------------------------------


def toothfairy_like(folder: Path, cases: int, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """``cases`` CT-like float32 volumes (``.npy``) with two curved canals each (label 1, radius 3.5
    voxels at 170x300x300: about 23 000 foreground voxels), nnU-Net raw layout; one fold, the last two
    cases for validation."""
    from skelrecall.data.layout import write_dataset_json
    from skelrecall.io import write_image, write_json

    names = [f"tf_{i:04d}" for i in range(cases)]
    radius = max(1.5, 3.5 * shape[0] / 170)
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        label = np.zeros(shape, np.uint8)
        z, x = np.arange(shape[0])[:, None], np.arange(shape[2])[None, :]
        for j in (0, 1):
            phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.1)
            for y in range(shape[1]):
                t = y / shape[1]
                cz = shape[0] * (0.5 + amp * np.sin(2 * np.pi * t + phase))
                cx = shape[2] * (0.3 + 0.4 * j + amp * np.cos(2 * np.pi * t + phase))
                label[:, y, :][(z - cz) ** 2 + (x - cx) ** 2 <= radius**2] = 1
        image = rng.standard_normal(shape, dtype=np.float32)
        image *= 150
        image += 1000
        image[label == 1] -= 500
        write_image(folder / "imagesTr" / f"{name}_0000.npy", image)
        write_image(folder / "labelsTr" / f"{name}.npy", label)
        del image, label
    write_dataset_json(
        folder, channel_names={0: "CBCT"}, labels={"background": 0, "canal": 1}, num_training=cases, file_ending=".npy"
    )
    write_json(folder / "splits.json", [{"train": names[:-2], "val": names[-2:]}])
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def augmentation(dataset: str = "toothfairy") -> dict:
    from omegaconf import OmegaConf

    from skelrecall.configs import compose

    return OmegaConf.to_container(compose([f"dataset={dataset}"]).augmentation, resolve=True)


# --- 1. peak memory, in fresh processes ----------------------------------------------------------------


def train_like(spec: dict[str, Any]) -> dict[str, Any]:
    """What one measurement process does (see the module docstring); returns its numbers."""
    import torch

    from skelrecall.data.datamodule import SegmentationDataModule
    from skelrecall.data.layout import DatasetLayout

    torch.set_num_threads(1)
    started = time.perf_counter()
    dm = SegmentationDataModule(
        DatasetLayout.open(spec["folder"]),
        dims=3,
        patch_size=spec["patch"],
        batch_size=spec["batch"],
        iterations_per_epoch=spec["steps"],
        normalization="ct",
        augmentation=spec["augmentation"],
        num_workers=spec["workers"],
        max_train_cases=spec.get("max_train_cases"),
        skeleton=True,
        cache=spec["cache"],
        cache_dir=spec.get("cache_dir"),
        seed=0,
    )
    with contextlib.redirect_stdout(sys.stderr):
        dm.setup()
    setup_s = time.perf_counter() - started
    after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    loader = dm.train_dataloader()
    started, patches = time.perf_counter(), 0
    for batch in loader:
        patches += int(batch["image"].shape[0])
        assert "skeleton" in batch
    draw_s = time.perf_counter() - started
    del loader, batch
    gc.collect()  # the loader's workers exit and are waited for
    return {
        "train_cases": len(dm.train_cases),
        "setup_s": setup_s,
        "draw_s": draw_s,
        "patches": patches,
        "rss_after_setup": after_setup,
        "rss_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def measure_in_fresh_process(spec: dict[str, Any], interval: float = 0.25) -> dict[str, Any]:
    """:func:`train_like` in a new Python process (its peak memory is its own), and the largest sum of
    resident memory over that process and its loader workers, sampled from here with psutil (``-1``
    without psutil; no sampling thread inside the measured process, whose workers are forked)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skelrecall.bench.cache", "--measure", json.dumps(spec)],
            stdout=out,
            stderr=err,
            text=True,
        )
        peak = _sample_tree(proc, interval)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"measurement process failed ({proc.returncode}):\n{err.read()[-4000:]}")
        return {**json.loads(out.read().strip().splitlines()[-1]), "rss_tree_sum": peak}


def _sample_tree(proc: subprocess.Popen, interval: float) -> int:
    """Wait for ``proc``; return the largest RSS sum over it and its descendants seen meanwhile."""
    try:
        import psutil
    except ImportError:
        proc.wait()
        return -1
    peak, me = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(interval)
    return peak


def measure_memory(root: Path, plan: dict) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of section 1 and the dataset's description."""
    n, shape = plan["cases"], tuple(plan["shape"])
    need = 2.3 * n * math.prod(shape) * 5  # sources and cache: float32 image + uint8 label, with margin
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < need:
        raise SystemExit(
            f"cache benchmark: {root} has {free / GB:.1f} GB free, needs about {need / GB:.1f} GB "
            "(set TMPDIR to a folder with more space)"
        )
    progress(f"writing {n} volumes of {'x'.join(map(str, shape))} to {root}")
    started = time.perf_counter()
    folder = toothfairy_like(root / "nnUNet_raw" / "Dataset990_ToothFairySize", n, shape)
    data = {
        "cases": n,
        "shape": "x".join(map(str, shape)),
        "source_gb": folder_bytes(folder) / GB,
        "images_gb": folder_bytes(folder / "imagesTr") / GB,
        "write_s": time.perf_counter() - started,
    }
    progress(f"dataset: {data['source_gb']:.2f} GB ({data['images_gb']:.2f} GB images) in {data['write_s']:.0f} s")
    base = {
        "folder": str(folder),
        "patch": plan["patch"],
        "batch": plan["batch"],
        "workers": plan["workers"],
        "augmentation": augmentation(),
    }
    cache_dir = str(root / "cache" / folder.name)
    runs = [
        ("cache, first run (builds the cache)", {"cache": True, "cache_dir": cache_dir, "steps": plan["steps"]}),
        ("cache, later run (opens the cache)", {"cache": True, "cache_dir": cache_dir, "steps": plan["steps"]}),
    ]
    runs += [
        (
            f"in memory, {k} training cases (measured)",
            {"cache": False, "steps": plan["subset_steps"], "max_train_cases": k},
        )
        for k in plan["subsets"]
    ]
    rows = []
    for name, spec in runs:
        progress(f"{name} ...")
        r = measure_in_fresh_process({**base, **spec})
        if spec["cache"] and "first" in name:
            data["cache_gb"] = folder_bytes(Path(cache_dir)) / GB
        rows.append(
            {
                "kind": "memory",
                "name": name,
                "train_cases": r["train_cases"],
                "steps": spec["steps"],
                "workers": plan["workers"],
                "setup_s": r["setup_s"],
                "patches_per_s": r["patches"] / r["draw_s"],
                "peak_rss_main_gb": r["rss_main"] / GB,
                "rss_after_setup_gb": r["rss_after_setup"] / GB,
                "peak_rss_worker_gb": r["rss_worker"] / GB,
                "peak_rss_tree_sum_gb": r["rss_tree_sum"] / GB if r["rss_tree_sum"] >= 0 else math.nan,
                "extrapolated": False,
            }
        )
        progress(
            f"{name}: peak RSS {rows[-1]['peak_rss_main_gb']:.2f} GB (largest worker "
            f"{rows[-1]['peak_rss_worker_gb']:.2f} GB), setup {r['setup_s']:.0f} s, "
            f"{rows[-1]['patches_per_s']:.2f} patches/s"
        )
    (k1, m1), (k2, m2) = [(r["train_cases"], r) for r in rows if r["name"].startswith("in memory")]
    full_train = rows[0]["train_cases"]
    extra = {}
    for key in ("peak_rss_main_gb", "rss_after_setup_gb", "peak_rss_worker_gb", "peak_rss_tree_sum_gb"):
        slope = (m2[key] - m1[key]) / (k2 - k1)
        extra[key] = m2[key] + slope * (full_train - k2)
    rows.append(
        {
            "kind": "memory",
            "name": f"in memory, {full_train} training cases (EXTRAPOLATED from {k1} and {k2})",
            "train_cases": full_train,
            "steps": math.nan,
            "workers": plan["workers"],
            "setup_s": math.nan,
            "patches_per_s": math.nan,
            **extra,
            "extrapolated": True,
        }
    )
    return rows, data


# --- 2. throughput, in this process ---------------------------------------------------------------------


def small_dataset(name: str, root: Path, options: dict) -> tuple[Path, dict]:
    """A small dataset for the throughput comparison and its settings (dims, patch, normalization, ...)."""
    from skelrecall.configs import compose

    options = dict(options)
    if name == "toothfairy-size":
        patch = options.pop("patch")
        folder = toothfairy_like(root / name, options["cases"], tuple(options["shape"]), seed=1)
        return folder, {
            "dims": 3,
            "patch": patch,
            "normalization": "ct",
            "ignore_label": None,
            "augmentation": augmentation("toothfairy"),
            "fg": 0.333,
        }
    from skelrecall.data.synthetic import canal3d, tubes2d

    cfg = compose([f"dataset={name}"])
    patch = options.pop("patch", None) or [int(p) for p in cfg.data.patch_size]
    gen = {"synthetic_2d": tubes2d.generate, "synthetic_canal": canal3d.generate}[name]
    with contextlib.redirect_stdout(io.StringIO()):
        folder = gen(root / name, seed=0, num_test=0, folds=2, progress=False, **options)
    return folder, {
        "dims": int(cfg.dataset.dims),
        "patch": patch,
        "normalization": str(cfg.dataset.normalization),
        "ignore_label": cfg.dataset.ignore_label,
        "augmentation": augmentation(name),
        "fg": float(cfg.data.foreground_fraction),
    }


def _time_samples(ds, epoch: int, plan: dict):
    """Timed ``ds[(epoch, i)]`` for i = 0, 1, ... (see ``plan``)."""
    keys = iter(range(10**9))
    return time_calls(
        lambda: ds[(epoch, next(keys))], plan["min_samples"], min_seconds=plan["min_seconds"], max_calls=10**6
    )


def _time_crops(cases, patch: tuple[int, ...], seed: int, calls: int):
    """Timed ``crop_patch`` calls over ``cases`` (every third centred on foreground)."""
    from skelrecall.data.datamodule import crop_patch

    keys = iter(range(10**9))

    def crop():
        i = next(keys)
        return crop_patch(cases[i % len(cases)], patch, np.random.default_rng((seed, i)), force_fg=i % 3 == 0)

    return time_calls(crop, calls)


def measure_throughput(name: str, root: Path, plan: dict) -> list[dict[str, Any]]:
    """Samples/s of ``PatchDataset`` and crops/s of ``crop_patch``, cached vs in memory (same patches)."""
    import torch

    from skelrecall.data.datamodule import PatchDataset, SegmentationDataModule
    from skelrecall.data.layout import DatasetLayout

    folder, s = small_dataset(name, root, plan["throughput"][name])
    sides = {}
    for side in ("cache", "memory"):
        dm = SegmentationDataModule(
            DatasetLayout.open(folder),
            dims=s["dims"],
            patch_size=s["patch"],
            batch_size=1,
            iterations_per_epoch=1,
            normalization=s["normalization"],
            ignore_label=s["ignore_label"],
            cache=side == "cache",
            cache_dir=root / "cache" / folder.name,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            dm.setup()
        sides[side] = (
            dm.train_cases,
            PatchDataset(
                dm.train_cases,
                s["patch"],
                s["fg"],
                s["augmentation"],
                s["dims"],
                skeleton=True,
                ignore_label=s["ignore_label"],
                seed=0,
            ),
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        for i in range(max(4, plan["min_samples"])):  # identical samples (and warm-up: builds the augmentation)
            a, b = sides["cache"][1][(0, i)], sides["memory"][1][(0, i)]
            if not all(torch.equal(a[k], b[k]) for k in a):
                raise AssertionError(f"{name}: cached and in-memory patches differ at key (0, {i})")
        samples: dict[str, list[float]] = {"cache": [], "memory": []}
        crops: dict[str, list[float]] = {"cache": [], "memory": []}
        totals = {side: [0, 0.0, 0, 0.0] for side in sides}
        for rnd in range(plan["rounds"]):
            for side in ("cache", "memory") if rnd % 2 == 0 else ("memory", "cache"):
                cases, ds = sides[side]
                timed = _time_samples(ds, rnd + 1, plan)
                timed_crop = _time_crops(cases, tuple(s["patch"]), rnd, plan["crops"])
                samples[side].append(timed.calls / timed.wall_total)
                crops[side].append(timed_crop.calls / timed_crop.wall_total)
                totals[side][0] += timed.calls
                totals[side][1] += timed.wall_total
                totals[side][2] += timed_crop.calls
                totals[side][3] += timed_crop.wall_total
    finally:
        torch.set_num_threads(threads)
    rows = []
    for side in ("cache", "memory"):
        common = {
            "kind": "throughput",
            "dataset": name,
            "patch": "x".join(map(str, s["patch"])),
            "side": side,
            "train_cases": len(sides[side][0]),
            "identical": True,
        }
        rows.append(
            {
                **common,
                "name": f"{side}: PatchDataset (augmentation + skeleton)",
                "items": totals[side][0],
                "wall_s": totals[side][1],
                "items_per_s": statistics.median(samples[side]),
            }
        )
        rows.append(
            {
                **common,
                "name": f"{side}: crop_patch only",
                "items": totals[side][2],
                "wall_s": totals[side][3],
                "items_per_s": statistics.median(crops[side]),
            }
        )
    return rows


# --- the run ------------------------------------------------------------------------------------------


def run(out_dir: str = "reports/bench", quick: bool = False) -> None:
    """Measure memory and throughput; write ``cache.csv`` and ``cache.md``."""
    import pandas as pd

    plan = QUICK if quick else FULL
    machine = machine_description(packages=("torch", "monai", "numpy"))
    started, load_before = time.time(), load_average()
    root = Path(tempfile.mkdtemp(prefix="skelrecall_cache_bench_"))
    try:
        memory_rows, data = measure_memory(root / "large", plan)
        shutil.rmtree(root / "large")
        rows = list(memory_rows)
        for name in plan["throughput"]:
            progress(f"throughput on {name} ...")
            rows.extend(measure_throughput(name, root / "small", plan))
            progress(f"{name}: " + ", ".join(f"{r['name']} {r['items_per_s']:.1f}/s" for r in rows[-4:]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = pd.DataFrame(rows)
    report = render_report(table, data, plan, quick, time.time() - started, load_before, load_average(), machine)
    write_outputs(
        out_dir,
        {
            "cache.csv": lambda p: table.to_csv(p, index=False, float_format="%.5g"),
            "cache.md": lambda p: p.write_text(report),
        },
    )
    print(report)


def render_report(
    table,
    data: dict[str, Any],
    plan: dict,
    quick: bool,
    elapsed: float,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    machine: dict[str, str],
) -> str:
    """The Markdown report (see the module docstring)."""
    mem = table[table["kind"] == "memory"]
    cached = mem[mem["name"].str.startswith("cache")]
    peak = float(cached["peak_rss_main_gb"].max())
    worker = float(cached["peak_rss_worker_gb"].max())
    tree = float(cached["peak_rss_tree_sum_gb"].max())
    extrapolated = mem[mem["extrapolated"].astype(bool)].iloc[0]
    memory_table = markdown_table(
        [
            "run",
            "training cases",
            "steps (batch 2)",
            "setup (s)",
            "patches/s",
            "peak RSS main (GB)",
            "RSS after setup (GB)",
            "peak RSS largest worker (GB)",
            "peak sum over processes (GB)",
        ],
        [
            [
                r["name"],
                int(r["train_cases"]),
                "" if math.isnan(r["steps"]) else int(r["steps"]),
                *(
                    ("" if math.isnan(r[k]) else float(r[k]))
                    for k in (
                        "setup_s",
                        "patches_per_s",
                        "peak_rss_main_gb",
                        "rss_after_setup_gb",
                        "peak_rss_worker_gb",
                        "peak_rss_tree_sum_gb",
                    )
                ),
            ]
            for _, r in mem.iterrows()
        ],
        floatfmt=".3g",
    )
    thr = table[table["kind"] == "throughput"]
    thr_rows = []
    for (ds, what), grp in thr.assign(what=thr["name"].str.split(": ").str[1]).groupby(["dataset", "what"], sort=False):
        g = grp.set_index("side")["items_per_s"]
        thr_rows.append(
            [
                ds,
                grp["patch"].iloc[0],
                what,
                float(g["cache"]),
                float(g["memory"]),
                float(g["cache"] / g["memory"]),
                "yes" if grp["identical"].all() else "NO",
            ]
        )
    met = peak < RSS_GOAL_GB
    lines = [
        "# Preprocessed cache: memory and loader throughput"
        + (" (QUICK MODE: tiny sizes, numbers mean nothing)" if quick else ""),
        "",
        "## Machine",
        "",
        *machine_lines(machine),
        f"- load average (1, 5, 15 min) before: {format_load(load_before)}; after: {format_load(load_after)}",
        "",
        f"Everything measured in one run ({elapsed / 60:.1f} min): `skelrecall-bench cache"
        + (" --quick" if quick else "")
        + "`. GB = 10^9 bytes.",
        "",
        "## 1. Peak memory of a training process on a large 3D dataset",
        "",
        f"Dataset: {data['cases']} synthetic volumes of {data['shape']} (ToothFairy size), float32 images and "
        f"uint8 labels as `.npy`: **{data['source_gb']:.2f} GB** of source files ({data['images_gb']:.2f} GB "
        f"images), written to a temporary folder in {data['write_s']:.0f} s and deleted after; the cache it "
        f"makes: {data.get('cache_gb', math.nan):.2f} GB. Setup as ToothFairy: CT normalization, patch "
        f"{'x'.join(map(str, plan['patch']))}, batch {plan['batch']}, nnU-Net augmentation, tubed skeleton, "
        f"{plan['workers']} loader worker{'s' if plan['workers'] > 1 else ''}, one fold (the last two cases "
        "validate). Each row is a fresh process: `setup()` then the training DataLoader for the given steps; "
        "`peak RSS main` is its `ru_maxrss`, the worker column the largest worker's, the last column the "
        "largest sampled sum over the process tree (psutil, every 0.25 s; an upper bound: pages shared by fork "
        "count once per process). A worker is a fork of the main process (the pages it inherits count in its "
        "RSS too) plus the augmentation and tubed-skeleton working set of its patches, the same in both modes; "
        "the cache's mapped pages are released after each crop.",
        "",
        memory_table,
        "",
        f"**Goal: peak RSS below {RSS_GOAL_GB:.0f} GB with the cache: {'met' if met else 'NOT MET'}** "
        f"(main process {peak:.2f} GB, largest worker {worker:.2f} GB, whole tree at most {tree:.2f} GB).",
        "",
        f"In memory, the same {int(extrapolated['train_cases'])} training cases would need about "
        f"**{extrapolated['peak_rss_main_gb']:.1f} GB** in the main process (EXTRAPOLATED linearly from the "
        "two measured subsets above, not measured: loading them was not attempted on a machine with "
        f"{memory_gib() or math.nan:.0f} GiB RAM); the normalized float32 images and int16 labels alone are "
        f"{int(extrapolated['train_cases']) * math.prod(plan['shape']) * 6 / GB:.1f} GB.",
        "",
        "## 2. Loader throughput, cache vs in memory (same patches)",
        "",
        "`PatchDataset` samples per second (crop, 1/3 foreground oversampling, augmentation, tubed skeleton) "
        "and `crop_patch` alone, in one process with one torch thread (one DataLoader worker); median over "
        f"{plan['rounds']} rounds alternating the two sides; page cache warm. `identical`: both sides gave "
        "bit-identical samples (image, label, skeleton) for the same keys.",
        "",
        markdown_table(
            ["dataset", "patch", "what", "cache (/s)", "in memory (/s)", "cache / memory", "identical"],
            thr_rows,
            floatfmt=".3g",
        ),
        "",
        "Raw measurements: `cache.csv` (kind = memory or throughput).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one measurement process (JSON spec)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(train_like(json.loads(args.measure))))
    else:
        run(out_dir=args.out, quick=args.quick)
