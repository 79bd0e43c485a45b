"""``skelrecall-data convert``: the command a user types, for every registered converter.

The converter tests call the Python functions; these go through ``skelrecall.data.cli.main``, the
installed console script and ``make data``, on tiny fake downloads in each dataset's published
layout, so an argument the command passes that a converter does not take (or a wrong layout
message) fails here.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skelrecall.data.cli import main
from skelrecall.data.converters import COMMON_OPTIONS, CONVERTERS, converter_options
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image

from .fake_downloads import fake_cracks, fake_drive, fake_roads, fake_toothfairy_2023, fake_topcow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DRIVE_SPLIT = json.loads((REPO / "data" / "splits" / "drive.json").read_text())

# name -> (builder of a tiny download, training cases, test cases, label values of the dataset)
CASES = {
    "roads": (lambda root: fake_roads(root, "original"), 7, 2, {"background": 0, "road": 1, "ignore": 2}),
    "drive": (fake_drive, 20, 2, {"background": 0, "vessel": 1}),
    "cracks": (fake_cracks, 8, 0, {"background": 0, "crack": 1}),
    "toothfairy": (fake_toothfairy_2023, 5, 1, {"background": 0, "canal": 1}),
    "topcow_binary": (lambda root: fake_topcow(root, range(1, 8)), 12, 2, {"background": 0, "vessel": 1}),
    "topcow_multiclass": (lambda root: fake_topcow(root, range(1, 8)), 12, 2, None),
}


def _error(argv: list[str]) -> str:
    """Run ``main(argv)``, expect it to stop with an error; return the message."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code not in (0, None)
    return str(exc.value.code)


