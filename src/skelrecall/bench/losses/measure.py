"""Measuring the losses: presets, configuration specs, the worker process, timing and memory.

One spec is a dict (JSON-serialisable) describing one configuration; :func:`worker` measures it in
the current process, :func:`run_worker` in a fresh one (:func:`worker_main`), so that its peak
memory is its own. :func:`measure_all` runs every spec of a preset and
returns the raw rows (one per configuration and round) and the paired rows.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from skelrecall.bench.common import time_calls

LOSSES = ["dice_ce", "skeleton_recall", "skeleton_recall_onehot", "cldice", "topo_cldice"]
CLASSES = [2, 4, 8, 14]

# cpu: nnU-Net's full-width U-Net at sizes that keep a 2-core CPU run near 10 minutes (the paper's
# 2D 512x512 step alone takes 25-40 s there, its 3D 80x160x192 patch is impractical).
# One thread per worker: on a small shared machine, multi-threaded steps spin-wait and both wall
# and CPU times become erratic; single-threaded CPU time is the cleanest measure of cost.
CPU = {
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
# paper: the paper's sizes (2D batch 2 at 512x512, 3D batch 2 at 80x160x192), the default on a GPU
PAPER = {
    "sizes": {2: (2, (512, 512)), 3: (2, (80, 160, 192))},
    "classes": CLASSES,
    "steps": 10,
    "rounds": 3,
    "loss_repeats": 5,
    "threads": 1,  # CPU only; ignored on CUDA
    "paired": [
        {"dims": 2, "batch": 2, "spatial": [512, 512], "classes": CLASSES, "pairs": 10, "threads": 1, "memory": True},
        {
            "dims": 3,
            "batch": 2,
            "spatial": [80, 160, 192],
            "classes": CLASSES,
            "pairs": 10,
            "threads": 1,
            "memory": True,
        },
    ],
}
# quick: tiny sizes; only the first configuration runs in a subprocess (to check that path), the
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
PRESETS = {"cpu": CPU, "paper": PAPER, "quick": QUICK}


# --- synthetic inputs and losses ------------------------------------------------------------------


def synthetic_batch(batch: int, spatial: tuple[int, ...], classes: int, seed: int = 0):
    """Thin random tubes (radius 1-2) with random classes, and a tubed-skeleton-like map.

    The skeleton is the tube centre line dilated by one voxel, times the label: its content does
    not change the cost of Skeleton Recall; the tubes give clDice/Topo-clDice realistic work.
    """
    from scipy import ndimage as ndi

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
    tube = np.stack([ndi.binary_dilation(c, ndi.generate_binary_structure(dims, 1)) for c in centre])
    skeleton = label * tube
    return label[:, None], skeleton[:, None]


def make_loss(name: str, classes: int, dims: int):
    """Dice+CE plus the connectivity loss ``name`` with w = 1 (``dice_ce``: none, w = 0)."""
    from skelrecall.losses import CompoundLoss, DiceCELoss, SkeletonRecallLoss, SoftclDiceLoss, TopoClDiceLoss

    conn = {
        "dice_ce": None,
        "skeleton_recall": lambda: SkeletonRecallLoss(),
        "skeleton_recall_onehot": lambda: SkeletonRecallLoss(one_hot=True),
        "cldice": lambda: SoftclDiceLoss(iterations=10),
        "topo_cldice": lambda: TopoClDiceLoss(iterations=5 if dims == 2 else 10),
    }[name]
    return CompoundLoss(DiceCELoss(), None if conn is None else conn(), w=0.0 if conn is None else 1.0)


# --- specs ----------------------------------------------------------------------------------------


def step_specs(plan: dict[str, Any], device: str) -> Iterator[dict[str, Any]]:
    """The fresh-process configurations of ``plan``, in rounds; each round goes through all losses
    of one (dims, C) back to back (Topo-clDice 2D only)."""
    for rnd in range(plan["rounds"]):
        for dims, (batch, spatial) in plan["sizes"].items():
            class_list = plan["classes"][dims] if isinstance(plan["classes"], dict) else plan["classes"]
            for classes in class_list:
                for name in LOSSES:
                    if name == "topo_cldice" and dims == 3:
                        continue
                    yield {
                        "dims": dims,
                        "classes": classes,
                        "batch": batch,
                        "spatial": list(spatial),
                        "loss": name,
                        "steps": plan["steps"],
                        "loss_repeats": plan["loss_repeats"],
                        "device": device,
                        "threads": plan["threads"],
                        "round": rnd,
                    }


def paired_specs(plan: dict[str, Any], device: str) -> Iterator[dict[str, Any]]:
    """The paired configurations of ``plan`` (Skeleton Recall against dice_ce)."""
    for entry in plan["paired"]:
        for classes in entry["classes"]:
            yield {**entry, "classes": classes, "loss": "skeleton_recall", "device": device}


# --- the worker -----------------------------------------------------------------------------------


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this process (``pairs`` in the spec: :func:`paired`, else
    :func:`measure_steps`); returns the spec and its measurements."""
    import torch

    threads = spec.get("threads")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return paired(spec) if "pairs" in spec else measure_steps(spec)
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


