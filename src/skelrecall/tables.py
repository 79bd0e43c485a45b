"""The paper's Tables 2 and 3 from our run folders, with the paper's numbers beside ours.

For every row of the paper's CSV (dataset, loss): our runs are those of the row's experiment config
(``experiments/tables.yaml``), the loss with its configured w, every seed and fold of the profile.
Each run contributes the mean of a metric over its evaluated cases; a cell shows the mean over the
finished runs (``+-`` the sample standard deviation when there are several), the paper's value and
the difference ours - paper. The best of our values per dataset and column is bold (highest Dice
and clDice, lowest Betti errors), as is the paper's best. Expected runs that are not finished are
counted as missing (and failed ones named), never silently dropped.

Paired tests (``skelrecall.stats.paired_comparison``): each connectivity loss against ``dice_ce``
on the per-case values of the same cases, averaged over seeds first.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from skelrecall.experiments import paper_rows, table_groups
from skelrecall.render import latex_escape, latex_table, markdown_table
from skelrecall.stats import paired_comparison

METRICS = {  # column -> (heading, scale of our per-case values, higher is better, digits)
    "dice": ("Dice (%)", 100.0, True, 2),
    "cldice": ("clDice (%)", 100.0, True, 2),
    "betti0_error": ("beta0 error", 1.0, False, 3),
    "betti1_error": ("beta1 error", 1.0, False, 3),
}
BASELINE = "dice_ce"
LOSS_NAMES = {
    "dice_ce": "Dice+CE",
    "cldice": "+ clDice",
    "topo_cldice": "+ Topo-clDice",
    "skeleton_recall": "+ Skeleton Recall",
}


def _float(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def per_case_values(run_dirs: list[str]) -> pd.DataFrame:
    """Headline per-case metrics (Dice/clDice in percent) of ``run_dirs``, averaged over the runs per case."""
    from skelrecall.evaluate import headline_rows

    frames = []
    for run_dir in run_dirs:
        rows = headline_rows(pd.read_csv(Path(run_dir) / "per_case.csv"))
        frames.append(rows.set_index("case")[list(METRICS)] * pd.Series({m: s for m, (_, s, _, _) in METRICS.items()}))
    if not frames:
        return pd.DataFrame(columns=list(METRICS))
    return pd.concat(frames).groupby(level=0).mean()


def build_table(
    spec: dict[str, Any], table: str, profile: str, runs: pd.DataFrame, notes: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, tests): one row per paper row with ours, paper and difference; one test row per
    (dataset, connectivity loss) against the baseline. ``notes``: paper dataset -> why it has no runs
    under this profile (``experiments.unavailable``), shown instead of values."""
    notes = notes or {}
    groups = {g.paper_dataset: g for g in table_groups(spec, profile, table)}
    rows, tests = [], []
    for paper in paper_rows(spec, table):
        group, loss = groups[paper["dataset"]], paper["loss"]
        w = group.loss_weight(loss)
        expected = len(group.seeds) * len(group.folds)
        mine = (
            runs[
                (runs["experiment"] == group.experiment)
                & (runs["dataset"] == group.dataset)
                & (runs["loss"] == loss)
                & (runs["w"] == w)
            ]
            if not runs.empty
            else runs
        )
        done = mine[mine["status"] == "done"] if not mine.empty else mine
        row: dict[str, Any] = {
            "dataset": paper["dataset"],
            "trained_on": group.dataset,
            "experiment": group.experiment,
            "loss": loss,
            "w": w,
            "runs": len(done),
            "expected": expected,
            "failed": int((mine["status"] == "failed").sum()) if not mine.empty else 0,
            "stale": int((mine["status"] == "stale").sum()) if not mine.empty else 0,
            "did_not_train": int((mine["status"] == "did not train").sum()) if not mine.empty else 0,
            "paper_note": paper["evaluation"],
            "unavailable": notes.get(paper["dataset"], ""),
        }
        for metric in METRICS:
            values = done[metric].dropna() if len(done) else pd.Series(dtype=float)
            row[f"{metric}_mean"] = values.mean() if len(values) else math.nan
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row[f"{metric}_paper"] = _float(paper[metric])
            row[f"{metric}_diff"] = row[f"{metric}_mean"] - row[f"{metric}_paper"]
        row["run_dirs"] = list(done["run_dir"]) if len(done) else []
        rows.append(row)
    table_rows = pd.DataFrame(rows)
    for dataset, block in table_rows.groupby("dataset", sort=False):
        base = block[block["loss"] == BASELINE]
        if base.empty or not base["run_dirs"].iloc[0]:
            continue
        base_cases = per_case_values(base["run_dirs"].iloc[0])
        for _, other in block[block["loss"] != BASELINE].iterrows():
            if not other["run_dirs"]:
                continue
            cases = per_case_values(other["run_dirs"])
            test = {"dataset": dataset, "trained_on": other["trained_on"], "loss": other["loss"], "baseline": BASELINE}
            for metric in METRICS:
                result = paired_comparison(base_cases[metric], cases[metric])
                test["n_cases"] = result.pop("n")
                test.update({f"{metric}_{k}": v for k, v in result.items()})
            tests.append(test)
    return table_rows, pd.DataFrame(tests)


