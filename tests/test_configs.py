"""Every config composes; paper-facing values are where the docs say they are."""

from __future__ import annotations

import pytest

from skelrecall.configs import CONFIG_DIR

from .conftest import compose_train

GROUPS = ["dataset", "backbone", "loss", "profile", "logger", "trainer", "augmentation"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    names = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    assert names, f"configs/{group} is empty"
    for name in names:
        cfg = compose_train(f"{group}={name}")
        assert cfg[group] is not None
        assert cfg.run_dir.startswith(str(cfg.paths.runs))  # resolves


def test_profiles_scale_the_networks_through_scale_configs_and_default_is_cpu():
    assert compose_train().profile.name == "cpu"
    assert compose_train("profile=smoke").backbone.base_features == 4
    assert compose_train("profile=smoke", "backbone=hrnet").backbone.variant == "w18_small"
    paper = compose_train("profile=paper")
    assert paper.backbone.base_features == 32 and paper.backbone.max_features is None
    assert paper.data.iterations_per_epoch == 250 and paper.trainer.max_epochs == 1000
    assert compose_train("profile=paper", "backbone=hrnet").backbone.variant == "w18"


def test_no_config_group_reads_another_groups_settings():
    """Backbone and profile files do not interpolate each other (combinations live in scale/)."""
    for group in ("backbone", "profile", "loss", "dataset", "augmentation"):
        for path in (CONFIG_DIR / group).rglob("*.yaml"):
            text = path.read_text()
            for other in ("profile.", "backbone.", "scale."):
                if not other.startswith(group):
                    assert "${" + other not in text and "oc.select:" + other not in text, (path, other)


def test_loss_weight_and_run_folder():
    cfg = compose_train("loss=skeleton_recall", "loss.w=0.1", "seed=2")
    assert cfg.run_name == "cpu/default/synthetic_2d/unet/skeleton_recall/w=0.1/seed=2/fold=0"
    assert compose_train("loss=dice_ce").loss.w == 0.0
    # Dice+CE has no connectivity term: in a sweep over w every member names the same (w=0) folder
    assert compose_train("loss=dice_ce", "loss.w=0.1").run_name.endswith("/dice_ce/w=0.0/seed=0/fold=0")


def test_shared_loss_blocks_come_from_one_file():
    losses = sorted(p.stem for p in (CONFIG_DIR / "loss").glob("*.yaml"))
    assert losses == ["cldice", "dice_ce", "skeleton_recall", "topo_cldice"]
    blocks = [
        (compose_train(f"loss={name}").loss.generic, compose_train(f"loss={name}").loss.deep_supervision)
        for name in losses
    ]
    assert all(b == blocks[0] for b in blocks)
    for name in losses:
        assert "generic:" not in (CONFIG_DIR / "loss" / f"{name}.yaml").read_text()


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
    kwargs = dict(
        dims=int(cfg.dataset.dims),
        in_channels=int(cfg.dataset.in_channels),
        num_classes=int(cfg.dataset.num_classes),
        patch_size=patch,
    )
    with torch.device("meta"):
        if backbone == "hrnet" and cfg.dataset.dims == 3:
            with pytest.raises(ValueError, match="2D only"):
                build_model(cfg.backbone, **kwargs)
            return
        out = build_model(cfg.backbone, **kwargs).eval()(torch.empty(1, kwargs["in_channels"], *patch))
    assert tuple(out.shape) == (1, kwargs["num_classes"], *patch)
