"""``make check-paper`` (``python -m skelrecall.bench.paper_check``): every paper configuration runs.

For every experiment config (Table 4), ``skelrecall-train experiment=<name> profile=paper`` runs in a
fresh process on this machine's CPU for 2 optimizer steps at the paper's patch and batch size, then
predicts one whole case and evaluates it: composition, data loading with augmentation and the tubed
skeleton, network, loss, optimizer, checkpointing, sliding-window prediction and evaluation. The data
are the converted dataset when it exists (first training and test cases), otherwise synthetic cases
of the real image shape (``SHAPES``: tubes on noise, written as the real dataset's format and labels).
Printed per experiment: seconds per optimizer step, seconds to predict and evaluate the case, and the
process's peak resident memory; written to ``reports/bench/paper_check.md``. This shows that no paper
configuration fails after a job has waited in a cluster queue (the numbers are CPU numbers, not the
GPU's).

Deviations from ``profile=paper`` (CPU, a check): ``trainer.accelerator=cpu``, 32-bit precision,
``trainer.max_epochs=1`` of 2 iterations, no validation during training, no mirroring at prediction,
loader workers 0, W&B off; everything else is the paper's configuration.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.bench.common import machine_description, machine_lines
from skelrecall.render import markdown_table

#: (z, y, x) or (H, W) of one case where the real data is absent: DRIVE and Roads as published, the
#: cracks dataset's 448x448 tiles, CBCT volumes of ToothFairy's typical size, a TopCoW region of interest
SHAPES = {
    "drive": (584, 565),
    "roads": (1500, 1500),
    "cracks": (448, 448),
    "toothfairy": (170, 300, 300),
    "topcow_binary": (120, 240, 240),
    "topcow_multiclass": (120, 240, 240),
}
CHECK_OVERRIDES = [
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.max_epochs=1",
    "data.iterations_per_epoch=2",
    "trainer.check_val_every_n_epoch=1000",
    "data.num_workers=0",
    "data.max_train_cases=2",
    "data.max_val_cases=1",
    "data.max_test_cases=1",
    "inference.mirror=false",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def _render(shape: tuple[int, ...], in_channels: int, num_classes: int):
    """A case renderer: tubes (classes 1..K-1 by segment) on noise, RGB uint8 in 2D when 3 channels."""
    from scipy import ndimage
    from skimage.draw import line_nd

    def render(rng: np.random.Generator):
        label = np.zeros(shape, np.uint8)
        for i in range(12 if len(shape) == 2 else 8):
            a, b = (rng.uniform(0, 1, len(shape)) * (np.asarray(shape) - 1) for _ in range(2))
            pts = line_nd(a, b)
            label[pts] = 1 + i % max(num_classes - 1, 1)
        label = ndimage.grey_dilation(label, size=(3,) * len(shape))
        image = rng.normal(0.3, 0.1, shape) + 0.5 * (label > 0)
        if len(shape) == 2:
            image = np.clip(image * 255, 0, 255).astype(np.uint8)
            if in_channels == 3:
                image = np.repeat(image[..., None], 3, axis=-1)
        else:
            image = (image * 1000).astype(np.float32)  # CT-like intensities
        return image, label

    return render


def synthetic_dataset(dataset: dict[str, Any], root: Path) -> Path:
    """Two training cases and one test case of the dataset's real shape, in its layout and labels."""
    from skelrecall.data.synthetic.writer import write_synthetic

    shape = SHAPES[dataset["name"]]
    labels = {"background": 0, **{f"class_{k}": k for k in range(1, int(dataset["num_classes"]))}}
    return write_synthetic(
        root / dataset["folder"],
        folder=dataset["folder"],
        generator="paper_check",
        render=_render(shape, int(dataset["in_channels"]), int(dataset["num_classes"])),
        style=_Style(),
        labels=labels,
        channel_names={i: f"channel_{i}" for i in range(int(dataset["in_channels"]))},
        case_prefix=dataset["name"],
        description=f"paper check, shape {shape}",
        seed=0,
        num_train=5,
        num_test=1,
        folds=5,
        progress=False,
    )


@dataclass(frozen=True)
class _Style:
    """write_synthetic records a style's fields; the check's renderer has none."""