def measure_steps(spec: dict[str, Any]) -> dict[str, Any]:
    """Step time (median over ``steps`` after one warm-up step), peak memory of one step, and time
    and memory of the loss alone (forward + backward on fixed logits)."""
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
    steps = time_calls(step, int(spec["steps"]))
    outs = steps.result
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        **spec,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "n_outputs": len(outs),
        "step_wall_s": steps.wall_median,
        "step_cpu_s": steps.cpu_median,
        "peak_rss_mb": peak_rss,
    }
    if cuda:
        result["peak_alloc_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["step_alloc_mb"] = result["peak_alloc_mb"] - idle_cuda
        result["loss_alloc_mb"] = float("nan")  # not measured on CUDA
    # the loss alone on fixed logits
    fixed = [o.detach().requires_grad_(True) for o in outs]

    def loss_only():
        total, _ = loss(fixed, target, skeleton)
        total.backward()
        sync()
        return total

    alone = time_calls(loss_only, int(spec.get("loss_repeats", 1)))
    result["loss_only_wall_s"] = alone.wall_median
    if not cuda:
        # memory of the loss alone (forward + backward on the fixed logits, which are not counted)
        def loss_step():
            for f in fixed:
                f.grad = None
            total, _ = loss(fixed, target, skeleton)
            total.backward()

        result["loss_alloc_mb"] = peak_allocated_during(loss_step) / 2**20
        # start from resident tensors only: no graph, no outputs, no gradients
        for f in fixed:
            f.grad = None
        del fixed, alone, outs, steps
        resident, added = cpu_step_peak(model, (x, target, skeleton), step)
        result["peak_alloc_mb"] = (resident + added) / 2**20
        result["step_alloc_mb"] = added / 2**20
    return result


def paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Time dice_ce and ``spec["loss"]`` on one network and batch, alternating step by step.

    ``pairs`` pairs of steps, the order swapped every pair (A B, B A, ...), after one warm-up step
    each; per pair the ratio of the two steps' process CPU times and wall times (the goal uses CPU time
    on CPU, wall time on a GPU). Adjacent steps see the same machine state, so slow phases of a
    shared machine cancel in the ratio; the median over pairs is the estimate. With ``memory``: each
    loss's peak allocated bytes of one step (allocator events, independent of what ran before in
    the process).
    """
    import statistics

    import torch

    cuda = torch.device(spec.get("device", "cpu")).type == "cuda"
    model, tensors, _, step_with = _setup(spec)
    base, other = _ds_loss("dice_ce", spec, model), _ds_loss(spec["loss"], spec, model)
    step_with(base), step_with(other)  # warm-up
    cpu, wall = {"base": [], "other": []}, {"base": [], "other": []}
    for i in range(int(spec["pairs"])):
        for key in ("base", "other") if i % 2 == 0 else ("other", "base"):
            t = time_calls(lambda: step_with(base if key == "base" else other))
            wall[key].append(t.wall[0])
            cpu[key].append(t.cpu[0])
    cpu_r = [o / b for o, b in zip(cpu["other"], cpu["base"])]
    wall_r = [o / b for o, b in zip(wall["other"], wall["base"])]
    result = {
        **spec,
        "step_cpu_base_s": statistics.median(cpu["base"]),
        "step_cpu_s": statistics.median(cpu["other"]),
        "cpu_ratio_median": statistics.median(cpu_r),
        "cpu_ratio_min": min(cpu_r),
        "cpu_ratio_max": max(cpu_r),
        "wall_ratio_median": statistics.median(wall_r),
    }
    if spec.get("memory"):
        if cuda:
            peaks = []
            for loss in (base, other):
                model.zero_grad(set_to_none=True)
                torch.cuda.reset_peak_memory_stats()
                step_with(loss)
                peaks.append(torch.cuda.max_memory_allocated() / 2**20)
        else:
            peaks = [
                sum(cpu_step_peak(model, tensors, lambda loss=loss: step_with(loss))) / 2**20 for loss in (base, other)
            ]
        result.update(peak_alloc_base_mb=peaks[0], peak_alloc_mb=peaks[1], alloc_ratio=peaks[1] / peaks[0])
    return result


# --- memory ---------------------------------------------------------------------------------------


def cpu_step_peak(model, tensors, step: Callable[[], Any]) -> tuple[int, int]:
    """(bytes of the resident tensors, peak bytes added while ``step`` runs), the step starting from the
    parameters, buffers and batch ``tensors`` alone (no gradients, no graph)."""
    import gc

    model.zero_grad(set_to_none=True)
    gc.collect()
    return tensor_bytes([*model.parameters(), *model.buffers(), *tensors]), peak_allocated_during(step)


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def peak_allocated_during(fn: Callable[[], Any]) -> int:
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


# --- the driver -----------------------------------------------------------------------------------


def run_worker(spec: dict[str, Any], fresh_process: bool = True) -> dict[str, Any]:
    """:func:`worker` of ``spec`` in a fresh Python process (or in this one)."""
    if not fresh_process:
        return worker(spec)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    code = f"from {__name__} import worker_main; worker_main()"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {spec}:\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


def measure_all(plan: dict[str, Any], device: str, quick: bool = False) -> tuple[list[dict], list[dict]]:
    """Every configuration of ``plan``, each in a fresh process (quick: only the first); returns
    (raw rows, paired rows) and prints one line per configuration."""
    rows = []
    for spec in step_specs(plan, device):
        res = run_worker(spec, fresh_process=not (quick and rows))
        rows.append(res)
        print(
            f"[losses bench] {spec['dims']}D C={spec['classes']:2d} {spec['loss']:24s} round {spec['round']}: "
            f"step {res['step_wall_s']:.2f} s wall / {res['step_cpu_s']:.2f} s cpu, "
            f"peak alloc {res['peak_alloc_mb']:.0f} MB, peak RSS {res['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    pairs = []
    for spec in paired_specs(plan, device):
        res = run_worker(spec, fresh_process=not quick)
        pairs.append(res)
        print(
            f"[losses bench] paired {spec['dims']}D {'x'.join(map(str, spec['spatial']))} C={spec['classes']:2d} "
            f"skeleton_recall / dice_ce: CPU time ratio median {res['cpu_ratio_median']:.3f} "
            f"(range {res['cpu_ratio_min']:.3f}-{res['cpu_ratio_max']:.3f} over {spec['pairs']} pairs)",
            flush=True,
        )
    return rows, pairs


def worker_main() -> None:
    """The fresh-process worker: the JSON spec in ``sys.argv[1]``, the result as one JSON line on stdout."""
    print(json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
