"""Whole-image / whole-volume prediction by sliding windows (MONAI), as nnU-Net does it.

Windows of the training patch size, 50% overlap, Gaussian importance weighting of the logits
(``mode="gaussian"``), optional mirroring test-time augmentation (the softmax averaged over all
combinations of flipped spatial axes; nnU-Net's default, off in the CPU profiles for speed).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    mirror: bool = False,
) -> torch.Tensor:
    """Softmax probabilities ``(1, K, *spatial)`` of one case ``image`` shaped ``(1, C, *spatial)``."""
    was_training = model.training
    model.eval()
    spatial_axes = list(range(2, image.ndim))
    flips = [()] + (
        [c for r in range(1, len(spatial_axes) + 1) for c in itertools.combinations(spatial_axes, r)] if mirror else []
    )
    total = None
    for axes in flips:
        x = torch.flip(image, axes) if axes else image
        logits = sliding_window_inference(
            x,
            roi_size=tuple(patch_size),
            sw_batch_size=sw_batch_size,
            predictor=model,
            overlap=overlap,
            mode="gaussian",
        )
        probs = torch.softmax(logits.float(), dim=1)
        probs = torch.flip(probs, axes) if axes else probs
        total = probs if total is None else total + probs
    model.train(was_training)
    return total / len(flips)


def predict_labels(model: nn.Module, image: torch.Tensor, patch_size: Sequence[int], **kwargs) -> torch.Tensor:
    """Label map ``(*spatial)`` (argmax of :func:`predict_probabilities`) of ``image`` ``(1, C, *spatial)``."""
    return predict_probabilities(model, image, patch_size, **kwargs).argmax(dim=1)[0]
