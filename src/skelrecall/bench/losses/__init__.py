"""Resource benchmark of the losses: ``<out_dir>/losses.{csv,md}`` and ``losses_overhead.png``.

One full training step (network forward, loss, backward) of the project's nnU-Net U-Net
(``skelrecall.models.unet.build_unet``, deep supervision on) with each loss:

* ``dice_ce``: CE + soft Dice (the baseline every ratio is taken against)
* ``skeleton_recall``: + Skeleton Recall, our gather implementation (w = 1)
* ``skeleton_recall_onehot``: + Skeleton Recall computed like the official code (one-hot, O(C*N))
* ``cldice``: + soft clDice (10 iterations, upstream behaviour)
* ``topo_cldice``: + Topo-clDice (our implementation of Menten et al.; 2D only, as in the paper)

for 2D and 3D and C in {2, 4, 8, 14} classes (background included). Every configuration runs in a
fresh process, so that its peak memory is its own: on CPU the peak of the bytes held by torch's
allocator during one step (read from the torch profiler's allocation events; deterministic, the
analogue of ``torch.cuda.max_memory_allocated``) and the peak resident set size of the process
(``getrusage``); on CUDA ``torch.cuda.max_memory_allocated``. Time: per step, the median over the
timed steps of the wall time and of the process CPU time (user + system; less sensitive to other
programs sharing the cores). Configurations are run in rounds, each round going through all losses
of one (dims, C) back to back, so that slow phases of a shared machine hit all losses alike; ratios
use the median over rounds. Each worker also times the loss alone (forward + backward on fixed logits).

The step-time goal is judged on paired measurements (``losses_paired.csv``): dice_ce and Skeleton
Recall alternate step by step on one network and batch in one fresh process, and the median per-pair
CPU-time ratio is the estimate (on CPU also at the paper's 2D size, 512x512).

Goals (checked and printed, not assumed): Skeleton Recall adds at most 3 % step time and 2 % peak
memory over Dice+CE; its memory ratio at C = 14 is at most 1.1x that at C = 2.

Modules: :mod:`~skelrecall.bench.losses.measure` (presets, specs, worker processes, timing,
memory), :mod:`~skelrecall.bench.losses.summarise` (medians, ratios, goal checks) and
:mod:`~skelrecall.bench.losses.report` (CSV, Markdown report, figure). A measuring run writes the raw
measurements (``losses_raw.csv``, ``losses_paired.csv``, ``losses_run.json``) and renders the report
from them; ``--render-only`` renders it again from those files without measuring.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from skelrecall.bench.common import load_average, machine_description
from skelrecall.bench.losses.measure import LOSSES, PRESETS, measure_all, synthetic_batch, worker
from skelrecall.bench.losses.report import read_raw, render_report, write_raw, write_report
from skelrecall.bench.losses.summarise import Check, goal_checks, summarise

__all__ = [
    "LOSSES",
    "PRESETS",
    "Check",
    "goal_checks",
    "main",
    "render_only",
    "render_report",
    "run",
    "summarise",
    "synthetic_batch",
    "worker",
]


def run(
    out_dir: str = "reports/bench", quick: bool = False, device: str | None = None, sizes: str | None = None
) -> None:
    """Run every configuration in its own process, write the raw measurements, then the summary
    CSV, the report and the figure (:func:`~skelrecall.bench.losses.report.write_report`).

    ``sizes``: ``paper`` (the paper's 512x512 / 80x160x192, default on CUDA) or ``cpu`` (reduced,
    default on CPU); ``quick`` overrides both."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = sizes or ("paper" if device == "cuda" else "cpu")
    if sizes not in ("paper", "cpu"):
        raise ValueError(f"sizes must be 'paper' or 'cpu', got {sizes!r}")
    preset = "quick" if quick else sizes
    plan = PRESETS[preset]
    machine = {
        **machine_description(packages=("torch", "numpy", "scipy")),
        "torch threads per worker": f"{plan['threads']} (set by the benchmark)",
    }
    load_before, started = load_average(), time.time()
    rows, pairs = measure_all(plan, device, quick=quick)
    run_info = {
        "preset": preset,
        "quick": quick,
        "device": device,
        "machine": machine,
        "load_before": list(load_before),
        "load_after": list(load_average()),
        "elapsed_s": time.time() - started,
    }
    raw, paired = write_raw(out_dir, rows, pairs, run_info)
    print(write_report(out_dir, raw, paired, run_info))


def render_only(out_dir: str = "reports/bench") -> None:
    """Rebuild ``losses.csv``, ``losses.md`` and ``losses_overhead.png`` from the raw files in
    ``out_dir``, without measuring."""
    print(write_report(out_dir, *read_raw(out_dir)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sizes",
        choices=["paper", "cpu"],
        help="paper: 2D 2x512x512, 3D 2x80x160x192 (default on a GPU); cpu: reduced (default on CPU)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rebuild the report from losses_raw.csv, losses_paired.csv and losses_run.json in --out",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        render_only(Path(args.out))
    else:
        run(out_dir=args.out, quick=args.quick, sizes=args.sizes)
