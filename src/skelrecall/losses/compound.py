"""Compound loss (paper Eq. 2), deep supervision, and ``build_loss`` from a loss config.

``CompoundLoss``: ``L = L_generic + w * L_connectivity``; with ``w == 0`` (or no connectivity term)
the connectivity term is not computed at all, so the result is bitwise the generic loss.

``DeepSupervisionLoss`` (nnU-Net): outputs highest resolution first; weights ``1/2^i``, the lowest
resolution gets 0, normalised to sum 1. Label maps (target, skeleton) are brought to each output's
shape by nearest-neighbour interpolation, unless lists of per-scale maps are passed.
``full_res_only=True`` reproduces the released official Skeleton Recall code, whose wrapper zips
the outputs with a one-element list: only ``outputs[0]`` receives loss, scaled by the normalised
first weight ``weights[0]`` (about 0.53 for 6 outputs) exactly as nnU-Net's wrapper does.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .dice_ce import DiceCELoss


class CompoundLoss(nn.Module):
    """``forward(logits, target, skeleton=None, loss_mask=None) -> (total, parts)``.

    Computed in float32 with autocast off, whatever precision the network runs in.
    ``parts = {"generic": ..., "connectivity": ...}`` are detached scalars; the connectivity part
    is 0 when it is not computed (``w == 0`` or no connectivity loss). The connectivity loss gets
    ``skeleton`` if its ``target_kind`` is ``"skeleton"``, else the label map ``target``.
    """

    def __init__(self, generic: nn.Module, connectivity: nn.Module | None = None, w: float = 0.0):
        super().__init__()
        w = float(w)
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"loss weight w must be a finite number >= 0; got {w}")
        if connectivity is not None and getattr(connectivity, "target_kind", None) not in ("skeleton", "label"):
            raise ValueError(f"{type(connectivity).__name__} has no target_kind 'skeleton' or 'label'")
        self.generic = generic
        self.connectivity = connectivity
        self.w = w

    @property
    def needs_skeleton(self) -> bool:
        return self.connectivity is not None and self.w != 0 and self.connectivity.target_kind == "skeleton"

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        skeleton: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # float32 whatever the network's precision (bf16-mixed): softmax, the soft skeletons' pooling
        # and the sums in the Dice/recall denominators lose too much in bfloat16
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._forward(logits.float(), target, skeleton, loss_mask)

    def _forward(self, logits, target, skeleton, loss_mask):
        generic = self.generic(logits, target, loss_mask=loss_mask)
        if self.connectivity is None or self.w == 0:
            return generic, {"generic": generic.detach(), "connectivity": torch.zeros_like(generic.detach())}
        if self.connectivity.target_kind == "skeleton":
            if skeleton is None:
                raise ValueError(
                    f"{type(self.connectivity).__name__} needs the tubed skeleton; "
                    "pass skeleton=... (the data module must produce it)"
                )
            conn = self.connectivity(logits, skeleton, loss_mask=loss_mask)
        else:
            conn = self.connectivity(logits, target, loss_mask=loss_mask)
        return generic + self.w * conn, {"generic": generic.detach(), "connectivity": conn.detach()}


def ds_weights(n: int) -> list[float]:
    """nnU-Net deep-supervision weights: 1/2^i, last (lowest resolution) 0, normalised to sum 1."""
    if n < 1:
        raise ValueError("deep supervision needs at least one output")
    if n == 1:
        return [1.0]
    w = [1.0 / 2**i for i in range(n)]
    w[-1] = 0.0
    total = sum(w)
    return [x / total for x in w]


def _resize_labels(labels: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    if tuple(labels.shape[2:]) == tuple(shape):
        return labels
    # nearest on float is exact for label values < 2^24
    return F.interpolate(labels.float(), size=tuple(shape), mode="nearest").to(labels.dtype)


class DeepSupervisionLoss(nn.Module):
    """Deep supervision around a ``CompoundLoss``.

    ``forward(outputs, target, skeleton=None, loss_mask=None) -> (total, parts)``. ``outputs`` is a
    list of logits (highest resolution first) or a single tensor (then the plain loss). ``target``
    and ``skeleton`` are full-resolution maps (downsampled here, nearest) or lists with one map per
    output. ``parts`` are the same weighted sums over scales as ``total`` (detached), so that
    ``total == parts["generic"] + w * parts["connectivity"]`` at every setting.

    Args:
        weights: per-output weights (default nnU-Net's, see ``ds_weights``); normalised to sum 1.
        full_res_only: only ``outputs[0]`` gets loss (released official behaviour).
    """

    def __init__(self, loss: CompoundLoss, weights: Sequence[float] | None = None, full_res_only: bool = False):
        super().__init__()
        self.loss = loss
        self.weights = None if weights is None else [float(x) for x in weights]
        self.full_res_only = bool(full_res_only)

    @property
    def needs_skeleton(self) -> bool:
        """Whether the wrapped loss uses the tubed skeleton (the data module then computes it)."""
        return self.loss.needs_skeleton

    def scale_weights(self, n: int) -> list[float]:
        if self.weights is None:
            return ds_weights(n)
        if len(self.weights) != n:
            raise ValueError(
                f"deep_supervision.weights has {len(self.weights)} entries but the network returned {n} outputs"
            )
        total = sum(self.weights)
        if total <= 0:
            raise ValueError(f"deep_supervision.weights must have a positive sum; got {self.weights}")
        return [x / total for x in self.weights]

    def forward(self, outputs, target, skeleton=None, loss_mask=None):
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, _first(target), _first(skeleton), loss_mask)
        outputs = list(outputs)
        weights = self.scale_weights(len(outputs))
        if self.full_res_only:
            weights = [weights[0]] + [0.0] * (len(outputs) - 1)
        total, parts = None, {}
        for i, (out, wi) in enumerate(zip(outputs, weights)):
            if wi == 0:
                continue
            shape = out.shape[2:]
            t = _at_scale(target, i, shape, "target")
            s = None if skeleton is None else _at_scale(skeleton, i, shape, "skeleton")
            m = None if loss_mask is None else _at_scale(loss_mask, i, shape, "loss_mask")
            li, pi = self.loss(out, t, s, m)
            total = wi * li if total is None else total + wi * li
            for k, v in pi.items():
                parts[k] = wi * v if k not in parts else parts[k] + wi * v
        return total, parts


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def _at_scale(x, i: int, shape, name: str) -> torch.Tensor:
    if isinstance(x, (list, tuple)):
        if i >= len(x):
            raise ValueError(f"{name} list has {len(x)} scales but output {i} needs one")
        if tuple(x[i].shape[2:]) != tuple(shape):
            raise ValueError(f"{name}[{i}] has spatial shape {tuple(x[i].shape[2:])}, output {i} has {tuple(shape)}")
        return x[i]
    return _resize_labels(x, shape)


# ----------------------------------------------------------------------------- config -> loss


def _to_dict(cfg: Any) -> dict:
    if cfg is None:
        return {}
    try:  # omegaconf DictConfig
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ValueError(f"loss config must be a mapping; got {type(cfg).__name__}")
    return dict(cfg)


def _import(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"loss config: connectivity._target_ {path!r} cannot be imported ({e})") from e


_KNOWN_KEYS = {"name", "w", "generic", "connectivity", "deep_supervision"}


def build_loss(
    cfg: Any, *, num_classes: int, dims: int, ds_weights: Sequence[float] | None = None
) -> DeepSupervisionLoss:
    """Build the training loss from a loss config (dict or DictConfig, see ``configs/loss/*.yaml``).

    Keys: ``name``, ``w`` (weight of the connectivity term), ``generic`` (``DiceCELoss`` kwargs),
    ``connectivity`` (``null`` or ``{_target_: dotted.path, **kwargs}``), ``deep_supervision``
    (``{full_res_only: bool, weights: list | null}``). ``num_classes`` counts the background;
    ``num_classes == 1`` means a single sigmoid channel (binary), otherwise softmax.

    ``ds_weights``: per-output weights of the network actually used (e.g. ``model.ds_weights`` of
    ``skelrecall.models.unet``, which does not return nnU-Net's weight-0 lowest output); it wins
    over ``deep_supervision.weights``. Without either, ``ds_weights(n)`` assumes the output list
    includes that lowest output and gives the last output weight 0.
    """
    cfg = _to_dict(cfg)
    name = cfg.get("name", "<unnamed>")
    unknown = set(cfg) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"loss config {name!r}: unknown keys {sorted(unknown)}; expected {sorted(_KNOWN_KEYS)}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3; got {dims}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (1 = single sigmoid channel); got {num_classes}")
    act = {"softmax": num_classes > 1, "sigmoid": num_classes == 1}
    try:
        w = float(cfg.get("w", 0.0))
    except (TypeError, ValueError) as e:
        raise ValueError(f"loss config {name!r}: w must be a number; got {cfg.get('w')!r}") from e
    generic_kwargs = _to_dict(cfg.get("generic"))
    generic_kwargs.pop("_target_", None)
    try:
        generic = DiceCELoss(**{**act, **generic_kwargs})
    except TypeError as e:
        raise ValueError(f"loss config {name!r}: bad generic settings {generic_kwargs}: {e}") from e
    conn_cfg = cfg.get("connectivity")
    connectivity = None
    if conn_cfg is not None:
        conn_kwargs = _to_dict(conn_cfg)
        target = conn_kwargs.pop("_target_", None)
        if not target:
            raise ValueError(f"loss config {name!r}: connectivity needs a _target_ (dotted class path)")
        cls = _import(target)
        if generic_kwargs.get("ignore_label") is not None:  # the skeleton/label carry the same ignore value
            conn_kwargs.setdefault("ignore_label", generic_kwargs["ignore_label"])
        try:
            connectivity = cls(**{**act, **conn_kwargs})
        except TypeError as e:
            raise ValueError(f"loss config {name!r}: bad connectivity settings for {target}: {e}") from e
    elif w != 0:
        raise ValueError(f"loss config {name!r}: w={w} but connectivity is null")
    ds = _to_dict(cfg.get("deep_supervision"))
    unknown = set(ds) - {"full_res_only", "weights"}
    if unknown:
        raise ValueError(f"loss config {name!r}: unknown deep_supervision keys {sorted(unknown)}")
    weights = ds_weights if ds_weights is not None else ds.get("weights")
    return DeepSupervisionLoss(
        CompoundLoss(generic, connectivity, w), weights=weights, full_res_only=bool(ds.get("full_res_only", False))
    )
