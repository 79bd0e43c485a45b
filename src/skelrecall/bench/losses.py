"""Resource benchmark of the losses: ``<out_dir>/losses.{csv,md}`` and ``losses_overhead.png``.

One full training step (network forward, loss, backward) of the project's nnU-Net U-Net
(``skelrecall.models.unet.build_unet``, deep supervision on) with each loss:

* ``dice_ce``: CE + soft Dice (the baseline every ratio is taken against)
* ``skeleton_recall``: + Skeleton Recall, our gather implementation (w = 1)
* ``skeleton_recall_onehot``: + Skeleton Recall computed like the official code (one-hot, O(C*N))
* ``cldice``: + soft clDice (10 iterations, upstream behaviour)
* ``topo_cldice``: + Topo-clDice (our implementation of Menten et al.; 2D only, as in the paper)

for 2D and 3D and C in {2, 4, 8, 14} classes (background included). Every configuration runs in a
fresh process (``python -m skelrecall.bench.losses --worker``), so that its peak memory is its own:
on CPU the peak of the bytes held by torch's allocator during one step (read from the torch
profiler's allocation events; deterministic, the analogue of ``torch.cuda.max_memory_allocated``)
and the peak resident set size of the process (``getrusage``); on CUDA
``torch.cuda.max_memory_allocated``. Time: per step, the median over the timed steps of the wall
time and of the process CPU time (user + system; less sensitive to other programs sharing the
cores). Configurations are run in rounds, each round going through all losses of one (dims, C)
back to back, so that slow phases of a shared machine hit all losses alike; ratios use the median
over rounds. Each worker also times the loss alone (forward + backward on fixed logits).

The step-time goal is judged on paired measurements (``paired``, ``losses_paired.csv``): dice_ce and
Skeleton Recall alternate step by step on one network and batch in one fresh process, and the
median per-pair CPU-time ratio is the estimate (on CPU also at the paper's 2D size, 512x512).

Goals of issue 4 (checked and printed, not assumed): Skeleton Recall adds at most 3% step time and
2% peak memory over dice_ce; its memory ratio at C = 14 is at most 1.1x that at C = 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.bench import cpu_model

LOSSES = ["dice_ce", "skeleton_recall", "skeleton_recall_onehot", "cldice", "topo_cldice"]
CLASSES = [2, 4, 8, 14]

# Full run on a 2-core CPU: nnU-Net's full-width U-Net at sizes that keep the run near 10 minutes
# (the paper's 2D 512x512 step alone takes 25-40 s here, its 3D 80x160x192 patch is impractical).
# One thread per worker: on a small shared machine, multi-threaded steps spin-wait and both wall
# and CPU times become erratic; single-threaded CPU time is the cleanest measure of cost.
FULL = {
    "sizes": {2: (2, (128, 128)), 3: (2, (16, 32, 32))},
    "classes": CLASSES,
    "steps": 5,
    "rounds": 1,
    "loss_repeats": 3,
    "threads": 1,
    # the step-time goal, measured paired (see `paired`): at the sizes above, and at the paper's 2D size
    # for C = 2 and 14 (two threads: a 512x512 step takes 25-40 s on one)
    "paired": [
        {"dims": 2, "batch": 2, "spatial": [128, 128], "classes": CLASSES, "pairs": 10, "threads": 1},
        {"dims": 3, "batch": 2, "spatial": [16, 32, 32], "classes": CLASSES, "pairs": 10, "threads": 1},
        {"dims": 2, "batch": 2, "spatial": [512, 512], "classes": [2, 14], "pairs": 3, "threads": 2, "memory": True},
    ],
}
# The sizes (2D batch 2 at 512x512, 3D batch 2 at 80x160x192): the default on a GPU; on this
# 2-core CPU one 2D step takes 25-40 s and the 3D patch does not fit a sensible time budget.
PAPER = {
    "sizes": {2: (2, (512, 512)), 3: (2, (80, 160, 192))},
    "classes": CLASSES,
    "steps": 10,
    "rounds": 3,
    "loss_repeats": 5,
    "threads": 1,  # CPU only; ignored on CUDA
    "paired": [
        {"dims": 2, "batch": 2, "spatial": [512, 512], "classes": CLASSES, "pairs": 10, "threads": 1, "memory": True},
        {"dims": 3, "batch": 2, "spatial": [80, 160, 192], "classes": CLASSES, "pairs": 10, "threads": 1,
         "memory": True},
    ],
}
# Quick: tiny sizes; only the first configuration runs in a subprocess (to check that path), the
# others run in this process, so its memory numbers mean nothing.
QUICK = {
    "sizes": {2: (1, (32, 32)), 3: (1, (8, 16, 16))},
    "classes": {2: [2, 3], 3: [2]},
    "steps": 1,
    "rounds": 1,
    "loss_repeats": 1,
    "threads": 1,
    "paired": [{"dims": 2, "batch": 1, "spatial": [32, 32], "classes": [2], "pairs": 2, "threads": 1, "memory": True}],
}
PAIRED_COLUMNS = ["dims", "spatial", "batch", "classes", "loss", "threads", "pairs", "step_cpu_base_s", "step_cpu_s",
                  "cpu_ratio_median", "cpu_ratio_min", "cpu_ratio_max", "wall_ratio_median",
                  "peak_alloc_base_mb", "peak_alloc_mb", "alloc_ratio"]
GOAL_TIME = 0.03
GOAL_MEM = 0.02
GOAL_MEM_GROWTH = 1.1


# --- the worker ---------------------------------------------------------------------------------


def synthetic_batch(batch: int, spatial: tuple[int, ...], classes: int, seed: int = 0):
    """Thin random tubes (radius 1-2) with random classes, and a tubed-skeleton-like map.

    The skeleton is the tube centre line dilated by one voxel, times the label: its content does
    not change the cost of Skeleton Recall; the tubes give clDice/Topo-clDice realistic work.
    """
    rng = np.random.default_rng(seed)
    dims = len(spatial)
    label = np.zeros((batch, *spatial), np.int64)
    centre = np.zeros((batch, *spatial), bool)
    size = np.asarray(spatial, float)
    n_tubes = max(3, int(np.prod(spatial) ** (1 / dims) / 8))
    for b in range(batch):
        for t in range(n_tubes):
            cls = 1 + (t % (classes - 1))
            p0, p1 = rng.uniform(0, 1, dims) * (size - 1), rng.uniform(0, 1, dims) * (size - 1)
            n = int(np.abs(p1 - p0).max() * 2) + 2
            pts = np.round(p0 + np.linspace(0, 1, n)[:, None] * (p1 - p0)).astype(int)
            r = int(rng.integers(1, 3))
            for off in np.ndindex(*(2 * r + 1,) * dims):
                q = np.clip(pts + np.asarray(off) - r, 0, size.astype(int) - 1)
                label[(b, *q.T)] = cls
            centre[(b, *pts.T)] = True
    from scipy import ndimage as ndi

    tube = np.stack([ndi.binary_dilation(c, ndi.generate_binary_structure(dims, 1)) for c in centre])
    skeleton = label * tube
    return label[:, None], skeleton[:, None]


def make_loss(name: str, classes: int, dims: int):
    from skelrecall.losses import (CompoundLoss, DiceCELoss, SkeletonRecallLoss,
                                   SoftclDiceLoss, TopoClDiceLoss)

    conn = {
        "dice_ce": None,
        "skeleton_recall": lambda: SkeletonRecallLoss(),
        "skeleton_recall_onehot": lambda: SkeletonRecallLoss(one_hot=True),
        "cldice": lambda: SoftclDiceLoss(iterations=10),
        "topo_cldice": lambda: TopoClDiceLoss(iterations=5 if dims == 2 else 10),
    }[name]
    return CompoundLoss(DiceCELoss(), None if conn is None else conn(), w=0.0 if conn is None else 1.0)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this (fresh) process; returns the measurements."""
    import torch

    threads = spec.get("threads")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return paired(spec) if "pairs" in spec else _measure(spec)
    finally:
        torch.set_num_threads(old_threads)


