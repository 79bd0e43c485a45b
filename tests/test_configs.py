"""Every config composes; paper-facing values are where the docs say they are."""

from __future__ import annotations

import pytest

from skelrecall.train import CONFIG_DIR

from .conftest import compose_train

GROUPS = ["dataset", "backbone", "loss", "profile", "logger", "trainer"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    names = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    assert names, f"configs/{group} is empty"
    for name in names:
        cfg = compose_train(f"{group}={name}")
        assert cfg[group] is not None
        assert cfg.run_dir.startswith(str(cfg.paths.runs))  # resolves


def test_profiles_scale_the_unet_and_default_is_cpu():
    assert compose_train().profile.name == "cpu"
    assert compose_train("profile=smoke").backbone.base_features == 4
    paper = compose_train("profile=paper")
    assert paper.backbone.base_features == 32 and paper.backbone.max_features is None
    assert paper.data.iterations_per_epoch == 250 and paper.trainer.max_epochs == 1000


def test_loss_weight_and_run_folder():
    cfg = compose_train("loss=skeleton_recall", "loss.w=0.1", "seed=2")
    assert cfg.run_name == "cpu/default/synthetic_2d/unet/skeleton_recall/w=0.1/seed=2/fold=0"
    assert compose_train("loss=dice_ce").loss.w == 0.0
