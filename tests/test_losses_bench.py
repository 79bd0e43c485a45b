"""The loss benchmark runs end to end in quick mode and writes its three outputs."""

import pandas as pd

from skelrecall.bench import losses as bench


def test_quick_benchmark_writes_csv_report_and_figure(tmp_path):
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
    report = (tmp_path / "losses.md").read_text()
    assert "## Machine" in report and "QUICK" in report and "Skeleton Recall" in report
    assert "## Paired step time" in report and "32x32 Skeleton Recall step time overhead" in report
    assert (tmp_path / "losses_overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_batch_skeleton_lies_in_label():
    label, skel = bench.synthetic_batch(2, (24, 24), classes=4)
    assert label.shape == skel.shape == (2, 1, 24, 24)
    assert set(range(1, 4)) <= set(label.ravel().tolist())
    assert ((skel == 0) | (skel == label)).all() and (skel > 0).any()


def test_step_time_goal_is_judged_on_paired_cpu_time_on_cpu_and_wall_time_on_gpu():
    table = pd.DataFrame({"dims": [2, 2], "spatial": ["8x8", "8x8"], "classes": [2, 14], "loss": "skeleton_recall",
                          "alloc_ratio": [1.0, 1.0], "cpu_ratio": [1.0, 1.0], "loss_overhead": [0.0, 0.0],
                          "loss_alloc_mb": [1.0, 2.0]})
    pairs = pd.DataFrame({"dims": [2, 2], "spatial": ["8x8", "8x8"], "classes": [2, 14],
                          "cpu_ratio_median": [1.10, 1.12], "wall_ratio_median": [1.00, 1.02]})

    def time_goal(device):
        (goal, value, ok), = [c for c in bench.goal_checks(table, pairs.assign(device=device)) if "step time" in c[0]]
        return ok, value

    ok, value = time_goal("cpu")
    assert ok is False and "+11.0% CPU time" in value
    ok, value = time_goal("cuda")
    assert ok is True and "+1.0% wall time" in value