def _setup(spec: dict[str, Any]):
    """The network, one batch, the sync function and ``step(loss)`` (forward, loss, backward) of a spec."""
    import torch

    from skelrecall.models.unet import build_unet

    torch.manual_seed(0)
    dims, classes, batch = spec["dims"], spec["classes"], spec["batch"]
    spatial = tuple(spec["spatial"])
    device = torch.device(spec.get("device", "cpu"))
    cuda = device.type == "cuda"
    model = build_unet(dims, 1, classes, spatial, deep_supervision=True).to(device).train()
    label, skel = synthetic_batch(batch, spatial, classes)
    x = torch.randn(batch, 1, *spatial, device=device)
    target = torch.as_tensor(label, device=device)
    skeleton = torch.as_tensor(skel, device=device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(loss):
        model.zero_grad(set_to_none=True)
        outs = model(x)
        total, _ = loss(outs, target, skeleton)
        total.backward()
        sync()
        return outs

    return model, (x, target, skeleton), sync, step


def _ds_loss(name: str, spec: dict[str, Any], model):
    from skelrecall.losses import DeepSupervisionLoss

    return DeepSupervisionLoss(make_loss(name, spec["classes"], spec["dims"]), weights=model.ds_weights)


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    cuda = torch.device(spec.get("device", "cpu")).type == "cuda"
    model, (x, target, skeleton), sync, step_with = _setup(spec)
    loss = _ds_loss(spec["loss"], spec, model)

    def step():
        return step_with(loss)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        idle_cuda = torch.cuda.memory_allocated() / 2**20
    outs = step()  # warm-up (also sets the memory high-water mark)
    wall, cpu = [], []
    for _ in range(int(spec["steps"])):
        t0, c0 = time.perf_counter(), time.process_time()
        outs = step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        **spec,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "n_outputs": len(outs),
        "step_wall_s": statistics.median(wall),
        "step_cpu_s": statistics.median(cpu),
        "peak_rss_mb": peak_rss,
    }
    if cuda:
        result["peak_alloc_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["step_alloc_mb"] = result["peak_alloc_mb"] - idle_cuda
        result["loss_alloc_mb"] = float("nan")  # not measured on CUDA
    # the loss alone on fixed logits
    fixed = [o.detach().requires_grad_(True) for o in outs]
    times = []
    for _ in range(int(spec.get("loss_repeats", 1))):
        t0 = time.perf_counter()
        total, _ = loss(fixed, target, skeleton)
        total.backward()
        sync()
        times.append(time.perf_counter() - t0)
    result["loss_only_wall_s"] = statistics.median(times)
    if not cuda:
        # memory of the loss alone (forward + backward on the fixed logits, which are not counted)
        def loss_step():
            for f in fixed:
                f.grad = None
            total, _ = loss(fixed, target, skeleton)
            total.backward()

        result["loss_alloc_mb"] = _peak_allocated_during(loss_step) / 2**20
        # start from resident tensors only: no graph, no outputs, no gradients
        for f in fixed:
            f.grad = None
        del fixed, total, outs
        resident, added = _cpu_step_peak(model, (x, target, skeleton), step)
        result["peak_alloc_mb"] = (resident + added) / 2**20
        result["step_alloc_mb"] = added / 2**20
    return result


def paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Time dice_ce and ``spec["loss"]`` on one network and batch, alternating step by step.

    ``pairs`` pairs of steps, the order swapped every pair (A B, B A, ...), after one warm-up step
    each; per pair the ratio of the two steps' process CPU times and wall times (the goal uses CPU time
    on CPU, wall time on a GPU). Adjacent steps
    see the same machine state, so slow phases of a shared machine cancel in the ratio; the median
    over pairs is the estimate. With ``memory``: each loss's peak allocated bytes of one step
    (allocator events, independent of what ran before in the process).
    """
    import torch

    cuda = torch.device(spec.get("device", "cpu")).type == "cuda"
    model, tensors, _, step_with = _setup(spec)
    base, other = _ds_loss("dice_ce", spec, model), _ds_loss(spec["loss"], spec, model)
    step_with(base), step_with(other)  # warm-up
    cpu, wall = {"base": [], "other": []}, {"base": [], "other": []}
    for i in range(int(spec["pairs"])):
        for key in (("base", "other") if i % 2 == 0 else ("other", "base")):
            t0, c0 = time.perf_counter(), time.process_time()
            step_with(base if key == "base" else other)
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    cpu_r = [o / b for o, b in zip(cpu["other"], cpu["base"])]
    wall_r = [o / b for o, b in zip(wall["other"], wall["base"])]
    result = {**spec, "step_cpu_base_s": statistics.median(cpu["base"]),
              "step_cpu_s": statistics.median(cpu["other"]),
              "cpu_ratio_median": statistics.median(cpu_r), "cpu_ratio_min": min(cpu_r),
              "cpu_ratio_max": max(cpu_r), "wall_ratio_median": statistics.median(wall_r)}
    if spec.get("memory"):
        if cuda:
            peaks = []
            for loss in (base, other):
                model.zero_grad(set_to_none=True)
                torch.cuda.reset_peak_memory_stats()
                step_with(loss)
                peaks.append(torch.cuda.max_memory_allocated() / 2**20)
        else:
            peaks = [sum(_cpu_step_peak(model, tensors, lambda loss=loss: step_with(loss))) / 2**20
                     for loss in (base, other)]
        result.update(peak_alloc_base_mb=peaks[0], peak_alloc_mb=peaks[1], alloc_ratio=peaks[1] / peaks[0])
    return result


def _cpu_step_peak(model, tensors, step) -> tuple[int, int]:
    """(bytes of the resident tensors, peak bytes added while ``step`` runs), the step starting from the
    parameters, buffers and batch ``tensors`` alone (no gradients, no graph)."""
    import gc

    model.zero_grad(set_to_none=True)
    gc.collect()
    return _tensor_bytes([*model.parameters(), *model.buffers(), *tensors]), _peak_allocated_during(step)


def _tensor_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _peak_allocated_during(fn) -> int:
    """Peak of the bytes allocated minus freed by torch's CPU allocator while ``fn`` runs.

    Read from the allocation events of the torch profiler (``profile_memory=True``): the exact,
    deterministic CPU counterpart of ``torch.cuda.max_memory_allocated`` (without caching).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


