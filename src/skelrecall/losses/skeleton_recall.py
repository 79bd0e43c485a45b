"""Skeleton Recall loss (Kirchhoff et al., ECCV 2024, Eq. 1).

With P the softmax (or sigmoid) prediction and S the one-hot *tubed skeleton* of the label map::

    recall_c = (sum_i S_ic P_ic + smooth) / max(sum_i S_ic + smooth, 1e-8)
    L = -(1/|C|) sum_{c in C} recall_c

over the foreground classes C (background excluded), per sample and then averaged over the batch,
or with the sums taken over the batch too when ``batch_dice`` (like the official code, whose
``smooth`` is 1e-5; a class absent from the skeleton gives recall 1 and no gradient).

Memory: the official implementation one-hot encodes the skeleton and keeps the full softmax
(both O(C*N)). The numerator only needs, per voxel, the probability of the skeleton's own class,
``P_{i, s_i} = exp(z_{i, s_i} - logsumexp_c z_ic)`` (a gather, O(N)), and the denominator is a
per-class voxel count; both are accumulated per class with ``scatter_add``. ``one_hot=True``
selects the official-style computation (kept as the reference and for the resource benchmark);
both give the same value and gradients (tested to 1e-6).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import as_float, check_inputs, check_mask, one_hot, probabilities, resolve_activation, sum_axes


class SkeletonRecallLoss(nn.Module):
    """Eq. 1 of the paper. ``forward(logits, skeleton, loss_mask=None)``.

    ``skeleton`` is the tubed-skeleton label map (B, 1, *spatial), integer, values in [0, C)
    (softmax) or {0, 1} (sigmoid, C = 1). Voxels equal to ``ignore_label`` count as background.

    Args:
        batch_dice: sum over the batch before dividing (official ``batch_dice``).
        smooth: 1e-5 as in the official code.
        softmax / sigmoid: activation (sigmoid only for a single-channel binary output).
        one_hot: use the official O(C*N) one-hot computation instead of the gather.
        ignore_label: skeleton value that is treated as background, or None.
    """

    target_kind = "skeleton"

    def __init__(
        self,
        batch_dice: bool = False,
        smooth: float = 1e-5,
        softmax: bool = True,
        sigmoid: bool = False,
        one_hot: bool = False,
        ignore_label: int | None = None,
    ):
        super().__init__()
        self.activation = resolve_activation(softmax, sigmoid)
        self.batch_dice = bool(batch_dice)
        self.smooth = float(smooth)
        self.one_hot = bool(one_hot)
        self.ignore_label = None if ignore_label is None else int(ignore_label)

    def forward(
        self, logits: torch.Tensor, skeleton: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_inputs(logits, skeleton, activation=self.activation, name="skeleton", ignore_label=self.ignore_label)
        check_mask(logits, loss_mask)
        logits = as_float(logits)
        if self.ignore_label is not None:
            skeleton = torch.where(skeleton == self.ignore_label, torch.zeros_like(skeleton), skeleton)
        if self.activation == "sigmoid" or self.one_hot:
            num, cnt = self._stats_one_hot(logits, skeleton, loss_mask)
        else:
            num, cnt = self._stats_gather(logits, skeleton, loss_mask)
        if self.batch_dice:
            num, cnt = num.sum(0), cnt.sum(0)
        recall = (num + self.smooth) / torch.clamp(cnt + self.smooth, min=1e-8)
        return -recall.mean()

    def _stats_one_hot(self, logits, skeleton, loss_mask):
        """Official-style: (B, C_fg) numerator and count from the one-hot skeleton."""
        start = 1 if self.activation == "softmax" else 0
        probs = probabilities(logits, self.activation)[:, start:]
        with torch.no_grad():
            s = one_hot(skeleton, logits.shape[1], self.activation, logits.dtype)[:, start:]
            if loss_mask is not None:
                s = s * loss_mask.to(logits.dtype)
        axes = sum_axes(logits.ndim, batch=False)
        return (probs * s).sum(axes), s.sum(axes)

    def _stats_gather(self, logits, skeleton, loss_mask):
        """Memory-efficient: gather the own-class probability, accumulate per class (B, C-1)."""
        b, c = logits.shape[:2]
        idx = skeleton.long()
        log_p_own = logits.gather(1, idx) - torch.logsumexp(logits, dim=1, keepdim=True)  # (B,1,*s)
        with torch.no_grad():
            weight = (idx > 0).to(logits.dtype)
            if loss_mask is not None:
                weight = weight * loss_mask.to(logits.dtype)
        # One flat index per (sample, class): a 1-D scatter_add has a deterministic CUDA path.
        flat_idx = (idx + c * torch.arange(b, device=idx.device).view(b, *[1] * (idx.ndim - 1))).reshape(-1)
        num = logits.new_zeros(b * c).scatter_add(0, flat_idx, (log_p_own.exp() * weight).reshape(-1))
        with torch.no_grad():
            cnt = logits.new_zeros(b * c).scatter_add_(0, flat_idx, weight.reshape(-1))
        return num.view(b, c)[:, 1:], cnt.view(b, c)[:, 1:]
