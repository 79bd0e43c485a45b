"""Backbones: nnU-Net's plain U-Net (planning, shapes, deep supervision) and HRNetV2 + FCN head."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from skelrecall.models import build_model
from skelrecall.models.unet import build_unet, features_per_stage, plan_unet

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "backbone"

# Paper, Table 4 (nnU-Net patch sizes) -> stages and strides of nnU-Net v2's planner
# (isotropic spacing: pool every axis >= 8 = 2 * min feature map size 4; 3x3(x3) kernels).
S2 = (2, 2)
PAPER_PLANS = {
    (512, 512): ((1, 1),) + (S2,) * 7,  # 512 -> 4: 7 poolings, 8 stages
    (224, 224): ((1, 1),) + (S2,) * 5,  # 224 -> 7: 5 poolings, 6 stages
    (80, 160, 192): ((1, 1, 1),) + ((2, 2, 2),) * 4 + ((1, 2, 2),),  # 80 -> 5; 160 -> 5, 192 -> 6
    (80, 192, 160): ((1, 1, 1),) + ((2, 2, 2),) * 4 + ((1, 2, 2),),
}


@pytest.mark.parametrize("patch", list(PAPER_PLANS))
def test_plan_matches_nnunet_for_paper_patch_sizes(patch):
    plan = plan_unet(patch)
    assert plan.strides == PAPER_PLANS[patch]
    assert plan.n_stages == len(PAPER_PLANS[patch])
    assert all(k == (3,) * len(patch) for k in plan.kernel_sizes)
    assert plan.padded_patch_size() == patch  # the paper's patches need no padding
    feats = features_per_stage(plan.n_stages, len(patch))
    if len(patch) == 2:
        assert feats[:6] == (32, 64, 128, 256, 512, 512)[: len(feats)]
    else:
        assert feats == (32, 64, 128, 256, 320, 320)


def test_plan_anisotropic_spacing_pools_inplane_first():
    # spacing 3 x 0.5 x 0.5: z joins pooling once in-plane spacing is within a factor 2 of it
    plan = plan_unet((20, 256, 256), spacing=(3.0, 0.5, 0.5))
    assert plan.strides == ((1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 2, 2))
    assert plan.kernel_sizes[:3] == ((1, 3, 3), (1, 3, 3), (3, 3, 3))
    assert plan.kernel_sizes[-1] == (3, 3, 3)
    assert plan.must_be_divisible_by == (4, 64, 64)


def _expected_params(plan, in_ch, n_cls, feats, n_heads):
    """Parameter count of nnU-Net's PlainConvUNet, from its definition (conv bias on, affine IN)."""
    total = 0
    for s, f in enumerate(feats):
        k = math.prod(plan.kernel_sizes[s])
        cin = in_ch if s == 0 else feats[s - 1]
        total += (cin * f * k + f + 2 * f) + (f * f * k + f + 2 * f)  # encoder: 2 x (conv + IN)
        if s < len(feats) - 1:
            up = math.prod(plan.strides[s + 1])
            total += feats[s + 1] * f * up + f  # transposed conv
            total += (2 * f * f * k + f + 2 * f) + (f * f * k + f + 2 * f)  # decoder convs
    total += sum(feats[s] * n_cls + n_cls for s in range(n_heads))
    return total


@pytest.mark.parametrize("patch", list(PAPER_PLANS))
def test_paper_unets_build_on_meta_with_nnunet_structure(patch):
    dims = len(patch)
    with torch.device("meta"):
        model = build_unet(dims, 3 if dims == 2 else 1, 2, patch)
    plan = model.plan
    assert model.features == features_per_stage(plan.n_stages, dims)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == _expected_params(plan, 3 if dims == 2 else 1, 2, model.features, len(model.heads))
    # nnU-Net trains on all decoder outputs but the lowest: n_stages - 2 outputs
    assert len(model.ds_scales) == plan.n_stages - 2
    assert model.ds_scales[1] == (2,) * dims


