"""nnU-Net's plain convolutional U-Net ("PlainConvUNet") for 2D and 3D, planned from the patch size.

Topology (facts of nnU-Net v2's default ``ExperimentPlanner`` and ``get_pool_and_conv_props``):

* Stage 0 has stride 1. While some axis still has a feature map of at least
  ``2 * min_feature_map_size`` (= 8 with nnU-Net's 4), the next stage downsamples by 2 every
  such axis whose current spacing is within a factor 2 of the smallest spacing among them
  (with isotropic spacing: every axis that is still >= 8). If only one axis would be pooled, it
  must be >= ``3 * min_feature_map_size``. nnU-Net puts no cap on the number of poolings
  (``max_numpool=999999``); ``max_stages`` is our optional cap.
* Convolution kernels are 3 on every axis whose spacing is (or has become, by pooling) within a
  factor 2 of the smallest spacing, 1 otherwise; the bottleneck is always 3x3(x3).
* Features ``min(base * 2**s, max)``: base 32, max 512 in 2D and 320 in 3D.
* Every stage has two conv-InstanceNorm(affine, eps 1e-5)-LeakyReLU(0.01) blocks (conv bias on);
  downsampling is the stride of a stage's first convolution; upsampling is a transposed
  convolution with kernel = stride; skip connections are concatenated; 1x1(x1) convolution heads.
* The patch must be divisible by ``2**num_pool`` on each axis (nnU-Net pads the planned patch).
* Weights: He (Kaiming normal, ``a=1e-2``) initialisation, biases zero (nnU-Net's InitWeights_He).

Deep supervision (facts of nnU-Net v2's network and trainer): the decoder has ``n_stages - 1``
stages, each with a head, and the network returns all their outputs, highest resolution first,
each at its own resolution. The trainer's deep-supervision scales are
``1 / cumprod(strides)[:-1]`` and its loss weights ``1 / 2**i``, normalised, with the weight of
the lowest-resolution output set to 0 (1e-6 under DDP). So nnU-Net trains on every decoder output
except the lowest. We build and return exactly the outputs that carry loss weight (the lowest
head is not built, which avoids unused parameters under DDP); ``ds_include_lowest=True`` builds
and returns it too, as nnU-Net's network does. ``model.ds_scales`` holds the per-output integer
downsampling factors (output shape = patch shape // factor, per axis) and ``model.ds_weights``
nnU-Net's normalised loss weights for the returned outputs (0 for the lowest when included).

The conv-norm-act blocks are MONAI's :class:`monai.networks.blocks.Convolution`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = [
    "NNUNET_BASE_FEATURES",
    "NNUNET_MAX_FEATURES",
    "NNUNET_MIN_FEATURE_MAP_SIZE",
    "PlainConvUNet",
    "UNetPlan",
    "build_unet",
    "features_per_stage",
    "plan_unet",
]

NNUNET_BASE_FEATURES = 32
NNUNET_MAX_FEATURES = {2: 512, 3: 320}
NNUNET_MIN_FEATURE_MAP_SIZE = 4


@dataclass(frozen=True)
class UNetPlan:
    """Network topology planned from a patch size.

    ``strides[s]`` is stage ``s``'s downsampling per axis (``strides[0]`` is all ones);
    ``kernel_sizes[s]`` its convolution kernel; ``must_be_divisible_by`` = ``2**num_pool_per_axis``.
    """

    patch_size: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    num_pool_per_axis: tuple[int, ...]
    must_be_divisible_by: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.strides)

    @property
    def dims(self) -> int:
        return len(self.patch_size)

    def stage_scales(self) -> list[tuple[int, ...]]:
        """Cumulative downsampling factor of every stage's feature map, stage 0 first."""
        scales, current = [], [1] * self.dims
        for stride in self.strides:
            current = [c * s for c, s in zip(current, stride)]
            scales.append(tuple(current))
        return scales

    def padded_patch_size(self) -> tuple[int, ...]:
        """Smallest shape >= ``patch_size`` divisible by ``must_be_divisible_by`` (nnU-Net pads so)."""
        return tuple(-(-p // m) * m for p, m in zip(self.patch_size, self.must_be_divisible_by))


def plan_unet(
    patch_size: Sequence[int],
    spacing: Sequence[float] | None = None,
    min_feature_map_size: int = NNUNET_MIN_FEATURE_MAP_SIZE,
    max_stages: int | None = None,
) -> UNetPlan:
    """Plan strides and kernels the way nnU-Net v2's ``get_pool_and_conv_props`` does.

    ``spacing`` defaults to isotropic (all ones), which gives 3x3(x3) kernels everywhere.
    ``max_stages`` (None = unlimited, as in nnU-Net) caps the number of stages incl. stage 0.
    """
    patch = tuple(int(p) for p in patch_size)
    dims = len(patch)
    if dims not in (2, 3) or any(p < 1 for p in patch):
        raise ValueError(f"patch_size must be 2 or 3 positive integers, got {tuple(patch_size)}")
    spacing = [1.0] * dims if spacing is None else [float(s) for s in spacing]
    if len(spacing) != dims or any(s <= 0 for s in spacing):
        raise ValueError(f"spacing must be {dims} positive numbers, got {spacing}")
    if min_feature_map_size < 1:
        raise ValueError(f"min_feature_map_size must be >= 1, got {min_feature_map_size}")
    if max_stages is not None and max_stages < 1:
        raise ValueError(f"max_stages must be >= 1 or None, got {max_stages}")

    cur_spacing = list(spacing)
    cur_size = [float(p) for p in patch]
    strides: list[tuple[int, ...]] = [(1,) * dims]
    kernel = [3 if s / min(spacing) < 2 else 1 for s in spacing]
    kernels: list[tuple[int, ...]] = [tuple(kernel)]
    num_pool = [0] * dims
    while max_stages is None or len(strides) < max_stages:
        valid = [i for i in range(dims) if cur_size[i] >= 2 * min_feature_map_size]
        if not valid:
            break
        min_valid_spacing = min(cur_spacing[i] for i in valid)
        valid = [i for i in valid if cur_spacing[i] / min_valid_spacing < 2]
        if len(valid) == 1 and cur_size[valid[0]] < 3 * min_feature_map_size:
            break
        if not valid:
            break
        stride = [1] * dims
        for i in valid:
            stride[i] = 2
            num_pool[i] += 1
            cur_spacing[i] *= 2
            cur_size[i] = -(-cur_size[i] // 2)
        strides.append(tuple(stride))
        # kernels become 3 once an axis' spacing is within a factor 2 of the smallest; they stay 3
        kernel = [3 if k == 3 or cur_spacing[i] / min(cur_spacing) < 2 else 1 for i, k in enumerate(kernel)]
        kernels.append(tuple(kernel))
    kernels[-1] = (3,) * dims  # nnU-Net: the bottleneck always uses 3x3(x3)
    return UNetPlan(
        patch_size=patch,
        strides=tuple(strides),
        kernel_sizes=tuple(kernels),
        num_pool_per_axis=tuple(num_pool),
        must_be_divisible_by=tuple(2**n for n in num_pool),
    )


def features_per_stage(
    n_stages: int, dims: int, base_features: int = NNUNET_BASE_FEATURES, max_features: int | None = None
) -> tuple[int, ...]:
    """``min(base * 2**s, max)`` per stage; ``max_features=None`` means nnU-Net's 512 (2D) / 320 (3D)."""
    if base_features < 1:
        raise ValueError(f"base_features must be >= 1, got {base_features}")
    cap = NNUNET_MAX_FEATURES[dims] if max_features is None else int(max_features)
    if cap < base_features:
        raise ValueError(f"max_features ({cap}) must be >= base_features ({base_features})")
    return tuple(min(cap, base_features * 2**s) for s in range(n_stages))


def _conv_block(
    dims: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int], conv_bias: bool
) -> Convolution:
    """conv (same padding) -> InstanceNorm(affine, eps 1e-5) -> LeakyReLU(0.01), MONAI's Convolution."""
    return Convolution(
        spatial_dims=dims,
        in_channels=cin,
        out_channels=cout,
        strides=tuple(stride),
        kernel_size=tuple(kernel),
        adn_ordering="NDA",
        norm=("instance", {"affine": True, "eps": 1e-5}),
        act=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
        bias=conv_bias,
        padding=tuple((k - 1) // 2 for k in kernel),
    )


def _stage(
    dims: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int], n_convs: int, conv_bias: bool
) -> nn.Sequential:
    blocks = [_conv_block(dims, cin, cout, kernel, stride, conv_bias)]
    blocks += [_conv_block(dims, cout, cout, kernel, (1,) * dims, conv_bias) for _ in range(n_convs - 1)]
    return nn.Sequential(*blocks)


class PlainConvUNet(nn.Module):
    """nnU-Net's plain U-Net (see the module docstring for the topology and output conventions).

    ``forward(x)`` with ``x`` of shape ``(B, in_channels, *spatial)``, each spatial size divisible by
    the total stride (``plan.must_be_divisible_by``):
    * training mode and ``deep_supervision``: list of logits, highest resolution first, output ``i``
      of shape ``(B, num_classes, *(spatial // ds_scales[i]))``;
    * otherwise (eval mode, or ``deep_supervision=False``): one tensor ``(B, num_classes, *spatial)``.
    """

    def __init__(
        self,
        plan: UNetPlan,
        in_channels: int,
        num_classes: int,
        features: Sequence[int],
        deep_supervision: bool = True,
        ds_include_lowest: bool = False,
        n_conv_per_stage: int = 2,
        conv_bias: bool = True,
    ) -> None:
        super().__init__()
        dims, n = plan.dims, plan.n_stages
        if n < 2:
            raise ValueError(f"patch_size {plan.patch_size} allows no downsampling; a U-Net needs >= 2 stages")
        if len(features) != n:
            raise ValueError(f"features has {len(features)} entries for {n} stages")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        if n_conv_per_stage < 1:
            raise ValueError(f"n_conv_per_stage must be >= 1, got {n_conv_per_stage}")
        self.plan = plan
        self.dims = dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.features = tuple(int(f) for f in features)
        self.deep_supervision = bool(deep_supervision)
        self.ds_include_lowest = bool(ds_include_lowest)

        self.encoder = nn.ModuleList()
        cin = in_channels
        for s in range(n):
            self.encoder.append(
                _stage(dims, cin, self.features[s], plan.kernel_sizes[s], plan.strides[s], n_conv_per_stage, conv_bias)
            )
            cin = self.features[s]

        # decoder stage s (s = n-2 .. 0) upsamples from stage s+1 to stage s's resolution
        conv = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for s in range(n - 1):
            stride = plan.strides[s + 1]
            self.upsample.append(
                conv(self.features[s + 1], self.features[s], kernel_size=stride, stride=stride, bias=conv_bias)
            )
            self.decoder.append(
                _stage(
                    dims,
                    2 * self.features[s],
                    self.features[s],
                    plan.kernel_sizes[s],
                    (1,) * dims,
                    n_conv_per_stage,
                    conv_bias,
                )
            )

        scales = plan.stage_scales()
        n_out = (n - 1 if self.ds_include_lowest else max(n - 2, 1)) if self.deep_supervision else 1
        head = {2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.heads = nn.ModuleList(head(self.features[s], num_classes, kernel_size=1, bias=True) for s in range(n_out))
        #: per-output integer downsampling factors, highest resolution first
        self.ds_scales: list[tuple[int, ...]] = [scales[s] for s in range(n_out)]
        raw = [0.5**i for i in range(n - 1)]
        raw[-1] = 0.0  # nnU-Net gives the lowest decoder output weight 0
        raw = raw[:n_out] if n_out > 1 else [1.0]
        #: nnU-Net's normalised deep-supervision loss weights for the returned outputs
        self.ds_weights: list[float] = [w / sum(raw) for w in raw]
        self.apply(_init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, {'D, ' if self.dims == 3 else ''}H, W), "
                f"got shape {tuple(x.shape)}"
            )
        div = self.plan.must_be_divisible_by
        if any(size % d for size, d in zip(x.shape[2:], div)):
            raise ValueError(
                f"spatial shape {tuple(x.shape[2:])} must be divisible by {div} "
                f"(the network's total stride per axis); pad the input"
            )
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        want_all = self.deep_supervision and self.training
        outputs: list[torch.Tensor] = []
        x = skips[-1]
        for s in range(len(self.decoder) - 1, -1, -1):
            x = self.decoder[s](torch.cat((self.upsample[s](x), skips[s]), dim=1))
            if want_all and s < len(self.heads):
                outputs.append(self.heads[s](x))
        if not want_all:
            return self.heads[0](x)
        return outputs[::-1]

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims}, strides={self.plan.strides}, features={self.features}, "
            f"deep_supervision={self.deep_supervision}, ds_scales={self.ds_scales}"
        )


