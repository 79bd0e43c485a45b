"""DiceCELoss equals a direct per-sample, per-class implementation of nnU-Net's CE + soft Dice."""

import numpy as np
import pytest
import torch

from skelrecall.losses import DiceCELoss


def reference_dice_ce(logits, target, *, batch_dice, smooth, sigmoid=False, ignore_label=None):
    """Loops over samples and classes in float64: CE (mean over counted voxels) - mean Dice."""
    z = logits.detach().double().numpy()
    y = target.numpy()[:, 0]
    valid = np.ones_like(y, dtype=bool) if ignore_label is None else y != ignore_label
    yd = np.where(valid, y, 0)
    if sigmoid:
        p = 1 / (1 + np.exp(-z))
        probs = {0: p[:, 0]}
        truth = {0: (yd == 1)}
        pc = p[:, 0]
        ce_vox = -(np.where(yd == 1, np.log(pc), np.log(1 - pc)))
    else:
        e = np.exp(z - z.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        probs = {c: p[:, c] for c in range(1, z.shape[1])}
        truth = {c: yd == c for c in range(1, z.shape[1])}
        ce_vox = -np.log(np.take_along_axis(p, yd[:, None], 1)[:, 0])
    ce = ce_vox[valid].mean() if valid.any() else 0.0
    dices = []
    for c in probs:
        pc, tc = probs[c] * valid, truth[c] * valid
        if batch_dice:
            tp, sp, st = (pc * tc).sum(), pc.sum(), tc.sum()
            dices.append((2 * tp + smooth) / max(sp + st + smooth, 1e-8))
        else:
            for b in range(z.shape[0]):
                tp, sp, st = (pc[b] * tc[b]).sum(), pc[b].sum(), tc[b].sum()
                dices.append((2 * tp + smooth) / max(sp + st + smooth, 1e-8))
    return ce - np.mean(dices)


@pytest.mark.parametrize("shape", [(2, 12, 10), (2, 6, 7, 5)])
@pytest.mark.parametrize("classes", [1, 2, 4])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_matches_reference(shape, classes, batch_dice):
    torch.manual_seed(classes + len(shape))
    b, spatial = shape[0], shape[1:]
    sigmoid = classes == 1
    logits = torch.randn(b, classes, *spatial, requires_grad=True)
    target = torch.randint(0, max(classes, 2), (b, 1, *spatial))
    loss_fn = DiceCELoss(batch_dice=batch_dice, smooth=1e-5, softmax=not sigmoid, sigmoid=sigmoid)
    loss = loss_fn(logits, target)
    ref = reference_dice_ce(logits, target, batch_dice=batch_dice, smooth=1e-5, sigmoid=sigmoid)
    assert loss.item() == pytest.approx(ref, abs=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_ignore_label_matches_reference_and_gets_no_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 9, 9, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 9, 9))
    target[:, :, :3] = 3  # ignore label = number of classes, like nnU-Net
    loss = DiceCELoss(ignore_label=3)(logits, target)
    ref = reference_dice_ce(logits, target, batch_dice=False, smooth=1e-5, ignore_label=3)
    assert loss.item() == pytest.approx(ref, abs=1e-5)
    loss.backward()
    assert logits.grad[:, :, :3].abs().max() == 0
    assert logits.grad[:, :, 3:].abs().max() > 0


def test_perfect_prediction_is_minus_one():
    target = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    target[..., 2:5, 2:5] = 1
    logits = torch.stack([(target[:, 0] == c).float() * 40 - 20 for c in range(2)], 1)
    assert DiceCELoss()(logits, target).item() == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize("bad", ["float_target", "range", "shape", "one_channel_softmax"])
def test_bad_input_is_named(bad):
    logits = torch.randn(1, 3, 4, 4)
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    kwargs = {}
    if bad == "float_target":
        target = target.float()
    elif bad == "range":
        target[0, 0, 0, 0] = 7
    elif bad == "shape":
        target = target[..., :3]
    else:
        logits = logits[:, :1]
    with pytest.raises(ValueError, match="target|softmax"):
        DiceCELoss(**kwargs)(logits, target)
