"""Segmentation metrics for thin tubular structures: Dice, clDice and Betti errors.

Conventions (see ``reports/README.md``, "Metric conventions"): binary masks in (nonzero =
foreground), whole images/volumes padded with background, foreground 8/26-connected, background
4/6-connected, Dice NaN when both masks are empty, clDice terms with an empty skeleton count as 1.
"""

from skelrecall.metrics.case import evaluate_case
from skelrecall.metrics.overlap import cldice, cldice_terms, dice, skeleton
from skelrecall.metrics.topology import betti_errors, betti_numbers, euler_characteristic

__all__ = [
    "betti_errors",
    "betti_numbers",
    "cldice",
    "cldice_terms",
    "dice",
    "euler_characteristic",
    "evaluate_case",
    "skeleton",
]
