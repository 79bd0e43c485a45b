"""Experiment configs (configs/experiment/): one per row of the paper's Table 4 training recipes."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from skelrecall.configs import CONFIG_DIR
from skelrecall.models import build_model, plan_unet
from skelrecall.paths import REPO_DIR

from .conftest import compose_train

ROOT = REPO_DIR
TABLE4 = ROOT / "experiments" / "paper" / "table4_training_configs.csv"
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# Table 4's network names -> our backbone config names; TopCoW's row covers both TopCoW experiments
NETWORK = {"nnunet": "unet", "hrnet": "hrnet"}
TABLE4_DATASET = {"topcow_binary": "topcow", "topcow_multiclass": "topcow"}
MOMENTUM = {"SGD momentum 0.99": 0.99, "SGD momentum 0.9": 0.9}


def table4() -> dict[tuple[str, str], dict[str, str]]:
    with TABLE4.open(newline="") as fh:
        return {(r["dataset"], r["network"]): r for r in csv.DictReader(fh)}


def table4_row(name: str) -> dict[str, str]:
    network, dataset = name.split("_", 1)
    return table4()[(TABLE4_DATASET.get(dataset, dataset), network)]


def table4_patch(patch) -> str:
    """Our patch as Table 4 writes it: 3D (z, y, x) in nnU-Net's order; 2D (H, W) as width x height,
    the usual image-size order (DRIVE's whole 584-row, 565-column images are '565x584' there)."""
    patch = [int(p) for p in patch]
    return "x".join(map(str, patch[::-1] if len(patch) == 2 else patch))


def test_one_experiment_per_table4_row():
    expected = set()
    for dataset, network in table4():
        datasets = ["topcow_binary", "topcow_multiclass"] if dataset == "topcow" else [dataset]
        expected |= {f"{network}_{d}" for d in datasets}
    assert set(EXPERIMENTS) == expected


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_matches_table4(name):
    row = table4_row(name)
    cfg = compose_train(f"experiment={name}", "profile=paper")
    network, dataset = name.split("_", 1)
    assert cfg.experiment_name == name and name in cfg.run_name
    assert cfg.dataset.name == dataset
    assert cfg.backbone.name == NETWORK[row["network"]]
    assert cfg.data.batch_size == int(row["batch_size"])
    assert len(cfg.data.patch_size) == cfg.dataset.dims
    assert table4_patch(cfg.data.patch_size) == row["patch_size"]
    assert cfg.optimizer.momentum == MOMENTUM[row["optimizer"]]
    assert cfg.optimizer.nesterov is (row["network"] == "nnunet")
    assert row["lr_schedule"] == "PolyLR(1e-2)"
    assert cfg.optimizer.lr == 1e-2 and cfg.scheduler.power == 0.9 and cfg.optimizer.weight_decay == 3e-5
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.PolynomialLR"
    if cfg.backbone.name == "unet":  # full width
        assert cfg.backbone.base_features == 32 and cfg.backbone.max_features is None
    else:
        assert cfg.backbone.variant == "w18"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_cpu_profile_keeps_the_recipe_at_the_datasets_patch_and_a_small_batch(name):
    paper = compose_train(f"experiment={name}", "profile=paper")
    cpu = compose_train(f"experiment={name}", "profile=cpu")
    assert cpu.data.batch_size == OmegaConf.load(CONFIG_DIR / "profile" / "cpu.yaml").data.batch_size
    # not HRNet's whole 1500x1500 images: the stand-in's patch, or the profile's patch for this backbone
    expected = {"hrnet": [128, 128]}.get(cpu.backbone.name, list(cpu.dataset.patch_size))
    assert list(cpu.data.patch_size) == expected
    # the recipe's optimizer; only the learning rate is raised for the 200-step schedule
    assert cpu.optimizer.lr == {"hrnet": 0.1}.get(cpu.backbone.name, 0.03) and paper.optimizer.lr == 1e-2
    assert {**cpu.optimizer, "lr": None} == {**paper.optimizer, "lr": None} and cpu.backbone.name == paper.backbone.name
    assert cpu.data.foreground_fraction == 0.66 and paper.data.foreground_fraction == 0.333
    if cpu.backbone.name == "hrnet":  # the smallest published HRNetV2 at CPU scale, the paper's W18 otherwise
        assert (cpu.backbone.variant, paper.backbone.variant) == ("w18_small", "w18")
    assert cpu.experiment_name == name and cpu.run_name.startswith(f"cpu/{name}/")


def test_hrnet_input_is_not_imagenet_normalised_twice():
    cfg = compose_train("experiment=hrnet_drive", "profile=paper")
    assert cfg.backbone.normalize_imagenet is False  # the DataModule z-scores per channel already


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_backbone_builds(name):
    """The network of every experiment builds for its patch on the meta device (shapes only)."""
    cfg = compose_train(f"experiment={name}", "profile=paper")
    patch = [int(p) for p in cfg.data.patch_size]
    if cfg.backbone.name == "unet":
        plan = plan_unet(patch)
        assert all(p % d == 0 for p, d in zip(patch, plan.must_be_divisible_by)), plan
    elif importlib.util.find_spec("mmseg") is None:
        pytest.skip("HRNet extra (mmsegmentation) not installed")
    with torch.device("meta"):
        model = build_model(
            cfg.backbone,
            dims=int(cfg.dataset.dims),
            in_channels=int(cfg.dataset.in_channels),
            num_classes=int(cfg.dataset.num_classes),
            patch_size=patch,
        )
        out = model.eval()(torch.empty(1, int(cfg.dataset.in_channels), *patch))
    assert tuple(out.shape) == (1, int(cfg.dataset.num_classes), *patch)


def test_unknown_experiment_lists_available_ones():
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "skelrecall.train", "experiment=nope", "profile=smoke", "logger=none"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "experiment/nope" in proc.stderr
    assert "nnunet_drive" in proc.stderr and "hrnet_roads" in proc.stderr


def test_readme_lists_every_experiment():
    text = (ROOT / "experiments" / "README.md").read_text()
    for name in EXPERIMENTS:
        assert f"skelrecall-train experiment={name} profile=paper" in text
