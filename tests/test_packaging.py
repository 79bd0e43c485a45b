"""The conda environment, pyproject and Makefile agree; console scripts are declared."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
    assert {"skelrecall-train", "skelrecall-evaluate", "skelrecall-report", "skelrecall-data",
            "skelrecall-bench"} <= set(scripts)
    makefile = (ROOT / "Makefile").read_text()
    for target in ["help", "install", "test", "data", "train", "sweep", "evaluate", "report", "bench",
                   "reproduce", "clean"]:
        assert re.search(rf"^{target}:.*## ", makefile, re.M), f"Makefile target {target} missing or undocumented"
    readme = (ROOT / "README.md").read_text()
    assert "make reproduce" in readme and "make test" in readme