# --- the driver ---------------------------------------------------------------------------------


def _run_worker(spec: dict[str, Any], fresh_process: bool = True) -> dict[str, Any]:
    if not fresh_process:
        return worker(spec)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "skelrecall.bench.losses", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {spec}:\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


def machine_description() -> dict[str, str]:
    import torch

    cpu = cpu_model()
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, {mem}",
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch threads per worker": "1 (set by the benchmark)",
        "platform": platform.platform(),
    }


def run(out_dir: str = "reports/bench", quick: bool = False, device: str | None = None,
        sizes: str | None = None) -> None:
    """Run every configuration in its own process and write the CSV, the report and the figure.

    ``sizes``: ``paper`` (the issue's 512x512 / 80x160x192, default on CUDA) or ``cpu`` (reduced, default
    on CPU); ``quick`` overrides both."""
    import pandas as pd
    import torch

    from skelrecall.io import atomic_write

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = sizes or ("paper" if device == "cuda" else "cpu")
    if sizes not in ("paper", "cpu"):
        raise ValueError(f"sizes must be 'paper' or 'cpu', got {sizes!r}")
    plan = QUICK if quick else (PAPER if sizes == "paper" else FULL)
    out = Path(out_dir)
    machine = machine_description()
    load_before = os.getloadavg()
    t_start = time.time()
    rows = []
    for rnd in range(plan["rounds"]):
        for dims, (batch, spatial) in plan["sizes"].items():
            class_list = plan["classes"][dims] if isinstance(plan["classes"], dict) else plan["classes"]
            for classes in class_list:
                for name in LOSSES:
                    if name == "topo_cldice" and dims == 3:
                        continue
                    spec = {"dims": dims, "classes": classes, "batch": batch, "spatial": list(spatial),
                            "loss": name, "steps": plan["steps"], "loss_repeats": plan["loss_repeats"],
                            "device": device, "threads": plan["threads"], "round": rnd}
                    res = _run_worker(spec, fresh_process=not (quick and rows))
                    rows.append(res)
                    print(f"[losses bench] {dims}D C={classes:2d} {name:24s} round {rnd}: "
                          f"step {res['step_wall_s']:.2f} s wall / {res['step_cpu_s']:.2f} s cpu, "
                          f"peak alloc {res['peak_alloc_mb']:.0f} MB, peak RSS {res['peak_rss_mb']:.0f} MB", flush=True)
    pairs = []
    for entry in plan["paired"]:
        for classes in entry["classes"]:
            spec = {**entry, "classes": classes, "loss": "skeleton_recall", "device": device}
            res = _run_worker(spec, fresh_process=not quick)
            pairs.append(res)
            print(f"[losses bench] paired {entry['dims']}D {'x'.join(map(str, entry['spatial']))} C={classes:2d} "
                  f"skeleton_recall / dice_ce: CPU time ratio median {res['cpu_ratio_median']:.3f} "
                  f"(range {res['cpu_ratio_min']:.3f}-{res['cpu_ratio_max']:.3f} over {entry['pairs']} pairs)",
                  flush=True)
    elapsed = time.time() - t_start
    paired_table = pd.DataFrame(pairs)
    paired_table["spatial"] = paired_table["spatial"].map(lambda s: "x".join(map(str, s)))
    raw = pd.DataFrame(rows)
    raw["spatial"] = raw["spatial"].map(lambda s: "x".join(map(str, s)))
    table = summarise(raw, cuda=device == "cuda")
    atomic_write(out / "losses.csv", lambda p: table.to_csv(p, index=False, float_format="%.5g"))
    atomic_write(out / "losses_raw.csv", lambda p: raw.drop(columns=["device"]).to_csv(p, index=False, float_format="%.5g"))
    paired_cols = [c for c in PAIRED_COLUMNS if c in paired_table.columns]
    atomic_write(out / "losses_paired.csv",
                 lambda p: paired_table[paired_cols].to_csv(p, index=False, float_format="%.5g"))
    checks = goal_checks(table, paired_table)
    report = render_report(table, paired_table[paired_cols], checks, machine, plan, device, elapsed, load_before,
                           os.getloadavg(), quick)
    atomic_write(out / "losses.md", lambda p: p.write_text(report))
    atomic_write(out / "losses_overhead.png", lambda p: plot_overhead(table, p))
    for name in ("losses.csv", "losses_raw.csv", "losses_paired.csv", "losses.md", "losses_overhead.png"):
        os.chmod(out / name, 0o644)  # atomic_write's temporary files are private
    print(report)


