"""The reproduction plan (experiments/tables.yaml), paired tests, and the paper-layout tables."""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from skelrecall.experiments import SPEC_PATH, SpecError, load_spec, paper_rows, plan, table_groups
from skelrecall.reproduce import main as reproduce_main
from skelrecall.stats import paired_comparison
from skelrecall.tables import build_table, to_latex, to_markdown


@pytest.fixture(scope="module")
def spec():
    return load_spec()


def test_every_paper_row_is_planned_with_enough_seeds(spec):
    for profile in ("smoke", "cpu", "paper"):
        groups = {g.name: g for g in plan(spec, profile)}
        for table in spec["tables"]:
            for row in paper_rows(spec, table):
                group = groups[f"{table}/{row['dataset']}"]
                assert row["loss"] in group.losses
    cpu = plan(spec, "cpu")
    assert all(len(g.seeds) >= 3 for g in cpu if g.name != "w_sweep")
    assert all(g.dataset.startswith("synthetic_") for g in cpu)  # synthetic stand-ins only
    paper = {g.name: g for g in plan(spec, "paper")}
    assert paper["table2/drive"].dataset == "drive" and paper["table2/drive"].folds == (0, 1, 2, 3, 4)
    assert paper["table2/roads"].folds == (0,)  # test-set datasets are not cross-validated


def test_group_overrides_name_the_run_folders(spec):
    sweep = next(g for g in plan(spec, "cpu") if g.name == "w_sweep")
    overrides = sweep.overrides()
    assert "loss.w=0.1,0.3,1.0,3.0" in overrides  # "1.0", like the table runs' folders (w=1.0), not "1"
    assert {r["w"] for r in sweep.runs()} == {0.1, 0.3, 1.0, 3.0}
    table = next(g for g in plan(spec, "cpu") if g.name == "table2/roads")
    assert {(r["loss"], r["w"]) for r in table.runs()} == {(loss, table.loss_weight(loss)) for loss in table.losses}
    assert table.loss_weight("dice_ce") == 0.0 and table.loss_weight("skeleton_recall") == 1.0
    assert len(table.runs()) == len(table.losses) * len(table.seeds)


def test_spec_with_unknown_names_lists_the_available_ones(tmp_path):
    bad = yaml.safe_load(SPEC_PATH.read_text())
    bad["tables"]["table2"]["experiments"]["roads"] = "nnunet_nowhere"
    bad["tables"]["table2"]["paper"] = str(SPEC_PATH.parent / bad["tables"]["table2"]["paper"])
    bad["tables"]["table3"]["paper"] = str(SPEC_PATH.parent / bad["tables"]["table3"]["paper"])
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SpecError, match=r"no configs/experiment/nnunet_nowhere.yaml \(available: .*nnunet_roads"):
        load_spec(path)


def test_unknown_profile_or_table(spec, capsys):
    with pytest.raises(SystemExit, match="unknown profile 'gpu'"):
        reproduce_main(["--profile", "gpu", "--dry-run"])
    with pytest.raises(SystemExit, match="unknown table or figure"):
        reproduce_main(["--profile", "cpu", "--only", "table9", "--dry-run"])


