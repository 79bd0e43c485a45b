"""Figures: what is drawn (counts, chosen cases, missed skeleton) and the layout of the PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from skelrecall import figures as F
from skelrecall.data.layout import write_dataset_json, write_json
from skelrecall.io import write_image
from skelrecall.skeleton import tubed_skeleton

CASES = ["c0", "c1", "c2"]


def _png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size  # (width, height)


def _label(seed: int, shape=(32, 32)) -> np.ndarray:
    label = np.zeros(shape, np.uint8)
    label[shape[0] // 2 - 1 : shape[0] // 2 + 2, 2:-2] = 1  # a horizontal bar, 3 px thick
    label[2:-2, 8 + seed : 11 + seed] = 1  # a vertical bar
    return label


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "raw" / "Dataset999_Tiny"
    write_dataset_json(root, channel_names={0: "grey"}, labels={"background": 0, "structure": 1},
                       num_training=0, file_ending=".png")
    rng = np.random.default_rng(0)
    for i, case in enumerate(CASES):
        write_image(root / "labelsTs" / f"{case}.png", _label(i))
        write_image(root / "imagesTs" / f"{case}_0000.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root


def make_run(base: Path, loss: str, cldice: list[float], *, dataset: str = "tiny", nnunet_raw="raw",
             erase: int = 0) -> Path:
    """A finished run folder: config.yaml, done, per_case.csv (headline + a non-headline row) and
    predictions (the label with ``erase`` columns of the horizontal bar removed)."""
    run = base / "runs" / loss
    (run / "predictions").mkdir(parents=True)
    cfg = {"seed": 0, "fold": 0, "paths": {"nnunet_raw": str(nnunet_raw)},
           "dataset": {"name": dataset, "folder": "Dataset999_Tiny"}, "loss": {"name": loss, "w": 1.0}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    write_json(run / "done", {"evaluated_split": "Ts", "n_cases": len(CASES)})
    write_json(run / "summary.json", {"n_cases": len(CASES)})
    rows = []
    for i, (case, value) in enumerate(zip(CASES, cldice)):
        rows.append({"case": case, "class": "structure", "class_id": 1, "headline": True, "cldice": value})
        rows.append({"case": case, "class": "other", "class_id": 2, "headline": False, "cldice": 0.0})
        pred = _label(i)
        pred[14:19, 20 : 20 + erase] = 0
        write_image(run / "predictions" / f"{case}.png", pred)
    pd.DataFrame(rows).to_csv(run / "per_case.csv", index=False)
    return run


# ------------------------------------------------------------------------------ skeleton comparison
def test_skeleton_views_count_the_tubed_skeleton_2d_and_3d():
    label = _label(0)
    views = F.skeleton_views(label)
    assert views.n_tubed == int((tubed_skeleton(label) > 0).sum()) > 0
    assert views.n_foreground == int(label.sum())
    assert 0 < views.n_soft <= views.n_foreground  # the soft skeleton lies inside the foreground
    assert views.soft.min() >= 0 and views.soft.max() <= 1
    volume = np.zeros((6, 16, 16), np.uint8)
    volume[2:4, 7:9, 2:14] = 1
    v3 = F.skeleton_views(volume)
    assert v3.tubed.shape == volume.shape and v3.n_tubed == int((tubed_skeleton(volume) > 0).sum())


def test_skeleton_comparison_writes_four_tiles(tmp_path: Path):
    w2, h2 = _png_size(F.skeleton_comparison(_label(0), tmp_path / "fig3.png"))
    assert w2 > 3 * h2  # four tiles side by side
    volume = np.zeros((6, 16, 16), np.uint8)
    volume[2:4, 7:9, 2:14] = 1
    assert _png_size(F.skeleton_comparison(volume, tmp_path / "fig3_3d.png"))[0] == w2
    with pytest.raises(F.FigureError, match="2D or 3D"):
        F.skeleton_comparison(np.zeros(5, np.uint8), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# ------------------------------------------------------------------------------ qualitative panels
def test_missed_skeleton_and_case_choice():
    label = _label(0)
    assert np.array_equal(F.missed_skeleton(label, np.zeros_like(label)), tubed_skeleton(label) > 0)
    assert not F.missed_skeleton(label, label).any()
    table = pd.DataFrame({"a": [50.0, 60.0, 70.0], "b": [50.0, 90.0, 75.0]}, index=CASES)
    assert F.pick_cases(table, 2) == ["c1", "c2"]  # spreads 0, 30, 5
    assert F.pick_cases(table[["a"]], 1) == ["c0"]  # one loss: the lowest clDice


def test_qualitative_panels_grow_with_losses_and_cases(tmp_path: Path, dataset: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # config.yaml holds the relative paths.nnunet_raw "raw"
    runs = {"dice_ce": make_run(tmp_path, "dice_ce", [0.9, 0.5, 0.8], erase=6),
            "skeleton_recall": make_run(tmp_path, "skeleton_recall", [0.9, 0.9, 0.85]),
            "cldice": make_run(tmp_path, "cldice", [0.9, 0.7, 0.8], erase=2)}
    assert F.case_cldice(runs).loc["c1"].tolist() == pytest.approx([50.0, 90.0, 70.0])
    one = _png_size(F.qualitative_panels({"dice_ce": runs["dice_ce"]}, tmp_path / "q1.png", n_cases=1))
    three = _png_size(F.qualitative_panels(runs, tmp_path / "q3.png", n_cases=1))
    two_rows = _png_size(F.qualitative_panels(runs, tmp_path / "q3x2.png", cases=["c0", "c2"]))
    assert three[0] > one[0] and three[1] == one[1]
    assert two_rows[1] > three[1] and two_rows[0] == three[0]
    with pytest.raises(F.FigureError, match="c9"):
        F.qualitative_panels(runs, tmp_path / "bad.png", cases=["c9"])


def test_qualitative_panels_reject_mixed_or_missing_inputs(tmp_path: Path, dataset: Path):
    a = make_run(tmp_path, "dice_ce", [0.9, 0.5, 0.8], nnunet_raw=dataset.parent)
    b = make_run(tmp_path, "skeleton_recall", [0.9, 0.5, 0.8], nnunet_raw=dataset.parent, dataset="other")
    with pytest.raises(F.FigureError, match="different datasets"):
        F.qualitative_panels({"dice_ce": a, "skeleton_recall": b}, tmp_path / "q.png")
    c = make_run(tmp_path, "cldice", [0.9, 0.5, 0.8], nnunet_raw=tmp_path / "nowhere")
    with pytest.raises(F.FigureError, match="dataset folder not found"):
        F.qualitative_panels({"cldice": c}, tmp_path / "q.png")
    # an explicit nnunet_raw overrides the config's path
    assert F.qualitative_panels({"cldice": c}, tmp_path / "q.png", nnunet_raw=dataset.parent).is_file()
    (a / "done").unlink()
    with pytest.raises(F.FigureError, match="not a finished run folder"):
        F.qualitative_panels({"dice_ce": a}, tmp_path / "q.png")


def test_qualitative_panels_3d_max_projection(tmp_path: Path):
    root = tmp_path / "raw" / "Dataset999_Tiny"
    write_dataset_json(root, channel_names={0: "CT"}, labels={"background": 0, "vessel": 1},
                       num_training=0, file_ending=".nii.gz")
    label = np.zeros((6, 16, 16), np.uint8)
    label[2:4, 7:9, 2:14] = 1
    write_image(root / "labelsTs" / "v0.nii.gz", label)
    image = np.random.default_rng(0).normal(size=label.shape).astype(np.float32)
    write_image(root / "imagesTs" / "v0_0000.nii.gz", image)
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "paths": {"nnunet_raw": str(root.parent)}, "dataset": {
        "name": "tiny3d", "folder": root.name}, "loss": {"name": "dice_ce", "w": 0.0}}))
    write_json(run / "done", {"evaluated_split": "Ts"})
    write_json(run / "summary.json", {"n_cases": 1})
    pd.DataFrame([{"case": "v0", "headline": True, "cldice": 0.5}]).to_csv(run / "per_case.csv", index=False)
    write_image(run / "predictions" / "v0.nii.gz", np.zeros_like(label))
    width, height = _png_size(F.qualitative_panels({"dice_ce": run}, tmp_path / "q.png"))
    assert width > 2.5 * height  # one row: image | ground truth | prediction
    write_image(run / "predictions" / "v0.nii.gz", np.zeros((6, 16, 15), np.uint8))
    with pytest.raises(F.FigureError, match="shape"):
        F.qualitative_panels({"dice_ce": run}, tmp_path / "q.png")


# ------------------------------------------------------------------------------ w sweep
def _runs(datasets=("synthetic_2d",), ws=(0.1, 1.0, 10.0)) -> pd.DataFrame:
    rows = []
    for dataset in datasets:
        for loss, loss_ws in (("dice_ce", (0.0,)), ("skeleton_recall", ws), ("cldice", ws)):
            for w in loss_ws:
                for seed in range(2):
                    rows.append({"run_dir": f"{loss}/{w}/{seed}", "dataset": dataset, "backbone": "unet",
                                 "loss": loss, "w": w, "seed": seed, "fold": 0, "profile": "smoke",
                                 "status": "done", "n_cases": 3, "dice": 70.0 + seed + w, "cldice": 75.0 + w,
                                 "betti0_error": 3.0 - seed, "betti1_error": 1.0})
    return pd.DataFrame(rows)


def test_w_sweep_layout_and_errors(tmp_path: Path):
    one = _png_size(F.w_sweep(_runs(), tmp_path / "w1.png"))
    two = _png_size(F.w_sweep(_runs(datasets=("a", "b")), tmp_path / "w2.png"))
    assert one[0] > 3 * one[1] * 0.8 and two[1] > one[1] and two[0] == one[0]  # 4 metric columns, a row per dataset
    with pytest.raises(F.FigureError, match="no runs"):
        F.w_sweep(pd.DataFrame(), tmp_path / "e.png")
    with pytest.raises(F.FigureError, match="at least 2 values of w"):
        F.w_sweep(_runs(ws=(1.0,)), tmp_path / "e.png")
    failed = _runs().assign(status="failed")
    with pytest.raises(F.FigureError, match="none of the"):
        F.w_sweep(failed, tmp_path / "e.png")
    assert not (tmp_path / "e.png").exists()


# ------------------------------------------------------------------------------ overhead
def test_overhead_vs_classes(tmp_path: Path):
    rows = [{"dims": d, "spatial": "8x8", "classes": c, "loss": loss, "cpu_ratio": 1.0 + 0.1 * c,
             "alloc_ratio": 1.0} for d in (2, 3) for c in (2, 4) for loss in ("dice_ce", "skeleton_recall", "cldice")]
    csv = tmp_path / "losses.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    width, height = _png_size(F.overhead_vs_classes(csv, tmp_path / "fig7.png"))
    assert width > height * 1.2  # two columns (2D, 3D), two rows (time, memory)
    pd.DataFrame(rows).drop(columns="alloc_ratio").to_csv(csv, index=False)
    with pytest.raises(F.FigureError, match="alloc_ratio"):
        F.overhead_vs_classes(csv, tmp_path / "bad.png")
    with pytest.raises(F.FigureError, match="not found"):
        F.overhead_vs_classes(tmp_path / "missing.csv", tmp_path / "bad.png")


def test_overhead_figure_draws_one_line_per_loss_in_the_given_order(tmp_path: Path, monkeypatch):
    rows = [{"dims": 2, "spatial": "8x8", "classes": c, "loss": loss, "cpu_ratio": 1.0, "alloc_ratio": 1.0}
            for c in (2, 4) for loss in ("cldice", "dice_ce")]
    table = pd.DataFrame(rows)
    labels = []
    from matplotlib.axes import Axes

    original = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: labels.append(k["label"]) or original(ax, *a, **k))
    width, height = _png_size(F.overhead_figure(table, tmp_path / "o.png", losses=["dice_ce", "cldice", "absent"]))
    assert height > width  # one column (2D), two rows
    assert labels == ["dice_ce", "dice_ce", "cldice", "cldice"]  # time and memory panel per loss, absent skipped
    labels.clear()
    F.overhead_figure(table, tmp_path / "o.png")
    assert labels == ["cldice", "cldice", "dice_ce", "dice_ce"]  # default: order of appearance
    with pytest.raises(F.FigureError, match="no rows"):
        F.overhead_figure(table.iloc[0:0], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
