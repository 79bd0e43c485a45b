"""The metric registry: one place that says, for every metric, what it writes and how to show it.

A *metric* is what a user selects (``skelrecall-evaluate --metrics dice,cldice,betti``,
``evaluate_case(..., metrics=[...])``); it fills one or more *columns* of ``per_case.csv``. Each
column says how tables and figures show it::

    from skelrecall.metrics.registry import COLUMNS, METRICS, resolve

    COLUMNS["dice"].heading            # "Dice (%)"
    COLUMNS["dice"].scale              # 100.0: multiply per-case values by this for tables
    COLUMNS["betti0_error"].better     # "lower"
    METRICS["hd95"].unit               # "spacing units"
    resolve("dice,betti")              # [Metric("dice"), Metric("betti")]; unknown names -> ValueError
    per_case_columns(resolve(None), 3) # the per_case.csv metric columns of a 3D evaluation

``better`` is ``"higher"``, ``"lower"`` or ``None`` (a raw count, e.g. ``betti0_pred``, that is not
a score). ``summarized`` columns get ``{"mean", "std", "n"}`` in ``summary.json``. ``ndims`` lists the
dimensionalities in which the column exists (``betti2_*`` only in 3D). A metric with
``requires`` needs that optional module (``pip install 'skelrecall[<extra>]'``); ``default``
metrics are computed when no selection is given, if installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of ``per_case.csv``: its heading, unit, table scale, digits and direction."""

    name: str
    heading: str
    unit: str = ""
    scale: float = 1.0
    digits: int = 3
    better: str | None = None  # "higher", "lower" or None (not a score)
    summarized: bool = True
    ndims: tuple[int, ...] = (2, 3)


@dataclass(frozen=True)
class Metric:
    """A selectable metric: the columns it fills and the optional module it needs."""

    name: str
    description: str
    columns: tuple[Column, ...]
    unit: str = ""
    requires: str | None = None  # importable module name of an optional dependency
    extra: str | None = None  # pip extra that installs it
    default: bool = True
    conventions: str = field(default="reports/README.md, 'Metric conventions'", repr=False)

    def available(self) -> bool:
        """Whether the optional dependency (if any) can be imported."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None

    def column_names(self, ndim: int) -> list[str]:
        return [c.name for c in self.columns if ndim in c.ndims]


def _betti_columns() -> tuple[Column, ...]:
    cols = []
    for k in range(3):
        nd = (3,) if k == 2 else (2, 3)
        cols += [Column(f"betti{k}_pred", f"beta{k} (prediction)", summarized=False, ndims=nd),
                 Column(f"betti{k}_gt", f"beta{k} (ground truth)", summarized=False, ndims=nd)]  # fmt: skip
    errors = [Column(f"betti{k}_error", f"beta{k} error", better="lower", ndims=(3,) if k == 2 else (2, 3))
              for k in range(3)]  # fmt: skip
    # column order of per_case.csv: b0/b1 pred+gt, b0/b1 errors, then the 3D-only b2 triple
    return (*cols[:4], errors[0], errors[1], cols[4], cols[5], errors[2])


_DISTANCE_UNIT = "spacing units"  # mm for NIfTI files with a header in mm, pixels for PNG

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("dice", "Dice overlap 2|P&G|/(|P|+|G|)",
               (Column("dice", "Dice (%)", "%", 100.0, 2, "higher"),), "%"),
        Metric("cldice", "clDice with exact skeletons (skimage.morphology.skeletonize)",
               (Column("cldice", "clDice (%)", "%", 100.0, 2, "higher"),), "%"),
        Metric("betti", "Betti numbers of prediction and ground truth and their absolute differences",
               _betti_columns()),
        Metric("hd95", "95th-percentile symmetric Hausdorff distance of the surfaces (MONAI)",
               (Column("hd95", "HD95", _DISTANCE_UNIT, 1.0, 2, "lower"),), _DISTANCE_UNIT),
        Metric("assd", "average symmetric surface distance (MONAI)",
               (Column("assd", "ASSD", _DISTANCE_UNIT, 1.0, 2, "lower"),), _DISTANCE_UNIT),
        Metric("betti_matching", "Betti matching error (Betti-Matching-3D, via topolosses): unmatched "
               "persistence bars of prediction and ground truth, total and per dimension",
               (Column("betti_matching_error", "Betti matching error", better="lower"),
                Column("betti_matching0_error", "Betti matching error, dim 0", better="lower"),
                Column("betti_matching1_error", "Betti matching error, dim 1", better="lower"),
                Column("betti_matching2_error", "Betti matching error, dim 2", better="lower", ndims=(3,))),
               requires="topolosses", extra="topology", default=False),
    ]
}  # fmt: skip
"""Every metric, in the order of the ``per_case.csv`` columns."""

COLUMNS: dict[str, Column] = {c.name: c for m in METRICS.values() for c in m.columns}
"""Every metric column by name."""

PAPER_METRICS = ("dice", "cldice", "betti")
"""The metrics of the Skeleton Recall paper's tables."""


def available_metrics() -> list[str]:
    """Names of the metrics whose dependencies are installed."""
    return [name for name, m in METRICS.items() if m.available()]


def default_metrics() -> list[str]:
    """The metrics computed when none are selected: every installed metric marked ``default``.

    ``betti_matching`` is not a default even when installed: Betti-Matching-3D builds the full
    persistence of both volumes (measured: 73 s and 20 GB for two 260^3 volumes), so it is computed
    only when selected.
    """
    return [name for name, m in METRICS.items() if m.default and m.available()]


def resolve(selection: str | list[str] | tuple[str, ...] | None) -> list[Metric]:
    """The metrics of a selection (comma-separated string or list; None: the defaults), in
    registry order. Unknown or uninstalled names raise ValueError listing the available ones."""
    if selection is None:
        names = default_metrics()
    else:
        if isinstance(selection, str):
            selection = selection.split(",")
        names = [n.strip().lower() for n in selection if n.strip()]
        if not names:
            raise ValueError(f"no metric selected; available: {', '.join(available_metrics())}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(available_metrics())}")
    missing = [n for n in names if not METRICS[n].available()]
    if missing:
        hints = "; ".join(
            f"{n} needs {METRICS[n].requires} (pip install 'skelrecall[{METRICS[n].extra}]', "
            f"on a CPU-only machine: pip install --no-deps {METRICS[n].requires})"
            for n in missing
        )
        raise ValueError(f"metric(s) not installed: {hints}; available: {', '.join(available_metrics())}")
    return [METRICS[n] for n in METRICS if n in names]


def per_case_columns(metrics: list[Metric], ndim: int) -> list[str]:
    """The metric columns of ``per_case.csv`` for ``metrics`` on ``ndim``-D data, in order."""
    return [c for m in metrics for c in m.column_names(ndim)]


def summary_columns(columns: list[str]) -> list[str]:
    """The columns of ``columns`` that ``summary.json`` summarizes, in registry order."""
    present = set(columns)
    return [name for name, c in COLUMNS.items() if c.summarized and name in present]