def _check_backward(model, outputs):
    loss = sum(o.float().pow(2).mean() for o in outputs)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient (unused parameter)"
        assert torch.isfinite(p.grad).all(), name


def test_unet_2d_deep_supervision_shapes_backward_and_eval():
    torch.manual_seed(0)
    patch = (64, 64)
    model = build_unet(2, 3, 2, patch, base_features=4, max_features=16)
    assert model.plan.n_stages == 5
    assert model.ds_scales == [(1, 1), (2, 2), (4, 4)]
    assert model.ds_weights == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    x = torch.randn(2, 3, *patch)
    outputs = model.train()(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 2, 64 // s[0], 64 // s[1]) for s in model.ds_scales]
    _check_backward(model, outputs)
    model.eval()
    with torch.no_grad():
        full = model(x)
    assert isinstance(full, torch.Tensor) and full.shape == (2, 2, 64, 64)
    # eval output equals the highest-resolution deep-supervision output (instance norm: no running stats)
    assert torch.allclose(full, outputs[0].detach(), atol=1e-5)


def test_unet_3d_shapes_and_backward():
    torch.manual_seed(0)
    patch = (16, 32, 32)
    model = build_unet(3, 1, 3, patch, base_features=4, max_features=16)
    assert model.plan.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    x = torch.randn(1, 1, *patch)
    outputs = model.train()(x)
    expected = [(1, 3) + tuple(p // s for p, s in zip(patch, sc)) for sc in model.ds_scales]
    assert [tuple(o.shape) for o in outputs] == expected == [(1, 3, 16, 32, 32), (1, 3, 8, 16, 16)]
    _check_backward(model, outputs)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 3, *patch)


def test_unet_single_output_and_lowest_head_options():
    model = build_unet(2, 1, 2, (32, 32), deep_supervision=False, base_features=4)
    out = model.train()(torch.randn(1, 1, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 32, 32)
    assert len(model.heads) == 1
    full = build_unet(2, 1, 2, (64, 64), base_features=4, max_features=8, ds_include_lowest=True)
    outs = full.train()(torch.randn(1, 1, 64, 64))
    assert len(outs) == full.plan.n_stages - 1 == 4
    assert outs[-1].shape[-2:] == (8, 8)
    assert full.ds_weights[-1] == 0.0 and sum(full.ds_weights) == pytest.approx(1.0)


def test_unet_rejects_bad_input():
    model = build_unet(2, 1, 2, (32, 32), base_features=4)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r"\(112, 112\)"):
        build_unet(2, 1, 2, (100, 100))
    with pytest.raises(TypeError, match="unknown UNet option"):
        build_unet(2, 1, 2, (32, 32), widht=3)
    with pytest.raises(ValueError, match="3 axes"):
        build_unet(2, 1, 2, (32, 32, 32))


def test_build_model_from_yaml_and_unknown_name():
    cfg = OmegaConf.load(CONFIGS / "unet.yaml")
    cfg.base_features, cfg.max_features = 4, 8
    model = build_model(cfg, dims=2, in_channels=1, num_classes=2, patch_size=[32, 32])
    assert model.deep_supervision and model.features == (4, 8, 8, 8)
    with pytest.raises(ValueError, match=r"available: \['hrnet', 'unet'\]"):
        build_model({"name": "resnet"}, dims=2, in_channels=1, num_classes=2, patch_size=(32, 32))


def test_hrnet_missing_packages_message(monkeypatch):
    from skelrecall.models import hrnet

    real = importlib.util.find_spec
    monkeypatch.setattr(hrnet.importlib.util, "find_spec", lambda n, *a: None if n == "mmseg" else real(n, *a))
    with pytest.raises(ImportError, match=r"pip install -e '\.\[hrnet\]'"):
        hrnet.import_mmseg()


def test_hrnet_w18_forward_backward_and_checkpoint(tmp_path):
    pytest.importorskip("mmseg", reason="HRNet needs the optional extra: pip install -e '.[hrnet]'")
    torch.manual_seed(0)
    # the ImageNet-normalisation path (off in our pipeline, which z-scores inputs): 1 channel -> RGB stem
    cfg = OmegaConf.merge(OmegaConf.load(CONFIGS / "hrnet.yaml"), {"normalize_imagenet": True})
    model = build_model(cfg, dims=2, in_channels=3, num_classes=2, patch_size=(64, 64))
    assert 9.5e6 < sum(p.numel() for p in model.parameters()) < 9.8e6  # HRNetV2-W18 + FCN: 9.6 M
    out = model.train()(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 2, 64, 64)
    _check_backward(model, [out])

    torch.save(model.backbone.state_dict(), tmp_path / "backbone.pth")
    gray = build_model(
        {**cfg, "pretrained": str(tmp_path / "backbone.pth")}, dims=2, in_channels=1, num_classes=2, patch_size=(36, 28)
    )
    assert torch.equal(gray.backbone.conv1.weight, model.backbone.conv1.weight)
    assert not torch.equal(gray.decode_head.conv_seg.weight, model.decode_head.conv_seg.weight)
    with torch.no_grad():
        x = torch.rand(1, 1, 36, 28)
        y = gray.eval()(x)
        assert y.shape == (1, 2, 36, 28)
        # a 1-channel input is the gray image repeated as RGB, then ImageNet-normalised
        model.load_state_dict(gray.state_dict())
        assert torch.allclose(model.eval()(x.repeat(1, 3, 1, 1)), y, atol=1e-5)

    # a full segmentor checkpoint with non-tensor metadata: refused unless trusted, then loads every weight
    import numpy as np

    full = tmp_path / "segmentor.pth"
    torch.save(
        {"meta": {"seed": np.arange(2)}, "state_dict": {f"module.{k}": v for k, v in gray.state_dict().items()}}, full
    )
    with pytest.raises(RuntimeError, match="trust_checkpoint"):
        model.load_pretrained(str(full))
    assert model.load_pretrained(str(full), trusted=True) == {"missing": [], "skipped": []}


def test_hrnet_errors_and_w48_size(tmp_path):
    pytest.importorskip("mmseg", reason="HRNet needs the optional extra: pip install -e '.[hrnet]'")
    base = {"name": "hrnet"}
    with pytest.raises(ValueError, match="2D only"):
        build_model(base, dims=3, in_channels=1, num_classes=2, patch_size=(8, 8, 8))
    with pytest.raises(ValueError, match="single output"):
        build_model({**base, "deep_supervision": True}, dims=2, in_channels=3, num_classes=2, patch_size=(8, 8))
    with pytest.raises(ValueError, match="variant"):
        build_model({**base, "variant": "w32x"}, dims=2, in_channels=3, num_classes=2, patch_size=(8, 8))
    with pytest.raises(FileNotFoundError, match="pretrained"):
        build_model(
            {**base, "pretrained": str(tmp_path / "none.pth")}, dims=2, in_channels=3, num_classes=2, patch_size=(8, 8)
        )
    with torch.device("meta"):
        w48 = build_model({**base, "variant": "w48"}, dims=2, in_channels=3, num_classes=2, patch_size=(8, 8))
    assert 65e6 < sum(p.numel() for p in w48.parameters()) < 67e6  # HRNetV2-W48 + FCN: 65.8 M
    with torch.device("meta"):
        small = build_model({**base, "variant": "w18_small"}, dims=2, in_channels=3, num_classes=2, patch_size=(8, 8))
    assert sum(p.numel() for p in small.backbone.parameters()) == 3_860_720  # mmseg fcn_hr18s backbone
    assert [len(m) for m in (small.backbone.stage3, small.backbone.stage4)] == [3, 2]