# --- formatting ----------------------------------------------------------------------------------


def _best(block: pd.DataFrame, column: str, higher: bool) -> float:
    values = block[column].dropna()
    return (values.max() if higher else values.min()) if len(values) else math.nan


def _value(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" +- {std:.{digits}f}")


def _cells(rows: pd.DataFrame, bold: str, text=str) -> list[dict[str, str]]:
    """Formatted cells per row; ``text`` turns a cell's plain text into the output format (e.g. LaTeX
    escaping), then ``bold`` wraps a best value (``**{}**`` or ``\\textbf{{{}}}``)."""
    out = []
    for _, block in rows.groupby("dataset", sort=False):
        best = {
            m: (_best(block, f"{m}_mean", hi), _best(block, f"{m}_paper", hi)) for m, (_, _, hi, _) in METRICS.items()
        }
        for _, r in block.iterrows():
            cells = {
                "dataset": text(r["dataset"]),
                "loss": text(LOSS_NAMES.get(r["loss"], r["loss"])),
                "w": text(f"{r['w']:g}"),
            }
            for m, (_, _, _, digits) in METRICS.items():
                ours = _value(r[f"{m}_mean"], r[f"{m}_std"], digits)
                if not ours:
                    ours = text(
                        "not available"
                        if r.get("unavailable")
                        else "did not train"
                        if r.get("did_not_train")
                        else "missing"
                    )
                elif r[f"{m}_mean"] == best[m][0] and (r["runs"] and block["runs"].gt(0).sum() > 1):
                    ours = bold.format(text(ours))
                else:
                    ours = text(ours)
                paper = r[f"{m}_paper"]
                paper_cell = text(f"{paper:.{digits}f}" if not math.isnan(paper) else "n/a*")
                if not math.isnan(paper) and paper == best[m][1]:
                    paper_cell = bold.format(paper_cell)
                cells[f"{m}_ours"], cells[f"{m}_paper"] = ours, paper_cell
                diff = r[f"{m}_diff"]
                cells[f"{m}_diff"] = text("" if math.isnan(diff) else f"{diff:+.{digits}f}")
            runs = f"{r['runs']}/{r['expected']}"
            notes = [f"{r[k]} {k.replace('_', ' ')}" for k in ("failed", "stale", "did_not_train") if r.get(k)]
            notes += [r["unavailable"]] if r.get("unavailable") else []
            if notes:
                runs += f" ({', '.join(notes)})"
            cells["runs"] = text(runs)
            out.append(cells)
    return out


def _test_cell(t: pd.Series, metric: str) -> str:
    digits = METRICS[metric][3]
    if math.isnan(t[f"{metric}_mean_diff"]):
        return ""
    return (
        f"{t[f'{metric}_mean_diff']:+.{digits}f} [{t[f'{metric}_ci_low']:+.{digits}f}, "
        f"{t[f'{metric}_ci_high']:+.{digits}f}] p={t[f'{metric}_p_wilcoxon']:.2g}"
    )


