"""The loss benchmark: quick end-to-end run, rebuilding the report from the raw files, goal checks."""

import json

import pandas as pd
import pytest

from skelrecall.bench import cli
from skelrecall.bench import losses as bench


def _verdicts(report: str) -> list[str]:
    """The goal lines without their measured values."""
    return [
        line.split(": ")[0] + ": " + line.split(": ")[1]
        for line in report.splitlines()
        if line.startswith("- ") and line.split(":")[0] in ("- MET", "- NOT MET", "- INFO")
    ]


@pytest.mark.slow
def test_quick_benchmark_writes_csv_report_and_figure_and_rebuilds_them(tmp_path):
    bench.run(out_dir=str(tmp_path), quick=True)
    table = pd.read_csv(tmp_path / "losses.csv")
    assert set(table["loss"]) == set(bench.LOSSES)
    assert set(table[table["loss"] == "topo_cldice"]["dims"]) == {2}  # 2D only, as in the paper
    base = table[table["loss"] == "dice_ce"]
    assert (base["alloc_ratio"] == 1.0).all() and (base["cpu_ratio"] == 1.0).all()
    assert (table["step_cpu_s"] > 0).all() and (table["peak_alloc_mb"] > table["step_alloc_mb"]).all()
    pairs = pd.read_csv(tmp_path / "losses_paired.csv")
    assert list(pairs["loss"]) == ["skeleton_recall"] and (pairs["pairs"] == 2).all()
    assert (pairs["cpu_ratio_min"] <= pairs["cpu_ratio_median"]).all()
    assert (pairs["cpu_ratio_median"] <= pairs["cpu_ratio_max"]).all() and (pairs["step_cpu_base_s"] > 0).all()
    assert (pairs["peak_alloc_mb"] >= pairs["peak_alloc_base_mb"]).all()  # the extra loss holds more, never less
    run_info = json.loads((tmp_path / "losses_run.json").read_text())
    assert run_info["preset"] == "quick" and run_info["device"] in ("cpu", "cuda") and run_info["elapsed_s"] > 0
    report = (tmp_path / "losses.md").read_text()
    assert "## Machine" in report and "QUICK" in report and "Skeleton Recall" in report
    assert "## Paired step time" in report
    assert "32x32: Skeleton Recall adds at most 3 % step time over Dice+CE" in report
    assert (tmp_path / "losses_overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # rebuilt from the raw files alone: same sections, goals and verdicts, same rows
    for name in ("losses.csv", "losses.md", "losses_overhead.png"):
        (tmp_path / name).unlink()
    cli.main(["losses", "--render-only", "--out", str(tmp_path)])
    rebuilt = (tmp_path / "losses.md").read_text()
    assert _verdicts(rebuilt) == _verdicts(report) and len(_verdicts(report)) >= 3
    assert [ln for ln in rebuilt.splitlines() if ln.startswith("#")] == [
        ln for ln in report.splitlines() if ln.startswith("#")
    ]
    assert len(rebuilt.splitlines()) == len(report.splitlines())
    again = pd.read_csv(tmp_path / "losses.csv")
    assert list(again.columns) == list(table.columns)
    pd.testing.assert_frame_equal(again, table, rtol=1e-3)  # the raw CSVs keep 5 significant digits
    assert (tmp_path / "losses_overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_only_names_missing_raw_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="losses_raw.csv.*losses_run.json"):
        bench.render_only(tmp_path)
    with pytest.raises(SystemExit):
        cli.main(["metrics", "--render-only", "--out", str(tmp_path)])


def test_synthetic_batch_skeleton_lies_in_label():
    label, skel = bench.synthetic_batch(2, (24, 24), classes=4)
    assert label.shape == skel.shape == (2, 1, 24, 24)
    assert set(range(1, 4)) <= set(label.ravel().tolist())
    assert ((skel == 0) | (skel == label)).all() and (skel > 0).any()


def _sr_table(alloc_ratio=(1.0, 1.0)):
    return pd.DataFrame(
        {
            "dims": [2, 2],
            "spatial": ["8x8", "8x8"],
            "classes": [2, 14],
            "loss": "skeleton_recall",
            "alloc_ratio": list(alloc_ratio),
            "cpu_ratio": [1.0, 1.0],
            "loss_overhead": [0.0, 0.0],
            "loss_alloc_mb": [1.0, 2.0],
        }
    )


def test_step_time_goal_is_judged_on_paired_cpu_time_on_cpu_and_wall_time_on_gpu():
    pairs = pd.DataFrame(
        {
            "dims": [2, 2],
            "spatial": ["8x8", "8x8"],
            "classes": [2, 14],
            "cpu_ratio_median": [1.10, 1.12],
            "wall_ratio_median": [1.00, 1.02],
        }
    )

    def time_goal(device):
        ((goal, value, ok),) = [
            c for c in bench.goal_checks(_sr_table(), pairs.assign(device=device)) if "step time" in c.goal
        ]
        assert goal == "2D 8x8: Skeleton Recall adds at most 3 % step time over Dice+CE"
        return ok, value

    ok, value = time_goal("cpu")
    assert ok is False and "+11.0% CPU time" in value
    ok, value = time_goal("cuda")
    assert ok is True and "+1.0% wall time" in value


@pytest.mark.parametrize(
    "ratios, memory_met, growth_met",
    [
        ((1.0, 1.02), True, True),  # exactly at the 2 % limit
        ((1.0, 1.025), False, True),  # over it
        ((0.9, 1.0), True, False),  # ratio at C=14 more than 1.1x that at C=2
    ],
)
def test_memory_goals_are_ratio_limits(ratios, memory_met, growth_met):
    checks = {c.goal: c for c in bench.goal_checks(_sr_table(ratios))}
    memory = checks["2D 8x8: Skeleton Recall adds at most 2 % peak memory over Dice+CE"]
    growth = checks["2D 8x8: Skeleton Recall's peak-memory ratio to Dice+CE at C=14 is at most 1.1x that at C=2"]
    assert memory.met is memory_met and growth.met is growth_met
    assert growth.value.endswith(f"= {ratios[1] / ratios[0]:.4f}")
    assert checks["2D memory of the loss alone, C=2 -> C=14 (reported, no goal)"].met is None
