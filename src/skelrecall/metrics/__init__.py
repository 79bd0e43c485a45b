"""Segmentation metrics for thin tubular structures: Dice, clDice, Betti errors, surface distances,
Betti matching.

Conventions (see ``reports/README.md``, "Metric conventions"): binary masks in (nonzero =
foreground), whole images/volumes padded with background, foreground 8/26-connected, background
4/6-connected, Dice NaN when both masks are empty, clDice terms with an empty skeleton count as 1,
surface distances in physical units. :mod:`skelrecall.metrics.registry` lists every metric, its
per-case columns and how to show them.
"""

from skelrecall.metrics.analysis import MaskAnalysis
from skelrecall.metrics.case import evaluate_case
from skelrecall.metrics.distance import assd, hd95
from skelrecall.metrics.overlap import cldice, cldice_terms, dice, skeleton
from skelrecall.metrics.registry import COLUMNS, METRICS, available_metrics, default_metrics
from skelrecall.metrics.topology import betti_errors, betti_numbers, euler_characteristic

__all__ = [
    "COLUMNS",
    "METRICS",
    "MaskAnalysis",
    "assd",
    "available_metrics",
    "betti_errors",
    "betti_numbers",
    "cldice",
    "cldice_terms",
    "default_metrics",
    "dice",
    "euler_characteristic",
    "evaluate_case",
    "hd95",
    "skeleton",
]