def summarise(raw, cuda: bool):
    """Median over rounds per configuration, and ratios to dice_ce of the same (dims, C)."""
    keys = ["dims", "spatial", "batch", "classes", "loss"]
    agg = raw.groupby(keys, as_index=False).agg(
        step_wall_s=("step_wall_s", "median"), step_cpu_s=("step_cpu_s", "median"),
        peak_alloc_mb=("peak_alloc_mb", "median"), step_alloc_mb=("step_alloc_mb", "median"),
        peak_rss_mb=("peak_rss_mb", "median"), loss_only_wall_s=("loss_only_wall_s", "median"),
        loss_alloc_mb=("loss_alloc_mb", "median"),
        params_m=("params_m", "first"), n_outputs=("n_outputs", "first"), rounds=("round", "count"))
    base = agg[agg["loss"] == "dice_ce"].set_index(["dims", "classes"])

    def ref(col):
        return agg.apply(lambda r: base.loc[(r["dims"], r["classes"]), col], axis=1)

    agg["cpu_ratio"] = agg["step_cpu_s"] / ref("step_cpu_s")
    agg["wall_ratio"] = agg["step_wall_s"] / ref("step_wall_s")
    agg["alloc_ratio"] = agg["peak_alloc_mb"] / ref("peak_alloc_mb")
    agg["step_alloc_ratio"] = agg["step_alloc_mb"] / ref("step_alloc_mb")
    agg["rss_ratio"] = agg["peak_rss_mb"] / ref("peak_rss_mb")
    agg["loss_only_vs_step"] = agg["loss_only_wall_s"] / ref("step_wall_s")
    # added time estimated from the loss alone: (loss - dice_ce loss) / dice_ce step
    agg["loss_overhead"] = (agg["loss_only_wall_s"] - ref("loss_only_wall_s")) / ref("step_wall_s")
    order = {n: i for i, n in enumerate(LOSSES)}
    return agg.sort_values(["dims", "classes", "loss"], key=lambda s: s.map(order) if s.name == "loss" else s)


