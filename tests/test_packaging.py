"""The conda environment, pyproject and Makefile agree; console scripts are declared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    listed = {_name(r) for r in pip if not r.startswith("-e")} | conda
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"


def test_console_scripts_and_make_targets():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {
        "skelrecall-train",
        "skelrecall-evaluate",
        "skelrecall-report",
        "skelrecall-data",
        "skelrecall-bench",
        "skelrecall-predict",
        "skelrecall-reproduce",
    } <= set(scripts)
    makefile = (ROOT / "Makefile").read_text()
    for target in [
        "help",
        "install",
        "test",
        "test-fast",
        "lint",
        "format",
        "data",
        "train",
        "sweep",
        "evaluate",
        "predict",
        "report",
        "bench",
        "reproduce",
        "clean",
    ]:
        assert re.search(rf"^{target}:.*## ", makefile, re.M), f"Makefile target {target} missing or undocumented"
    readme = (ROOT / "README.md").read_text()
    assert "make reproduce" in readme and "make test" in readme


@pytest.mark.slow
def test_built_wheel_trains_from_any_folder(tmp_path, tiny_root):
    """`pip install .` (a wheel, not editable) carries the configs: `skelrecall-train --cfg job` and a
    smoke run work from an empty folder outside the repository (dependencies: this environment's)."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(source),
        ],
        check=True,
        timeout=600,
    )
    wheel = next(wheel_dir.glob("skelrecall-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "skelrecall/configs/train.yaml" in names and "skelrecall/configs/loss/parts/shared.yaml" in names
    assert "skelrecall/py.typed" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=600,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline", "SKELRECALL_ROOT": str(tiny_root)}
    code = (
        "import sys; site = sys.argv.pop(1); import skelrecall.train as t; "
        "assert t.__file__.startswith(site), t.__file__; t.main()"
    )
    job = subprocess.run(
        [sys.executable, "-c", code, str(site), "--cfg", "job", "profile=smoke"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0 and "experiment_name: default" in job.stdout, job.stderr[-2000:]
    train = subprocess.run(
        [sys.executable, "-c", code, str(site), "profile=smoke", "logger=csv", "experiment_name=installed"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tiny_root / "runs/smoke/installed/synthetic_2d/unet/skeleton_recall/w=1.0/seed=0/fold=0/done").exists()
