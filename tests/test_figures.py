"""Figures and the W&B validation panel: what is drawn (counts, chosen cases, missed skeleton, class
colours, axis labels, legends, notes) and the layout of the PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from skelrecall import colours as C
from skelrecall import figures as F
from skelrecall.data.layout import write_dataset_json
from skelrecall.io import write_image, write_json
from skelrecall.skeleton import tubed_skeleton

CASES = ["c0", "c1", "c2"]


def _png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size  # (width, height)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _count(png: np.ndarray, rgb, tol: int = 3) -> int:
    """Pixels of ``png`` within ``tol`` of the float colour ``rgb``."""
    target = np.round(np.asarray(rgb, float) * 255).astype(int)
    return int((np.abs(png - target).max(axis=-1) <= tol).sum())


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The matplotlib figures that figures.py saves, in order (to read their labels and legends)."""
    figs = []
    save = F._save
    monkeypatch.setattr(F, "_save", lambda fig, out, **kw: figs.append(fig) or save(fig, out, **kw))
    return figs


def _tile(png: np.ndarray, ax) -> np.ndarray:
    """The pixels of ``png`` inside ``ax`` (as last drawn, i.e. saved), a 2-pixel rim trimmed."""
    box = ax.get_window_extent()
    height = png.shape[0]
    return png[int(height - box.y1) + 2 : int(height - box.y0) - 2, int(box.x0) + 2 : int(box.x1) - 2]