def _not_in_paper(rows: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, loss name, the paper's note) of every row without a paper value (``n/a*`` cells)."""
    return [
        (r["dataset"], LOSS_NAMES.get(r["loss"], r["loss"]), r["paper_note"])
        for _, r in rows[rows["dice_paper"].isna()].iterrows()
    ]


def to_markdown(rows: pd.DataFrame, tests: pd.DataFrame, *, title: str, header: list[str]) -> str:
    """The table and its paired tests as Markdown (:func:`skelrecall.render.markdown_table`)."""
    lines = [f"# {title}", "", *header, ""]
    heads = ["dataset", "loss", "w"]
    for h, *_rest in METRICS.values():
        heads += [f"{h} ours", "paper", "diff"]
    heads.append("runs")
    keys = ["dataset", "loss", "w", *[f"{m}_{k}" for m in METRICS for k in ("ours", "paper", "diff")], "runs"]
    lines.append(markdown_table(heads, [[cells[k] for k in keys] for cells in _cells(rows, "**{}**")]))
    for dataset, loss, note in _not_in_paper(rows):
        lines += ["", f"\\* paper, {dataset} {loss}: {note}."]
    lines += [
        "",
        f"## Paired tests against {LOSS_NAMES[BASELINE]} on the same cases",
        "",
        "Per case: the metric averaged over seeds; cell: mean difference (loss - baseline) "
        "[bootstrap 95 % CI] and the two-sided Wilcoxon signed-rank p-value. Positive is better "
        "for Dice and clDice, negative for the Betti errors.",
        "",
    ]
    if tests.empty:
        lines.append("No pair of finished runs to compare yet.")
    else:
        heads = ["dataset", "loss", "cases", *[METRICS[m][0] for m in METRICS]]
        body = [
            [
                t["dataset"],
                LOSS_NAMES.get(t["loss"], t["loss"]),
                str(int(t["n_cases"])),
                *[_test_cell(t, m) for m in METRICS],
            ]
            for _, t in tests.iterrows()
        ]
        lines.append(markdown_table(heads, body))
    return "\n".join(lines) + "\n"


LATEX_PREAMBLE = r"% requires \usepackage{booktabs}"
_SCALE = {"smoke": "smoke-test scale", "cpu": "CPU scale", "paper": "the paper's schedule"}


def latex_caption(rows: pd.DataFrame, title: str, profile: str | None = None) -> str:
    """The caption of :func:`to_latex` (LaTeX, escaped): ``title`` without a leading ``Table N:``
    (LaTeX numbers tables itself), how to read the cells, where the data come from (synthetic
    stand-ins and their scale, or the real datasets) and the profile, and the ``n/a*`` notes."""
    title = re.sub(r"^\s*table\s+\w+\s*[:.]\s*", "", str(title), flags=re.I)
    if profile is None:
        found = re.search(r"\((\S+) profile\)", title)
        profile = found.group(1) if found else None
    trained = rows[["dataset", "trained_on"]].drop_duplicates() if "trained_on" in rows else pd.DataFrame()
    synthetic = not trained.empty and trained["trained_on"].astype(str).str.startswith("synthetic").all()
    where = f"profile {profile}" if profile else "profile not stated"
    if synthetic:
        pairs = ", ".join(f"{r.dataset}: {r.trained_on}" for r in trained.itertuples())
        scale = _SCALE.get(profile, f"{profile} scale") if profile else "reduced scale"
        data = (
            f"Ours on synthetic stand-ins of the paper's datasets ({pairs}), trained at {scale} ({where}); "
            "they test the pipeline and compare the losses with each other and are not comparable in "
            "absolute value with the paper's numbers on the real datasets."
        )
    else:
        data = f"Ours on the real (converted) datasets ({where})."
    text = (
        f"{title}. Each cell: ours, mean +- sample standard deviation over runs (seeds x folds), and in "
        f"parentheses the paper's value; bold: best per dataset and column. {data}"
    )
    notes = [f"{dataset} {loss}: {note}" for dataset, loss, note in _not_in_paper(rows)]
    if notes:
        text += f" n/a*: not in the paper ({'; '.join(notes)})."
    return _latex_text(text)


def _latex_text(text: str) -> str:
    """``text`` escaped for LaTeX, with ``+-`` as ``$\\pm$`` and `` x `` as ``$\\times$``."""
    return latex_escape(text).replace("+-", r"$\pm$").replace(" x ", r" $\times$ ")


def to_latex(rows: pd.DataFrame, *, title: str, profile: str | None = None) -> str:
    """A booktabs table in the paper's layout: ours (paper) per metric, best values bold, a rule
    between datasets (:func:`skelrecall.render.latex_table`); caption: :func:`latex_caption`
    (``profile`` default: read from ``(<profile> profile)`` in ``title``). Starts with a comment line
    naming the package it needs; compiles in a minimal document with ``\\usepackage{booktabs}``."""
    heads = ["Dataset", "Loss", r"Dice (\%)", r"clDice (\%)", r"$\beta_0$ error", r"$\beta_1$ error"]
    body, starts, previous = [], [], None
    for i, cells in enumerate(_cells(rows, r"\textbf{{{}}}", text=_latex_text)):
        if cells["dataset"] != previous:
            starts.append(i)
        name = cells["dataset"] if cells["dataset"] != previous else ""
        previous = cells["dataset"]
        body.append([name, cells["loss"], *[f"{cells[f'{m}_ours']} ({cells[f'{m}_paper']})" for m in METRICS]])
    number = re.match(r"^\s*table\s+(\w+)", str(title), flags=re.I)
    label = f"tab:skelrecall-table{number.group(1)}" if number else None
    table = latex_table(
        heads, body, align="llcccc", midrules=starts, caption=latex_caption(rows, title, profile), label=label
    )
    return f"{LATEX_PREAMBLE}\n{table}"
