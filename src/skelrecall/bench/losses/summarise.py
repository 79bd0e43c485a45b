"""Summarising the loss benchmark: medians over rounds, ratios to dice_ce, and the goal checks.

Every goal is a limit on a ratio to ``dice_ce`` measured in the same run:

* Skeleton Recall adds at most 3 % step time over Dice+CE (ratio <= :data:`MAX_TIME_RATIO`),
* and at most 2 % peak memory (ratio <= :data:`MAX_MEMORY_RATIO`);
* its memory ratio at C = 14 is at most :data:`MAX_MEMORY_GROWTH` times that at C = 2.
"""

from __future__ import annotations

from typing import NamedTuple

from skelrecall.bench.losses.measure import LOSSES

MAX_TIME_RATIO = 1.03
MAX_MEMORY_RATIO = 1.02
MAX_MEMORY_GROWTH = 1.1
KEYS = ["dims", "spatial", "batch", "classes", "loss"]


class Check(NamedTuple):
    """One goal: what is checked, what was measured, and whether it is met (``None``: reported only)."""

    goal: str
    value: str
    met: bool | None


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:g} %"


def summarise(raw):
    """Median over rounds per configuration, and ratios to dice_ce of the same (dims, C)."""
    agg = raw.groupby(KEYS, as_index=False).agg(
        step_wall_s=("step_wall_s", "median"),
        step_cpu_s=("step_cpu_s", "median"),
        peak_alloc_mb=("peak_alloc_mb", "median"),
        step_alloc_mb=("step_alloc_mb", "median"),
        peak_rss_mb=("peak_rss_mb", "median"),
        loss_only_wall_s=("loss_only_wall_s", "median"),
        loss_alloc_mb=("loss_alloc_mb", "median"),
        params_m=("params_m", "first"),
        n_outputs=("n_outputs", "first"),
        rounds=("round", "count"),
    )
    base = agg[agg["loss"] == "dice_ce"].set_index(["dims", "classes"])

    def ref(col):
        return agg.apply(lambda r: base.loc[(r["dims"], r["classes"]), col], axis=1)

    agg["cpu_ratio"] = agg["step_cpu_s"] / ref("step_cpu_s")
    agg["wall_ratio"] = agg["step_wall_s"] / ref("step_wall_s")
    agg["alloc_ratio"] = agg["peak_alloc_mb"] / ref("peak_alloc_mb")
    agg["step_alloc_ratio"] = agg["step_alloc_mb"] / ref("step_alloc_mb")
    agg["rss_ratio"] = agg["peak_rss_mb"] / ref("peak_rss_mb")
    agg["loss_only_vs_step"] = agg["loss_only_wall_s"] / ref("step_wall_s")
    # added time estimated from the loss alone: (loss - dice_ce loss) / dice_ce step
    agg["loss_overhead"] = (agg["loss_only_wall_s"] - ref("loss_only_wall_s")) / ref("step_wall_s")
    order = {n: i for i, n in enumerate(LOSSES)}
    return agg.sort_values(["dims", "classes", "loss"], key=lambda s: s.map(order) if s.name == "loss" else s)


def goal_checks(table, paired=None) -> list[Check]:
    """The goals for Skeleton Recall (gather), judged on the numbers of one run.

    Time: from the paired measurements (``paired``: alternating steps in one process), per size the
    mean over C of the median per-pair ratio (CPU time; wall time where ``paired["device"]`` is
    ``cuda``, since the host's CPU time says nothing about GPU kernels); the unpaired ratios of the
    fresh-process ``table`` are printed beside it. Memory: the largest peak allocation ratio over C
    (deterministic), in the table and, where measured, at the paired sizes. Growth: alloc ratio at
    C=14 / alloc ratio at C=2. Also reported, without a goal: the memory of each loss alone.
    """
    checks = []
    sr = table[table["loss"] == "skeleton_recall"]
    pairs = paired if paired is not None else table.iloc[0:0]
    for (dims, spatial), grp in pairs.groupby(["dims", "spatial"]) if len(pairs) else []:
        grp = grp.sort_values("classes")
        gpu = "device" in grp.columns and (grp["device"] == "cuda").any()
        col, other_col, kind = (
            ("wall_ratio_median", "cpu_ratio_median", "wall time")
            if gpu
            else ("cpu_ratio_median", "wall_ratio_median", "CPU time")
        )
        per_c = ", ".join(f"C={c}: {r - 1:+.1%}" for c, r in zip(grp["classes"], grp[col]))
        ratio = grp[col].mean()
        same = sr[(sr["dims"] == dims) & (sr["spatial"] == spatial)]
        unpaired = (
            (
                f"; unpaired fresh processes {same['cpu_ratio'].mean() - 1:+.1%}, from the loss alone "
                f"{same['loss_overhead'].mean():+.1%}"
            )
            if len(same)
            else ""
        )
        checks.append(
            Check(
                f"{dims}D {spatial}: Skeleton Recall adds at most {_percent(MAX_TIME_RATIO)} step time over Dice+CE",
                f"mean over C {ratio - 1:+.1%} {kind}, paired ({per_c}; "
                f"{other_col.split('_')[0]} {grp[other_col].mean() - 1:+.1%}{unpaired})",
                bool(ratio <= MAX_TIME_RATIO),
            )
        )
    memory = [(dims, grp["spatial"].iloc[0], grp) for dims, grp in sr.groupby("dims")]
    if "alloc_ratio" in pairs.columns:
        memory += [
            (dims, spatial, grp)
            for (dims, spatial), grp in pairs.dropna(subset=["alloc_ratio"]).groupby(["dims", "spatial"])
        ]
    for dims, spatial, grp in memory:
        grp = grp.sort_values("classes")
        ratio = grp["alloc_ratio"].max()
        rss = f" (peak RSS: max {grp['rss_ratio'].max() - 1:+.1%})" if "rss_ratio" in grp.columns else ""
        checks.append(
            Check(
                f"{dims}D {spatial}: Skeleton Recall adds at most {_percent(MAX_MEMORY_RATIO)} peak memory "
                "over Dice+CE",
                f"max over C {ratio - 1:+.2%} peak allocated{rss}",
                bool(ratio <= MAX_MEMORY_RATIO),
            )
        )
        by_c = grp.set_index("classes")
        if {2, 14} <= set(by_c.index):
            growth = by_c.loc[14, "alloc_ratio"] / by_c.loc[2, "alloc_ratio"]
            checks.append(
                Check(
                    f"{dims}D {spatial}: Skeleton Recall's peak-memory ratio to Dice+CE at C=14 is at most "
                    f"{MAX_MEMORY_GROWTH}x that at C=2",
                    f"{by_c.loc[14, 'alloc_ratio']:.4f} / {by_c.loc[2, 'alloc_ratio']:.4f} = {growth:.4f}",
                    bool(growth <= MAX_MEMORY_GROWTH),
                )
            )
    for dims, grp in table.groupby("dims"):
        by = grp.set_index(["loss", "classes"])["loss_alloc_mb"]
        cs = sorted(grp["classes"].unique())
        if len(cs) > 1 and by.notna().all():
            parts = [
                f"{name} {by.loc[(name, cs[0])]:.1f} -> {by.loc[(name, cs[-1])]:.1f} MB"
                for name in LOSSES
                if (name, cs[0]) in by.index
            ]
            checks.append(
                Check(
                    f"{dims}D memory of the loss alone, C={cs[0]} -> C={cs[-1]} (reported, no goal)",
                    "; ".join(parts),
                    None,
                )
            )
    return checks