def test_dry_run_prints_one_multirun_per_group(tmp_path, capsys):
    assert reproduce_main(["--profile", "cpu", "--dry-run", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "96 runs: 0 finished, 96 to do, 0 stale" in out and "launcher parallel" in out
    assert out.count("--multirun profile=cpu experiment=") == 10
    assert "experiment=nnunet_topcow_multiclass dataset=synthetic_cow loss=dice_ce,cldice,skeleton_recall" in out


# --- paired tests ---------------------------------------------------------------------------------


def test_paired_comparison_against_scipy_and_a_constant_shift():
    rng = np.random.default_rng(0)
    cases = [f"c{i}" for i in range(30)]
    base = pd.Series(rng.normal(70, 5, 30), index=cases)
    other = base + rng.normal(1.0, 0.5, 30)
    result = paired_comparison(base, other.iloc[::-1])  # aligned by case name, not position
    d = (other - base).to_numpy()
    assert result["n"] == 30 and math.isclose(result["mean_diff"], d.mean())
    assert math.isclose(result["p_wilcoxon"], stats.wilcoxon(d).pvalue)
    assert result["ci_low"] < d.mean() < result["ci_high"] and result["ci_low"] > 0
    assert paired_comparison(base, other) == paired_comparison(base, other)  # fixed bootstrap seed
    shifted = paired_comparison(base, base + 2.0)
    assert shifted["ci_low"] == pytest.approx(2.0) and shifted["ci_high"] == pytest.approx(2.0)
    same = paired_comparison(base, base)
    assert same["p_wilcoxon"] == 1.0 and same["mean_diff"] == 0.0
    assert paired_comparison(base, pd.Series([1.0], index=["other"]))["n"] == 0


# --- tables -----------------------------------------------------------------------------------------


def _fake_run(tmp_path, name, values, status="done"):
    """A run folder with a per_case.csv of headline rows: values = {case: (dice, cldice, b0, b1)}."""
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True)
    rows = [
        {
            "case": c,
            "class": "fg",
            "class_id": 1,
            "headline": True,
            "dice": v[0],
            "cldice": v[1],
            "betti0_error": v[2],
            "betti1_error": v[3],
        }
        for c, v in values.items()
    ]
    pd.DataFrame(rows).to_csv(run_dir / "per_case.csv", index=False)
    mean = pd.DataFrame(rows)[["dice", "cldice", "betti0_error", "betti1_error"]].mean()
    return {
        "run_dir": str(run_dir),
        "status": status,
        "dice": mean["dice"] * 100,
        "cldice": mean["cldice"] * 100,
        "betti0_error": mean["betti0_error"],
        "betti1_error": mean["betti1_error"],
    }


def test_table_rows_spread_missing_failed_bold_and_paired_tests(spec, tmp_path):
    group = next(g for g in table_groups(spec, "cpu", "table3") if g.paper_dataset == "drive")
    runs = []
    cases = {f"c{i}": i for i in range(6)}
    for seed in group.seeds:
        for loss, shift in (("dice_ce", 0.0), ("skeleton_recall", 0.05)):
            values = {
                c: (0.5 + shift + 0.01 * seed + 0.001 * i, 0.6 + shift, 10 - 10 * shift - i, 2.0)
                for c, i in cases.items()
            }
            run = _fake_run(tmp_path, f"{loss}_{seed}", values)
            runs.append(
                {
                    **run,
                    "experiment": group.experiment,
                    "dataset": group.dataset,
                    "loss": loss,
                    "w": group.loss_weight(loss),
                    "seed": seed,
                    "fold": 0,
                }
            )
    runs.append(
        {
            "run_dir": str(tmp_path / "cldice_0"),
            "status": "failed",
            "experiment": group.experiment,
            "dataset": group.dataset,
            "loss": "cldice",
            "w": 1.0,
            "seed": 0,
            "fold": 0,
        }
    )
    runs.append(
        {
            "run_dir": str(tmp_path / "cldice_1"),
            "status": "did not train",
            "experiment": group.experiment,
            "dataset": group.dataset,
            "loss": "cldice",
            "w": 1.0,
            "seed": 1,
            "fold": 0,
        }
    )
    rows, tests = build_table(spec, "table3", "cpu", pd.DataFrame(runs))

    drive = rows[rows["dataset"] == "drive"].set_index("loss")
    assert drive.loc["dice_ce", "runs"] == 3 and drive.loc["dice_ce", "expected"] == 3
    # mean over seeds of per-run means: 0.5 + 0.01 * mean(seed) + 0.0025 -> percent
    assert drive.loc["dice_ce", "dice_mean"] == pytest.approx(100 * (0.5 + 0.01 + 0.0025))
    assert drive.loc["dice_ce", "dice_std"] == pytest.approx(1.0)  # seeds 0, 1, 2 -> 0, 1, 2 %
    paper = {
        r["loss"]: r
        for r in csv.DictReader(open(SPEC_PATH.parent / "paper/table3_hrnet.csv"))
        if r["dataset"] == "drive"
    }
    assert drive.loc["skeleton_recall", "dice_paper"] == float(paper["skeleton_recall"]["dice"])
    assert drive.loc["skeleton_recall", "dice_diff"] == pytest.approx(
        drive.loc["skeleton_recall", "dice_mean"] - float(paper["skeleton_recall"]["dice"])
    )
    assert drive.loc["cldice", "runs"] == 0 and drive.loc["cldice", "failed"] == 1
    assert rows[rows["dataset"] == "roads"]["runs"].eq(0).all()  # no runs: still listed

    test = tests[(tests["dataset"] == "drive") & (tests["loss"] == "skeleton_recall")].iloc[0]
    assert test["n_cases"] == 6 and test["dice_mean_diff"] == pytest.approx(5.0)
    assert test["betti0_error_mean_diff"] == pytest.approx(-0.5)
    assert set(tests["loss"]) == {"skeleton_recall"}  # cldice has no finished run to compare

    md = to_markdown(rows, tests, title="T", header=["h"])
    sr_line = next(line for line in md.splitlines() if line.startswith("| drive | + Skeleton Recall"))
    assert "**56.25 +- 1.00**" in sr_line and "3/3" in sr_line  # best Dice of ours in bold
    cl_line = next(line for line in md.splitlines() if line.startswith("| drive | + clDice"))
    assert "did not train" in cl_line and "0/3 (1 failed, 1 did not train)" in cl_line
    assert drive.loc["cldice", "did_not_train"] == 1
    assert "+5.00 [+5.00, +5.00] p=" in md
    assert r"\textbf{56.25 $\pm$ 1.00}" in to_latex(rows, title="T")


def _table_row(dataset, loss, mean, paper, trained_on="synthetic_drive", note="test set"):
    """One row of build_table's frame (every seed finished, std 1)."""
    row = {
        "dataset": dataset,
        "trained_on": trained_on,
        "experiment": "e",
        "loss": loss,
        "w": 1.0,
        "runs": 3,
        "expected": 3,
        "failed": 0,
        "stale": 0,
        "did_not_train": 0,
        "paper_note": note,
        "run_dirs": [],
    }
    for m in ("dice", "cldice", "betti0_error", "betti1_error"):
        row.update({f"{m}_mean": mean, f"{m}_std": 1.0, f"{m}_paper": paper, f"{m}_diff": mean - paper})
    return row


def latex_problems(tex: str) -> list[str]:
    """What would stop ``tex`` compiling in a minimal document with booktabs (no LaTeX needed):
    unbalanced environments or braces, rows whose cell count differs from the tabular spec,
    unescaped special characters outside math."""
    problems, stack = [], []
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            problems.append(f"\\end{{{name}}} does not close the open environment")
    problems += [f"\\begin{{{name}}} never closed" for name in stack]
    unescaped = re.sub(r"\\.", "", body)  # drop escaped characters and command backslashes
    if unescaped.count("{") != unescaped.count("}"):
        problems.append("unbalanced braces")
    spec = re.search(r"\\begin\{tabular\}\{([lcr|]+)\}", body)
    columns = len(spec.group(1).replace("|", "")) if spec else None
    if columns is None:
        problems.append("no tabular")
    inside = body.split("\\toprule")[-1].split("\\bottomrule")[0]
    for line in inside.splitlines():
        if line.strip().endswith("\\\\"):
            cells = len(re.findall(r"(?<!\\)&", line)) + 1
            if cells != columns:
                problems.append(f"{cells} cells, spec {columns}: {line}")
    for line in body.splitlines():
        row = line.rstrip().endswith("\\\\")
        plain = re.sub(r"\$[^$]*\$", "", re.sub(r"\\.", "", line))  # without escapes and math
        for ch in "_%#^~$" + ("" if row else "&"):  # & separates the cells of a row
            if ch in plain:
                problems.append(f"unescaped {ch!r}: {line}")
    return problems


def test_latex_table_structure_caption_and_escaping():
    """What a minimal document with booktabs needs, checked without LaTeX (pdflatex: the next test)."""
    rows = _example_rows()
    tex = to_latex(rows, title="Table 2: nnU-Net backbone (cpu profile): ours (paper)")
    assert tex.splitlines()[0] == r"% requires \usepackage{booktabs}"
    assert latex_problems(tex) == []
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert caption.startswith("nnU-Net backbone (cpu profile)")  # LaTeX numbers it: no "Table 2:" in the text
    assert not re.match(r"\s*Table\s*\w+\s*:", caption)
    assert "synthetic stand-ins" in caption and "CPU scale (profile cpu)" in caption
    assert r"drive: synthetic\_drive" in caption and "not comparable" in caption
    assert r"n/a*: not in the paper (top\_cow\&50\%\# + clDice: out of memory (A100 40GB))" in caption
    assert r"\label{tab:skelrecall-table2}" in tex
    assert r"top\_cow\&50\%\# & + clDice & 40.00 $\pm$ 1.00 (n/a*)" in tex  # escaped cells, same contents
    assert r"\textbf{56.25 $\pm$ 1.00} (\textbf{81.00})" in tex
    assert tex.count(r"\midrule") == 2  # under the header and between the two datasets
    real = to_latex(rows.assign(trained_on="drive"), title="Table 3: HRNet (paper profile): ours (paper)")
    assert "real (converted) datasets (profile paper)" in real and "synthetic" not in real
    assert latex_problems(real) == []
    # the checker catches what would break LaTeX
    assert latex_problems(tex.replace(r"top\_cow", "top_cow"))
    assert latex_problems(tex.replace(r"(n/a*) \\", r"(n/a*) & x \\"))
    assert latex_problems(tex.replace(r"\end{tabular}", ""))


def _example_rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _table_row("drive", "dice_ce", 50.0, 80.0),
            _table_row("drive", "skeleton_recall", 56.25, 81.0),
            _table_row("top_cow&50%#", "cldice", 40.0, math.nan, note="out of memory (A100 40GB)"),
        ]
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (structure: the test above)")
def test_latex_table_compiles_with_pdflatex(tmp_path):
    tex = to_latex(_example_rows(), title="Table 2: nnU-Net backbone (cpu profile): ours (paper)")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\\end{document}\n")
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_run_summary_markdown_keeps_its_cells():
    from pathlib import Path

    from skelrecall.report import to_markdown as runs_markdown

    table = pd.DataFrame(
        [
            {
                "dataset": "synthetic_2d",
                "backbone": "unet",
                "loss": "skeleton_recall",
                "w": 0.1,
                "dice": "70.00 +- 1.00",
                "cldice": "75.00",
                "betti0_error": "n/a",
                "betti1_error": "1.000",
                "runs": 2,
                "failed": 1,
                "did_not_train": 0,
                "cases": 3,
            }
        ]
    )
    md = runs_markdown(table, "T", "smoke", Path("runs/smoke/x"))
    lines = md.splitlines()
    assert lines[0] == "# T" and "Profile `smoke`, synthetic data." in md
    assert lines[-3:] == [
        "| dataset | backbone | loss | w | Dice (%) | clDice (%) | beta0 error | beta1 error | runs | cases |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| synthetic_2d | unet | skeleton_recall | 0.1 | 70.00 +- 1.00 | 75.00 | n/a | 1.000 | 2 (1 failed) | 3 |",
    ]