def _script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SKELRECALL_ROOT"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def test_registry_covers_every_converter():
    assert set(CASES) == set(CONVERTERS)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_every_converter_has_the_common_signature(name):
    """``(raw, out=None, *, workers=1, overwrite=False, **options with defaults)``: what the CLI calls."""
    params = list(inspect.signature(CONVERTERS[name]).parameters.values())
    raw, out, rest = params[0], params[1], params[2:]
    assert raw.name == "raw" and raw.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert raw.default is inspect.Parameter.empty
    assert out.name == "out" and out.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and out.default is None
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), [p.name for p in rest]
    assert all(p.default is not inspect.Parameter.empty for p in rest), "every option needs a default"
    defaults = {p.name: p.default for p in rest}
    assert defaults["workers"] == 1 and defaults["overwrite"] is False
    assert set(converter_options(name)) == set(defaults) - set(COMMON_OPTIONS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_converts_each_dataset(tmp_path, name, capsys):
    build, n_train, n_test, labels = CASES[name]
    raw = build(tmp_path / "raw")
    out = tmp_path / "out" / name
    main(["convert", name, "--raw", str(raw), "--out", str(out)])
    ds = DatasetLayout.open(out)
    assert len(ds.cases("Tr")) == n_train and len(ds.cases("Ts")) == n_test
    assert ds.meta["numTraining"] == n_train
    if labels is not None:
        assert ds.meta["labels"] == labels
    else:  # topcow_multiclass: background + 13 consecutive vessel classes
        assert list(ds.meta["labels"].values()) == list(range(14))
    assert len(ds.splits()) == 5
    assert not (out.parent / f"{name}.partial").exists()
    assert f"{name}: {out}" in capsys.readouterr().err


def test_cli_drive_labels_and_committed_split_with_workers(tmp_path):
    raw = fake_drive(tmp_path / "raw")
    out = tmp_path / "Dataset802_DRIVE"
    main(["convert", "drive", "--raw", str(raw), "--out", str(out), "--workers", "2"])
    ds = DatasetLayout.open(out)
    for case in ds.cases("Tr"):
        lab, _ = read_image(ds.label_file(case))
        assert set(np.unique(lab).tolist()) == {0, 1}
    assert json.loads((out / "splits.json").read_text()) == DRIVE_SPLIT
    assert sorted(p.stem for p in (out / "masksTr").glob("*.png")) == ds.cases("Tr")


def test_console_script_converts_drive(tmp_path):
    """The installed ``skelrecall-data``, with ``--out`` and with the default output folder."""
    script = BIN / "skelrecall-data"
    assert script.is_file(), f"{script}: console script not installed (pip install -e .)"
    raw = fake_drive(tmp_path / "raw")
    out = tmp_path / "X"
    proc = subprocess.run(
        [str(script), "convert", "drive", "--raw", str(raw), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_script_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ds = DatasetLayout.open(out)
    assert ds.cases("Tr") == [f"drive_{i}" for i in range(21, 41)]
    lab, _ = read_image(ds.label_file("drive_30"))
    assert set(np.unique(lab).tolist()) == {0, 1}
    assert json.loads((out / "splits.json").read_text()) == DRIVE_SPLIT
    # no --out: data/nnUNet_raw/<folder of configs/dataset/drive.yaml> below the working directory
    proc = subprocess.run(
        [str(script), "convert", "drive", "--raw", str(raw)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_script_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert DatasetLayout.open(tmp_path / "data" / "nnUNet_raw" / "Dataset802_DRIVE").cases("Tr") == ds.cases("Tr")


def test_console_script_reports_a_layout_error_with_the_path(tmp_path):
    raw = fake_drive(tmp_path / "raw", test_ids=())
    manual = raw / "DRIVE" / "training" / "1st_manual"
    manual.rename(manual.with_name("manual"))  # annotations not where the release puts them
    proc = subprocess.run(
        [str(BIN / "skelrecall-data"), "convert", "drive", "--raw", str(raw), "--out", str(tmp_path / "X")],
        capture_output=True,
        text=True,
        env=_script_env(),
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"{manual / '21_manual1.gif'}: vessel annotation missing" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "X").exists() and not (tmp_path / "X.partial").exists()


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``make data ...`` in the repository with this interpreter's environment, not reinstalling it:
    ``-o install`` treats the ``install`` target (and the venv stamp behind it) as up to date."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), "-o", "install", "data", f"VENV={sys.prefix}", *args],
        capture_output=True,
        text=True,
        env=_script_env(SKELRECALL_ROOT=str(tmp_path)),
        timeout=300,
    )


def test_make_data_converts_drive(tmp_path):
    raw = fake_drive(tmp_path / "raw")
    proc = _make(tmp_path, "DATASET=drive", f"RAW={raw}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "data" / "nnUNet_raw" / "Dataset802_DRIVE"  # SKELRECALL_ROOT moves the default folder
    ds = DatasetLayout.open(out)
    assert len(ds.cases("Tr")) == 20 and json.loads((out / "splits.json").read_text()) == DRIVE_SPLIT
    assert not (REPO / "data" / "nnUNet_raw" / "Dataset802_DRIVE.partial").exists()


@pytest.mark.skipif(
    not re.search(r"^data:.*\n(\t.*\n)*.*\$\(OUT\)", (REPO / "Makefile").read_text(), re.M),
    reason="the Makefile's data target does not pass OUT yet",
)
def test_make_data_passes_out_only_when_given(tmp_path):
    raw = fake_drive(tmp_path / "raw")
    proc = _make(tmp_path, "DATASET=drive", f"RAW={raw}", f"OUT={tmp_path / 'mine'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(DatasetLayout.open(tmp_path / "mine").cases("Tr")) == 20
    assert not (tmp_path / "data").exists()


def test_make_data_layout_error_fails(tmp_path):
    raw = tmp_path / "raw"
    (raw / "DRIVE" / "train" / "images").mkdir(parents=True)  # not the release's training/images
    proc = _make(tmp_path, "DATASET=drive", f"RAW={raw}")
    assert proc.returncode != 0
    assert f"{raw}: none of training/images found" in proc.stderr


def test_cli_layout_errors_name_the_path(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere"
    assert f"{missing}: download folder does not exist" in _error(["convert", "drive", "--raw", str(missing)])
    archive = tmp_path / "DRIVE.zip"
    archive.write_bytes(b"PK")
    assert f"{archive}: is a file" in _error(["convert", "drive", "--raw", str(archive)])

    raw = fake_drive(tmp_path / "drive", test_ids=())
    bad = raw / "DRIVE" / "training" / "images" / "25_training.tif"
    renamed = bad.with_name("25_train.tif")
    bad.rename(renamed)
    assert f"{renamed}: unexpected file name" in _error(["convert", "drive", "--raw", str(raw), "--out", str(out)])
    renamed.rename(bad)
    (raw / "DRIVE" / "training" / "mask" / "33_training_mask.gif").unlink()
    msg = _error(["convert", "drive", "--raw", str(raw), "--out", str(out)])
    assert f"{raw / 'DRIVE' / 'training' / 'mask' / '33_training_mask.gif'}: FOV mask missing" in msg

    roads = fake_roads(tmp_path / "roads", "original")
    (roads / "mass_roads" / "train" / "sat").rename(roads / "mass_roads" / "train" / "images")
    msg = _error(["convert", "roads", "--raw", str(roads), "--out", str(out)])
    assert msg.startswith(f"error: {roads}: no Massachusetts Roads layout found") and "train/sat" in msg
    (roads / "mass_roads" / "train" / "images").rename(roads / "mass_roads" / "train" / "sat")
    (roads / "mass_roads" / "test" / "map").rename(roads / "mass_roads" / "test" / "labels")
    assert f"{roads / 'mass_roads' / 'test' / 'map'}: folder missing" in _error(
        ["convert", "roads", "--raw", str(roads), "--out", str(out)]
    )
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_cli_options_are_checked_and_passed(tmp_path, capsys):
    raw = fake_roads(tmp_path / "raw", "original")
    out = tmp_path / "roads"
    msg = _error(["convert", "roads", "--raw", str(raw), "--out", str(out), "--option", "no_data=background"])
    assert "no_data: not an option of the roads converter" in msg and "nodata (default 'ignore')" in msg
    assert "expected KEY=VALUE" in _error(["convert", "roads", "--raw", str(raw), "--option", "nodata"])
    assert "nodata must be one of" in _error(
        ["convert", "roads", "--raw", str(raw), "--out", str(out), "-O", "nodata=nothing"]
    )
    main(
        [
            "convert",
            "roads",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--option",
            "nodata=background",
            "-O",
            "min_component=10",
        ]
    )
    ds = DatasetLayout.open(out)
    assert ds.meta["labels"] == {"background": 0, "road": 1}
    assert ds.meta["conversion"]["nodata"] == "background" and ds.meta["conversion"]["min_component"] == 10
    # a rerun with other options needs --overwrite
    assert "--overwrite" in _error(["convert", "roads", "--raw", str(raw), "--out", str(out)])
    main(["convert", "roads", "--raw", str(raw), "--out", str(out), "--overwrite"])
    assert DatasetLayout.open(out).meta["labels"]["ignore"] == 2
    main(["list"])
    listed = capsys.readouterr().out
    for name in CONVERTERS:
        assert f"  {name} options: " in listed
    assert "nodata='ignore'" in listed and "include_test=True" in listed