def goal_checks(table, paired=None) -> list[tuple[str, str, bool | None]]:
    """Issue 4's goals for Skeleton Recall (gather), judged on the numbers of this run.

    Time: from the paired measurements (``paired``: alternating steps in one process), per size the
    mean over C of the median per-pair CPU-time ratio; the unpaired ratios of the fresh-process
    table are printed beside it (single steps in separate processes scatter by +-20 % here). Memory:
    the largest peak allocation ratio over C (deterministic), in the table and, where measured, at
    the paired sizes. Growth: alloc ratio at C=14 / alloc ratio at C=2.
    """
    checks = []
    sr = table[table["loss"] == "skeleton_recall"]
    pairs = paired if paired is not None else table.iloc[0:0]
    for (dims, spatial), grp in (pairs.groupby(["dims", "spatial"]) if len(pairs) else []):
        grp = grp.sort_values("classes")
        # on a GPU the host's CPU time says nothing about the kernels: judge wall time there
        gpu = "device" in grp.columns and (grp["device"] == "cuda").any()
        col, other_col, kind = (("wall_ratio_median", "cpu_ratio_median", "wall time") if gpu
                                else ("cpu_ratio_median", "wall_ratio_median", "CPU time"))
        per_c = ", ".join(f"C={c}: {r - 1:+.1%}" for c, r in zip(grp["classes"], grp[col]))
        t = grp[col].mean() - 1
        same = sr[(sr["dims"] == dims) & (sr["spatial"] == spatial)]
        unpaired = (f"; unpaired fresh processes {same['cpu_ratio'].mean() - 1:+.1%}, from the loss alone "
                    f"{same['loss_overhead'].mean():+.1%}") if len(same) else ""
        checks.append((f"{dims}D {spatial} Skeleton Recall step time overhead <= {GOAL_TIME:.0%}",
                       f"mean over C {t:+.1%} {kind}, paired ({per_c}; "
                       f"{other_col.split('_')[0]} {grp[other_col].mean() - 1:+.1%}{unpaired})", bool(t <= GOAL_TIME)))
    memory = [(dims, grp["spatial"].iloc[0], grp) for dims, grp in sr.groupby("dims")]
    if "alloc_ratio" in pairs.columns:
        memory += [(dims, spatial, grp) for (dims, spatial), grp in pairs.dropna(subset=["alloc_ratio"])
                   .groupby(["dims", "spatial"])]
    for dims, spatial, grp in memory:
        grp = grp.sort_values("classes")
        m = grp["alloc_ratio"].max() - 1
        rss = f" (peak RSS: max {grp['rss_ratio'].max() - 1:+.1%})" if "rss_ratio" in grp.columns else ""
        checks.append((f"{dims}D {spatial} Skeleton Recall peak memory overhead <= {GOAL_MEM:.0%}",
                       f"max over C {m:+.2%} peak allocated{rss}", bool(m <= GOAL_MEM)))
        by_c = grp.set_index("classes")
        if {2, 14} <= set(by_c.index):
            r = by_c.loc[14, "alloc_ratio"] / by_c.loc[2, "alloc_ratio"]
            checks.append((f"{dims}D {spatial} Skeleton Recall memory ratio at C=14 <= {GOAL_MEM_GROWTH}x that at C=2",
                           f"{by_c.loc[14, 'alloc_ratio']:.4f} / {by_c.loc[2, 'alloc_ratio']:.4f} = {r:.4f}",
                           bool(r <= GOAL_MEM_GROWTH)))
    for dims, grp in table.groupby("dims"):
        by = grp.set_index(["loss", "classes"])["loss_alloc_mb"]
        cs = sorted(grp["classes"].unique())
        if len(cs) > 1 and by.notna().all():
            parts = [f"{name} {by.loc[(name, cs[0])]:.1f} -> {by.loc[(name, cs[-1])]:.1f} MB"
                     for name in LOSSES if (name, cs[0]) in by.index]
            checks.append((f"{dims}D memory of the loss alone, C={cs[0]} -> C={cs[-1]} (reported, no goal)",
                           "; ".join(parts), None))
    return checks