@pytest.mark.slow
def test_reproduce_end_to_end_on_a_small_plan(tmp_path, capsys):
    """A one-table plan (2 losses x 2 seeds on a tiny synthetic_roads): runs, table with paper values,
    spreads and paired tests; a second call skips every finished run; a changed config is refused
    until --retrain-stale, and the report never shows a stale run's values."""
    from skelrecall.data.synthetic import get_generator

    data = tmp_path / "data"
    get_generator("synthetic_roads")(data / "Dataset911_SyntheticRoads", seed=0, num_train=6, num_test=3)
    (tmp_path / "paper.csv").write_text(
        "dataset,loss,dice,cldice,betti0_error,betti1_error,evaluation\n"
        "roads,dice_ce,78.99,88.79,5.769,84.62,test set\n"
        "roads,skeleton_recall,79.25,89.06,4.846,83.69,test set\n"
    )
    plan_file = tmp_path / "tables.yaml"
    plan_file.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "smoke": {
                        "seeds": [0, 1],
                        "folds": [0],
                        "data": "synthetic",
                        "launcher": None,
                        "synthetic_cases": {"num_train": 6, "num_test": 3},  # the stand-in written above
                    }
                },
                "tables": {
                    "tableX": {"title": "Toy table", "paper": "paper.csv", "experiments": {"roads": "nnunet_roads"}}
                },
            }
        )
    )
    runs, out = tmp_path / "runs", tmp_path / "reports"
    args = [
        "--profile",
        "smoke",
        "--tables",
        str(plan_file),
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--data",
        str(data),
        "logger=csv",
        "data.max_test_cases=3",
    ]
    assert reproduce_main(args) == 0
    assert len(list((runs / "smoke/nnunet_roads/synthetic_roads/unet").glob("*/*/*/*/done"))) == 4
    md = (out / "tables/tableX.md").read_text()
    assert "**Synthetic data, smoke scale.**" in md and "roads -> `synthetic_roads`" in md
    rows = [line for line in md.split("## Paired tests")[0].splitlines() if line.startswith("| roads |")]
    assert len(rows) == 2 and all("2/2" in row and " +- " in row for row in rows)
    assert "| 78.99 |" in rows[0] or "| **78.99** |" in rows[0]
    test_row = next(line for line in md.splitlines() if line.startswith("| roads | + Skeleton Recall | 3 |"))
    assert test_row.count("p=") == 4
    tex = (out / "tables/tableX.tex").read_text()
    assert tex.count(r"\\") >= 3 and latex_problems(tex) == [] and "synthetic stand-ins" in tex
    capsys.readouterr()
    assert reproduce_main(args) == 0  # everything finished: nothing is trained again
    assert "4 runs: 4 finished, 0 to do, 0 stale" in capsys.readouterr().out

    # the same plan with a changed config: every finished run is stale; refused, nothing touched
    changed = [*args, "optimizer.lr=0.02"]
    done_files = sorted(runs.rglob("done"))
    stamps = [p.stat().st_mtime for p in done_files]
    assert reproduce_main(changed) == 2
    err = capsys.readouterr().err
    assert "4 planned runs were made with another config" in err and "optimizer.lr: 0.01 -> 0.02" in err
    assert "--retrain-stale" in err and [p.stat().st_mtime for p in done_files] == stamps
    with pytest.raises(SystemExit, match="4 made with another config"):  # the report shows no stale values
        from skelrecall.report import main as report_main

        report_main(
            [
                "--profile",
                "smoke",
                "--tables",
                str(plan_file),
                "--runs",
                str(runs),
                "--out",
                str(out),
                "--override=optimizer.lr=0.02",
                "--override=data.max_test_cases=3",
            ]
        )
    assert reproduce_main([*changed, "--retrain-stale"]) == 0
    assert "--retrain-stale: deleting them" in capsys.readouterr().out
    assert all("lr: 0.02" in (p.parent / "config.yaml").read_text() for p in runs.rglob("done"))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_plan_resolves_every_run_as_skelrecall_train_does(spec, profile):
    """The plan composes each run through Hydra's compose API; skelrecall-train (--cfg job --resolve)
    must resolve the same config for it (one run of every group, the first and last loss)."""
    import subprocess
    import sys

    from skelrecall.experiments import planned_config, run_overrides

    for group in plan(spec, profile):
        runs = group.runs()
        for run in (runs[0], runs[-1]):
            extra = ["paths.runs=/tmp/skelrecall-plan-check"]
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "skelrecall.train",
                    "--cfg",
                    "job",
                    "--resolve",
                    *run_overrides(run),
                    f"profile={profile}",
                    *extra,
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert yaml.safe_load(proc.stdout) == planned_config(run, profile, extra), (group.name, run)


