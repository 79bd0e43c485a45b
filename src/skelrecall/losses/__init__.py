"""Losses: nnU-Net's CE + Dice, Skeleton Recall, clDice, Topo-clDice, compound and deep supervision.

Every loss takes logits ``(B, C, *spatial)`` (2D or 3D) and an integer label map ``(B, 1, *spatial)``;
``softmax=True`` (default, C >= 2 with class 0 = background) or ``sigmoid=True`` (C = 1, binary).
Connectivity losses carry ``target_kind``: ``"skeleton"`` (gets the tubed skeleton) or ``"label"``.
"""

from .cldice import SoftclDiceLoss, soft_skeleton
from .compound import CompoundLoss, DeepSupervisionLoss, build_loss, ds_weights
from .dice_ce import DiceCELoss
from .skeleton_recall import SkeletonRecallLoss
from .topo_cldice import TopoClDiceLoss
from .topo_skeleton import TopoSkeletonize, simple_points, topo_skeletonize

__all__ = [
    "CompoundLoss",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "SkeletonRecallLoss",
    "SoftclDiceLoss",
    "TopoClDiceLoss",
    "TopoSkeletonize",
    "build_loss",
    "ds_weights",
    "simple_points",
    "soft_skeleton",
    "topo_skeletonize",
]