def run_experiment(
    experiment: str, data_root: Path, runs_root: Path, overrides: list[str] = CHECK_OVERRIDES, steps: int = 2
) -> dict[str, Any]:
    """Run ``skelrecall-train experiment=<experiment> profile=paper <overrides>`` (``steps`` optimizer steps)
    in a fresh process: seconds per step, seconds of the rest (prediction and evaluation), peak RSS, and
    the run's ``done`` record (peak GPU memory on a GPU)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "skelrecall.train",
        f"experiment={experiment}",
        "profile=paper",
        f"paths.nnunet_raw={data_root}",
        f"paths.runs={runs_root}",
        *overrides,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    from skelrecall.configs import compose
    from skelrecall.runs import RunDir

    run = RunDir(compose([f"experiment={experiment}", "profile=paper", f"paths.runs={runs_root}", *overrides]).run_dir)
    done = run.done_info() or {}
    ok = os.waitstatus_to_exitcode(status) == 0 and run.is_done()
    train_s = done.get("train_seconds")
    return {
        "experiment": experiment,
        "ok": ok,
        "step_s": train_s / steps if train_s else None,
        "predict_evaluate_s": wall - train_s if train_s else None,
        "wall_s": wall,
        "peak_rss_gb": usage.ru_maxrss / 1024**2,
        "done": done,
        "log_tail": "" if ok else out[-3000:],
    }


def run(out_dir: str = "reports/bench", quick: bool = False, only: list[str] | None = None) -> list[dict]:
    from skelrecall.configs import CONFIG_DIR, compose
    from skelrecall.paths import work_root

    experiments = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    if only:
        unknown = sorted(set(only) - set(experiments))
        if unknown:
            raise SystemExit(f"error: unknown experiments {unknown}; available: {', '.join(experiments)}")
        experiments = [e for e in experiments if e in only]
    if quick:
        raise SystemExit("error: the paper check has no quick mode (it runs the paper's sizes); use --only")
    real_root = work_root() / "data" / "nnUNet_raw"
    rows = []
    with tempfile.TemporaryDirectory(prefix="skelrecall-paper-check-") as tmp:
        synthetic_root, runs_root = Path(tmp) / "nnUNet_raw", Path(tmp) / "runs"
        for i, experiment in enumerate(experiments, 1):
            dataset = compose([f"experiment={experiment}", "profile=paper"]).dataset
            real = (real_root / dataset.folder / "dataset.json").exists()
            root = real_root if real else synthetic_root
            if not real and not (synthetic_root / dataset.folder).exists():
                synthetic_dataset(dataset, synthetic_root)
            print(
                f"[check-paper] ({i}/{len(experiments)}) {experiment} on {'the converted' if real else 'synthetic'}"
                f" {dataset.name} data ...",
                flush=True,
            )
            row = run_experiment(experiment, root, runs_root)
            row["data"] = "converted" if real else f"synthetic {'x'.join(map(str, SHAPES[dataset.name]))}"
            rows.append(row)
            status = "ok" if row["ok"] else "FAILED"
            print(
                f"[check-paper] {experiment}: {status}; "
                + (
                    f"{row['step_s']:.1f} s/step, predict+evaluate {row['predict_evaluate_s']:.0f} s, "
                    if row["ok"]
                    else ""
                )
                + f"peak RSS {row['peak_rss_gb']:.1f} GB",
                flush=True,
            )
            if not row["ok"]:
                print(row["log_tail"], flush=True)
    write_report(rows, Path(out_dir))
    return rows


def write_report(rows: list[dict], out: Path) -> Path:
    from skelrecall.io import atomic_write

    table = markdown_table(
        ["experiment", "data", "status", "s / optimizer step", "predict + evaluate one case (s)", "peak RSS (GB)"],
        [
            (
                r["experiment"],
                r["data"],
                "ok" if r["ok"] else "FAILED",
                f"{r['step_s']:.1f}" if r["step_s"] else "",
                f"{r['predict_evaluate_s']:.0f}" if r["predict_evaluate_s"] else "",
                f"{r['peak_rss_gb']:.1f}",
            )
            for r in rows
        ],
    )
    text = "\n".join(
        [
            "# Paper configurations on this machine's CPU",
            "",
            "Written by `make check-paper` (`python -m skelrecall.bench.paper_check`): each experiment with "
            "`profile=paper` (the paper's patch, batch and network) trains 2 optimizer steps, then predicts and "
            "evaluates one whole case, in a fresh process. CPU deviations: "
            + ", ".join(f"`{o}`" for o in CHECK_OVERRIDES)
            + ".",
            "",
            *machine_lines(machine_description(("torch", "lightning", "monai"))),
            "",
            table,
            "",
        ]
    )
    return atomic_write(out / "paper_check.md", lambda tmp: tmp.write_text(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m skelrecall.bench.paper_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", help="comma-separated experiments (default: all)")
    parser.add_argument("--out", default="reports/bench")
    args = parser.parse_args(argv)
    rows = run(args.out, only=args.only.split(",") if args.only else None)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