def _md_table(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def render_report(table, paired, checks, machine, plan, device, elapsed, load_before, load_after, quick) -> str:
    mem_name = ("torch.cuda.max_memory_allocated" if device == "cuda"
                else "the torch CPU allocator's events read with the torch profiler")
    sizes = ", ".join(f"{d}D: batch {b}, {'x'.join(map(str, s))}" for d, (b, s) in plan["sizes"].items())
    lines = [
        "# Loss resource benchmark" + (" (QUICK mode: code-path check, numbers meaningless)" if quick else ""),
        "",
        "Generated by `skelrecall-bench losses` (`skelrecall.bench.losses`). Every number is measured in",
        "this run; ratios are against `dice_ce` with the same dimensionality and number of classes.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        f"- device used: {device}",
        f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)} (other programs shared the cores)",
        f"- total time: {elapsed / 60:.1f} min",
        "",
        "## Setup",
        "",
        "- network: nnU-Net's PlainConvUNet (`skelrecall.models.unet.build_unet`, full width: 32 base",
        "  features), deep supervision on, nnU-Net's weights; one training step = forward, loss, backward",
        f"- sizes: {sizes}" + ("" if plan is PAPER else " (reduced: `--sizes paper` runs the issue's 2D 512x512 and "
                                 "3D 80x160x192, the default on a GPU;"),
        *([] if plan is PAPER else ["  network and loss costs both scale with the number of voxels, so the ratios "
                                    "carry over only", "  approximately: per-class constant costs weigh more at small "
                                    "sizes)"]),
        f"- classes C (background included): {plan['classes']}; losses: {', '.join(LOSSES)} (Topo-clDice 2D only)",
        "- w = 1 for every connectivity loss; clDice 10 iterations; Topo-clDice 5 (2D) iterations,",
        "  Boolean simple-point test, probabilistic binarisation",
        "- synthetic thin tubes as labels; the skeleton map is the centre line dilated by one voxel",
        f"- each configuration in a fresh process{' (quick: only the first)' if quick else ''}, one torch thread; 1 warm-up step, then the median of {plan['steps']} steps;",
        f"  {plan['rounds']} round(s), median over rounds",
        f"- memory: `peak_alloc_mb` = {mem_name}: resident tensors (parameters, batch) plus the peak of",
        "  the bytes allocated minus freed during one step (the deterministic analogue of the GPU memory",
        "  in the paper's Fig. 6/7); `step_alloc_mb` the step's part alone; `peak_rss_mb` the peak",
        "  resident set size of the process (getrusage; includes Python and torch, and allocator noise)",
        "- `cpu_ratio` uses process CPU time (user + system), `wall_ratio` wall-clock time; on a shared",
        "  machine the CPU time is the steadier measure of cost",
        "- `loss_only_vs_step`: time of the loss alone (forward + backward on fixed logits, all",
        "  deep-supervision outputs) divided by the whole dice_ce step; `loss_overhead`: the loss alone",
        "  minus dice_ce's loss alone, divided by the dice_ce step (a low-noise estimate of added time);",
        "  `loss_alloc_mb`: peak bytes allocated by the loss alone (forward + backward, logits excluded):",
        "  whether it raises the step's peak depends on where the network's own peak lies",
        "- paired timing (the step-time goal): dice_ce and skeleton_recall on one network and batch in one",
        "  fresh process, one warm-up step each, then pairs of steps in alternating order (A B, B A, ...);",
        "  per pair the ratio of the two steps' CPU times (wall times on a GPU), the median over pairs per C",
        "  (`losses_paired.csv`);",
        "  adjacent steps share the machine's state, so the slow phases of a shared machine cancel",
        "  (sizes and threads per row below; the 2D 512x512 rows also measure peak allocated memory)",
        "",
        "## Goals (issue 4)",
        "",
    ]
    for goal, value, ok in checks:
        verdict = "INFO" if ok is None else ("MET" if ok else "NOT MET")
        lines.append(f"- {verdict}: {goal}: {value}")
    cols = ["dims", "spatial", "classes", "loss", "step_cpu_s", "step_wall_s", "peak_alloc_mb", "step_alloc_mb",
            "peak_rss_mb", "cpu_ratio", "wall_ratio", "alloc_ratio", "step_alloc_ratio", "rss_ratio",
            "loss_only_vs_step", "loss_overhead", "loss_alloc_mb"]
    shown = table[cols]
    lines += ["", "## Paired step time (skeleton_recall / dice_ce)", "", _md_table(paired),
              "", "## Results", "", _md_table(shown), "",
              "Figure: `losses_overhead.png` (time and peak-memory ratio to dice_ce against C, like the",
              "paper's Fig. 7).", ""]
    return "\n".join(lines)


