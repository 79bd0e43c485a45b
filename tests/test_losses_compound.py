"""Compound loss (Eq. 2), deep supervision and build_loss from the configs."""

import pytest
import torch

from skelrecall.losses import (
    CompoundLoss,
    DeepSupervisionLoss,
    DiceCELoss,
    SkeletonRecallLoss,
    SoftclDiceLoss,
    TopoClDiceLoss,
    build_loss,
    ds_weights,
)


def _resolved(name, *overrides):
    """A loss config as composed for training, as a plain dict (the dataset's ignore label resolved)."""
    from omegaconf import OmegaConf

    from skelrecall.configs import compose

    return OmegaConf.to_container(compose([f"loss={name}", *overrides]).loss, resolve=True)


def _data(c=3, spatial=(16, 16), seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(2, c, *spatial, requires_grad=True)
    target = torch.randint(0, max(c, 2), (2, 1, *spatial))
    skel = target * (torch.rand(2, 1, *spatial) < 0.4)
    return logits, target, skel


@pytest.mark.parametrize("conn", [SkeletonRecallLoss(), SoftclDiceLoss(iterations=3), None])
def test_w_zero_is_exactly_generic(conn):
    logits, target, skel = _data()
    generic = DiceCELoss()
    total, parts = CompoundLoss(generic, conn, w=0.0)(logits, target, skel)
    assert torch.equal(total, generic(logits, target))
    assert parts["connectivity"].item() == 0


@pytest.mark.parametrize(
    "conn", [SkeletonRecallLoss(), SoftclDiceLoss(iterations=3), TopoClDiceLoss(iterations=2, probabilistic=False)]
)
def test_total_is_generic_plus_w_connectivity(conn):
    logits, target, skel = _data()
    total, parts = CompoundLoss(DiceCELoss(), conn, w=0.7)(logits, target, skel)
    arg = skel if conn.target_kind == "skeleton" else target
    expect = DiceCELoss()(logits, target) + 0.7 * conn(logits, arg)
    assert total.item() == pytest.approx(expect.item(), abs=1e-6)
    assert total.item() == pytest.approx((parts["generic"] + 0.7 * parts["connectivity"]).item(), abs=1e-6)
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_skeleton_is_required_and_w_must_be_non_negative():
    logits, target, _ = _data()
    with pytest.raises(ValueError, match="skeleton"):
        CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0)(logits, target)
    with pytest.raises(ValueError, match="w must be"):
        CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=-1.0)


def test_ds_weights_are_nnunet():
    w = ds_weights(4)
    assert w == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75, 0.0])
    assert ds_weights(1) == [1.0]


def _pyramid(c=3, sizes=(32, 16, 8, 4), seed=0, dims=2):
    torch.manual_seed(seed)
    outs = [torch.randn(2, c, *(s,) * dims, requires_grad=True) for s in sizes]
    target = torch.randint(0, c, (2, 1, *(sizes[0],) * dims))
    skel = target * (torch.rand(2, 1, *(sizes[0],) * dims) < 0.4)
    return outs, target, skel


def test_deep_supervision_downsamples_targets_nearest():
    outs, target, skel = _pyramid()
    loss = CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0)
    total, parts = DeepSupervisionLoss(loss)(outs, target, skel)
    w = ds_weights(len(outs))
    expect = 0.0
    for i, o in enumerate(outs[:-1]):
        step = 2**i
        expect = expect + w[i] * loss(o, target[..., ::step, ::step], skel[..., ::step, ::step])[0]
    assert total.item() == pytest.approx(expect.item(), abs=1e-6)
    assert total.item() == pytest.approx((parts["generic"] + parts["connectivity"]).item(), abs=1e-6)
    total.backward()
    assert outs[1].grad.abs().sum() > 0 and outs[-1].grad is None  # lowest resolution has weight 0


def test_deep_supervision_accepts_per_scale_lists():
    outs, target, skel = _pyramid(dims=3, sizes=(8, 4, 2))
    targets = [target[..., ::s, ::s, ::s] for s in (1, 2, 4)]
    skels = [skel[..., ::s, ::s, ::s] for s in (1, 2, 4)]
    ds = DeepSupervisionLoss(CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0))
    assert ds(outs, targets, skels)[0].item() == pytest.approx(ds(outs, target, skel)[0].item(), abs=1e-6)


