"""``skelrecall-report``: collect run folders into tables (``reports/tables/<name>.{md,csv}``).

One row per (dataset, backbone, loss, w). Each run contributes the mean over its evaluated cases of
the headline metrics (``summary.json``); a row shows the mean over its runs (seeds x folds) and,
with more than one run, ``+-`` the sample standard deviation over runs. Dice and clDice are in
percent like the paper's tables; Betti errors are mean absolute errors per image/volume.
Runs whose folder has a ``failed`` marker and no ``done`` marker are listed as failed, never
silently dropped. Runs of different profiles are never mixed in one table.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from skelrecall.io import atomic_write
from skelrecall.paths import REPO_DIR, SPEC_PATH, work_root
from skelrecall.runs import RunDir

METRICS = {  # column -> (summary key, scale, heading)
    "dice": ("dice", 100.0, "Dice (%)"),
    "cldice": ("cldice", 100.0, "clDice (%)"),
    "betti0_error": ("betti0_error", 1.0, "beta0 error"),
    "betti1_error": ("betti1_error", 1.0, "beta1 error"),
}
KEYS = ["dataset", "backbone", "loss", "w"]


class ReportError(RuntimeError):
    """Nothing to report, or runs that cannot be put in one table."""


def run_row(run: RunDir) -> dict[str, Any]:
    """A run folder as one table row: its keys, status, identity hash, commits and headline metrics."""
    cfg = run.config()
    row: dict[str, Any] = {
        "run_dir": str(run.path),
        "experiment": cfg.get("experiment_name"),
        "dataset": cfg["dataset"]["name"],
        "backbone": cfg["backbone"]["name"],
        "loss": cfg["loss"]["name"],
        "w": float(cfg["loss"]["w"]),
        "seed": cfg["seed"],
        "fold": cfg["fold"],
        "profile": cfg["profile"]["name"],
        "status": run.status(),
        "config_hash": run.stored_hash(),
        "git": " ".join(run.git_commits()),
    }
    if row["status"] == "done" and run.did_not_train():
        row["status"] = "did not train"  # every prediction empty: never shown as a result
    if row["status"] == "done":
        summary = run.summary()
        row["n_cases"] = summary["n_cases"]
        for column, (key, scale, _) in METRICS.items():
            value = summary["headline"].get(key, {}).get("mean")
            row[column] = math.nan if value is None else value * scale
    return row


def collect_runs(runs_dir: str | Path) -> pd.DataFrame:
    """One row per run folder below ``runs_dir`` (any status; see ``run_row``)."""
    return pd.DataFrame([run_row(run) for run in RunDir.find(runs_dir)])


def planned_runs(spec: dict[str, Any], profile: str, runs_root: str | Path, overrides: list[str] = ()) -> pd.DataFrame:
    """One row per run the plan expects for ``profile`` (see ``run_row``). A folder holding a run of
    another config gets status ``stale`` (its values are not used); one without a run ``missing``."""
    from skelrecall.experiments import plan, planned_config, run_state

    rows = []
    for group in plan(spec, profile):
        for run in group.runs():
            config = planned_config(run, profile, [f"paths.runs={runs_root}", *overrides])
            folder = RunDir(config["run_dir"])
            state, _ = run_state(config)
            row = run_row(folder) if folder.config() is not None else {"run_dir": str(folder.path), "status": "missing"}
            row.update(run)  # the plan's keys (also for missing folders)
            row["profile"], row["backbone"] = profile, config["backbone"]["name"]
            if state == "stale":
                row["status"] = "stale"
            rows.append(row)
    return pd.DataFrame(rows).drop_duplicates("run_dir")  # the w sweep shares runs with the tables


def commits_line(runs: pd.DataFrame) -> str:
    """``git abc1234 (90 runs), def5678+dirty (6 runs)``: the code the finished runs were trained with."""
    done = runs[runs["status"] == "done"] if not runs.empty else runs
    if done.empty:
        return "no finished runs"
    counts = done["git"].fillna("unknown").value_counts()
    return "git " + ", ".join(f"{commit} ({n} run{'s' * (n != 1)})" for commit, n in counts.items())


def _cell(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} +- {values.std(ddof=1):.{digits}f}"


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows per configuration: mean over runs, standard deviation, number of finished/failed runs."""
    done = runs[runs["status"] == "done"]
    table = []
    for key, group in runs.groupby(KEYS, sort=True):
        ok = done.loc[group.index.intersection(done.index)]
        row = dict(zip(KEYS, key))
        row["runs"] = len(ok)
        row["failed"] = int((group["status"] == "failed").sum())
        row["did_not_train"] = int((group["status"] == "did not train").sum())
        row["cases"] = int(ok["n_cases"].max()) if len(ok) else 0
        for column in METRICS:
            values = ok[column] if column in ok else pd.Series(dtype=float)
            row[f"{column}_mean"] = values.mean() if len(values) else math.nan
            row[f"{column}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row[column] = _cell(values, 2 if column in ("dice", "cldice") else 3)
        table.append(row)
    return pd.DataFrame(table)


def to_markdown(table: pd.DataFrame, title: str, profile: str, runs_dir: Path) -> str:
    """The summary table of :func:`make_report` as Markdown (:func:`skelrecall.render.markdown_table`)."""
    from skelrecall.render import markdown_table

    synthetic = all(str(d).startswith("synthetic") for d in table["dataset"])
    data = "synthetic data" if synthetic else "real (converted) datasets"
    lines = [
        f"# {title}",
        "",
        f"Profile `{profile}`, {data}. Generated by `skelrecall-report --runs {runs_dir}` from the run "
        "folders; each value is the mean over evaluated cases of one run, then the mean (+- sample "
        "standard deviation) over runs (seeds x folds). Dice and clDice in percent; beta0/beta1 errors "
        "are mean absolute errors per image/volume (whole images, see reports/README.md).",
        "",
    ]
    headings = ["dataset", "backbone", "loss", "w", *[h for _, _, h in METRICS.values()], "runs", "cases"]
    body = []
    for _, r in table.iterrows():
        notes = [f"{r[k]} {k.replace('_', ' ')}" for k in ("failed", "did_not_train") if r[k]]
        runs = f"{r['runs']}" + (f" ({', '.join(notes)})" if notes else "")
        body.append(
            [r["dataset"], r["backbone"], r["loss"], f"{r['w']:g}", *[r[c] for c in METRICS], runs, str(r["cases"])]
        )
    lines.append(markdown_table(headings, body))
    return "\n".join(lines) + "\n"


def make_report(runs_dir: str | Path, out_dir: str | Path, name: str, title: str | None = None) -> Path:
    """Write ``out_dir/<name>.md`` and ``.csv`` from the runs below ``runs_dir``; return the .md path."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    runs = collect_runs(runs_dir)
    if runs.empty or not (runs["status"] == "done").any():
        raise ReportError(
            f"no finished runs below {runs_dir} (a finished run has a 'done' marker); "
            "nothing to report. Train first, e.g. `make reproduce`."
        )
    profiles = sorted(runs["profile"].unique())
    if len(profiles) > 1:
        raise ReportError(f"runs below {runs_dir} mix profiles {profiles}; report each profile's runs separately")
    table = summarize_runs(runs)
    md = to_markdown(table, title or name, profiles[0], runs_dir)
    atomic_write(out_dir / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out_dir / f"{name}.md", lambda tmp: tmp.write_text(md))
    return out_dir / f"{name}.md"


def _header(spec: dict[str, Any], profile: str, runs_dir: Path, runs: pd.DataFrame) -> list[str]:
    """What a table was made from: profile, data (synthetic or real), seeds, folds, command, the runs' commits."""
    from skelrecall.experiments import plan, profile_spec

    prof = profile_spec(spec, profile)
    if prof["data"] == "synthetic":
        pairs = {g.paper_dataset: g.dataset for g in plan(spec, profile)}
        stand_ins = ", ".join(f"{k} -> `{v}`" for k, v in pairs.items())
        data = (
            f"**Synthetic data, {profile} scale.** Every paper dataset is replaced by its synthetic stand-in "
            f"({stand_ins}; no download): our numbers test the pipeline and compare the losses with each other, "
            "they are not comparable in absolute value with the paper's, which come from the real datasets."
        )
    else:
        data = f"**Real (converted) datasets, {profile} profile.**"
    finished = int((runs["status"] == "done").sum()) if not runs.empty else 0
    return [
        data,
        "",
        f"Seeds {prof['seeds']}; folds {prof['folds']} on cross-validated datasets (fold 0 otherwise). "
        f"Generated by `skelrecall-report --profile {profile}` from {finished} finished run folders below "
        f"`{runs_dir}` ({len(runs)} planned), "
        f"trained at {commits_line(runs)}. Ours: mean over evaluated cases per run, then mean +- sample standard "
        "deviation over runs (seeds x folds); paper: the published value; diff: ours - paper. Dice and clDice "
        "in percent; beta0/beta1 errors are mean absolute errors per image/volume on whole images "
        "(reports/README.md). Bold: best per dataset and column (ours among the losses, and the paper's). "
        "runs: finished/expected (missing or failed runs are counted, never dropped).",
    ]


def make_paper_report(
    profile: str,
    runs_root: str | Path = "runs",
    out_root: str | Path | None = None,
    only: list[str] | None = None,
    spec_path: str | Path | None = None,
    overrides: list[str] = (),
) -> list[Path]:
    """Tables 2/3 (``<out_root>/tables/<table>.{md,csv,tex}`` + ``<table>_tests.csv``) and figures
    (``<out_root>/figures/``; default ``out_root``: ``reports/<profile>``) from the runs of ``profile``
    planned in experiments/tables.yaml (composed with ``overrides``, as ``skelrecall-reproduce`` ran them)."""
    from skelrecall.experiments import load_spec, plan, unavailable
    from skelrecall.tables import build_table, to_latex, to_markdown

    spec = load_spec(spec_path or SPEC_PATH)
    out_root = Path(out_root) if out_root is not None else Path("reports") / profile
    runs = planned_runs(spec, profile, runs_root, list(overrides))
    if not (runs["status"] == "done").any():
        stale = int((runs["status"] == "stale").sum())
        raise ReportError(
            f"no finished runs of profile {profile!r} below {Path(runs_root) / profile} "
            + (f"({stale} made with another config) " if stale else "")
            + f"(a finished run has a 'done' marker); nothing to report. Run `make reproduce "
            f"PROFILE={profile}` first."
        )
    header = _header(spec, profile, Path(runs_root) / profile, runs)
    data_root = next(
        (o.split("=", 1)[1] for o in overrides if o.startswith("paths.nnunet_raw=")),
        str(work_root() / "data" / "nnUNet_raw"),
    )
    notes = {g.paper_dataset: note for g in plan(spec, profile) if (note := unavailable(spec, profile, g, data_root))}
    written = []
    tables_dir, figures_dir = out_root / "tables", out_root / "figures"
    for table, tspec in spec["tables"].items():
        if only and table not in only:
            continue
        rows, tests = build_table(spec, table, profile, runs, notes)
        title = f"{tspec['title']}: ours ({profile} profile) vs the paper"
        md = to_markdown(rows, tests, title=title, header=header)
        tex = to_latex(rows, title=f"{tspec['title']} ({profile} profile): ours (paper)")
        atomic_write(tables_dir / f"{table}.md", lambda tmp: tmp.write_text(md))
        atomic_write(tables_dir / f"{table}.tex", lambda tmp: tmp.write_text(tex))
        atomic_write(tables_dir / f"{table}.csv", lambda tmp: rows.drop(columns="run_dirs").to_csv(tmp, index=False))
        atomic_write(tables_dir / f"{table}_tests.csv", lambda tmp: tests.to_csv(tmp, index=False))
        written += [tables_dir / f"{table}.{e}" for e in ("md", "csv", "tex")] + [tables_dir / f"{table}_tests.csv"]
    written += make_figures(spec, profile, runs, figures_dir, only)
    return written


def make_figures(
    spec: dict[str, Any], profile: str, runs: pd.DataFrame, out: Path, only: list[str] | None = None
) -> list[Path]:
    """Fig. 3, 5, 7 and 8 from the runs, the data and reports/bench/losses.csv; a figure whose inputs
    are missing is skipped with a note (printed), never drawn from nothing."""
    from skelrecall import figures
    from skelrecall.experiments import table_groups, w_sweep_group

    made, notes = [], []
    done = runs[runs["status"] == "done"]
    sweep = w_sweep_group(spec, profile)
    if sweep and (not only or "w_sweep" in only):
        base = spec["figures"]["w_sweep"]["baseline"]
        sel = done[
            (done["experiment"] == sweep.experiment)
            & (done["dataset"] == sweep.dataset)
            & done["loss"].isin([*sweep.losses, base])
            & done["seed"].isin(sweep.seeds)
        ]
        try:
            made.append(figures.w_sweep(sel, out / "w_sweep.png", baseline=base))
        except figures.FigureError as exc:
            notes.append(f"w_sweep.png skipped: {exc}")
    for item in spec.get("figures", {}).get("qualitative", []):
        if only and item["table"] not in only:
            continue
        group = next(g for g in table_groups(spec, profile, item["table"]) if g.paper_dataset == item["dataset"])
        sel = done[
            (done["experiment"] == group.experiment)
            & (done["dataset"] == group.dataset)
            & (done["seed"] == group.seeds[0])
            & (done["fold"] == group.folds[0])
        ]
        run_dirs = {
            loss: Path(sel[sel["loss"] == loss]["run_dir"].iloc[0])
            for loss in group.losses
            if (sel["loss"] == loss).any()
        }
        name = f"qualitative_{item['table']}_{item['dataset']}.png"
        if run_dirs:
            made.append(figures.qualitative_panels(run_dirs, out / name))
        else:
            notes.append(f"{name} skipped: no finished run of {group.name}")
    skel = spec.get("figures", {}).get("skeletons")
    if skel and not only:
        made += _skeleton_figure(spec, profile, skel["dataset"], runs, out, notes)
    bench = REPO_DIR / "reports" / "bench" / "losses.csv"  # written by `make bench`
    if not only:
        if bench.exists():
            made.append(figures.overhead_vs_classes(bench, out / "overhead_vs_classes.png"))
        else:
            notes.append(f"overhead_vs_classes.png skipped: {bench} does not exist (run `make bench`)")
    for note in notes:
        print(f"[report] {note}")
    return made


def _skeleton_figure(spec, profile, paper_dataset, runs, out: Path, notes: list[str]) -> list[Path]:
    """Fig. 3 on the first training label of the dataset the profile trains for ``paper_dataset``."""
    from skelrecall import figures
    from skelrecall.data.layout import DatasetLayout
    from skelrecall.experiments import trained_dataset
    from skelrecall.io import read_image

    experiment = next(
        t["experiments"][paper_dataset] for t in spec["tables"].values() if paper_dataset in t["experiments"]
    )
    name = trained_dataset(spec, profile, experiment)
    done = runs[(runs["status"] == "done") & (runs["dataset"] == name)]
    if done.empty:
        notes.append(f"skeletons.png skipped: no finished run on {name} to locate its data")
        return []
    cfg = RunDir(done["run_dir"].iloc[0]).config()
    layout = DatasetLayout.open(Path(cfg["paths"]["nnunet_raw"]) / cfg["dataset"]["folder"])
    label, _ = read_image(layout.label_file(layout.cases("Tr")[0], "Tr"))
    return [figures.skeleton_comparison(label, out / "skeletons.png")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="skelrecall-report",
        description=__doc__.split("\n")[0],
        epilog="--profile: the paper's tables and figures (experiments/tables.yaml); "
        "without it: one summary table of any runs folder (--runs, --name).",
    )
    parser.add_argument(
        "--profile",
        help="a profile of experiments/tables.yaml (smoke, cpu, cpu_real, paper): write "
        "reports/<profile>/tables/table2.*, table3.* and reports/<profile>/figures/*",
    )
    parser.add_argument(
        "--runs", default="runs", help="runs root (--profile: its <profile>/ subfolder is read; default: runs)"
    )
    parser.add_argument("--out", help="output folder (default: reports/<profile> with --profile, else reports/tables)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --profile: a config override the runs were trained with (as given to "
        "skelrecall-reproduce), so that the plan's configs match theirs; repeatable",
    )
    parser.add_argument("--only", help="with --profile: comma-separated tables/figures, e.g. table2,w_sweep")
    parser.add_argument("--tables", help="with --profile: the plan (default: experiments/tables.yaml)")
    parser.add_argument("--name", default="results", help="without --profile: table file name without ending")
    parser.add_argument("--title", help="without --profile: table title (default: the name)")
    parser.add_argument("--wandb", action="store_true", help="also log the tables and figures to W&B as an artifact")
    args = parser.parse_args(argv)
    try:
        if args.profile:
            paths = make_paper_report(
                args.profile,
                args.runs,
                args.out,
                args.only.split(",") if args.only else None,
                args.tables,
                args.override,
            )
        else:
            paths = [make_report(args.runs, args.out or "reports/tables", args.name, args.title)]
    except ReportError as exc:
        raise SystemExit(f"error: {exc}") from None
    for path in paths:
        if path.suffix == ".md":
            print(path.read_text())
    print("[report] wrote " + ", ".join(str(p) for p in paths))
    if args.wandb:
        log_artifact(paths, name=f"report-{args.profile or args.name}", runs_root=Path(args.runs))


def log_artifact(paths: list[Path], *, name: str, runs_root: Path, project: str = "skelrecall") -> None:
    """Tables and figures as one W&B artifact (type ``report``) of a ``report`` job; CSV tables also as
    ``wandb.Table``. Offline unless WANDB_API_KEY is set (sync with ``wandb sync``)."""
    import os

    import wandb

    mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    runs_root.mkdir(parents=True, exist_ok=True)
    with wandb.init(project=project, job_type="report", name=name, group=name, dir=str(runs_root), mode=mode) as run:
        artifact = wandb.Artifact(name, type="report")
        for path in paths:
            artifact.add_file(str(path))
            if path.suffix == ".csv" and path.stat().st_size > 1:  # a table without rows has nothing to show
                run.log({f"tables/{path.stem}": wandb.Table(dataframe=pd.read_csv(path))})
            elif path.suffix == ".png":
                run.log({f"figures/{path.stem}": wandb.Image(str(path))})
        run.log_artifact(artifact)


if __name__ == "__main__":
    main()
