"""Skeleton Recall (Eq. 1): gather version == one-hot version == direct formula."""

import numpy as np
import pytest
import torch

from skelrecall.losses import SkeletonRecallLoss


def reference_recall(logits, skel, *, batch_dice, smooth, sigmoid=False, mask=None):
    """-(1/|C|) sum_c (sum_i S_ic P_ic + s) / (sum_i S_ic + s), loops in float64."""
    z = logits.detach().double().numpy()
    s = skel.numpy()[:, 0]
    m = np.ones_like(s, dtype=float) if mask is None else mask.numpy()[:, 0].astype(float)
    if sigmoid:
        p = {1: 1 / (1 + np.exp(-z[:, 0]))}
    else:
        e = np.exp(z - z.max(1, keepdims=True))
        pr = e / e.sum(1, keepdims=True)
        p = {c: pr[:, c] for c in range(1, z.shape[1])}
    vals = []
    for c, pc in p.items():
        sc = (s == c) * m
        if batch_dice:
            vals.append(((sc * pc).sum() + smooth) / ((sc).sum() + smooth))
        else:
            vals += [((sc[b] * pc[b]).sum() + smooth) / (sc[b].sum() + smooth) for b in range(z.shape[0])]
    return -np.mean(vals)


@pytest.mark.parametrize("spatial", [(16, 12), (6, 8, 7)])
@pytest.mark.parametrize("classes", [1, 2, 5])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_gather_equals_one_hot_and_reference(spatial, classes, batch_dice):
    torch.manual_seed(classes)
    sigmoid = classes == 1
    kw = dict(batch_dice=batch_dice, softmax=not sigmoid, sigmoid=sigmoid)
    x1 = torch.randn(3, classes, *spatial, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    skel = torch.randint(0, max(classes, 2), (3, 1, *spatial)) * (torch.rand(3, 1, *spatial) < 0.3)
    if classes > 2:
        skel[1][skel[1] == 2] = 0  # one class absent from one sample: recall (0+s)/(0+s) = 1
    mask = (torch.rand(3, 1, *spatial) < 0.8).float()
    a = SkeletonRecallLoss(**kw)(x1, skel, loss_mask=mask)
    b = SkeletonRecallLoss(one_hot=True, **kw)(x2, skel, loss_mask=mask)
    ref = reference_recall(x1, skel, batch_dice=batch_dice, smooth=1e-5, sigmoid=sigmoid, mask=mask)
    assert a.item() == pytest.approx(ref, abs=1e-6)
    assert abs(a.item() - b.item()) <= 1e-6
    a.backward()
    b.backward()
    assert torch.isfinite(x1.grad).all() and x1.grad.abs().sum() > 0
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-5)


def test_recall_is_minus_one_when_skeleton_fully_covered():
    skel = torch.zeros(1, 1, 10, 10, dtype=torch.long)
    skel[0, 0, 5, 2:8] = 2
    logits = torch.full((1, 3, 10, 10), -20.0)
    logits[:, 2] = 20.0
    assert SkeletonRecallLoss()(logits, skel).item() == pytest.approx(-1.0, abs=1e-6)
    logits[:, 2], logits[:, 1] = -20.0, 20.0  # class 1 predicted where the skeleton is class 2
    assert SkeletonRecallLoss()(logits, skel).item() == pytest.approx(-0.5, abs=1e-6)  # class 1 absent: 1


def test_ignore_label_counts_as_background():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    skel = torch.randint(0, 3, (2, 1, 8, 8))
    with_ignore = skel.clone()
    with_ignore[..., :2] = 3
    cleaned = with_ignore.clone()
    cleaned[cleaned == 3] = 0
    assert SkeletonRecallLoss(ignore_label=3)(x, with_ignore).item() == pytest.approx(
        SkeletonRecallLoss()(x, cleaned).item(), abs=1e-7
    )
    with pytest.raises(ValueError, match="skeleton"):
        SkeletonRecallLoss()(x, with_ignore)


def test_half_precision_logits():
    x = torch.randn(1, 3, 8, 8).half()
    skel = torch.randint(0, 3, (1, 1, 8, 8))
    assert SkeletonRecallLoss()(x, skel).dtype == torch.float32