def _legend_texts(fig) -> list[str]:
    assert len(fig.legends) == 1, "one legend for the whole figure"
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _label(seed: int, shape=(32, 32)) -> np.ndarray:
    label = np.zeros(shape, np.uint8)
    label[shape[0] // 2 - 1 : shape[0] // 2 + 2, 2:-2] = 1  # a horizontal bar, 3 px thick
    label[2:-2, 8 + seed : 11 + seed] = 1  # a vertical bar
    return label


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "raw" / "Dataset999_Tiny"
    write_dataset_json(
        root, channel_names={0: "grey"}, labels={"background": 0, "structure": 1}, num_training=0, file_ending=".png"
    )
    rng = np.random.default_rng(0)
    for i, case in enumerate(CASES):
        write_image(root / "labelsTs" / f"{case}.png", _label(i))
        write_image(root / "imagesTs" / f"{case}_0000.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root


def make_run(
    base: Path, loss: str, cldice: list[float], *, dataset: str = "tiny", nnunet_raw="raw", erase: int = 0
) -> Path:
    """A finished run folder: config.yaml, done, per_case.csv (headline + a non-headline row) and
    predictions (the label with ``erase`` columns of the horizontal bar removed)."""
    run = base / "runs" / loss
    (run / "predictions").mkdir(parents=True)
    cfg = {
        "seed": 0,
        "fold": 0,
        "paths": {"nnunet_raw": str(nnunet_raw)},
        "dataset": {"name": dataset, "folder": "Dataset999_Tiny"},
        "loss": {"name": loss, "w": 1.0},
    }
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
    runs = {
        "dice_ce": make_run(tmp_path, "dice_ce", [0.9, 0.5, 0.8], erase=6),
        "skeleton_recall": make_run(tmp_path, "skeleton_recall", [0.9, 0.9, 0.85]),
        "cldice": make_run(tmp_path, "cldice", [0.9, 0.7, 0.8], erase=2),
    }
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


def test_qualitative_panels_3d_max_projection(tmp_path: Path, drawn):
    root = tmp_path / "raw" / "Dataset999_Tiny"
    write_dataset_json(
        root, channel_names={0: "CT"}, labels={"background": 0, "vessel": 1}, num_training=0, file_ending=".nii.gz"
    )
    label = np.zeros((6, 16, 16), np.uint8)
    label[2:4, 7:9, 2:14] = 1
    write_image(root / "labelsTs" / "v0.nii.gz", label)
    image = np.random.default_rng(0).normal(size=label.shape).astype(np.float32)
    write_image(root / "imagesTs" / "v0_0000.nii.gz", image)
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "paths": {"nnunet_raw": str(root.parent)},
                "dataset": {"name": "tiny3d", "folder": root.name},
                "loss": {"name": "dice_ce", "w": 0.0},
            }
        )
    )
    write_json(run / "done", {"evaluated_split": "Ts"})
    write_json(run / "summary.json", {"n_cases": 1})
    pd.DataFrame([{"case": "v0", "headline": True, "cldice": 0.5}]).to_csv(run / "per_case.csv", index=False)
    pred = label.copy()
    pred[:, :, 2:6] = 0  # the first columns of the tube missed (in 3D, then projected)
    write_image(run / "predictions" / "v0.nii.gz", pred)
    out = F.qualitative_panels({"dice_ce": run}, tmp_path / "q.png")
    width, height = _png_size(out)
    assert width > 2.2 * height and len(drawn[-1].axes) == 3  # one row: image | ground truth | prediction
    assert "6x16x16 voxels" in drawn[-1].axes[0].get_title()
    assert _count(_pixels(out), C.MISSED_RGB) > 0 and "Description" not in Image.open(out).info
    write_image(run / "predictions" / "v0.nii.gz", np.zeros_like(label))
    with Image.open(F.qualitative_panels({"dice_ce": run}, tmp_path / "q0.png")) as im:
        assert "is empty" in im.info["Description"]  # a note, not a red panel
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
                    rows.append(
                        {
                            "run_dir": f"{loss}/{w}/{seed}",
                            "dataset": dataset,
                            "backbone": "unet",
                            "loss": loss,
                            "w": w,
                            "seed": seed,
                            "fold": 0,
                            "profile": "smoke",
                            "status": "done",
                            "n_cases": 3,
                            "dice": 70.0 + seed + w,
                            "cldice": 75.0 + w,
                            "betti0_error": 3.0 - seed,
                            "betti1_error": 1.0,
                        }
                    )
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
    rows = [
        {"dims": d, "spatial": "8x8", "classes": c, "loss": loss, "cpu_ratio": 1.0 + 0.1 * c, "alloc_ratio": 1.0}
        for d in (2, 3)
        for c in (2, 4)
        for loss in ("dice_ce", "skeleton_recall", "cldice")
    ]
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
    rows = [
        {"dims": 2, "spatial": "8x8", "classes": c, "loss": loss, "cpu_ratio": 1.0, "alloc_ratio": 1.0}
        for c in (2, 4)
        for loss in ("cldice", "dice_ce")
    ]
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


# ------------------------------------------------------------------------------ colours (shared with the W&B panel)
def test_class_colours_binary_white_multiclass_fixed_without_red_or_grey():
    assert C.class_colours(2).tolist() == [[0, 0, 0], [1, 1, 1]]
    many = C.class_colours(14)
    assert many[0].tolist() == [0, 0, 0] and len({tuple(c) for c in many[1:]}) == 13  # 13 distinct classes
    assert np.array_equal(C.class_colours(5), many[:5])  # class k has one colour, whatever the class count
    for colour in many[1:]:
        r, g, b = colour
        assert not (r > 0.7 and g < 0.35 and b < 0.35), f"{colour} looks like the missed-skeleton red"
        assert not (abs(r - g) < 0.02 and abs(g - b) < 0.02), f"{colour} is grey (reserved for ignored values)"
    label = np.array([[0, 1, 2], [3, 9, 2]])
    rgb = C.label_rgb(label, 4)
    assert rgb[0, 1].tolist() == pytest.approx(many[1].tolist())
    assert rgb[1, 0].tolist() == pytest.approx(many[3].tolist())
    assert rgb[1, 1].tolist() == list(C.OTHER_RGB)  # not a class: grey
    pred = C.prediction_rgb(label, label == 2, 4)
    assert pred[0, 2].tolist() == list(C.MISSED_RGB) and pred[0, 1].tolist() == pytest.approx(many[1].tolist())
    with pytest.raises(ValueError, match="num_classes"):
        C.class_colours(1)


