"""The notebooks run top to bottom on real smoke runs (two losses, a tiny synthetic dataset)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # end-to-end: runs in subprocesses or many training steps

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BIN = Path(sys.executable).parent
LOSSES = ("dice_ce", "skeleton_recall")
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict[str, str]:
    """Environment pointing the notebooks at a tiny dataset and two finished smoke runs in tmp."""
    tmp = tmp_path_factory.mktemp("notebooks")
    raw, runs = tmp / "raw", tmp / "runs"
    subprocess.run(
        [
            str(BIN / "skelrecall-data"),
            "synthesize",
            "synthetic_2d",
            "--out",
            str(raw / "Dataset901_Synthetic2D"),
            "--num-train",
            "8",
            "--num-test",
            "4",
        ],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    # one thread: on a small shared CPU, torch's default thread pool oversubscribes it (10x slower)
    subprocess.run(
        [
            str(BIN / "skelrecall-train"),
            "--multirun",
            "profile=smoke",
            "logger=none",
            "dataset=synthetic_2d",
            f"loss={','.join(LOSSES)}",
            "data.max_test_cases=3",
            f"paths.runs={runs}",
            f"paths.nnunet_raw={raw}",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **THREADS},
    )
    assert len(list(runs.rglob("done"))) == len(LOSSES)
    return {
        **THREADS,
        "SKELRECALL_RUNS": str(runs),
        "SKELRECALL_NNUNET_RAW": str(raw),
        "SKELRECALL_BENCH": str(ROOT / "reports" / "bench"),
        "SKELRECALL_FIGURES": str(tmp / "figures"),
    }


def execute(name: str, env: dict[str, str], cwd: Path):
    """Run notebook ``name`` in a python3 kernel with ``env`` set; return the executed notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = nbclient.NotebookClient(
            nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(cwd)}}
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def outputs(nb, kind: str) -> list:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if kind in o.get("data", {}) or o.get("output_type") == kind
    ]


def text(nb) -> str:
    return "".join(o.get("text", "") for o in outputs(nb, "stream"))


def test_notebooks_committed_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert not outputs(nb, "image/png") and not outputs(nb, "stream"), f"{path.name} has outputs"
    expected = {"01_tubed_vs_soft_skeleton.ipynb", "02_qualitative_results.ipynb", "03_resources.ipynb"}
    assert expected <= {p.name for p in NOTEBOOKS.glob("*.ipynb")}


def test_notebooks_write_figures_to_a_scratch_folder_and_jupyterlab_is_an_extra():
    """By default PNGs go to the git-ignored notebooks/output/, never into the tracked reports/."""
    import tomllib

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert 'os.environ.get("SKELRECALL_FIGURES", "notebooks/output")' in code, path.name
        assert not re.search(r"[\"']reports/figures", code), f"{path.name} writes into reports/"
    ignored = subprocess.run(["git", "check-ignore", "-q", "notebooks/output/fig.png"], cwd=ROOT)
    assert ignored.returncode == 0, "notebooks/output/ is not git-ignored"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("jupyterlab") for r in extras["notebooks"])


def test_notebooks_run_on_smoke_outputs(smoke, tmp_path: Path):
    nb1 = execute("01_tubed_vs_soft_skeleton.ipynb", smoke, cwd=ROOT)
    assert "Dataset901_Synthetic2D/labelsTs/synth_ts_0000.png" in text(nb1)
    assert outputs(nb1, "image/png")

    nb2 = execute("02_qualitative_results.ipynb", smoke, cwd=NOTEBOOKS)  # also runs from notebooks/
    assert "2 finished run(s)" in text(nb2)
    assert outputs(nb2, "image/png"), "the qualitative notebook drew no image"
    assert any(f.name.startswith("fig5_") for f in Path(smoke["SKELRECALL_FIGURES"]).iterdir())
    tables = [o["data"]["text/html"] for o in outputs(nb2, "text/html")]
    assert any(all(loss in str(t) for loss in LOSSES) for t in tables), "no metric table per loss"

    nb3 = execute("03_resources.ipynb", smoke, cwd=ROOT)
    assert outputs(nb3, "image/png") and "losses.csv" in text(nb3)


def test_qualitative_notebook_without_runs_says_what_to_run(smoke, tmp_path: Path):
    nb = execute("02_qualitative_results.ipynb", {**smoke, "SKELRECALL_RUNS": str(tmp_path / "empty")}, cwd=ROOT)
    assert "make reproduce PROFILE=smoke" in text(nb)
    assert not outputs(nb, "image/png")
