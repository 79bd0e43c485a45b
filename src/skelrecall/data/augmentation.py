"""nnU-Net-like augmentation of training patches, built from ``configs/augmentation/<name>.yaml``.

A MONAI dictionary transform over ``image`` (float, ``(C, *spatial)``) and ``label`` (as float; the
caller rounds it back), applied in this order, each with its probability per patch:

- ``affine``: rotation (``rotate_2d`` degrees in 2D, ``rotate_3d`` about every axis in 3D) and
  scaling by ``1 +- scale`` (label: nearest neighbour, outside filled with 0);
- ``noise``: additive Gaussian noise with standard deviation ``std``;
- ``blur``: Gaussian smoothing with sigma drawn from ``sigma`` per axis;
- ``brightness``: multiplication by ``1 +- factor``;
- ``contrast``: scaling by ``1 +- factor`` around the patch mean;
- ``gamma``: ``x -> x ** gamma`` (on the patch's min-max range), gamma from ``range``;
- ``low_resolution``: zoom out by a factor from ``zoom`` and back (linear);
- ``mirror``: flip along each spatial axis.

All randomness comes from the transform's random state, which the caller seeds per patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def build_augmentation(dims: int, cfg: Mapping[str, Any] | None):
    """The transform of ``cfg`` (an ``augmentation`` config) for ``dims``-D patches, or None if disabled."""
    from monai import transforms as T

    if not cfg or not cfg.get("enabled", False):
        return None
    keys = ["image", "label"]
    a = cfg["affine"]
    rotate = (np.deg2rad(a["rotate_2d"]),) if dims == 2 else (np.deg2rad(a["rotate_3d"]),) * 3
    sigma = tuple(cfg["blur"]["sigma"])
    return T.Compose(
        [
            T.RandAffined(
                keys,
                prob=a["prob"],
                rotate_range=rotate,
                scale_range=(a["scale"],) * dims,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            T.RandGaussianNoised("image", prob=cfg["noise"]["prob"], std=cfg["noise"]["std"]),
            T.RandGaussianSmoothd("image", prob=cfg["blur"]["prob"], sigma_x=sigma, sigma_y=sigma, sigma_z=sigma),
            T.RandScaleIntensityd("image", prob=cfg["brightness"]["prob"], factors=cfg["brightness"]["factor"]),
            T.RandScaleIntensityFixedMeand("image", prob=cfg["contrast"]["prob"], factors=cfg["contrast"]["factor"]),
            T.RandAdjustContrastd("image", prob=cfg["gamma"]["prob"], gamma=tuple(cfg["gamma"]["range"])),
            T.RandSimulateLowResolutiond(
                "image",
                prob=cfg["low_resolution"]["prob"],
                zoom_range=tuple(cfg["low_resolution"]["zoom"]),
                upsample_mode="bilinear" if dims == 2 else "trilinear",
            ),
            *[T.RandFlipd(keys, prob=cfg["mirror"]["prob"], spatial_axis=axis) for axis in range(dims)],
        ]
    )