# ------------------------------------------------------------------------------ skeleton figure content
def test_skeleton_figure_legend_names_only_the_colours_drawn(tmp_path: Path, drawn):
    label = _label(0)
    out = F.skeleton_comparison(label, tmp_path / "fig3.png")
    masks = F.overlay_masks(F.skeleton_views(label))
    texts = _legend_texts(drawn[-1])
    for name, (_, text) in F.OVERLAY.items():
        shown = any(t.startswith(text) for t in texts)
        assert shown == bool(masks[name].any()), (name, texts)
        if shown:
            assert f"{text}: {int(masks[name].sum())} px" in texts
    png = _pixels(out)
    magenta = F.OVERLAY["soft"][0]
    assert (_count(png, magenta) > 0) == bool(masks["soft"].any())  # magenta named exactly when drawn
    assert _count(png, F.OVERLAY["tubed"][0]) > 0
    assert "32x32 px" in drawn[-1].axes[0].get_title()
    # a 3D tube of even thickness has an empty tubed skeleton (skimage's Lee skeleton): soft-only, magenta
    volume = np.zeros((6, 16, 16), np.uint8)
    volume[2:4, 7:9, 2:14] = 1
    out3 = F.skeleton_comparison(volume, tmp_path / "fig3_3d.png")
    assert any(t.startswith("soft skeleton only") for t in _legend_texts(drawn[-1]))
    assert not any(t.startswith("tubed skeleton only") for t in _legend_texts(drawn[-1]))
    assert _count(_pixels(out3), magenta) > 0


# ------------------------------------------------------------------------------ qualitative: classes, ignore, empty
def _tiny_case(tmp_path: Path, labels: dict[str, int], label: np.ndarray, preds: dict[str, np.ndarray]) -> dict:
    """A one-case dataset (PNG) and one finished run per loss predicting ``preds[loss]``."""
    root = tmp_path / "raw" / "Dataset998_Classes"
    write_dataset_json(root, channel_names={0: "grey"}, labels=labels, num_training=0, file_ending=".png")
    write_image(root / "labelsTs" / "k0.png", label.astype(np.uint8))
    write_image(root / "imagesTs" / "k0_0000.png", (label * 40).astype(np.uint8))
    runs = {}
    for loss, pred in preds.items():
        run = tmp_path / "runs" / loss
        (run / "predictions").mkdir(parents=True)
        (run / "config.yaml").write_text(
            yaml.safe_dump(
                {
                    "seed": 0,
                    "paths": {"nnunet_raw": str(root.parent)},
                    "dataset": {"name": "tiny", "folder": root.name},
                    "loss": {"name": loss, "w": 1.0},
                }
            )
        )
        write_json(run / "done", {"evaluated_split": "Ts", "n_cases": 1})
        write_json(run / "summary.json", {"n_cases": 1})
        pd.DataFrame([{"case": "k0", "headline": True, "cldice": 0.5}]).to_csv(run / "per_case.csv", index=False)
        write_image(run / "predictions" / "k0.png", pred.astype(np.uint8))
        runs[loss] = run
    return runs


def _classes_label() -> np.ndarray:
    label = np.zeros((32, 32), np.uint8)
    label[15:18, 2:30] = 1  # class 1: horizontal bar
    label[2:14, 8:11] = 2  # class 2: vertical bar above it
    return label


