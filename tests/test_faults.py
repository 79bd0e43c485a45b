"""Faults a real user meets, each reproduced and handled (the run folder's contract, skelrecall.runs):
stale results, inexact resume, two commands on one run, damaged checkpoints, left-over temp files,
late or unclear input errors, path traversal, invisible failures."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skelrecall.data.layout import DatasetLayoutError
from skelrecall.runs import RunDir, config_diff, config_hash
from skelrecall.train import ConfigError, run

from .conftest import compose_train

pytestmark = pytest.mark.slow
SMOKE = ("profile=smoke", "logger=csv")


def _cli(root: Path, *args: str, wait: bool = True):
    env = {**os.environ, "SKELRECALL_ROOT": str(root), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "skelrecall.train", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _copy_dataset(tiny_root: Path, root: Path) -> Path:
    """A private copy of the tiny dataset below ``root`` (tests that damage it)."""
    src = tiny_root / "data/nnUNet_raw/Dataset901_Synthetic2D"
    dst = root / "data/nnUNet_raw/Dataset901_Synthetic2D"
    shutil.copytree(src, dst)
    return dst


def _step_losses(run_dir: Path) -> dict[int, float]:
    """Per-step training loss of every attempt (later attempts overwrite the steps they redid)."""
    out: dict[int, float] = {}
    for attempt in sorted((run_dir / "csv").glob("attempt_*"), key=lambda p: int(p.name.split("_")[1])):
        path = attempt / "metrics.csv"
        if path.exists():
            log = pd.read_csv(path).dropna(subset=["train/loss_step"])
            out.update(dict(zip(log["step"].astype(int), log["train/loss_step"])))
    return out


# --- 1. stale results ------------------------------------------------------------------------------


def test_changed_config_on_a_finished_run_is_refused_naming_the_keys(tiny_root):
    args = (*SMOKE, "experiment_name=stale")
    assert _cli(tiny_root, *args).returncode == 0
    run_dir = RunDir(compose_train(*args, f"paths.root={tiny_root}").run_dir)
    before = {p: p.stat().st_mtime for p in [run_dir / "done", run_dir / "config.yaml", run_dir / "per_case.csv"]}

    proc = _cli(tiny_root, *args, "trainer.max_epochs=5", "optimizer.lr=0.1")
    assert proc.returncode == 2
    assert "trainer.max_epochs: 2 (in the folder) -> 5 (now)" in proc.stderr
    assert "optimizer.lr: 0.01 (in the folder) -> 0.1 (now)" in proc.stderr and "force=true" in proc.stderr
    proc = _cli(tiny_root, *args, "data.patch_size=[64]")  # an invalid override is refused too, not skipped
    assert proc.returncode == 2 and "data.patch_size" in proc.stderr
    assert {p: p.stat().st_mtime for p in before} == before  # nothing of the old run touched
    assert not (run_dir / "failed").exists()
    # keys that cannot change results do not count: another logger and thread count reuse the run
    proc = _cli(tiny_root, *args, "logger=none", "torch_threads=2", "data.num_workers=1")
    assert proc.returncode == 0 and "is finished with this config; skipping" in proc.stdout


def test_a_run_on_data_made_again_differently_is_refused_and_stale(tiny_root, tmp_path):
    from skelrecall.experiments import run_state
    from skelrecall.runs import RunConflictError

    dataset = _copy_dataset(tiny_root, tmp_path)
    cfg = compose_train("profile=smoke", "logger=none", f"paths.root={tmp_path}", "trainer.max_epochs=1")
    run(cfg)
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    assert run_state(config)[0] == "finished"
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["synthetic"]["seed"] = 99  # as if synthesized again with another seed
    (dataset / "dataset.json").write_text(json.dumps(meta))
    state, diff = run_state(config)
    assert state == "stale" and "dataset.json" in diff[0][0]
    done = (Path(cfg.run_dir) / "done").read_text()
    with pytest.raises(RunConflictError, match="trained on other data"):
        run(cfg)
    assert (Path(cfg.run_dir) / "done").read_text() == done  # untouched


def test_a_run_whose_predictions_are_all_empty_did_not_train(tmp_path):
    from skelrecall.io import write_json
    from skelrecall.report import run_row

    run = RunDir(tmp_path / "r")
    run.begin(
        {
            "experiment_name": "e",
            "dataset": {"name": "d"},
            "backbone": {"name": "unet"},
            "loss": {"name": "dice_ce", "w": 0.0},
            "seed": 0,
            "fold": 0,
            "profile": {"name": "cpu"},
        }
    )
    write_json(run / "summary.json", {"n_cases": 4, "headline": {"dice": {"mean": 0.0}}})
    run.mark_done({}, n_cases=4, empty_predictions=3)
    assert not run.did_not_train() and run_row(run)["status"] == "done"
    run.mark_done({}, n_cases=4, empty_predictions=4)
    assert run.did_not_train() and run_row(run)["status"] == "did not train" and "dice" not in run_row(run)


def test_identity_hash_ignores_only_keys_that_cannot_change_results():
    cfg = {
        "loss": {"w": 1.0},
        "paths": {"runs": "a"},
        "logger": {"name": "csv"},
        "data": {"num_workers": 0, "patch_size": [64, 64]},
    }
    same = {
        **cfg,
        "paths": {"runs": "b"},
        "logger": {"name": "wandb"},
        "data": {"num_workers": 4, "patch_size": [64, 64]},
    }
    other = {**cfg, "data": {"num_workers": 0, "patch_size": [32, 32]}}
    assert config_hash(cfg) == config_hash(same) != config_hash(other)
    assert config_diff(cfg, other) == [("data.patch_size", [64, 64], [32, 32])]


# --- 2. exact resume after kill -9 -------------------------------------------------------------------


def _kill_after_checkpoint(root: Path, args: tuple[str, ...], ckpt_dir: Path, epoch: int, delay: float) -> int:
    """Start a run, SIGKILL it ``delay`` seconds after the checkpoint of ``epoch`` appears; its exit code."""
    proc = _cli(root, *args, wait=False)
    deadline = time.time() + 300
    while not list(ckpt_dir.glob(f"epoch={epoch}-*.ckpt.sha256")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode


def test_kill_9_at_random_steps_then_resume_equals_an_uninterrupted_run(tiny_root):
    base = (
        *SMOKE,
        "trainer.max_epochs=8",
        "data.iterations_per_epoch=4",
        "trainer.check_val_every_n_epoch=3",
        "trainer.log_every_n_steps=1",
    )
    straight = (*base, "experiment_name=straight")
    assert _cli(tiny_root, *straight).returncode == 0
    ref = Path(compose_train(*straight, f"paths.root={tiny_root}").run_dir)

    killed = (*base, "experiment_name=killed")
    run_dir = Path(compose_train(*killed, f"paths.root={tiny_root}").run_dir)
    rng = random.Random(7)  # fixed seed: the kills land mid-epoch at reproducible-ish points
    for epoch in (1, 4):
        code = _kill_after_checkpoint(tiny_root, killed, run_dir / "checkpoints", epoch, rng.uniform(0.0, 0.3))
        assert code == -signal.SIGKILL and not (run_dir / "done").exists()  # really killed mid-run
        assert RunDir(run_dir).status() == "interrupted"
    proc = _cli(tiny_root, *killed)
    assert proc.returncode == 0, proc.stderr[-2000:]

    expected, resumed = _step_losses(ref), _step_losses(run_dir)
    assert len(expected) == 32 and set(resumed) == set(expected)
    assert resumed == expected  # bitwise: every step's loss, before and after each kill
    assert len(list((run_dir / "csv").glob("attempt_*"))) == 3
    for name in ("per_case.csv", "summary.json"):
        assert (run_dir / name).read_text() == (ref / name).read_text()


# --- 3. a lock per run folder ------------------------------------------------------------------------


def test_second_command_on_a_live_run_exits_2_naming_the_holder(tiny_root):
    args = ("profile=smoke", "logger=none", "experiment_name=locked", "trainer.max_epochs=1000")
    run_dir = Path(compose_train(*args, f"paths.root={tiny_root}").run_dir)
    first = _cli(tiny_root, *args, wait=False)
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoints").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = _cli(tiny_root, *args)
        assert first.poll() is None, "the first run ended before the second started: the test proves nothing"
        assert second.returncode == 2
        assert f"is in use by pid {first.pid} on " in second.stderr
        assert RunDir(run_dir).status() == "running"
    finally:
        first.kill()
        first.communicate()
    assert RunDir(run_dir).status() == "interrupted"  # the kernel released the dead process's lock
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))[-1] == "last.ckpt"
    assert len(list((run_dir / "checkpoints").glob("*.ckpt"))) == 2  # one epoch file + last.ckpt, no -v1 copies


def test_lock_left_by_a_dead_process_is_taken_over_with_a_message(tiny_root, capsys):
    cfg = compose_train("profile=smoke", "logger=none", f"paths.root={tiny_root}", "experiment_name=stale_lock")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text("pid 4194999 on gone-host (started 2026-01-01T00:00:00)")
    assert run(cfg)["n_cases"] == 3
    assert "taking over the lock of pid 4194999 on gone-host" in capsys.readouterr().out
    assert (run_dir / ".lock").read_text() == ""  # released


# --- 4. damaged checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tiny_root, tmp_path_factory):
    """(reference summary, a copy of a run stopped by Ctrl-C after epoch 1 (checkpoints of epoch 1 kept))."""
    from skelrecall.module import SegmentationModule

    args = ("profile=smoke", "logger=none", f"paths.root={tiny_root}", "trainer.max_epochs=4")
    ref_cfg = compose_train(*args, "experiment_name=ckpt_ref")
    reference = run(ref_cfg)
    cfg = compose_train(*args, "experiment_name=ckpt_cut")
    original = SegmentationModule.on_train_epoch_start

    def interrupt(self):
        if self.current_epoch == 2:
            raise KeyboardInterrupt

    SegmentationModule.on_train_epoch_start = interrupt
    try:
        with pytest.raises(SystemExit):
            run(cfg)
    finally:
        SegmentationModule.on_train_epoch_start = original
    return reference, Path(cfg.run_dir), cfg


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip"])
def test_damaged_last_checkpoint_falls_back_to_the_intact_epoch_file(interrupted, damage, tmp_path, capsys):
    reference, src, cfg = interrupted
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    last = run_dir / "checkpoints/last.ckpt"
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "empty":
        data = bytearray()
    else:
        rng = np.random.default_rng(0)
        for i in rng.choice(len(data) // 2, 400, replace=False) + len(data) // 2:
            data[i] ^= 0xFF
    last.write_bytes(bytes(data))
    cfg = cfg.copy()
    cfg.run_dir = str(run_dir)
    summary = run(cfg)
    out = capsys.readouterr().out
    assert f"checkpoint {last} is damaged" in out and "resuming from" in out and "epoch=1-step=" in out
    assert summary["headline"] == reference["headline"]  # the same result as an uninterrupted run


def test_no_intact_checkpoint_fails_naming_the_files_and_force(interrupted, tmp_path):
    _, src, cfg = interrupted
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    cfg = cfg.copy()
    cfg.run_dir = str(run_dir)
    from skelrecall.runs import CheckpointError

    with pytest.raises(
        CheckpointError, match=r"(?s)last.ckpt: checksum mismatch.*epoch=1-step=\d+.ckpt: checksum.*force=true"
    ):
        run(cfg)


# --- 5. outputs that poison reruns ---------------------------------------------------------------------


def test_temp_files_of_an_interrupted_write_do_not_break_a_rerun(interrupted, tmp_path):
    reference, src, cfg = interrupted
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    for folder in ("predictions", "predictions.partial"):  # a kill during atomic_write / during prediction
        (run_dir / folder).mkdir()
        (run_dir / folder / ".synth_ts_0000.png.abc123.tmp.png").write_bytes(b"\x89PNG half")
    cfg = cfg.copy()
    cfg.run_dir = str(run_dir)
    assert run(cfg)["headline"] == reference["headline"]
    assert not (run_dir / "predictions.partial").exists()
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == [f"synth_ts_000{i}.png" for i in range(3)]


# --- 6. inputs checked before compute -------------------------------------------------------------------


def _no_training(run_dir: Path) -> None:
    assert not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("split", ["Tr", "Ts"])
def test_label_value_outside_dataset_json_fails_before_training_naming_the_file(tiny_root, tmp_path, split):
    dataset = _copy_dataset(tiny_root, tmp_path)
    case = (
        json.loads((dataset / "splits.json").read_text())[0]["train"][0]
        if split == "Tr"
        else sorted(dataset.glob("labelsTs/*.png"))[0].name[:-4]
    )
    path = dataset / f"labels{split}" / f"{case}.png"
    label = np.asarray(Image.open(path)).copy()
    label[0, 0] = 7
    Image.fromarray(label).save(path)
    cfg = compose_train(*SMOKE, f"paths.root={tmp_path}")
    with pytest.raises(DatasetLayoutError, match=rf"labels{split}/{case}.png: label values \[7\] are not in"):
        run(cfg)
    _no_training(Path(cfg.run_dir))


@pytest.mark.parametrize(
    "content,message",
    [
        (
            '{"labels": {"background": 0, "structure": 1},',
            r"dataset.json: dataset.json is not valid JSON: .* at line 1",
        ),
        ('{"channel_names": {"0": "x"}, "file_ending": ".png"}', r"dataset.json: required field 'labels' is missing"),
        (
            '{"channel_names": {"0": "x"}, "file_ending": ".png", "labels": ["background", "structure"]}',
            r"dataset.json: 'labels' must map names to values",
        ),
    ],
)
def test_broken_dataset_json_names_the_file(tiny_root, tmp_path, content, message):
    dataset = _copy_dataset(tiny_root, tmp_path)
    (dataset / "dataset.json").write_text(content)
    cfg = compose_train(*SMOKE, f"paths.root={tmp_path}")
    with pytest.raises(DatasetLayoutError, match=str(dataset) + "/" + message):
        run(cfg)
    _no_training(Path(cfg.run_dir))


def test_broken_splits_json_names_file_and_line(tiny_root, tmp_path):
    dataset = _copy_dataset(tiny_root, tmp_path)
    (dataset / "splits.json").write_text('[\n  {"train": ["a"],\n   "val": [}\n]')
    with pytest.raises(DatasetLayoutError, match=r"splits.json: splits.json is not valid JSON: .* at line 3"):
        run(compose_train(*SMOKE, f"paths.root={tmp_path}"))


@pytest.mark.parametrize("w", ["inf", "-1", "nan"])
def test_loss_weight_must_be_finite_and_non_negative(tiny_root, w):
    cfg = compose_train(*SMOKE, f"paths.root={tiny_root}", f"loss.w={w}", "experiment_name=bad_w")
    with pytest.raises(ConfigError, match="loss.w must be a finite number >= 0"):
        run(cfg)
    _no_training(Path(cfg.run_dir))


def test_non_finite_training_loss_fails_the_run_naming_the_step(tiny_root, monkeypatch):
    import torch

    from skelrecall.losses.compound import DeepSupervisionLoss

    forward = DeepSupervisionLoss.forward  # called once per training step
    calls = {"n": 0}

    def nan_at_third_step(self, *args, **kwargs):
        total, parts = forward(self, *args, **kwargs)
        calls["n"] += 1
        return (total * torch.tensor(float("nan")) if calls["n"] >= 3 else total), parts

    monkeypatch.setattr(DeepSupervisionLoss, "forward", nan_at_third_step)
    cfg = compose_train(*SMOKE, f"paths.root={tiny_root}", "experiment_name=nan_loss", "loss=dice_ce")
    with pytest.raises(FloatingPointError, match="training loss is nan at step 2 "):
        run(cfg)
    assert not (Path(cfg.run_dir) / "done").exists()


# --- 7. path traversal ----------------------------------------------------------------------------------


def test_case_ids_cannot_leave_the_dataset(tiny_root, tmp_path):
    dataset = _copy_dataset(tiny_root, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.png").write_bytes(b"precious")
    splits = json.loads((dataset / "splits.json").read_text())
    splits[0]["val"].append("../../../../outside/evil")
    (dataset / "splits.json").write_text(json.dumps(splits))
    cfg = compose_train(*SMOKE, f"paths.root={tmp_path}")
    with pytest.raises(DatasetLayoutError, match=r"case id '../../../../outside/evil' is not allowed"):
        run(cfg)
    assert (outside / "evil.png").read_bytes() == b"precious"
    _no_training(Path(cfg.run_dir))


# --- 8. invisible failures ------------------------------------------------------------------------------


def test_config_time_failure_in_a_sweep_is_recorded_and_reported(tiny_root, tmp_path):
    from skelrecall.report import make_report

    proc = _cli(tiny_root, "--multirun", *SMOKE, "experiment_name=sweep_fail", "loss.w=0.5,-1,2.0")
    assert proc.returncode != 0
    base = tiny_root / "runs/smoke/sweep_fail/synthetic_2d/unet/skeleton_recall"
    failed = json.loads((base / "w=-1/seed=0/fold=0/failed").read_text())
    assert "loss.w must be a finite number >= 0; got -1" in failed["error"]
    assert "loss.w=-1" in failed["overrides"]
    assert (base / "w=0.5/seed=0/fold=0/done").exists() and (base / "w=2.0/seed=0/fold=0/done").exists()
    make_report(tiny_root / "runs/smoke/sweep_fail", tmp_path, "table")
    table = pd.read_csv(tmp_path / "table.csv").set_index("w")
    assert table.loc[-1.0, "failed"] == 1 and table.loc[-1.0, "runs"] == 0 and table.loc[0.5, "runs"] == 1


def test_ctrl_c_leaves_an_interrupted_marker_and_says_how_to_resume(tiny_root):
    args = (*SMOKE, "experiment_name=ctrl_c", "trainer.max_epochs=40")
    run_dir = Path(compose_train(*args, f"paths.root={tiny_root}").run_dir)
    proc = _cli(tiny_root, *args, wait=False)
    deadline = time.time() + 120
    while not list((run_dir / "checkpoints").glob("*.sha256")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted; rerun the same command to resume" in err
    assert (run_dir / "interrupted").exists() and not (run_dir / "failed").exists()
    assert RunDir(run_dir).status() == "interrupted"