def test_paper_dry_run_lists_every_job_with_its_cluster_request(tmp_path, capsys):
    assert (
        reproduce_main(
            [
                "--profile",
                "paper",
                "--dry-run",
                "--runs",
                str(tmp_path),
                "hydra.launcher.partition=gpu",
                "hydra.launcher.timeout_min=1440",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "276 runs: 0 finished, 276 to do" in out and out.count("--multirun profile=paper") == 10
    assert (
        out.count(
            "per job: nodes=1, tasks_per_node=1, gpus_per_node=1, cpus_per_task=10, mem_gb=64, "
            "timeout_min=1440, partition=gpu"
        )
        == 10
    )


def test_multi_node_ddp_on_slurm_composes():
    """The README's multi-node example: 2 nodes x 4 GPUs, one SLURM task per GPU."""
    from hydra import compose, initialize_config_dir

    from skelrecall.configs import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=nnunet_toothfairy",
                "profile=paper",
                "trainer=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra/launcher=slurm",
                "hydra.launcher.nodes=2",
                "hydra.launcher.tasks_per_node=4",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.partition=gpu",
            ],
            return_hydra_config=True,
        )
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes) == ("ddp", 4, 2)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.nodes * launcher.tasks_per_node == cfg.trainer.num_nodes * cfg.trainer.devices