def test_qualitative_multiclass_in_class_colours_with_named_legend(tmp_path: Path, drawn):
    label = _classes_label()
    pred = label.copy()
    pred[2:8, 8:11] = 0  # half of class 2 missed -> red
    runs = _tiny_case(
        tmp_path,
        {"background": 0, "artery": 1, "vein": 2, "absent": 3},
        label,
        {"dice_ce": pred, "skeleton_recall": label},
    )
    out = F.qualitative_panels(runs, tmp_path / "q.png")
    png, colours = _pixels(out), C.class_colours(4)
    truth, missed = _tile(png, drawn[-1].axes[1]), _tile(png, drawn[-1].axes[2])
    assert _count(truth, colours[1]) > 50 and _count(truth, colours[2]) > 20  # classes in their colours
    assert _count(truth, C.BINARY_RGB, tol=30) == 0  # not binary white
    assert _count(missed, C.MISSED_RGB) > 0 and _count(missed, colours[2]) > 0
    texts = _legend_texts(drawn[-1])
    assert texts == ["1: artery", "2: vein", "missed tubed skeleton (red)"]  # absent classes not listed
    titles = [ax.get_title() for ax in drawn[-1].axes]
    assert any("skel. recall 100.0%" in t for t in titles) and any("dice_ce" in t for t in titles)


def test_qualitative_binary_white_ignore_grey_and_not_counted_as_skeleton(tmp_path: Path, drawn):
    label = _label(0)
    label[24:30, 20:30] = 2  # an ignored (no-data) block
    known = np.where(label == 2, 0, label)
    runs = _tiny_case(tmp_path, {"background": 0, "road": 1, "ignore": 2}, label, {"dice_ce": known})
    out = F.qualitative_panels(runs, tmp_path / "q.png")
    png = _pixels(out)
    truth = _tile(png, drawn[-1].axes[1])
    assert _count(truth, C.OTHER_RGB) > 20 and _count(truth, C.BINARY_RGB) > 20  # ignored grey, road white
    assert _count(_tile(png, drawn[-1].axes[2]), C.MISSED_RGB) == 0  # the ignored block has no skeleton to miss
    assert _legend_texts(drawn[-1]) == ["road", "ignored (not evaluated)", "missed tubed skeleton (red)"]
    assert "skel. recall 100.0%" in drawn[-1].axes[2].get_title()


def test_qualitative_empty_predictions_give_a_note_not_a_red_panel(tmp_path: Path, drawn, capsys):
    label = _classes_label()
    empty = np.zeros_like(label)
    runs = _tiny_case(tmp_path, {"background": 0, "artery": 1, "vein": 2}, label, {"dice_ce": empty, "cldice": empty})
    out = F.qualitative_panels(runs, tmp_path / "q.png")
    with Image.open(out) as im:
        note = im.info["Description"]
    assert "every prediction of dice_ce, cldice on k0 is empty" in note
    assert "every prediction" in capsys.readouterr().out
    assert _count(_pixels(out), C.MISSED_RGB, tol=60) == 0  # nothing red (no legend swatch either)
    assert not drawn[-1].axes  # text only
    # one empty prediction beside a real one: a black tile that says so, no red flood
    runs2 = _tiny_case(
        tmp_path / "two", {"background": 0, "artery": 1, "vein": 2}, label, {"dice_ce": empty, "skeleton_recall": label}
    )
    out2 = F.qualitative_panels(runs2, tmp_path / "q2.png")
    texts = [t.get_text() for t in drawn[-1].axes[2].texts]
    assert texts == ["empty prediction\n(background only)"]
    assert _count(_tile(_pixels(out2), drawn[-1].axes[2]), C.MISSED_RGB, tol=60) == 0


# ------------------------------------------------------------------------------ plots: labels and legends
def test_w_sweep_every_panel_labelled_one_legend_one_colour_per_loss(tmp_path: Path, drawn):
    runs = _runs(datasets=("a", "b"))
    runs = runs[~((runs["dataset"] == "a") & (runs["loss"] == "cldice"))]  # a loss missing in one row
    F.w_sweep(runs, tmp_path / "w.png")
    fig = drawn[-1]
    assert len(fig.axes) == 8
    for ax in fig.axes:
        assert ax.get_xlabel() == "loss weight w (log scale)"
        assert "%" in ax.get_ylabel() or "count per case" in ax.get_ylabel(), ax.get_ylabel()
        assert ax.get_legend() is None
    assert {fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()} == {"Dice (%)", r"$|\Delta\beta_0|$ (count per case)"}
    texts = _legend_texts(fig)
    assert any(t.startswith("dice_ce (w = 0)") for t in texts)
    assert any(t.startswith("cldice") for t in texts) and any(t.startswith("skeleton_recall") for t in texts)
    colours = {}
    for ax in fig.axes:
        for container in ax.containers:  # errorbar containers, one per loss
            colours.setdefault(container.get_label(), set()).add(container.lines[0].get_color())
    assert all(len(c) == 1 for c in colours.values()) and len(colours) == 2  # same colour in every panel


