"""Every command of the README's command block and make table runs as written (at smoke scale), so
the documentation cannot drift from the code.

The commands run in a temporary work folder (``SKELRECALL_ROOT`` and the working directory), in the
README's order, after the inputs they name are put in place: a tiny fake DRIVE download at
``data/raw/DRIVE``, a small ``synthetic_roads`` stand-in, and ``data/new_images`` /
``data/new_labels`` (synthetic test images the runs never saw). Make targets run through the
checkout's Makefile (``make -f <checkout>/Makefile -C <work folder>``). Not run here, each for a
reason: ``make test``/``make test-fast`` (this test is part of them), ``make reproduce`` (CI runs
``make reproduce PROFILE=smoke`` after the tests), ``make check-paper`` (the paper's sizes: tens of
minutes; its pieces are tested in tests/test_paper_check.py), ``make format`` (rewrites the
checkout); ``make bench`` runs with ``ARGS=--quick``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .fake_downloads import fake_drive

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = {"make test", "make test-fast", "make reproduce", "make check-paper", "make format"}
QUICK = {"make bench": 'ARGS="--quick --out reports/bench/quick"'}


def readme_commands() -> list[str]:
    """The ``bash`` block under "## Commands", one command per line (continuations joined, comments cut)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Commands\n.*?```bash\n(.*?)```", text, re.S).group(1)
    block = block.replace("\\\n", " ")
    return [re.split(r"\s+#\s", line)[0].strip() for line in block.splitlines() if line.strip()]


def make_rows() -> list[str]:
    """The commands of the "## Make targets" table's first column."""
    text = (ROOT / "README.md").read_text()
    table = re.search(r"## Make targets\n(.*?)\n\n", text, re.S).group(1)
    return [m.group(1) for m in re.finditer(r"^\| `(make [^`]*)` \|", table, re.M)]


def test_readme_lists_what_this_test_runs():
    commands = readme_commands()
    assert len(commands) >= 10 and all(c.startswith("skelrecall-") for c in commands)
    targets = {" ".join(r.split()[:2]) for r in make_rows()}
    makefile = (ROOT / "Makefile").read_text()
    documented = set(re.findall(r"^([a-z-]+):.*## ", makefile, re.M))
    assert {t.split()[1] for t in targets} == documented, "the README's make table and the Makefile differ"


def _env(work: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "SKELRECALL_ROOT": str(work),
        "WANDB_MODE": "offline",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "HYDRA_FULL_ERROR": "0",
    }


def _prepare(work: Path) -> None:
    from skelrecall.data.synthetic import get_generator
    from skelrecall.data.synthetic.tubes2d import generate

    fake_drive(work / "data" / "raw")  # data/raw/DRIVE, the release's layout
    get_generator("synthetic_roads")(
        work / "data/nnUNet_raw/Dataset911_SyntheticRoads", seed=0, num_train=10, num_test=4, progress=False
    )
    unseen = work / "unseen"
    generate(unseen, seed=7, num_train=5, num_test=3, progress=False)  # images the runs never saw
    (work / "data/new_images").mkdir(parents=True)
    shutil.copytree(unseen / "labelsTs", work / "data/new_labels")
    for image in (unseen / "imagesTs").glob("*.png"):
        shutil.copy(image, work / "data/new_images" / image.name)


def _run(command: str, work: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        shlex.split(command), cwd=work, env=_env(work), capture_output=True, text=True, timeout=timeout
    )


def test_every_readme_command_and_make_target_runs(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _prepare(work)
    for command in readme_commands():
        proc = _run(command, work)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if command.startswith("skelrecall-train --multirun sweep=w_optuna"):
            assert "Best parameters" in proc.stdout + proc.stderr
    assert len(list((work / "predictions").glob("*.png"))) == 3
    assert (work / "data/nnUNet_raw/Dataset802_DRIVE/dataset.json").exists()

    make = f"make -f {ROOT / 'Makefile'} -C {work} VENV={Path(sys.executable).parents[1]}"
    ran = []
    for row in make_rows():
        target = " ".join(row.split()[:2])
        if target in NOT_RUN:
            continue
        command = row.replace("make", make, 1) + (" " + QUICK[target] if target in QUICK else "")
        if target == "make predict":
            shutil.rmtree(work / "predictions", ignore_errors=True)  # make predict writes it again
        proc = subprocess.run(
            command, shell=True, cwd=work, env=_env(work), capture_output=True, text=True, timeout=1800
        )
        ran.append(target)
        if target == "make gpu-check":  # without CUDA it must stop with a clear message
            import torch

            if not torch.cuda.is_available():
                assert proc.returncode != 0 and "needs a CUDA device" in proc.stderr + proc.stdout
                continue
        if target == "make report":  # PROFILE=cpu has no runs in a fresh folder: the message says what to run
            assert proc.returncode != 0 and "make reproduce PROFILE=cpu" in proc.stderr + proc.stdout
            continue
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if target == "make help":
            assert all(t.split()[1] in proc.stdout for t in {" ".join(r.split()[:2]) for r in make_rows()})
    assert not (work / "runs").exists()  # make clean ran last and removed the run folders of this folder
    assert (work / "data").exists() and {"make data", "make train", "make sweep", "make predict"} <= set(ran)
