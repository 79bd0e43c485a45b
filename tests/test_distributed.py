"""Several processes (DDP over gloo on CPU) and bf16 mixed precision, without a GPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from skelrecall.runs import RunDir

from .conftest import compose_train
from .test_faults import _step_losses

pytestmark = pytest.mark.slow
DDP = ("profile=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true")


def _cli(root: Path, *args: str, wait: bool = True):
    env = {**os.environ, "SKELRECALL_ROOT": str(root), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "skelrecall.train", *args]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=root)
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root, start_new_session=True
    )  # its own process group: kill the launcher and its workers


def test_ddp_on_two_cpu_processes_writes_one_run(tiny_root):
    from skelrecall.data.datamodule import SegmentationDataModule
    from skelrecall.data.layout import DatasetLayout
    from skelrecall.inference import predict_labels
    from skelrecall.metrics import dice
    from skelrecall.models import build_model
    from skelrecall.report import make_report

    args = (*DDP, "logger=wandb", "experiment_name=ddp", "trainer.max_epochs=3")
    proc = _cli(tiny_root, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained by 2 processes" in proc.stdout
    cfg = compose_train(*args, f"paths.root={tiny_root}")
    run_dir = Path(cfg.run_dir)
    tree = tiny_root / "runs/smoke/ddp"
    assert [p.parent for p in tree.rglob("done")] == [run_dir]  # one run folder, one set of markers
    assert len(list(tree.rglob("per_case.csv"))) == 1 and len(pd.read_csv(run_dir / "per_case.csv")) == 3
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run (rank 0 logs)
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["attempt_0"]
    assert RunDir(run_dir).status() == "done"
    table = make_report(tree, tiny_root / "ddp_report", "ddp")
    assert "| synthetic_2d | unet | skeleton_recall | 1 |" in table.read_text()

    # val/dice covers every validation case, not one rank's share: recompute it from the final weights
    log = pd.read_csv(run_dir / "csv/attempt_0/metrics.csv")
    logged = log.dropna(subset=["val/dice"]).iloc[-1]
    assert logged["epoch"] == 2
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    model = build_model(cfg.backbone, dims=2, in_channels=1, num_classes=2, patch_size=list(cfg.data.patch_size))
    model.load_state_dict({k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    layout = DatasetLayout.open(tiny_root / "data/nnUNet_raw/Dataset901_Synthetic2D")
    dm = SegmentationDataModule(
        layout,
        dims=2,
        patch_size=list(cfg.data.patch_size),
        batch_size=2,
        iterations_per_epoch=1,
        max_val_cases=cfg.data.max_val_cases,
    )
    dm.setup()
    assert len(dm.val_cases) == 2
    scores = []
    for case in dm.val_cases:
        pred = predict_labels(
            model.eval(),
            torch.from_numpy(case.image)[None],
            cfg.data.patch_size,
            mirror=False,
            overlap=cfg.inference.overlap,
            sw_batch_size=4,
        ).numpy()
        scores.append(dice(pred == 1, case.label[0] == 1))
    assert logged["val/dice"] == pytest.approx(float(np.mean(scores)), abs=1e-6)


def test_ddp_run_killed_then_resumed_equals_an_uninterrupted_one(tiny_root):
    base = (*DDP, "logger=csv", "trainer.max_epochs=6", "data.iterations_per_epoch=4", "trainer.log_every_n_steps=1")
    assert _cli(tiny_root, *base, "experiment_name=ddp_straight").returncode == 0
    ref = Path(compose_train(*base, "experiment_name=ddp_straight", f"paths.root={tiny_root}").run_dir)
    killed = (*base, "experiment_name=ddp_killed")
    run_dir = Path(compose_train(*killed, f"paths.root={tiny_root}").run_dir)
    proc = _cli(tiny_root, *killed, wait=False)
    deadline = time.time() + 600
    while (
        not list((run_dir / "checkpoints").glob("epoch=2-*.ckpt.sha256"))
        and proc.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its worker process
    proc.wait()
    assert not (run_dir / "done").exists() and RunDir(run_dir).status() == "interrupted"
    resumed = _cli(tiny_root, *killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _step_losses(run_dir) == _step_losses(ref) and len(_step_losses(ref)) == 24
    assert (run_dir / "summary.json").read_text() == (ref / "summary.json").read_text()


def test_bf16_mixed_precision_run_on_cpu_trains_predicts_and_evaluates(tiny_root):
    args = ("profile=smoke", "logger=csv", "trainer.precision=bf16-mixed", "experiment_name=bf16")
    proc = _cli(tiny_root, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(compose_train(*args, f"paths.root={tiny_root}").run_dir)
    assert RunDir(run_dir).status() == "done" and len(pd.read_csv(run_dir / "per_case.csv")) == 3
    assert "bf16-mixed" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("name", ["dice_ce", "skeleton_recall", "cldice", "topo_cldice"])
def test_losses_under_bf16_autocast_equal_float32(name):
    """The losses run in float32 with autocast off: under bf16 autocast they give the float32 value
    (tolerance 1e-6, i.e. equal up to float32 rounding of the same operations)."""
    from omegaconf import OmegaConf

    from skelrecall.losses import build_loss

    cfg = OmegaConf.to_container(compose_train(f"loss={name}").loss, resolve=True)
    loss = build_loss(cfg, num_classes=3, dims=2)
    torch.manual_seed(0)
    logits = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)]
    target = torch.randint(0, 3, (2, 1, 32, 32))
    skeleton = target * (torch.rand(2, 1, 32, 32) < 0.3)
    torch.manual_seed(1)
    reference, _ = loss(logits, target, skeleton)
    torch.manual_seed(1)  # Topo-clDice draws noise: the same draws in both
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = loss(logits, target, skeleton)
    assert mixed.dtype == torch.float32
    assert abs(mixed.item() - reference.item()) <= 1e-6
