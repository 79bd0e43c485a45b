"""Network backbones: nnU-Net's plain U-Net (2D/3D) and HRNetV2 + FCN head (2D, via mmsegmentation).

``build_model(cfg, dims=..., in_channels=..., num_classes=..., patch_size=...)`` builds the backbone
named by ``cfg["name"]`` (a dict or an omegaconf ``DictConfig``, e.g. ``configs/backbone/unet.yaml``);
every other key of ``cfg`` is passed on as an option of that backbone's builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from skelrecall.models.unet import PlainConvUNet, UNetPlan, build_unet, plan_unet

__all__ = ["BACKBONES", "PlainConvUNet", "UNetPlan", "build_model", "build_unet", "plan_unet"]


def _build_hrnet(**kwargs: Any) -> nn.Module:
    from skelrecall.models.hrnet import build_hrnet  # lazy: needs the optional mmseg extra

    return build_hrnet(**kwargs)


#: backbone name -> builder(dims, in_channels, num_classes, patch_size, **options)
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "unet": build_unet,
    "hrnet": _build_hrnet,
}


def _to_dict(cfg: Any) -> dict[str, Any]:
    try:  # omegaconf DictConfig -> plain dict with interpolations resolved
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"backbone config must be a mapping or DictConfig, got {type(cfg).__name__}")


def build_model(cfg: Any, *, dims: int, in_channels: int, num_classes: int, patch_size: Sequence[int]) -> nn.Module:
    """Build the backbone described by ``cfg`` (``name`` in :data:`BACKBONES`, the rest its options).

    Returns a module mapping ``(B, in_channels, *patch)`` to logits ``(B, num_classes, *patch)``
    (a list of multi-scale logits in training mode when the backbone has deep supervision on).
    """
    options = _to_dict(cfg)
    name = options.pop("name", None)
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone name {name!r} in backbone config; available: {sorted(BACKBONES)}")
    patch = tuple(int(p) for p in patch_size)
    return BACKBONES[name](dims=dims, in_channels=in_channels, num_classes=num_classes, patch_size=patch, **options)
