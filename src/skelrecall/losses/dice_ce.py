"""nnU-Net's default loss: cross-entropy + soft Dice (the "generic" loss of the paper, Eq. 2).

Soft Dice (nnU-Net's ``MemoryEfficientSoftDiceLoss``), per sample and foreground class c (or per
class over the whole batch when ``batch_dice``)::

    tp_c = sum_i P_ic Y_ic,   fp_c + fn_c = sum_i P_ic + sum_i Y_ic - 2 tp_c
    dice_c = (2 tp_c + smooth) / max(2 tp_c + fp_c + fn_c + smooth, 1e-8)
    L_dice = -mean_{b, c} dice_c

Total: ``L = weight_ce * CE + weight_dice * L_dice``.

Sign convention: like nnU-Net we add ``-dice`` (so the loss lies in ``[CE - 1, CE]`` and a perfect
prediction gives ``-1`` for the Dice part), not ``1 - dice``. The two differ by a constant only:
the gradients, the optimum, the ``w = 0`` equality of the compound loss and every comparison
between runs are the same; only the logged value is shifted by ``weight_dice``.

``ignore_label`` (nnU-Net semantics): voxels with this label are excluded from CE
(``ignore_index``) and from Dice (mask); if a batch holds only ignored voxels the CE term is 0.
``loss_mask`` (optional, (B,1,*spatial), 1 = counts) masks both terms as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    as_float,
    check_inputs,
    check_mask,
    fg_channels,
    one_hot,
    probabilities,
    resolve_activation,
    sum_axes,
)


def soft_dice(
    probs: torch.Tensor, onehot: torch.Tensor, *, batch_dice: bool, smooth: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-class soft Dice, shape (C,) if ``batch_dice`` else (B, C); inputs already channel-selected."""
    axes = sum_axes(probs.ndim, batch_dice)
    if mask is not None:
        probs = probs * mask
        onehot = onehot * mask
    tp = (probs * onehot).sum(axes)
    denom = probs.sum(axes) + onehot.sum(axes)  # = 2 tp + fp + fn
    return (2 * tp + smooth) / torch.clamp(denom + smooth, min=1e-8)


class DiceCELoss(nn.Module):
    """CE + soft Dice over foreground classes (nnU-Net default). ``forward(logits, target, loss_mask=None)``.

    Args:
        batch_dice: sum the Dice statistics over the batch as well (nnU-Net's ``batch_dice``).
        smooth: Dice smoothing (nnU-Net: 1e-5).
        ignore_label: label value excluded from both terms (nnU-Net's ignore label), or None.
        softmax / sigmoid: activation; sigmoid is for a single-channel binary output (BCE + Dice).
        include_background: softmax only; include channel 0 in the Dice (nnU-Net: False).
        weight_ce, weight_dice: term weights (nnU-Net: 1, 1).
    """

    def __init__(
        self,
        batch_dice: bool = False,
        smooth: float = 1e-5,
        ignore_label: int | None = None,
        softmax: bool = True,
        sigmoid: bool = False,
        include_background: bool = False,
        weight_ce: float = 1.0,
        weight_dice: float = 1.0,
    ):
        super().__init__()
        self.activation = resolve_activation(softmax, sigmoid)
        self.batch_dice = bool(batch_dice)
        self.smooth = float(smooth)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        self.include_background = bool(include_background)
        self.weight_ce = float(weight_ce)
        self.weight_dice = float(weight_dice)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_inputs(logits, target, activation=self.activation, ignore_label=self.ignore_label)
        check_mask(logits, loss_mask)
        logits = as_float(logits)
        mask = None if loss_mask is None else loss_mask.to(logits.dtype)
        target_dice = target
        if self.ignore_label is not None:
            valid = target != self.ignore_label
            target_dice = torch.where(valid, target, torch.zeros_like(target))
            mask = valid.to(logits.dtype) if mask is None else mask * valid
        loss = logits.new_zeros(())
        if self.weight_dice != 0:
            start = fg_channels(self.activation, self.include_background)
            probs = probabilities(logits, self.activation)[:, start:]
            with torch.no_grad():
                onehot = one_hot(target_dice, logits.shape[1], self.activation, logits.dtype)[:, start:]
            dc = soft_dice(probs, onehot, batch_dice=self.batch_dice, smooth=self.smooth, mask=mask)
            loss = loss + self.weight_dice * (-dc.mean())
        if self.weight_ce != 0:
            loss = loss + self.weight_ce * self._ce(logits, target, mask)
        return loss

    def _ce(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.activation == "softmax":
            if mask is None:
                return F.cross_entropy(logits, target[:, 0].long())
            t = torch.where(mask[:, 0] > 0, target[:, 0], torch.zeros_like(target[:, 0])).long()
            ce = F.cross_entropy(logits, t, reduction="none")
        else:
            t = torch.where(target == 1, 1.0, 0.0).to(logits.dtype)
            if mask is None:
                return F.binary_cross_entropy_with_logits(logits, t)
            ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")[:, 0]
        m = mask[:, 0]
        # Mean over counted voxels; 0 (with a gradient path) when nothing counts, like nnU-Net.
        return (ce * m).sum() / torch.clamp(m.sum(), min=1.0)
