"""End to end on CPU: synthetic data -> train -> predict -> evaluate -> report (profile=smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from skelrecall.data.layout import DatasetLayoutError
from skelrecall.report import ReportError, make_report
from skelrecall.train import run

from .conftest import compose_train

pytestmark = pytest.mark.slow  # end-to-end: runs in subprocesses or many training steps

RUN_COLUMNS = {"dice", "cldice", "betti0_error", "betti1_error"}


def _train_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SKELRECALL_ROOT": str(root), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "skelrecall.train", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_single_run_with_w_override(tiny_root):
    cfg = compose_train(
        "loss=skeleton_recall",
        "loss.w=0.1",
        "profile=smoke",
        "logger=csv",
        f"paths.root={tiny_root}",
        "experiment_name=single",
    )
    summary = run(cfg)
    run_dir = Path(cfg.run_dir)
    assert run_dir == tiny_root / "runs/smoke/single/synthetic_2d/unet/skeleton_recall/w=0.1/seed=0/fold=0"
    assert (run_dir / "done").exists() and (run_dir / "checkpoints/last.ckpt").exists()
    per_case = pd.read_csv(run_dir / "per_case.csv")
    assert set(per_case["case"]) == {"synth_ts_0000", "synth_ts_0001", "synth_ts_0002"}
    assert RUN_COLUMNS <= set(per_case.columns)
    assert summary["n_cases"] == 3 and 0.0 <= summary["headline"]["dice"]["mean"] <= 1.0
    resolved = (run_dir / "config.yaml").read_text()
    assert "w: 0.1" in resolved and "${" not in resolved
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"] and "python" in env
    assert len(list((run_dir / "predictions").glob("*.png"))) == 3
    # a finished run is skipped, not retrained ...
    mtime = (run_dir / "done").stat().st_mtime
    run(cfg)
    assert (run_dir / "done").stat().st_mtime == mtime
    # ... unless forced: then every output of the old run goes and it trains again from scratch,
    # and the seed fixes everything (network init included), whatever the process's RNG state was
    import torch

    torch.rand(1000)
    (run_dir / "predictions" / ".stale.png.x.tmp.png").write_bytes(b"left by a kill")
    cfg.force = True
    run(cfg)
    assert (run_dir / "done").stat().st_mtime > mtime
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["attempt_0"]
    assert pd.read_csv(run_dir / "csv/attempt_0/metrics.csv")["epoch"].min() == 0
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == sorted(f"{c}.png" for c in per_case["case"])
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "per_case.csv"), per_case)


def test_multirun_two_losses_then_report(tiny_root, tmp_path):
    proc = _train_cli(
        tiny_root,
        "--multirun",
        "loss=dice_ce,skeleton_recall",
        "profile=smoke",
        "logger=wandb",
        "experiment_name=multi",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = tiny_root / "runs/smoke/multi/synthetic_2d/unet"
    for loss, w in (("dice_ce", "0.0"), ("skeleton_recall", "1.0")):
        run_dir = base / loss / f"w={w}" / "seed=0" / "fold=0"
        assert (run_dir / "done").exists(), sorted(p.name for p in run_dir.iterdir())
        assert f"name: {loss}" in (run_dir / "config.yaml").read_text()
        assert list((run_dir / "wandb").glob("offline-run-*")), "W&B offline run missing"
        header = (run_dir / "csv/attempt_0/metrics.csv").read_text().splitlines()[0].split(",")
        assert {"train/loss_epoch", "train/loss_step", "train/generic_step", "train/connectivity_step"} <= set(header)
    md = make_report(tiny_root / "runs/smoke/multi", tmp_path, "table").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| synthetic_2d")]
    assert len(rows) == 2 and "dice_ce" in rows[0] and "skeleton_recall" in rows[1]
    table = pd.read_csv(tmp_path / "table.csv")
    assert table[["dice_mean", "cldice_mean", "betti0_error_mean", "betti1_error_mean"]].notna().all().all()
    assert "Profile `smoke`, synthetic data" in md


def test_report_over_no_finished_runs(tmp_path):
    with pytest.raises(ReportError, match="no finished runs"):
        make_report(tmp_path, tmp_path / "out", "empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "group,name", [("dataset", "nonexistent"), ("loss", "focal"), ("experiment", "nnunet_nowhere")]
)
def test_unknown_config_name_lists_available(tiny_root, group, name):
    proc = _train_cli(tiny_root, f"{group}={name}", "profile=smoke", "logger=none")
    assert proc.returncode != 0
    assert f"Could not find '{group}/{name}'" in proc.stderr
    expected = {"dataset": "synthetic_2d", "loss": "skeleton_recall", "experiment": "nnunet_roads"}[group]
    assert "Available options" in proc.stderr and expected in proc.stderr


def test_missing_dataset_names_the_command_before_training(tmp_path):
    cfg = compose_train("profile=smoke", "logger=none", f"paths.root={tmp_path}")
    with pytest.raises(DatasetLayoutError, match="skelrecall-data synthesize synthetic_2d"):
        run(cfg)
    run_dir = Path(cfg.run_dir)
    assert not (run_dir / "checkpoints").exists()  # no training time spent
    proc = _train_cli(tmp_path, "profile=smoke", "logger=none")
    assert proc.returncode == 1 and "skelrecall-data synthesize synthetic_2d" in proc.stderr
    failed = json.loads((run_dir / "failed").read_text())  # the failure is visible to reports
    assert "skelrecall-data synthesize synthetic_2d" in failed["error"] and failed["overrides"] == [
        "profile=smoke",
        "logger=none",
    ]
    assert (run_dir / "config.yaml").exists()


def test_missing_real_dataset_names_convert_command_and_stand_in(tmp_path):
    proc = _train_cli(tmp_path, "experiment=nnunet_drive", "profile=smoke", "logger=none")
    assert proc.returncode == 1
    assert "skelrecall-data convert drive --raw" in proc.stderr and "dataset=synthetic_drive" in proc.stderr


def test_3d_multiclass_run(tmp_path):
    """synthetic_cow: 3D NIfTI, 13 vessel classes, per-class and merged rows in the evaluation."""
    from skelrecall.data.synthetic.cow3d import generate

    generate(tmp_path / "data/nnUNet_raw/Dataset903_SyntheticCoW", seed=0, num_train=5, num_test=1)
    cfg = compose_train(
        "dataset=synthetic_cow",
        "profile=smoke",
        "logger=none",
        f"paths.root={tmp_path}",
        "data.max_val_cases=1",
        "trainer.max_epochs=1",
    )
    summary = run(cfg)
    per_case = pd.read_csv(Path(cfg.run_dir) / "per_case.csv")
    assert {"mean", "merged"} <= set(per_case["class"]) and "betti2_error" in per_case.columns
    assert summary["n_cases"] == 1 and "merged" in summary
    assert len(list((Path(cfg.run_dir) / "predictions").glob("*.nii.gz"))) == 1


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_root, monkeypatch):
    """Ctrl-C during the second epoch; rerunning continues after the last checkpoint and finishes once."""
    import torch

    from skelrecall.module import SegmentationModule

    cfg = compose_train(
        "profile=smoke",
        "logger=csv",
        f"paths.root={tiny_root}",
        "experiment_name=resume",
        "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=10",
    )
    run_dir = Path(cfg.run_dir)

    def interrupt(self):
        if self.current_epoch == 1 and (run_dir / "checkpoints/last.ckpt").exists():
            raise KeyboardInterrupt  # Lightning turns this into a graceful shutdown and exit code 1

    monkeypatch.setattr(SegmentationModule, "on_train_epoch_end", interrupt, raising=False)
    with pytest.raises(SystemExit):
        run(cfg)
    assert (run_dir / "checkpoints/last.ckpt").exists() and not (run_dir / "done").exists()
    first = pd.read_csv(run_dir / "csv/attempt_0/metrics.csv")
    assert first["epoch"].max() == 1
    saved_epoch = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert saved_epoch == 0  # epoch 0 finished and was saved; epoch 1 was interrupted

    monkeypatch.undo()
    summary = run(cfg)
    assert summary["n_cases"] == 3 and (run_dir / "done").exists()
    second = pd.read_csv(run_dir / "csv/attempt_1/metrics.csv")
    assert second["epoch"].dropna().min() == saved_epoch + 1 and second["epoch"].max() == 3  # continued, not restarted
    assert len(pd.read_csv(run_dir / "per_case.csv")) == 3  # one set of results
