"""``make gpu-check`` (``python -m skelrecall.bench.gpu_check``): the GPU numbers, in one command.

On a CUDA machine:

1. DRIVE 2D (``experiment=nnunet_drive``) and a 3D experiment (``experiment=nnunet_topcow_multiclass``,
   13 classes) with ``profile=paper`` (bf16 mixed precision, the paper's patch and batch) for
   ``--steps`` optimizer steps each, for Dice+CE and for Skeleton Recall: steps per second and peak
   GPU memory (``torch.cuda.max_memory_allocated`` over the process), and Skeleton Recall's step-time
   and memory overhead over Dice+CE measured in the same run. The converted datasets are used where they
   exist, otherwise synthetic cases of the real shape (``skelrecall.bench.paper_check``).
2. ``skelrecall-bench losses --sizes paper`` (one training step per loss and number of classes at
   2D 2x512x512 and 3D 2x80x160x192), written to ``<out>/gpu/``.

Everything is written to ``reports/bench/gpu.md``. On a machine without CUDA it stops with a message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from skelrecall.bench.common import machine_description, machine_lines
from skelrecall.bench.paper_check import run_experiment, synthetic_dataset
from skelrecall.render import markdown_table

EXPERIMENTS = ("nnunet_drive", "nnunet_topcow_multiclass")
LOSSES = ("dice_ce", "skeleton_recall")


def overrides(steps: int) -> list[str]:
    return [
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.precision=bf16-mixed",
        "trainer.max_epochs=1",
        f"data.iterations_per_epoch={steps}",
        "trainer.check_val_every_n_epoch=1000",
        "data.max_val_cases=1",
        "data.max_test_cases=1",
        "logger=none",
        "trainer.enable_progress_bar=false",
    ]


def run(out_dir: str = "reports/bench", steps: int = 300) -> Path:
    import torch

    from skelrecall.configs import compose
    from skelrecall.paths import work_root

    if not torch.cuda.is_available():
        raise SystemExit("error: make gpu-check needs a CUDA device (torch.cuda.is_available() is False here)")
    rows: list[dict[str, Any]] = []
    real_root = work_root() / "data" / "nnUNet_raw"
    with tempfile.TemporaryDirectory(prefix="skelrecall-gpu-check-") as tmp:
        synthetic_root, runs_root = Path(tmp) / "nnUNet_raw", Path(tmp) / "runs"
        for experiment in EXPERIMENTS:
            dataset = compose([f"experiment={experiment}", "profile=paper"]).dataset
            real = (real_root / dataset.folder / "dataset.json").exists()
            if not real and not (synthetic_root / dataset.folder).exists():
                synthetic_dataset(dataset, synthetic_root)
            for loss in LOSSES:
                print(f"[gpu-check] {experiment}, {loss}: {steps} steps ...", flush=True)
                row = run_experiment(
                    experiment,
                    real_root if real else synthetic_root,
                    runs_root,
                    [f"loss={loss}", *overrides(steps)],
                    steps=steps,
                )
                row.update(loss=loss, data="converted" if real else "synthetic")
                rows.append(row)
                if not row["ok"]:
                    print(row["log_tail"], flush=True)
    from skelrecall.bench import losses

    losses.run(out_dir=str(Path(out_dir) / "gpu"), quick=False, sizes="paper")
    return write_report(rows, Path(out_dir), steps)


def write_report(rows: list[dict[str, Any]], out: Path, steps: int) -> Path:
    from skelrecall.io import atomic_write

    def cell(row: dict, key: str, fmt: str) -> str:
        value = row["done"].get(key) if key == "peak_gpu_memory_gb" else row.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else ""

    table = markdown_table(
        ["experiment", "loss", "data", "status", "steps / s", "peak GPU memory (GB)"],
        [
            (
                r["experiment"],
                r["loss"],
                r["data"],
                "ok" if r["ok"] else "FAILED",
                f"{1 / r['step_s']:.2f}" if r.get("step_s") else "",
                cell(r, "peak_gpu_memory_gb", ".2f"),
            )
            for r in rows
        ],
    )
    overhead = []
    for experiment in EXPERIMENTS:
        base = next((r for r in rows if r["experiment"] == experiment and r["loss"] == "dice_ce" and r["ok"]), None)
        srl = next(
            (r for r in rows if r["experiment"] == experiment and r["loss"] == "skeleton_recall" and r["ok"]), None
        )
        if base and srl:
            overhead.append(
                (
                    experiment,
                    f"{100 * (srl['step_s'] / base['step_s'] - 1):+.1f} %",
                    f"{100 * (srl['done']['peak_gpu_memory_gb'] / base['done']['peak_gpu_memory_gb'] - 1):+.1f} %",
                )
            )
    text = "\n".join(
        [
            "# GPU check",
            "",
            f"Written by `make gpu-check` (`python -m skelrecall.bench.gpu_check`): {steps} optimizer steps per "
            "experiment and loss with `profile=paper` (bf16 mixed precision); step time from the training time "
            "of the run (data loading included), peak memory over the process.",
            "",
            *machine_lines(machine_description(("torch", "lightning", "monai"))),
            "",
            table,
            "",
            "## Skeleton Recall over Dice+CE (same run)",
            "",
            markdown_table(["experiment", "step time", "peak GPU memory"], overhead) if overhead else "not measured",
            "",
            "Per-loss step time and memory at the paper's patch sizes: `gpu/losses.md`.",
            "",
        ]
    )
    return atomic_write(out / "gpu.md", lambda tmp: tmp.write_text(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m skelrecall.bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per experiment and loss")
    parser.add_argument("--out", default="reports/bench")
    args = parser.parse_args(argv)
    print(f"[gpu-check] wrote {run(args.out, args.steps)}")
    sys.exit(0)


if __name__ == "__main__":
    main()
