"""Shared input handling for the losses.

Conventions (MONAI-like, nnU-Net-compatible):

* ``logits``: float tensor ``(B, C, *spatial)`` with 2 or 3 spatial dimensions.
* ``target`` / ``skeleton``: integer label map ``(B, 1, *spatial)``; values in ``[0, C)`` for the
  softmax case, ``{0, 1}`` for the single-channel sigmoid case (plus ``ignore_label`` if set).
* ``loss_mask``: optional ``(B, 1, *spatial)`` tensor, 1 where a voxel counts, 0 where it does not.
* ``softmax=True`` (default): probabilities over channels; class 0 is background.
  ``sigmoid=True``: independent channels, used for the binary single-channel case (C = 1) in which
  channel 0 *is* the foreground.
"""

from __future__ import annotations

import torch


def resolve_activation(softmax: bool, sigmoid: bool) -> str:
    """Return ``"softmax"`` or ``"sigmoid"``; exactly one of the flags must be set."""
    if softmax == sigmoid:
        raise ValueError(f"exactly one of softmax/sigmoid must be True (got softmax={softmax}, sigmoid={sigmoid})")
    return "softmax" if softmax else "sigmoid"


def check_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str,
    name: str = "target",
    ignore_label: int | None = None,
    check_values: bool = True,
) -> None:
    """Raise ``ValueError`` naming the argument when shapes, dtypes or label values are wrong."""
    if logits.ndim not in (4, 5):
        raise ValueError(f"logits must be (B, C, H, W) or (B, C, D, H, W); got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor; got {logits.dtype}")
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{name} must be an integer label map of shape {expected}; got {tuple(target.shape)}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer (long) label map; got {target.dtype}")
    c = logits.shape[1]
    if activation == "sigmoid" and c != 1:
        raise ValueError(
            f"sigmoid=True is for a single-channel binary output; got C={c} channels "
            "(use softmax=True for several classes)"
        )
    if activation == "softmax" and c < 2:
        raise ValueError(
            f"softmax needs at least 2 channels (background + foreground); got C={c}. "
            "Use sigmoid=True for a single-channel binary output."
        )
    if check_values and target.numel():
        hi = c if activation == "softmax" else 2
        bad = (target < 0) | (target >= hi)
        if ignore_label is not None:
            bad &= target != ignore_label
        if bool(bad.any()):
            vals = torch.unique(target[bad])[:5].tolist()
            raise ValueError(
                f"{name} has label values {vals} outside [0, {hi - 1}] "
                f"(C={c}, {activation}, ignore_label={ignore_label})"
            )


def check_mask(logits: torch.Tensor, loss_mask: torch.Tensor | None) -> None:
    if loss_mask is None:
        return
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(loss_mask.shape) != expected:
        raise ValueError(f"loss_mask must have shape {expected}; got {tuple(loss_mask.shape)}")


def as_float(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast so that sums over many voxels stay exact enough."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    logits = as_float(logits)
    return torch.softmax(logits, 1) if activation == "softmax" else torch.sigmoid(logits)


def one_hot(target: torch.Tensor, num_channels: int, activation: str, dtype: torch.dtype) -> torch.Tensor:
    """``(B, 1, *s)`` labels -> ``(B, num_channels, *s)`` float; sigmoid: the label itself as channel 0."""
    if activation == "sigmoid":
        return (target == 1).to(dtype)
    out = torch.zeros((target.shape[0], num_channels, *target.shape[2:]), dtype=dtype, device=target.device)
    return out.scatter_(1, target.long(), 1.0)


def sum_axes(ndim: int, batch: bool) -> tuple[int, ...]:
    """Axes to sum for per-class statistics: spatial axes, plus the batch axis if ``batch``."""
    spatial = tuple(range(2, ndim))
    return (0, *spatial) if batch else spatial


def fg_channels(activation: str, include_background: bool | None) -> int:
    """Index of the first channel that counts.

    Softmax: channel 0 is background and is dropped unless ``include_background`` is True.
    Sigmoid: every channel is a foreground channel (the single-channel binary case has only the
    foreground), so nothing is dropped; ``include_background=False`` there would leave no channel
    (the MONAI pitfall behind its issue 8239) and is therefore ignored.
    """
    if activation == "sigmoid":
        return 0
    return 0 if include_background else 1
