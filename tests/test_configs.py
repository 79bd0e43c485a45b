"""Every config composes; paper-facing values are where the docs say they are."""

from __future__ import annotations

import pytest

from skelrecall.paths import CONFIG_DIR

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


DATASETS = sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("backbone", ["unet", "hrnet"])
def test_every_dataset_backbone_pair_composes_and_builds(dataset, backbone):
    """Shapes only (meta device); HRNet is 2D only, so a 3D dataset must fail with a clear message."""
    import importlib.util

    import torch

    from skelrecall.models import build_model

    cfg = compose_train(f"dataset={dataset}", f"backbone={backbone}", "profile=smoke")
    if backbone == "hrnet" and importlib.util.find_spec("mmseg") is None:
        pytest.skip("HRNet extra (mmsegmentation) not installed")
    patch = [int(p) for p in cfg.data.patch_size]
    kwargs = dict(dims=int(cfg.dataset.dims), in_channels=int(cfg.dataset.in_channels),
                  num_classes=int(cfg.dataset.num_classes), patch_size=patch)
    with torch.device("meta"):
        if backbone == "hrnet" and cfg.dataset.dims == 3:
            with pytest.raises(ValueError, match="2D only"):
                build_model(cfg.backbone, **kwargs)
            return
        out = build_model(cfg.backbone, **kwargs).eval()(torch.empty(1, kwargs["in_channels"], *patch))
    assert tuple(out.shape) == (1, kwargs["num_classes"], *patch)