def test_full_res_only_ignores_lower_outputs():
    outs, target, skel = _pyramid()
    ds = DeepSupervisionLoss(CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0), full_res_only=True)
    total, _ = ds(outs, target, skel)
    total.backward()
    assert outs[0].grad.abs().sum() > 0
    assert all(o.grad is None for o in outs[1:])
    # changing the lower outputs changes nothing; value = nnU-Net's first weight x full-res loss
    outs2 = [outs[0]] + [torch.randn_like(o) for o in outs[1:]]
    assert torch.equal(ds(outs2, target, skel)[0], total)
    single = CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0)(outs[0], target, skel)[0]
    assert total.item() == pytest.approx(ds_weights(4)[0] * single.item(), abs=1e-6)


def test_single_tensor_is_plain_loss():
    logits, target, skel = _data()
    loss = CompoundLoss(DiceCELoss(), SkeletonRecallLoss(), w=1.0)
    assert torch.equal(DeepSupervisionLoss(loss)(logits, target, skel)[0], loss(logits, target, skel)[0])


@pytest.mark.parametrize("name", ["dice_ce", "skeleton_recall", "cldice", "topo_cldice"])
@pytest.mark.parametrize("num_classes,dims", [(1, 2), (3, 2), (2, 3)])
def test_build_loss_from_every_config(name, num_classes, dims):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(_resolved(name))
    assert cfg.name == name and "w" in cfg
    ds = build_loss(cfg, num_classes=num_classes, dims=dims)
    assert isinstance(ds, DeepSupervisionLoss)
    assert ds.loss.w == cfg.w
    if name == "cldice":
        assert ds.loss.connectivity.iterations == cfg.connectivity.iterations == 10
    size = 12 if dims == 2 else 6
    torch.manual_seed(0)
    outs = [
        torch.randn(1, num_classes, *(size,) * dims, requires_grad=True),
        torch.randn(1, num_classes, *(size // 2,) * dims, requires_grad=True),
    ]
    target = torch.randint(0, 2, (1, 1, *(size,) * dims))
    total, parts = ds(outs, target, target)
    total.backward()
    assert torch.isfinite(total) and set(parts) == {"generic", "connectivity"}
    if name == "dice_ce":
        assert ds.loss.connectivity is None and parts["connectivity"].item() == 0


def test_build_loss_errors_name_the_field():
    cfg = _resolved("skeleton_recall")
    with pytest.raises(ValueError, match="unknown keys"):
        build_loss({**cfg, "wieght": 1}, num_classes=2, dims=2)
    with pytest.raises(ValueError, match="_target_"):
        build_loss(
            {**cfg, "connectivity": {**cfg["connectivity"], "_target_": "skelrecall.losses.Nope"}},
            num_classes=2,
            dims=2,
        )
    with pytest.raises(ValueError, match="connectivity settings"):
        build_loss({**cfg, "connectivity": {**cfg["connectivity"], "smoth": 1}}, num_classes=2, dims=2)
    with pytest.raises(ValueError, match="connectivity is null"):
        build_loss({**cfg, "connectivity": None}, num_classes=2, dims=2)
    with pytest.raises(ValueError, match="dims"):
        build_loss(cfg, num_classes=2, dims=4)


def test_build_loss_takes_the_network_weights():
    cfg = _resolved("skeleton_recall")
    ds = build_loss(cfg, num_classes=2, dims=2, ds_weights=[4, 2, 1])
    assert ds.scale_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    with pytest.raises(ValueError, match="3 entries"):
        ds.scale_weights(4)


def test_build_loss_passes_the_ignore_label_on():
    cfg = _resolved("skeleton_recall")
    cfg["generic"]["ignore_label"] = 3
    ds = build_loss(cfg, num_classes=3, dims=2)
    assert ds.loss.generic.ignore_label == 3 and ds.loss.connectivity.ignore_label == 3
