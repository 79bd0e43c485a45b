"""Throughput benchmark: ``<out_dir>/throughput.{csv,md}``: training steps/s against loader samples/s.

Two sides of one training run, measured in the same process, one after the other:

* **Training steps per second** of each backbone, composed from the Hydra configs as
  ``skelrecall-train`` composes them (``profile=cpu``: batch size and UNet width): forward, the
  training loss (``configs/loss/skeleton_recall.yaml``: Dice+CE + w * Skeleton Recall, deep
  supervision), backward, gradient clipping (``trainer.gradient_clip_val``) and an SGD step with
  the config's optimizer settings, on random inputs with a random tubed-skeleton-like target.
  Backbones: UNet 2D at the cpu-profile width and at full width (nnU-Net's 32 / 512), UNet 3D on
  ``synthetic_canal`` patches, HRNetV2-W18 2D (if mmsegmentation imports). On a GPU if torch sees
  one, else on the CPU with torch's default thread count.
* **Data-loader samples per second** of :class:`skelrecall.data.datamodule.PatchDataset` (patch
  crop with foreground oversampling, MONAI augmentation, and the tubed skeleton when
  ``skeleton=True``) on small synthetic datasets generated into a temporary folder
  (``synthetic_2d`` and ``synthetic_canal``), in this process with one torch thread, i.e. what one
  DataLoader worker delivers. Skeleton on and off alternate in rounds so that slow phases of a
  shared machine hit both alike.

Read: ``workers needed = training samples/s / loader samples/s per worker`` (how many loader
workers keep one training process fed) and the ratio skeleton on / off (the cost of computing the
tubed skeleton per augmented patch on the CPU). No absolute goal: the numbers depend on the machine.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.bench.common import (
    format_load,
    load_average,
    machine_description,
    machine_lines,
    time_calls,
    write_outputs,
)
from skelrecall.render import markdown_table

# name -> Hydra overrides of configs/train.yaml (profile=cpu gives batch size and UNet width)
BACKBONES: dict[str, list[str]] = {
    "unet 2D, cpu width": ["dataset=synthetic_2d", "backbone=unet"],
    "unet 2D, full width": [
        "dataset=synthetic_2d",
        "backbone=unet",
        "backbone.base_features=32",
        "backbone.max_features=null",
    ],
    "unet 3D, cpu width": ["dataset=synthetic_canal", "backbone=unet"],
    "hrnet w18 2D": [
        "dataset=synthetic_2d",
        "backbone=hrnet",
        "backbone.variant=w18",
        "optimizer.momentum=0.9",
        "optimizer.nesterov=false",
    ],  # Table 4: HRNet uses 0.9
}
LOADERS = {"synthetic_2d": 2, "synthetic_canal": 3}  # dataset -> dims
# CPU training threads: one, like a loader worker, so both sides are per-core rates (multi-threaded
# steps spin-wait and scatter widely on a small shared machine; see also bench/losses/measure.py)
TRAIN_THREADS = 1

FULL = {
    "train_overrides": {2: [], 3: []},
    "min_steps": 3,
    "min_train_s": 8.0,
    "max_steps": 50,
    "loader_rounds": 3,
    "min_samples": 8,
    "min_loader_s": 3.0,
    "data": {"synthetic_2d": dict(num_train=10), "synthetic_canal": dict(num_train=6)},
}
QUICK = {
    "train_overrides": {
        2: ["data.patch_size=[32,32]", "data.batch_size=2"],
        3: ["data.patch_size=[8,16,16]", "data.batch_size=2"],
    },
    "backbone_overrides": {"unet": ["backbone.base_features=4", "backbone.max_features=16"]},
    "min_steps": 1,
    "min_train_s": 0.0,
    "max_steps": 1,
    "loader_rounds": 1,
    "min_samples": 2,
    "min_loader_s": 0.0,
    "data": {"synthetic_2d": dict(num_train=2, size=64), "synthetic_canal": dict(num_train=2, shape=(16, 32, 32))},
}
QUICK_PATCH = {"synthetic_2d": [32, 32], "synthetic_canal": [8, 16, 16]}


def compose(overrides: list[str]):
    """The train config composed with ``profile=cpu`` and ``overrides`` (as on the command line)."""
    from skelrecall.configs import compose as compose_train

    return compose_train(["profile=cpu", "logger=none", *overrides])


def hrnet_available() -> bool:
    try:
        from skelrecall.models.hrnet import import_mmseg

        with warnings.catch_warnings():  # mmcv-lite warns about its missing compiled ops
            warnings.simplefilter("ignore", UserWarning)
            import_mmseg()
        return True
    except ImportError:
        return False


def random_target(batch: int, patch: tuple[int, ...], seed: int = 0):
    """Random thin straight tubes (label 1) and their tubed skeletons, ``(B, 1, *patch)`` int64."""
    import torch

    from skelrecall.skeleton import tubed_skeleton

    rng = np.random.default_rng(seed)
    label = np.zeros((batch, *patch), np.int64)
    size = np.asarray(patch)
    for b in range(batch):
        for _ in range(4):
            p0, p1 = rng.uniform(0, 1, len(patch)) * (size - 1), rng.uniform(0, 1, len(patch)) * (size - 1)
            pts = np.round(p0 + np.linspace(0, 1, int(np.abs(p1 - p0).max() * 2) + 2)[:, None] * (p1 - p0)).astype(int)
            for off in np.ndindex(*(3,) * len(patch)):
                q = np.clip(pts + np.asarray(off) - 1, 0, size - 1)
                label[(b, *q.T)] = 1
    skeleton = np.stack([tubed_skeleton(lab) for lab in label]).astype(np.int64)
    return torch.from_numpy(label[:, None]), torch.from_numpy(skeleton[:, None])


def measure_training(name: str, overrides: list[str], plan: dict, device: str) -> dict[str, Any]:
    """Training steps per second of one backbone configuration."""
    import torch
    from hydra.utils import instantiate

    from skelrecall.losses import build_loss
    from skelrecall.models import build_model

    cfg = compose(overrides)
    dims, classes = int(cfg.dataset.dims), int(cfg.dataset.num_classes)
    cfg = compose(
        overrides + plan["train_overrides"][dims] + plan.get("backbone_overrides", {}).get(str(cfg.backbone.name), [])
    )
    batch, patch = int(cfg.data.batch_size), tuple(int(p) for p in cfg.data.patch_size)
    in_ch = int(cfg.dataset.in_channels)
    torch.manual_seed(0)
    with contextlib.redirect_stderr(io.StringIO()):
        model = build_model(cfg.backbone, dims=dims, in_channels=in_ch, num_classes=classes, patch_size=patch)
    model = model.to(device).train()
    loss = build_loss(cfg.loss, num_classes=classes, dims=dims, ds_weights=getattr(model, "ds_weights", None))
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    clip = cfg.trainer.get("gradient_clip_val")
    x = torch.randn(batch, in_ch, *patch, device=device)
    label, skeleton = (t.to(device) for t in random_target(batch, patch))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        total, _ = loss(model(x), label, skeleton)
        total.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    threads = torch.get_num_threads()
    if device == "cpu":  # one core per side: multi-threaded steps spin-wait on a small shared machine
        torch.set_num_threads(TRAIN_THREADS)
    try:
        step()  # warm-up
        timed = time_calls(step, plan["min_steps"], min_seconds=plan["min_train_s"], max_calls=plan["max_steps"])
        steps, wall, cpu = timed.calls, timed.wall_total, timed.cpu_total
    finally:
        torch.set_num_threads(threads)
    return {
        "kind": "train",
        "name": name,
        "dataset": str(cfg.dataset.name),
        "dims": dims,
        "patch": "x".join(map(str, patch)),
        "batch": batch,
        "device": device,
        "threads": TRAIN_THREADS if device == "cpu" else 0,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "items": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "items_per_s": steps / wall,
        "samples_per_s": steps * batch / wall,
    }


def make_dataset(name: str, root: Path, plan: dict) -> Path:
    """Generate a small synthetic dataset ``name`` under ``root`` (generator output silenced)."""
    from skelrecall.data.synthetic import canal3d, tubes2d

    gen = {"synthetic_2d": tubes2d.generate, "synthetic_canal": canal3d.generate}[name]
    with contextlib.redirect_stdout(io.StringIO()):
        return gen(root / name, seed=0, num_test=0, folds=2, progress=False, **plan["data"][name])


def measure_loader(name: str, root: Path, plan: dict, quick: bool) -> list[dict[str, Any]]:
    """Samples per second of ``PatchDataset`` with and without the tubed skeleton (one torch thread)."""
    import torch
    from omegaconf import OmegaConf

    from skelrecall.data.datamodule import PatchDataset, SegmentationDataModule
    from skelrecall.data.layout import DatasetLayout

    cfg = compose([f"dataset={name}"])
    dims = int(cfg.dataset.dims)
    patch = QUICK_PATCH[name] if quick else [int(p) for p in cfg.data.patch_size]
    layout = DatasetLayout.open(make_dataset(name, root, plan), hint=str(cfg.dataset.create))
    dm = SegmentationDataModule(
        layout,
        dims=dims,
        patch_size=patch,
        batch_size=1,
        iterations_per_epoch=1,
        normalization=str(cfg.dataset.normalization),
        ignore_label=cfg.dataset.ignore_label,
    )
    cases = dm.load_cases(layout.cases("Tr"), "Tr")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (PatchDataset sets this there)
    try:
        results: dict[bool, list[tuple[int, float, float]]] = {True: [], False: []}
        for rnd in range(plan["loader_rounds"]):
            for skeleton in (True, False) if rnd % 2 == 0 else (False, True):
                ds = PatchDataset(
                    cases,
                    patch,
                    foreground_fraction=float(cfg.data.foreground_fraction),
                    augmentation=OmegaConf.to_container(cfg.augmentation),
                    dims=dims,
                    skeleton=skeleton,
                    ignore_label=cfg.dataset.ignore_label,
                    seed=rnd,
                )
                counter = iter(range(10**9))
                ds[(0, next(counter))]  # warm-up: builds the augmentation pipeline
                timed = time_calls(
                    lambda: ds[(0, next(counter))],
                    plan["min_samples"],
                    min_seconds=plan["min_loader_s"],
                    max_calls=10**6,
                )
                results[skeleton].append((timed.calls, timed.wall_total, timed.cpu_total))
    finally:
        torch.set_num_threads(threads)
    rows = []
    for skeleton, runs in results.items():
        items, wall, cpu = (sum(r[i] for r in runs) for i in range(3))
        rows.append(
            {
                "kind": "loader",
                "name": f"PatchDataset skeleton={skeleton}",
                "dataset": name,
                "dims": dims,
                "patch": "x".join(map(str, patch)),
                "batch": 1,
                "device": "cpu",
                "threads": 1,
                "params_m": float("nan"),
                "items": items,
                "wall_s": wall,
                "cpu_s": cpu,
                "items_per_s": statistics.median(r[0] / r[1] for r in runs),
                "samples_per_s": statistics.median(r[0] / r[1] for r in runs),
            }
        )
    return rows


def run(out_dir: str = "reports/bench", quick: bool = False) -> None:
    """Measure training and loader throughput and write ``throughput.csv`` and ``throughput.md``."""
    import pandas as pd
    import torch

    plan = QUICK if quick else FULL
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = machine_description(packages=("torch", "monai", "numpy"))
    started, load_before = time.time(), load_average()
    rows, skipped = [], []
    has_hrnet = hrnet_available()
    for name, overrides in BACKBONES.items():
        if "backbone=hrnet" in overrides and not has_hrnet:
            skipped.append(f"{name}: mmsegmentation does not import (pip install -e '.[hrnet]')")
            continue
        rows.append(measure_training(name, overrides, plan, device))
        r = rows[-1]
        print(f"[throughput] {name}: {r['items_per_s']:.3f} steps/s ({r['samples_per_s']:.2f} samples/s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="skelrecall_throughput_") as tmp:
        for name in LOADERS:
            rows.extend(measure_loader(name, Path(tmp), plan, quick))
            print(
                f"[throughput] loader {name}: "
                + ", ".join(f"{r['name']} {r['samples_per_s']:.1f}/s" for r in rows[-2:]),
                flush=True,
            )
    table = pd.DataFrame(rows)
    report = render_report(table, skipped, device, quick, time.time() - started, load_before, load_average(), machine)
    write_outputs(
        out_dir,
        {
            "throughput.csv": lambda p: table.to_csv(p, index=False, float_format="%.5g"),
            "throughput.md": lambda p: p.write_text(report),
        },
    )
    print(report)


def summary(table) -> list[dict[str, Any]]:
    """Per backbone: training samples/s, loader samples/s per worker (skeleton on / off), ratios."""
    loader = table[table["kind"] == "loader"].set_index(["dataset", "name"])["samples_per_s"]
    out = []
    for _, r in table[table["kind"] == "train"].iterrows():
        on = loader.get((r["dataset"], "PatchDataset skeleton=True"), math.nan)
        off = loader.get((r["dataset"], "PatchDataset skeleton=False"), math.nan)
        out.append(
            {
                "backbone": r["name"],
                "dataset": r["dataset"],
                "patch": r["patch"],
                "batch": int(r["batch"]),
                "params (M)": r["params_m"],
                "steps/s": r["items_per_s"],
                "train samples/s": r["samples_per_s"],
                "loader samples/s, skeleton on": on,
                "loader samples/s, skeleton off": off,
                "skeleton on/off": on / off,
                "workers needed (skeleton on)": r["samples_per_s"] / on,
            }
        )
    return out


def render_report(
    table,
    skipped: list[str],
    device: str,
    quick: bool,
    elapsed: float,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    machine: dict[str, str],
) -> str:
    """The Markdown report: ``machine`` (:func:`~skelrecall.bench.common.machine_description`), the
    summary table, the cost of the skeleton in the loader and the skipped backbones."""
    rows = summary(table)
    loader = table[table["kind"] == "loader"]
    ratios = []
    for ds, grp in loader.groupby("dataset", sort=False):
        g = grp.set_index("name")["samples_per_s"]
        ratios.append(
            f"`{ds}` ({grp['patch'].iloc[0]}): {g['PatchDataset skeleton=True']:.1f} samples/s with the "
            f"skeleton, {g['PatchDataset skeleton=False']:.1f} without: on/off = "
            f"{g['PatchDataset skeleton=True'] / g['PatchDataset skeleton=False']:.2f}"
        )
    train_threads = int(table[table["kind"] == "train"]["threads"].max()) if len(rows) else 0
    lines = [
        "# Throughput: training steps vs data loading"
        + (" (QUICK MODE: tiny sizes, numbers mean nothing)" if quick else ""),
        "",
        "## Machine",
        "",
        *machine_lines(machine),
        f"- load average (1, 5, 15 min) before: {format_load(load_before)}; after: {format_load(load_after)}",
        "",
        f"Both sides measured in the same run ({elapsed:.0f} s).",
        "",
        f"Training: `profile=cpu` configs (batch size, UNet width), loss `skeleton_recall` (w = 1, deep "
        f"supervision), forward + loss + backward + clipping + SGD step on random inputs, on {device}"
        + (
            f" with {train_threads} torch thread (per-core rate, comparable with one loader worker)."
            if device == "cpu"
            else "."
        ),
        "Loader: `PatchDataset` (crop, 1/3 foreground oversampling, augmentation, tubed skeleton on/off) "
        "in one process with one torch thread, i.e. one DataLoader worker; median over rounds that "
        "alternate skeleton on and off.",
        "",
        markdown_table(list(rows[0]) if rows else [], [list(r.values()) for r in rows], floatfmt=".3g"),
        "",
        "`workers needed` = training samples/s / loader samples/s per worker (skeleton on): how many loader "
        "workers (one core each) keep one training process fed; below 1, a single worker keeps up. On a "
        "CPU-only machine the workers take their cores from the training step.",
        "",
        "Cost of the tubed skeleton in the loader (ratios, not absolute goals):",
        "",
        *[f"- {r}" for r in ratios],
    ]
    if skipped:
        lines += ["", "Skipped:", "", *[f"- {s}" for s in skipped]]
    lines += ["", "Raw measurements: `throughput.csv` (items = steps or samples; wall and process CPU seconds).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(out_dir=args.out, quick=args.quick)