def test_overhead_every_panel_labelled_and_one_legend_with_every_loss(tmp_path: Path, drawn):
    rows = [
        {"dims": d, "spatial": "8x8", "classes": c, "loss": loss, "cpu_ratio": 1.0 + 0.1 * c, "alloc_ratio": 1.0}
        for d in (2, 3)
        for c in (2, 4)
        for loss in ("dice_ce", "cldice", "topo_cldice")
        if not (d == 3 and loss == "topo_cldice")
    ]  # topo_cldice: 2D only
    F.overhead_figure(pd.DataFrame(rows), tmp_path / "o.png")
    fig = drawn[-1]
    for ax in fig.axes:
        assert ax.get_xlabel() == "number of classes C (incl. background)"
        assert "ratio" in ax.get_ylabel() and "dice_ce" in ax.get_ylabel()
        assert ax.get_legend() is None
    assert _legend_texts(fig) == ["dice_ce", "cldice", "topo_cldice"]  # also the loss drawn in 2D only
    colours = {
        (line.get_label(), line.get_color())
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }
    assert colours == {("dice_ce", "C0"), ("cldice", "C1"), ("topo_cldice", "C2")}  # one colour per loss


# ------------------------------------------------------------------------------ W&B validation panel
def test_validation_panel_has_titles_and_class_colours():
    from skelrecall.module import PANEL_TITLES, make_panel

    assert PANEL_TITLES == ("image", "label", "tubed skeleton", "prediction\nmissed skeleton: red")
    label = _classes_label()
    pred = label.copy()
    pred[2:8, 8:11] = 0
    image = np.random.default_rng(0).normal(size=(1, 32, 32)).astype(np.float32)
    panel = make_panel(image, label, pred, num_classes=3)
    f, head, gap = C.strip_scale(32), C.strip_header_height(), 2
    width = 32 * f
    assert panel.dtype == np.uint8 and panel.shape[1] == 4 * width + 3 * gap and panel.shape[0] > head + width
    colours = (C.class_colours(3) * 255).round()

    def at(tile: int, y: int, x: int) -> list[int]:
        return panel[head + y * f, tile * (width + gap) + x * f].tolist()

    assert at(1, 16, 20) == colours[1].tolist() and at(1, 10, 9) == colours[2].tolist()  # label in class colours
    assert at(3, 4, 9) == [255, 0, 0] and at(3, 12, 9) == colours[2].tolist()  # missed red, kept in colour
    assert at(2, 0, 0) == [0, 0, 0]
    for tile in range(4):  # a title above every tile: light text on black
        header = panel[:head, tile * (width + gap) : tile * (width + gap) + width]
        assert (header.min(axis=-1) > 150).sum() > 10, f"no title above tile {tile}"
    assert (panel[head + width :].max(axis=-1) > 100).any()  # the class key below the tiles (3 classes)
    binary = make_panel(image, (label > 0).astype(np.uint8), (pred > 0).astype(np.uint8))
    assert binary[head + 16 * f, width + gap + 20 * f].tolist() == [255, 255, 255]  # binary: white
    assert binary.shape[0] == head + width  # no class key
    volume = np.stack([np.zeros_like(label), label, label])  # 3D: the slice with most foreground
    assert make_panel(np.stack([image[0]] * 3)[None], volume, volume, 3).shape == panel.shape
