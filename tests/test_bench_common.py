"""Helpers shared by the benchmarks: machine description, timing of calls, writing outputs."""

import math
import os
import platform

from skelrecall.bench import common


def test_machine_description_names_cpu_cores_python_and_versions():
    info = common.machine_description(packages=("numpy", "surely-not-a-package"))
    assert list(info)[:4] == ["CPU", "GPU", "Python", "platform"]
    assert info["CPU"].startswith(common.cpu_model()) and f"{os.cpu_count()} logical cores" in info["CPU"]
    assert info["Python"] == platform.python_version()
    assert info["versions"].startswith("numpy ") and "surely-not-a-package not installed" in info["versions"]
    assert "versions" not in common.machine_description()
    assert common.machine_lines({"a": 1, "b": "x"}) == ["- a: 1", "- b: x"]


def test_load_average_formatting():
    assert len(common.load_average()) == 3
    assert common.format_load((0.891, 1.6, 12.0)) == "0.89, 1.60, 12.00"
    assert common.format_load((math.nan,) * 3) == "n/a"


def test_time_calls_counts_calls_and_returns_the_last_result():
    calls = []
    timed = common.time_calls(lambda: calls.append(1) or len(calls), 3)
    assert timed.calls == len(calls) == 3 and timed.result == 3
    assert len(timed.wall) == len(timed.cpu) == 3 and all(t >= 0 for t in timed.wall + timed.cpu)
    assert timed.wall_total == math.fsum(timed.wall) and timed.wall_median == sorted(timed.wall)[1]
    # min_seconds keeps calling, max_calls caps it (no wall-clock assertion: the cap decides)
    assert common.time_calls(lambda: None, 1, min_seconds=1e9, max_calls=5).calls == 5
    assert common.time_calls(lambda: None, 4, max_calls=2).calls == 2


def test_write_outputs_writes_every_file(tmp_path):
    paths = common.write_outputs(
        tmp_path / "new", {"a.md": lambda p: p.write_text("# a\n"), "b.csv": lambda p: p.write_text("x\n1\n")}
    )
    assert [p.name for p in paths] == ["a.md", "b.csv"]
    assert (tmp_path / "new" / "a.md").read_text() == "# a\n"
    assert sorted(os.listdir(tmp_path / "new")) == ["a.md", "b.csv"]
