"""HRNetV2 (W18 / W18-Small / W48) with an FCN head, built from mmsegmentation 1.2.2's own classes (2D only).

The architecture is mmseg's ``configs/_base_/models/fcn_hr18.py`` (W48: ``fcn_hr48_*``):
``HRNet`` backbone (stage 1: one Bottleneck module, 4 blocks, 64 channels; stages 2-4: 1, 4 and 3
modules of BasicBlocks, 4 blocks per branch, branch widths ``(W, 2W, 4W, 8W)``; W18-Small, mmseg's
``fcn_hr18s``: 2 blocks everywhere and 1, 3 and 2 modules in stages 2-4) and ``FCNHead``
with ``input_transform='resize_concat'`` over all four branches, one 1x1 conv with
``15W`` channels (the concatenated width), no dropout, no input concat. BatchNorm replaces mmseg's
SyncBN (single process; Lightning can convert it with ``sync_batchnorm``). The head predicts at
1/4 of the input size; we upsample its logits bilinearly (``align_corners=False``) to the input size.

Input normalisation (``normalize_imagenet=True``): ``(x / pixel_max - mean) / std`` with the
ImageNet RGB statistics mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) (mmseg's
``SegDataPreProcessor`` uses the same on the 0-255 scale). Inputs are expected in
``[0, pixel_max]`` (default 1.0, set 255 for uint8-scale images). A 1-channel input is repeated to
three channels first (so the ImageNet stem weights apply unchanged) and then normalised with the
RGB statistics. With normalisation off, any number of input channels is accepted (the stem takes
``in_channels``) except that pretrained weights then need a matching stem.

mmcv-lite (pure Python) lacks ``mmcv._ext``, so ``import mmseg.models`` fails on ``mmcv.ops``;
HRNet and FCNHead use no compiled op, so before importing mmseg we register a placeholder module
as ``mmcv.ops`` whose members raise if anything ever calls them. With full mmcv the real ops are used.

Weights: random init (mmseg's: Kaiming for convs, BN weight 1; head classifier N(0, 0.01)) when
``pretrained`` is None; otherwise a checkpoint file path (or URL, which needs network access) read
with mmengine's ``CheckpointLoader``: either a backbone-only checkpoint (ImageNet HRNetV2, keys
``conv1.weight`` ...) or a full mmseg segmentor checkpoint (keys ``backbone.*``, ``decode_head.*``;
a classifier of another class count is skipped).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HRNET_VARIANTS", "HRNetFCN", "build_hrnet", "hrnet_extra", "import_mmseg"]

#: HRNetV2 variants: (width W, small depth) -- "small" is mmseg's fcn_hr18s (HRNetV2-W18-Small)
HRNET_VARIANTS = {"w18": (18, False), "w18_small": (18, True), "w48": (48, False)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LOG = logging.getLogger(__name__)
INSTALL_HINT = "pip install -e '.[hrnet]'  (mmsegmentation==1.2.2 mmcv-lite==2.1.0 mmengine ftfy regex)"


def _placeholder_ops() -> types.ModuleType:
    """A stand-in for ``mmcv.ops`` whose every member raises when used (compiled ops are missing)."""
    module = types.ModuleType("mmcv.ops")
    module.__doc__ = "skelrecall placeholder: mmcv-lite has no compiled ops (mmcv._ext)."

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        class _Missing:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise ImportError(
                    f"mmcv.ops.{name} needs full mmcv with compiled ops; skelrecall's HRNet + FCN head does not use it"
                )

            def __call__(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
                raise ImportError(f"mmcv.ops.{name} needs full mmcv with compiled ops")

        _Missing.__name__ = name
        return _Missing

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def import_mmseg() -> types.ModuleType:
    """Import ``mmseg.models`` (registering the ``mmcv.ops`` placeholder if mmcv has no compiled ops).

    Raises ImportError naming the pip command if mmsegmentation / mmcv / mmengine are missing.
    """
    missing = [m for m in ("mmcv", "mmengine", "mmseg", "ftfy", "regex") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"HRNet backbone needs the optional packages {missing}; install them with: {INSTALL_HINT}")
    if "mmcv.ops" not in sys.modules and importlib.util.find_spec("mmcv._ext") is None:
        import mmcv

        sys.modules["mmcv.ops"] = mmcv.ops = _placeholder_ops()  # type: ignore[attr-defined]
    try:
        import mmseg.models
    except ImportError as err:
        raise ImportError(
            f"importing mmseg.models failed ({err}); install the HRNet extra with: {INSTALL_HINT}"
        ) from err
    return mmseg.models


def hrnet_extra(width: int, small: bool = False) -> dict:
    """mmseg's HRNetV2 ``extra`` stage description for width ``W`` (fcn_hr18 / fcn_hr48 configs;
    ``small``: fcn_hr18s, 2 blocks per branch and 3 / 2 modules in stages 3 / 4)."""
    w, b = int(width), 2 if small else 4
    return dict(
        stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(b,), num_channels=(64,)),
        stage2=dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=(b,) * 2, num_channels=(w, 2 * w)),
        stage3=dict(
            num_modules=3 if small else 4,
            num_branches=3,
            block="BASIC",
            num_blocks=(b,) * 3,
            num_channels=(w, 2 * w, 4 * w),
        ),
        stage4=dict(
            num_modules=2 if small else 3,
            num_branches=4,
            block="BASIC",
            num_blocks=(b,) * 4,
            num_channels=(w, 2 * w, 4 * w, 8 * w),
        ),
    )


@contextlib.contextmanager
def _quiet_mm() -> Iterator[None]:
    """Silence mmengine's per-parameter init logging and mmcv-lite / mmseg deprecation warnings."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmcv|mmseg|mmengine)(\..*)?")
            yield
    finally:
        logger.setLevel(level)