def test_real_data_profile_names_what_it_cannot_run(spec, tmp_path):
    """cpu_real: datasets outside the profile and datasets not converted here get a reason, shown in the
    table instead of values (never silently dropped)."""
    from skelrecall.experiments import unavailable

    groups = {g.name: g for g in plan(spec, "cpu_real")}
    assert groups["table2/drive"].dataset == "drive" and groups["table2/drive"].seeds == (0, 1, 2)
    (tmp_path / "Dataset802_DRIVE").mkdir()
    (tmp_path / "Dataset802_DRIVE" / "dataset.json").write_text("{}")
    assert unavailable(spec, "cpu_real", groups["table2/drive"], tmp_path) is None
    assert unavailable(spec, "cpu_real", groups["table2/cracks"], tmp_path) == "not in profile cpu_real"
    roads = unavailable(spec, "cpu_real", groups["table3/roads"], tmp_path)
    assert roads.startswith("not available here") and "skelrecall-data convert roads" in roads
    rows, _ = build_table(
        spec, "table3", "cpu_real", pd.DataFrame(), {"roads": roads, "cracks": "not in profile cpu_real"}
    )
    md = to_markdown(rows, pd.DataFrame(), title="T", header=[])
    line = next(x for x in md.splitlines() if x.startswith("| roads | Dice+CE"))
    assert "not available" in line and "0/3 (not available here" in line
    assert "0/3 (not in profile cpu_real)" in next(x for x in md.splitlines() if x.startswith("| cracks | Dice+CE"))
