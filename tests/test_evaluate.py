"""evaluate_case rules and evaluate_folder end to end (3D multi-class NIfTI, 2D PNG, errors)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from skelrecall.data.layout import write_dataset_json
from skelrecall.evaluate import EvaluationError, evaluate_folder, headline_rows, main
from skelrecall.io import write_image
from skelrecall.metrics import evaluate_case
from skelrecall.metrics.case import MEAN_ID, MERGED_ID, columns

BINARY = {"background": 0, "vessel": 1}


def _ring(size=12):
    m = np.zeros((size, size), np.uint8)
    m[2:-2, 2:-2] = 1
    m[4:-4, 4:-4] = 0
    return m


# --- evaluate_case --------------------------------------------------------------------------------


def test_binary_case_is_one_headline_row_with_the_class_name():
    gt = _ring()
    pred = gt.copy()
    pred[2:4, 5:7] = 0  # cut the ring open: b1 goes from 1 to 0
    rows = evaluate_case(pred, gt, BINARY)
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == columns(2)
    assert (row["class"], row["class_id"], row["headline"]) == ("vessel", 1, True)
    assert (row["betti0_pred"], row["betti0_gt"], row["betti1_pred"], row["betti1_gt"]) == (1, 1, 0, 1)
    assert (row["betti0_error"], row["betti1_error"]) == (0, 1)
    assert 0.9 < row["dice"] < 1.0


def test_binary_case_with_both_empty_has_nan_dice():
    empty = np.zeros((8, 8, 8), np.uint8)
    (row,) = evaluate_case(empty, empty, BINARY)
    assert math.isnan(row["dice"])
    assert row["cldice"] == 1.0
    assert row["betti2_error"] == 0 and list(row) == columns(3)


def test_multiclass_rows_mean_and_merged():
    labels = {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    gt = np.zeros((20, 20), np.uint8)
    gt[1:5, 1:19] = 1
    gt[8:12, 1:19] = 2
    pred = gt.copy()
    pred[8:12, 1:19] = 0  # class b missed entirely
    pred[15:18, 2:5] = 3  # class c only in the prediction; class d absent from both
    rows = evaluate_case(pred, gt, labels)
    by_class = {r["class"]: r for r in rows}
    assert list(by_class) == ["a", "b", "c", "mean", "merged"]
    assert [r["headline"] for r in rows] == [False, False, False, True, False]
    assert by_class["a"]["dice"] == 1.0 and by_class["b"]["dice"] == 0.0 and by_class["c"]["dice"] == 0.0
    mean = by_class["mean"]
    assert mean["class_id"] == MEAN_ID and by_class["merged"]["class_id"] == MERGED_ID
    assert mean["dice"] == pytest.approx(1 / 3)
    assert mean["betti0_error"] == pytest.approx((0 + 1 + 1) / 3)
    merged = by_class["merged"]
    assert (merged["betti0_pred"], merged["betti0_gt"]) == (2, 2)
    expected_dice = 2 * 72 / ((72 + 9) + 144)
    assert merged["dice"] == pytest.approx(expected_dice)


def test_ignore_mask_and_ignore_label_remove_pixels_from_both():
    gt = _ring().astype(np.uint8)
    pred = gt.copy()
    pred[0, 0] = 1  # a false positive ...
    ignore = np.zeros(gt.shape, bool)
    ignore[0, 0] = True  # ... inside the ignored region
    (row,) = evaluate_case(pred, gt, BINARY, ignore_mask=ignore)
    assert row["dice"] == 1.0 and row["betti0_error"] == 0
    (row,) = evaluate_case(pred, gt, BINARY)
    assert row["betti0_error"] == 1
    # nnU-Net ignore label: ground-truth value 2 is ignored; the prediction there does not count
    labels = {"background": 0, "vessel": 1, "ignore": 2}
    gt2 = gt.copy()
    gt2[0, :] = 2
    (row,) = evaluate_case(pred, gt2, labels)
    assert row["dice"] == 1.0 and row["betti0_pred"] == 1


def test_evaluate_case_refuses_bad_input():
    gt = _ring()
    with pytest.raises(ValueError, match="shape"):
        evaluate_case(gt[:-1], gt, BINARY)
    with pytest.raises(ValueError, match=r"prediction holds label values \[5\]"):
        evaluate_case(gt * 5, gt, BINARY)
    with pytest.raises(ValueError, match="region-based"):
        evaluate_case(gt, gt, {"background": 0, "vessel": [1, 2]})


# --- evaluate_folder ------------------------------------------------------------------------------


def _tube_labels(rng, shape, n_classes):
    """Each class a straight tube at a random position (classes 1..n_classes)."""
    lab = np.zeros(shape, np.uint8)
    for c in range(1, n_classes + 1):
        z, y = rng.integers(1, shape[0] - 3), rng.integers(1, shape[1] - 3)
        x0 = rng.integers(0, shape[2] // 2)
        lab[z : z + 3, y : y + 3, x0 : x0 + shape[2] // 2] = c
    return lab


@pytest.fixture()
def multiclass_3d(tmp_path):
    rng = np.random.default_rng(0)
    n_classes = 13
    labels = {"background": 0, **{f"vessel_{c:02d}": c for c in range(1, n_classes + 1)}}
    root = tmp_path / "Dataset900_Synth"
    write_dataset_json(root, channel_names={0: "CT"}, labels=labels, num_training=0, file_ending=".nii.gz")
    pred_dir = tmp_path / "pred"
    for i in range(3):
        gt = _tube_labels(rng, (24, 24, 24), n_classes)
        pred = gt.copy()
        pred[pred == 5] = 0  # class 5 is always missed
        pred[:, :, 11] = 0  # every tube that crosses x = 11 is broken in two
        write_image(root / "labelsTs" / f"case_{i:03d}.nii.gz", gt)
        write_image(pred_dir / f"case_{i:03d}.nii.gz", pred)
    return root, pred_dir, labels


def test_multiclass_3d_folder_end_to_end(multiclass_3d, tmp_path):
    root, pred_dir, labels = multiclass_3d
    out = tmp_path / "out"
    summary = evaluate_folder(pred_dir, root / "labelsTs", out, num_workers=2)
    per_case = pd.read_csv(out / "per_case.csv")
    assert list(per_case.columns) == ["case", *columns(3)]
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 3 and summary["labels"] == labels
    heads = headline_rows(per_case)
    assert list(heads["class"]) == ["mean"] * 3
    assert summary["headline"]["dice"]["n"] == 3
    assert summary["headline"]["dice"]["mean"] == pytest.approx(heads["dice"].mean())
    assert summary["headline"]["dice"]["std"] == pytest.approx(heads["dice"].std(ddof=1))
    assert len(summary["per_class"]) == 13
    assert summary["per_class"]["vessel_05"]["dice"]["mean"] == 0.0
    assert summary["per_class"]["vessel_05"]["betti0_error"]["mean"] == 1.0
    assert "merged" in summary and summary["merged"]["dice"]["n"] == 3
    class_rows = per_case[per_case["class_id"] > 0]
    assert len(class_rows) == 3 * 13
    # a tube that crosses the cut has two components in the prediction
    crossed = class_rows[(class_rows["class_id"] != 5) & (class_rows["betti0_pred"] == 2)]
    assert len(crossed) > 0 and (crossed["betti0_error"] == 1).all()


def test_png_2d_folder_end_to_end_with_fov_masks_and_cli(tmp_path, capsys):
    root = tmp_path / "Dataset901_Png"
    channels = {0: "R", 1: "G", 2: "B"}
    write_dataset_json(root, channel_names=channels, labels=BINARY, num_training=0, file_ending=".png")
    pred_dir, mask_dir = tmp_path / "pred", tmp_path / "masks"
    for i in range(3):
        gt = np.zeros((32, 32), np.uint8)
        gt[4:28, 4:28] = _ring(24)
        pred = gt.copy()
        pred[0:2, 0:2] = 1  # false positive outside the field of view
        if i == 1:
            pred[6:8, 14:16] = 0  # breaks the ring: b1 error 1
        fov = np.full((32, 32), 255, np.uint8)
        fov[:3, :3] = 0
        write_image(root / "labelsTs" / f"img{i}.png", gt)
        write_image(pred_dir / f"img{i}.png", pred)
        write_image(mask_dir / f"img{i}.png", fov)
    out = tmp_path / "out"
    code = main(["--pred", str(pred_dir), "--labels", str(root / "labelsTs"), "--masks", str(mask_dir),
                 "--out", str(out), "--workers", "1"])  # fmt: skip
    assert code == 0 and "3 cases" in capsys.readouterr().out
    per_case = pd.read_csv(out / "per_case.csv")
    assert list(per_case["case"]) == ["img0", "img1", "img2"]
    assert list(per_case.columns) == ["case", *columns(2)]
    assert list(per_case["betti0_error"]) == [0, 0, 0]  # the FOV mask hides the false positive
    assert list(per_case["betti1_error"]) == [0, 1, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["headline"]["betti1_error"]["mean"] == pytest.approx(1 / 3)
    assert "merged" not in summary and list(summary["per_class"]) == ["vessel"]
    # without the masks the false positive counts
    summary = evaluate_folder(pred_dir, root / "labelsTs", tmp_path / "out2", num_workers=1)
    assert summary["headline"]["betti0_error"]["mean"] == 1.0


def _binary_folder(tmp_path, n=3, shape=(10, 10, 10)):
    labels_dir, pred_dir = tmp_path / "labels", tmp_path / "pred"
    for i in range(n):
        lab = np.zeros(shape, np.uint8)
        lab[2:5, 2:8, 3:6] = 1
        write_image(labels_dir / f"c{i}.nii.gz", lab)
        write_image(pred_dir / f"c{i}.nii.gz", lab)
    return labels_dir, pred_dir


def test_missing_cases_are_named(tmp_path):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    (pred_dir / "c1.nii.gz").unlink()
    write_image(pred_dir / "stray.nii.gz", np.zeros((10, 10, 10), np.uint8))
    with pytest.raises(EvaluationError) as err:
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY)
    assert "no prediction for cases c1" in str(err.value)
    assert "no label for predicted cases stray" in str(err.value)
    assert not (tmp_path / "out" / "per_case.csv").exists()


def test_shape_mismatch_and_bad_values_are_named_before_computing(tmp_path, capsys):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    write_image(pred_dir / "c0.nii.gz", np.zeros((10, 10, 9), np.uint8))
    bad = np.zeros((10, 10, 10), np.uint8)
    bad[1, 1, 1] = 7
    write_image(pred_dir / "c2.nii.gz", bad)
    with pytest.raises(EvaluationError) as err:
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY, num_workers=2)
    msg = str(err.value)
    assert "case c0: prediction shape (10, 10, 9) differs from label shape (10, 10, 10)" in msg
    assert "case c2: prediction holds label values [7]" in msg
    assert "c1" not in msg
    assert not (tmp_path / "out").exists()
    code = main(["--pred", str(pred_dir), "--labels", str(labels_dir), "--out", str(tmp_path / "o")])
    assert code == 2 and "no label map" in capsys.readouterr().err  # no dataset.json, no labels


def test_labels_come_from_dataset_json_and_unreadable_files_are_named(tmp_path):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    (pred_dir / "c1.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(EvaluationError, match="no label map"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out")
    write_dataset_json(tmp_path, channel_names={0: "x"}, labels=BINARY, num_training=3, file_ending=".nii.gz")
    with pytest.raises(EvaluationError, match="case c1: .*cannot be read"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out")


# --- robustness: temporary files, dataset.json errors, partial folders ---------------------------


def test_temporary_files_in_either_folder_are_ignored(tmp_path):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    lab = np.zeros((10, 10, 10), np.uint8)
    # what an interrupted atomic_write leaves behind, in both folders
    write_image(pred_dir / ".c9.nii.gz.abc123.tmp.nii.gz", lab)
    write_image(labels_dir / ".c8.nii.gz.tmpXYZ.nii.gz", lab)
    (pred_dir / "c7.nii.gz.tmp1.nii.gz").write_bytes(b"half-written")
    summary = evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY, metrics="dice")
    assert summary["n_cases"] == 3
    assert list(pd.read_csv(tmp_path / "out" / "per_case.csv")["case"]) == ["c0", "c1", "c2"]


def test_dataset_json_errors_name_the_file_key_and_line(tmp_path):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    path = tmp_path / "dataset.json"
    path.write_text('{\n  "labels": {"background": 0,\n  "vessel": 1,\n}\n')  # trailing comma
    with pytest.raises(EvaluationError, match=r"dataset\.json: not valid JSON: .* at line 4"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out")
    path.write_text(json.dumps({"file_ending": ".nii.gz", "channel_names": {"0": "CT"}}))
    with pytest.raises(EvaluationError, match=r"dataset\.json: no 'labels' key \(keys: channel_names, file_ending\)"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out")
    path.write_text(json.dumps({"labels": ["background", "vessel"]}))
    with pytest.raises(EvaluationError, match=r"dataset\.json: 'labels' must map class names to values.*got a list"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_metric_names_list_the_available_ones(tmp_path, capsys):
    labels_dir, pred_dir = _binary_folder(tmp_path)
    with pytest.raises(EvaluationError, match=r"unknown metric\(s\) dise; available: dice, cldice, betti"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY, metrics="dise,betti")
    write_dataset_json(tmp_path, channel_names={0: "x"}, labels=BINARY, num_training=3, file_ending=".nii.gz")
    code = main(["--pred", str(pred_dir), "--labels", str(labels_dir), "--metrics", "hausdorff"])
    assert code == 2 and "unknown metric(s) hausdorff; available: dice" in capsys.readouterr().err


def test_cases_from_pred_scores_a_partial_folder_through_the_cli(tmp_path, capsys):
    labels_dir, pred_dir = _binary_folder(tmp_path, n=5)
    write_dataset_json(tmp_path, channel_names={0: "x"}, labels=BINARY, num_training=5, file_ending=".nii.gz")
    for i in (1, 3, 4):
        (pred_dir / f"c{i}.nii.gz").unlink()
    out = tmp_path / "out"
    args = ["--pred", str(pred_dir), "--labels", str(labels_dir), "--out", str(out), "--workers", "1"]
    assert main(args) == 2 and "no prediction for cases c1, c3, c4" in capsys.readouterr().err
    assert main([*args, "--cases-from-pred", "--metrics", "dice,betti"]) == 0
    printed = capsys.readouterr().out
    assert "2 cases" in printed and "3 label cases without a prediction left out: c1, c3, c4" in printed
    per_case = pd.read_csv(out / "per_case.csv")
    assert list(per_case["case"]) == ["c0", "c2"]
    assert list(per_case.columns) == ["case", *columns(3, ["dice", "betti"])]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["left_out"] == {"n": 3, "cases": ["c1", "c3", "c4"]}
    assert summary["metrics"] == ["dice", "betti"] and "cldice" not in summary["headline"]
    # a prediction without a label is still an error
    write_image(pred_dir / "stray.nii.gz", np.zeros((10, 10, 10), np.uint8))
    assert main([*args, "--cases-from-pred"]) == 2 and "no label for predicted cases stray" in capsys.readouterr().err


def test_nifti_spacing_reaches_the_surface_distances(tmp_path):
    labels_dir, pred_dir = tmp_path / "labels", tmp_path / "pred"
    gt = np.zeros((12, 12, 12), np.uint8)
    gt[4:8, 4:8, 2:6] = 1
    pred = np.roll(gt, 3, axis=2)  # shifted along the array's last axis = NIfTI x
    affine = np.diag([0.5, 2.0, 3.0, 1.0])  # x, y, z zooms
    write_image(labels_dir / "a.nii.gz", gt, {"affine": affine})
    write_image(pred_dir / "a.nii.gz", pred, {"affine": affine})
    summary = evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY, metrics="hd95,assd")
    row = pd.read_csv(tmp_path / "out" / "per_case.csv").iloc[0]
    # every surface voxel of one box is 3 voxels * 0.5 (x spacing) or less from the other's surface
    assert row["hd95"] == pytest.approx(1.5)
    assert 0 < row["assd"] <= 1.5
    assert summary["headline"]["hd95"]["mean"] == pytest.approx(1.5)


def test_cases_stream_and_only_get_checked_after_a_problem(tmp_path, monkeypatch):
    import skelrecall.evaluate as ev

    labels_dir, pred_dir = _binary_folder(tmp_path, n=4)
    write_image(pred_dir / "c1.nii.gz", np.zeros((10, 10, 9), np.uint8))  # a bad case early on
    seen = []
    real = ev._process_job

    def spy(job):
        seen.append((job["case"], job["check_only"]))
        return real(job)

    monkeypatch.setattr(ev, "_process_job", spy)
    with pytest.raises(EvaluationError, match="case c1: prediction shape"):
        evaluate_folder(pred_dir, labels_dir, tmp_path / "out", labels=BINARY, num_workers=1, metrics="dice")
    assert seen == [("c0", False), ("c1", False), ("c2", True), ("c3", True)]
    assert not (tmp_path / "out").exists()