def _init_he(module: nn.Module) -> None:
    """nnU-Net's InitWeights_He(1e-2): Kaiming normal with a=1e-2 on (transposed) convs, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        if module.weight.is_meta:
            return
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


_UNET_OPTIONS = (
    "base_features",
    "max_features",
    "spacing",
    "min_feature_map_size",
    "max_stages",
    "ds_include_lowest",
    "n_conv_per_stage",
    "conv_bias",
)


def build_unet(
    dims: int, in_channels: int, num_classes: int, patch_size: Sequence[int], deep_supervision: bool = True, **options
) -> PlainConvUNet:
    """Build nnU-Net's PlainConvUNet planned for ``patch_size``.

    Options (all optional): ``base_features`` (32), ``max_features`` (None = 512 in 2D, 320 in 3D;
    use e.g. base 8 / max 64 for a narrow CPU net), ``spacing`` (None = isotropic),
    ``min_feature_map_size`` (4), ``max_stages`` (None = no cap), ``ds_include_lowest`` (False),
    ``n_conv_per_stage`` (2), ``conv_bias`` (True).
    """
    unknown = sorted(set(options) - set(_UNET_OPTIONS))
    if unknown:
        raise TypeError(f"unknown UNet option(s) {unknown}; known: {list(_UNET_OPTIONS)}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != dims:
        raise ValueError(f"patch_size {tuple(patch_size)} has {len(patch)} axes but dims={dims}")
    plan = plan_unet(
        patch,
        spacing=options.get("spacing"),
        min_feature_map_size=int(options.get("min_feature_map_size") or NNUNET_MIN_FEATURE_MAP_SIZE),
        max_stages=options.get("max_stages"),
    )
    if plan.padded_patch_size() != patch:
        raise ValueError(
            f"patch_size {patch} is not divisible by {plan.must_be_divisible_by} (2**poolings "
            f"per axis); nnU-Net would use {plan.padded_patch_size()}"
        )
    base = options.get("base_features")
    feats = features_per_stage(
        plan.n_stages, dims, NNUNET_BASE_FEATURES if base is None else int(base), options.get("max_features")
    )
    return PlainConvUNet(
        plan,
        in_channels,
        num_classes,
        feats,
        deep_supervision=deep_supervision,
        ds_include_lowest=bool(options.get("ds_include_lowest", False)),
        n_conv_per_stage=int(options.get("n_conv_per_stage", 2)),
        conv_bias=bool(options.get("conv_bias", True)),
    )
