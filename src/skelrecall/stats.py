"""Paired comparison of a loss against the baseline on the same evaluated cases.

Each case's metric is first averaged over the runs that evaluated it (seeds; with cross-validation
each case belongs to one fold), so the unit of the test is the case, not the run. With
``d_i = other_i - baseline_i`` over the cases both losses evaluated:

* ``mean_diff`` = mean of ``d_i``;
* ``ci_low``, ``ci_high``: percentile bootstrap 95 % confidence interval of the mean difference
  (``n_boot`` resamples of the cases with replacement, fixed seed, so reruns give the same interval);
* ``p_wilcoxon``: two-sided Wilcoxon signed-rank test of ``d_i`` (``scipy.stats.wilcoxon``, zero
  differences dropped; 1.0 when every difference is zero).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


def paired_comparison(
    baseline: pd.Series, other: pd.Series, *, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Compare per-case values (indexed by case name) of ``other`` against ``baseline``."""
    joined = pd.concat({"baseline": baseline, "other": other}, axis=1).dropna()
    d = (joined["other"] - joined["baseline"]).to_numpy(dtype=float)
    n = len(d)
    if n == 0:
        return {"n": 0, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_wilcoxon": math.nan}
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"n": n, "mean_diff": float(d.mean()), "ci_low": float(low), "ci_high": float(high), "p_wilcoxon": p}