def plot_overhead(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims_list = sorted(table["dims"].unique())
    fig, axes = plt.subplots(2, len(dims_list), figsize=(5 * len(dims_list), 7), squeeze=False)
    for j, dims in enumerate(dims_list):
        sub = table[table["dims"] == dims]
        for name in LOSSES:
            g = sub[sub["loss"] == name].sort_values("classes")
            if g.empty:
                continue
            axes[0, j].plot(g["classes"], g["cpu_ratio"], marker="o", label=name)
            axes[1, j].plot(g["classes"], g["alloc_ratio"], marker="o", label=name)
        size = sub["spatial"].iloc[0]
        axes[0, j].set_title(f"{dims}D, {size}: step time (CPU) / dice_ce")
        axes[1, j].set_title(f"{dims}D, {size}: peak allocated memory / dice_ce")
        for ax in axes[:, j]:
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xlabel("number of classes C")
            ax.set_xticks(sorted(sub["classes"].unique()))
        axes[1, j].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help="internal: JSON spec of one configuration")
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", choices=["paper", "cpu"],
                        help="paper: 2D 2x512x512, 3D 2x80x160x192 (default on a GPU); cpu: reduced (default on CPU)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    run(out_dir=args.out, quick=args.quick, sizes=args.sizes)


if __name__ == "__main__":
    main()
