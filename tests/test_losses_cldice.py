"""Soft clDice: soft skeleton and loss equal a direct scipy/numpy implementation of the formulas."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from skelrecall.losses import SoftclDiceLoss, soft_skeleton


def _cross(ndim):
    return ndi.generate_binary_structure(ndim, 1)


def ref_soft_skeleton(x, iterations):
    """x: (..., *spatial) float64 array of one image; min/max filters that ignore the outside."""
    fp = _cross(x.ndim)
    erode = lambda a: ndi.minimum_filter(a, footprint=fp, mode="constant", cval=np.inf)  # noqa: E731
    dilate = lambda a: ndi.maximum_filter(a, size=3, mode="constant", cval=-np.inf)  # noqa: E731
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    skel = relu(x - dilate(erode(x)))
    for _ in range(iterations):
        x = erode(x)
        delta = relu(x - dilate(erode(x)))
        skel = skel + relu(delta - skel * delta)
    return skel


def ref_cldice(probs, truth, iterations, smooth, batch_dice):
    """probs, truth: dict class -> (B, *spatial) arrays. Mean over classes (and samples) of 1 - clDice."""
    vals = []
    for c in probs:
        p, t = probs[c], truth[c]
        sp = np.stack([ref_soft_skeleton(p[b], iterations) for b in range(len(p))])
        st = np.stack([ref_soft_skeleton(t[b], iterations) for b in range(len(t))])
        groups = [slice(None)] if batch_dice else [slice(b, b + 1) for b in range(len(p))]
        for g in groups:
            tprec = ((sp[g] * t[g]).sum() + smooth) / (sp[g].sum() + smooth)
            tsens = ((st[g] * p[g]).sum() + smooth) / (st[g].sum() + smooth)
            vals.append(1 - 2 * tprec * tsens / (tprec + tsens))
    return np.mean(vals)


@pytest.mark.parametrize("spatial", [(20, 18), (9, 10, 8)])
def test_soft_skeleton_matches_reference(spatial):
    torch.manual_seed(1)
    x = torch.rand(2, 1, *spatial, dtype=torch.float64)
    ours = soft_skeleton(x, 4).numpy()
    for b in range(2):
        np.testing.assert_allclose(ours[b, 0], ref_soft_skeleton(x[b, 0].numpy(), 4), atol=1e-12)


@pytest.mark.parametrize("spatial", [(20, 18), (9, 10, 8)])
def test_soft_skeleton_channels_last_path_is_the_same(spatial):
    """Many channels are pooled channels-last on CPU (speed): same skeleton and gradient per channel."""
    from skelrecall.losses.cldice import CHANNELS_LAST_FROM

    torch.manual_seed(2)
    x = torch.rand(2, CHANNELS_LAST_FROM, *spatial, dtype=torch.float64, requires_grad=True)
    many = soft_skeleton(x, 4)
    (many * torch.linspace(0, 1, many.numel(), dtype=x.dtype).view(many.shape)).sum().backward()
    for c in (0, CHANNELS_LAST_FROM - 1):
        one = x[:, c : c + 1].detach().clone().requires_grad_(True)  # 1 channel: the plain layout
        skel = soft_skeleton(one, 4)
        torch.testing.assert_close(skel, many[:, c : c + 1], rtol=0, atol=0)
        weights = torch.linspace(0, 1, many.numel(), dtype=x.dtype).view(many.shape)[:, c : c + 1]
        (skel * weights).sum().backward()
        torch.testing.assert_close(one.grad, x.grad[:, c : c + 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("spatial", [(24, 20), (10, 9, 11)])
@pytest.mark.parametrize("classes", [1, 2, 4])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_loss_matches_reference(spatial, classes, batch_dice):
    torch.manual_seed(classes)
    sigmoid = classes == 1
    logits = torch.randn(2, classes, *spatial, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, max(classes, 2), (2, 1, *spatial))
    loss = SoftclDiceLoss(iterations=3, batch_dice=batch_dice, softmax=not sigmoid, sigmoid=sigmoid)(logits, target)
    z = logits.detach().numpy()
    y = target.numpy()[:, 0]
    if sigmoid:
        probs, truth = {1: 1 / (1 + np.exp(-z[:, 0]))}, {1: (y == 1).astype(float)}
    else:
        e = np.exp(z - z.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        probs = {c: p[:, c] for c in range(1, classes)}
        truth = {c: (y == c).astype(float) for c in range(1, classes)}
    assert loss.item() == pytest.approx(ref_cldice(probs, truth, 3, 1.0, batch_dice), abs=1e-10)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_single_sigmoid_channel_is_not_constant_and_equals_two_channel_softmax():
    torch.manual_seed(0)
    target = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    target[..., 14:18, 4:28] = 1
    a = torch.randn(1, 1, 32, 32)
    loss = SoftclDiceLoss(sigmoid=True, softmax=False)
    values = {loss(a, target).item(), loss(a * 3 + 1, target).item(), loss(-a, target).item()}
    assert len(values) == 3 and all(0 < v <= 1 for v in values)
    # sigmoid(a) == softmax([0, a])[1]: the binary cases agree
    two = torch.cat([torch.zeros_like(a), a], 1)
    assert SoftclDiceLoss()(two, target).item() == pytest.approx(loss(a, target).item(), abs=1e-6)
    good = target.float() * 40 - 20
    assert loss(good, target).item() == pytest.approx(0.0, abs=1e-4)


def test_background_is_excluded_unless_asked():
    """Default: mean over classes 1..C-1 (checked against the reference above); class 0 only on request."""
    torch.manual_seed(0)
    target = torch.randint(0, 3, (1, 1, 16, 16))
    logits = torch.randn(1, 3, 16, 16)
    loss = SoftclDiceLoss(iterations=3)
    with_bg = loss(logits, target)
    inc = SoftclDiceLoss(iterations=3, include_background=True)(logits, target)
    assert with_bg.item() != pytest.approx(inc.item())
