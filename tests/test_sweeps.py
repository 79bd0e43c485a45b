"""Hydra sweeps through a real launcher (submitit_local), and a sweep with one failing run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from skelrecall.report import collect_runs, make_report

pytestmark = pytest.mark.slow  # end-to-end: runs in subprocesses or many training steps


def _train(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SKELRECALL_ROOT": str(root), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "skelrecall.train",
            "--multirun",
            "profile=smoke",
            "logger=none",
            "data.max_test_cases=2",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_w_sweep_through_submitit_local(tiny_root, tmp_path):
    proc = _train(
        tiny_root, "hydra/launcher=local", "experiment_name=w_sweep", "loss=skeleton_recall", "loss.w=0.1,1.0"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = tiny_root / "runs/smoke/w_sweep/synthetic_2d/unet/skeleton_recall"
    for w in ("0.1", "1.0"):
        assert (base / f"w={w}/seed=0/fold=0/done").exists()
    assert list((tiny_root / "runs/.submitit").glob("*_log.out")), "submitit did not run the jobs"
    assert not list(tiny_root.rglob("%j")), "a literal %j folder was left"
    # the jobs ran in other processes: their result lines are printed at the end of the multirun
    assert "[skelrecall] multirun: 2 runs finished or failed" in proc.stdout
    assert sum(line.startswith("[skelrecall] ") and "dice=" in line for line in proc.stdout.splitlines()) == 2
    md = make_report(tiny_root / "runs/smoke/w_sweep", tmp_path, "sweep").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| synthetic_2d | unet | skeleton_recall")]
    assert [row.split(" | ")[3] for row in rows] == ["0.1", "1"]


def test_a_failing_run_does_not_stop_the_sweep_and_is_reported(tiny_root, tmp_path):
    """One dataset of the sweep has a corrupt training image: that run fails while loading its data
    (its folder gets a `failed` marker with the error), the other finishes, the command exits non-zero,
    and the report lists the failed run instead of dropping it."""
    raw = tiny_root / "data" / "nnUNet_raw"
    broken = raw / "Dataset999_Broken"
    if not broken.exists():
        shutil.copytree(raw / "Dataset901_Synthetic2D", broken)
        next(iter(sorted((broken / "imagesTr").glob("*.png")))).write_bytes(b"not a png")
    configs = tmp_path / "configs" / "dataset"
    configs.mkdir(parents=True)
    cfg = (Path(__file__).parents[1] / "configs/dataset/synthetic_2d.yaml").read_text()
    (configs / "broken_2d.yaml").write_text(
        cfg.replace("name: synthetic_2d", "name: broken_2d").replace("Dataset901_Synthetic2D", "Dataset999_Broken")
    )
    proc = _train(
        tiny_root,
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "experiment_name=failing",
        "dataset=broken_2d,synthetic_2d",
        "loss=dice_ce",
    )
    assert proc.returncode != 0  # Hydra reports the failed job after running every job
    runs_dir = tiny_root / "runs/smoke/failing"
    good = runs_dir / "synthetic_2d/unet/dice_ce/w=0.0/seed=0/fold=0"
    bad = runs_dir / "broken_2d/unet/dice_ce/w=0.0/seed=0/fold=0"
    assert (good / "done").exists(), proc.stderr[-3000:]
    assert not (bad / "done").exists()
    assert "Dataset999_Broken/imagesTr/synth_tr_0000_0000.png: cannot be read" in (bad / "failed").read_text()
    runs = collect_runs(runs_dir).set_index("dataset")
    assert runs.loc["broken_2d", "status"] == "failed" and runs.loc["synthetic_2d", "status"] == "done"
    make_report(runs_dir, tmp_path / "out", "failing")
    table = pd.read_csv(tmp_path / "out/failing.csv").set_index("dataset")
    assert table.loc["broken_2d", "runs"] == 0 and table.loc["broken_2d", "failed"] == 1
    md = (tmp_path / "out/failing.md").read_text()
    assert "| broken_2d | unet | dice_ce | 0 | n/a | n/a | n/a | n/a | 0 (1 failed) |" in md


def test_dice_ce_in_a_sweep_over_w_runs_once(tiny_root):
    """`loss=dice_ce,skeleton_recall loss.w=0.1,1.0` (the README's sweep): Dice+CE has no w, so its two
    members are one run (w=0), trained once; the command succeeds."""
    proc = _train(tiny_root, "experiment_name=dce_sweep", "loss=dice_ce,skeleton_recall", "loss.w=0.1,1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = tiny_root / "runs/smoke/dce_sweep/synthetic_2d/unet"
    assert sorted(p.parents[3].name + "/" + p.parents[2].name for p in base.rglob("done")) == [
        "dice_ce/w=0.0",
        "skeleton_recall/w=0.1",
        "skeleton_recall/w=1.0",
    ]
    assert "has no connectivity term: loss.w=0.1 has no effect" in proc.stdout
    assert "is finished with this config; skipping" in proc.stdout  # the second Dice+CE member


def test_optuna_sweep_over_w_reports_the_best_trial(tiny_root):
    proc = _train(tiny_root, "sweep=w_optuna", "experiment_name=optuna", "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = tiny_root / "runs/smoke/optuna/synthetic_2d/unet/skeleton_recall"
    trials = {}
    for summary in base.glob("w=*/seed=0/fold=0/validation/summary.json"):  # fold-0 validation, not the test set
        w = float(summary.parents[3].name.split("=")[1])
        trials[w] = pd.read_json(summary, typ="series")["headline"]["cldice"]["mean"]
        assert (summary.parents[1] / "done").exists()
    assert len(trials) == 3
    best = yaml.safe_load((tiny_root / "runs/optimization_results.yaml").read_text())
    assert best["best_params"]["loss.w"] == max(trials, key=trials.get)
    assert best["best_value"] == pytest.approx(max(trials.values()))
    assert "Best parameters: {'loss.w': " in proc.stdout + proc.stderr