def _init_weights(module: nn.Module) -> None:
    """mmseg's random init, as mmengine's ``BaseModule.init_weights`` applies it, without its bookkeeping.

    mmengine walks the modules parents first and applies each ``BaseModule``'s ``init_cfg`` (HRNet:
    Kaiming normal, fan_out, for convs and constant 1 for norms; FCNHead: N(0, 0.01) for ``conv_seg``;
    mmcv's ConvModule initialises itself when built). Its per-parameter logging of which initialiser
    touched what costs seconds per model, so we call mmengine's ``initialize`` on the same configs.
    """
    from mmengine.model import BaseModule, initialize

    for sub in module.modules():
        if isinstance(sub, BaseModule) and not sub.is_init:
            cfgs = sub.init_cfg if isinstance(sub.init_cfg, list) else [sub.init_cfg] if sub.init_cfg else []
            cfgs = [c for c in cfgs if c.get("type") != "Pretrained"]
            if cfgs:
                initialize(sub, cfgs)
            sub.is_init = True


class HRNetFCN(nn.Module):
    """HRNetV2 backbone + FCN head; ``forward(x: (B, C, H, W)) -> logits (B, num_classes, H, W)``."""

    def __init__(
        self,
        variant: str = "w18",
        in_channels: int = 3,
        num_classes: int = 2,
        normalize_imagenet: bool = True,
        pixel_max: float = 1.0,
    ) -> None:
        super().__init__()
        if variant not in HRNET_VARIANTS:
            raise ValueError(f"unknown HRNet variant {variant!r}; available: {sorted(HRNET_VARIANTS)}")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        if normalize_imagenet and in_channels not in (1, 3):
            raise ValueError(
                f"normalize_imagenet needs 1 or 3 input channels (RGB statistics), got {in_channels}; "
                f"set normalize_imagenet: false"
            )
        if pixel_max <= 0:
            raise ValueError(f"pixel_max must be > 0, got {pixel_max}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmcv|mmseg)(\..*)?")
            models = import_mmseg()
        width, small = HRNET_VARIANTS[variant]
        self.variant = variant
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.normalize_imagenet = bool(normalize_imagenet)
        self.pixel_max = float(pixel_max)
        self.deep_supervision = False
        self.ds_scales = [(1, 1)]
        self.ds_weights = [1.0]
        stem_channels = 3 if self.normalize_imagenet else in_channels
        norm_cfg = dict(type="BN", requires_grad=True)
        with _quiet_mm():
            self._build(models, width, small, stem_channels, norm_cfg)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _build(self, models: types.ModuleType, width: int, small: bool, stem_channels: int, norm_cfg: dict) -> None:
        self.backbone = models.backbones.HRNet(
            extra=hrnet_extra(width, small), in_channels=stem_channels, norm_cfg=norm_cfg, norm_eval=False
        )
        branches = [width, 2 * width, 4 * width, 8 * width]
        self.decode_head = models.decode_heads.FCNHead(
            in_channels=branches,
            in_index=(0, 1, 2, 3),
            channels=sum(branches),
            input_transform="resize_concat",
            kernel_size=1,
            num_convs=1,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=self.num_classes,
            out_channels=self.num_classes,
            threshold=0.5 if self.num_classes == 1 else None,
            norm_cfg=norm_cfg,
            align_corners=False,
        )
        if not next(self.parameters()).is_meta:  # meta device (shape-only builds) has no data to init
            _init_weights(self.backbone)
            _init_weights(self.decode_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        size = x.shape[2:]
        if self.normalize_imagenet:
            if self.in_channels == 1:
                x = x.expand(-1, 3, -1, -1)
            x = (x / self.pixel_max - self.mean) / self.std
        logits = self.decode_head(self.backbone(x))  # (B, K, H/4, W/4)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def load_pretrained(self, source: str, trusted: bool = False) -> dict[str, list[str]]:
        """Load a backbone-only or full mmseg checkpoint from a file path (or URL); returns missing/skipped keys.

        Reads with mmengine's ``CheckpointLoader`` (``torch.load`` with torch's safe ``weights_only``
        default). Checkpoints that pickle other objects (mmengine runner checkpoints: numpy arrays,
        message hub) need ``trusted=True``, which unpickles the local file fully: only for files you trust.
        """
        from mmengine.runner import CheckpointLoader

        is_url = "://" in source
        if not is_url and not os.path.isfile(source):
            raise FileNotFoundError(
                f"HRNet pretrained checkpoint not found: {source!r} (backbone config field "
                f"'pretrained'); give a local file path"
            )
        try:
            if trusted and not is_url:
                ckpt = torch.load(source, map_location="cpu", weights_only=False)
            else:
                with _quiet_mm():
                    ckpt = CheckpointLoader.load_checkpoint(source, map_location="cpu")
        except Exception as err:  # network errors differ by backend; name the source and the fix
            if is_url:
                hint = " (URLs need network access; download the file and give its local path)"
            elif "weights_only" in str(err) and not trusted:
                hint = " (the file pickles more than tensors; if you trust it set trust_checkpoint: true)"
            else:
                hint = ""
            raise RuntimeError(f"cannot load HRNet pretrained checkpoint {source!r}: {err}{hint}") from err
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise RuntimeError(f"HRNet checkpoint {source!r} holds no state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if not any(k.startswith(("backbone.", "decode_head.")) for k in state):
            state = {f"backbone.{k}": v for k, v in state.items()}
        own = self.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(k for k in state if k not in usable)
        if not any(k.startswith("backbone.") for k in usable):
            raise RuntimeError(
                f"HRNet checkpoint {source!r} matches no backbone weight of HRNetV2-"
                f"{self.variant.upper()} (first keys: {list(state)[:5]})"
            )
        missing = sorted(k for k in own if k not in usable)
        self.load_state_dict(usable, strict=False)
        return {"missing": missing, "skipped": skipped}


def build_hrnet(
    dims: int,
    in_channels: int,
    num_classes: int,
    patch_size: Sequence[int] | None = None,
    variant: str = "w18",
    pretrained: str | None = None,
    deep_supervision: bool = False,
    normalize_imagenet: bool = True,
    pixel_max: float = 1.0,
    trust_checkpoint: bool = False,
) -> HRNetFCN:
    """Build HRNetV2-``variant`` + FCN head for 2D input; ``pretrained`` = checkpoint path/URL or None.

    ``patch_size`` is accepted for a uniform builder signature; HRNet works on any input size.
    """
    if dims != 2:
        raise ValueError(f"HRNet is 2D only, got dims={dims}; use the unet backbone for 3D")
    if patch_size is not None and len(tuple(patch_size)) != 2:
        raise ValueError(f"HRNet patch_size must have 2 axes, got {tuple(patch_size)}")
    if deep_supervision:
        raise ValueError("HRNet has a single output: set deep_supervision: false in the backbone config")
    if pretrained and "://" not in str(pretrained) and not os.path.isfile(str(pretrained)):
        raise FileNotFoundError(
            f"HRNet pretrained checkpoint not found: {str(pretrained)!r} (backbone config "
            f"field 'pretrained'); give a local file path"
        )
    model = HRNetFCN(
        variant=str(variant).lower(),
        in_channels=in_channels,
        num_classes=num_classes,
        normalize_imagenet=normalize_imagenet,
        pixel_max=pixel_max,
    )
    if pretrained:
        report = model.load_pretrained(str(pretrained), trusted=trust_checkpoint)
        _LOG.info(
            "HRNet %s: loaded %s; %d model weights not in it, %d checkpoint entries skipped",
            variant,
            pretrained,
            len(report["missing"]),
            len(report["skipped"]),
        )
    return model
