"""skelrecall-predict: inputs, run checks and errors on hand-made run folders (fast); trained smoke runs
predicting new 2D PNG and 3D NIfTI images, ensembles and evaluation end to end (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

import skelrecall
from skelrecall.data.layout import write_dataset_json
from skelrecall.io import read_image, write_image, write_json
from skelrecall.models import build_model
from skelrecall.predict import PredictError, find_cases, main, predict
from skelrecall.runs import RunDir, write_checksum

from .conftest import compose_train

SRC = Path(skelrecall.__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------------


def fake_run(folder: Path, *overrides: str, seed: int = 0, done: bool = True) -> Path:
    """A run folder as skelrecall-train leaves it (config.yaml, preprocessing.json, checksummed
    last.ckpt holding the LightningModule's ``model.*`` weights, done), with an untrained network."""
    cfg = compose_train("profile=smoke", "logger=none", f"paths.root={folder}", *overrides)
    config = OmegaConf.to_container(cfg, resolve=True)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dims, channels = int(cfg.dataset.dims), int(cfg.dataset.in_channels)
    torch.manual_seed(seed)
    net = build_model(
        cfg.backbone,
        dims=dims,
        in_channels=channels,
        num_classes=int(cfg.dataset.num_classes),
        patch_size=list(cfg.data.patch_size),
    )
    ckpt = folder / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"epoch": 0, "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    write_checksum(ckpt)
    write_json(
        folder / "preprocessing.json",
        {
            "normalization": "zscore",
            "ct_statistics": None,
            "dims": dims,
            "in_channels": channels,
            "file_ending": ".png",
        },
    )
    if done:
        write_json(folder / "summary.json", {"n_cases": 0})
        RunDir(folder).mark_done(config)
    return folder


def write_pngs(folder: Path, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, shape in shapes.items():
        write_image(folder / f"{name}_0000.png", (rng.random(shape) * 255).astype(np.uint8))


def nifti_volume(path: Path, shape_xyz: tuple[int, int, int], seed: int = 0) -> nib.Nifti1Image:
    """A float volume with anisotropic voxels, a rotation about z and a translation."""
    rng = np.random.default_rng(seed)
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [-31.5, 12.25, 7.0]
    img = nib.Nifti1Image((rng.random(shape_xyz) * 800).astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    nib.save(img, str(path))
    return nib.load(str(path))


def check_nifti_prediction(source: nib.Nifti1Image, out_path: Path, num_classes: int) -> None:
    out = nib.load(str(out_path))
    assert out.shape == source.shape
    np.testing.assert_allclose(out.affine, source.affine, atol=1e-5)
    np.testing.assert_allclose(out.header.get_zooms(), source.header.get_zooms())
    assert out.header.get_xyzt_units() == ("mm", "sec")
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, int(source.header["sform_code"]))
    assert out.get_data_dtype() == np.uint8
    labels = np.asanyarray(out.dataobj)
    assert labels.min() >= 0 and labels.max() < num_classes


def grey(path: Path) -> np.ndarray:
    return read_image(path)[0]


# --- inputs (fast) ---------------------------------------------------------------------------------


def test_find_cases_groups_channels_and_rejects_bad_names(tmp_path):
    write_pngs(tmp_path / "a", {"case1": (8, 8), "case2": (8, 8)})
    write_image(tmp_path / "a" / "case1_0001.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("not an image: ignored")
    (tmp_path / "a" / ".case3_0000.png.x.tmp.png").write_bytes(b"interrupted write: ignored")
    cases, ending, _ = find_cases(tmp_path / "a")
    assert ending == ".png" and [(c.name, [p.name for p in c.files]) for c in cases] == [
        ("case1", ["case1_0000.png", "case1_0001.png"]),
        ("case2", ["case2_0000.png"]),
    ]

    write_image(tmp_path / "a" / "loose.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(PredictError, match="not named CASE_<4-digit channel>.png.*loose.png"):
        find_cases(tmp_path / "a")
    write_pngs(tmp_path / "gap", {"c": (8, 8)})
    write_image(tmp_path / "gap" / "c_0002.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(PredictError, match="case 'c' has channel files c_0000.png, c_0002.png"):
        find_cases(tmp_path / "gap")
    write_pngs(tmp_path / "mixed", {"c": (8, 8)})
    np.save(tmp_path / "mixed" / "d_0000.npy", np.zeros((8, 8)))
    with pytest.raises(PredictError, match=r"several endings \['.npy', '.png'\]"):
        find_cases(tmp_path / "mixed")
    with pytest.raises(PredictError, match="input folder .*nowhere does not exist"):
        find_cases(tmp_path / "nowhere")


def test_find_cases_of_a_dataset_split(tmp_path):
    root = tmp_path / "Dataset999_X"
    write_dataset_json(
        root, channel_names={0: "x"}, labels={"background": 0, "fg": 1}, num_training=0, file_ending=".png"
    )
    write_pngs(root / "imagesTs", {"t1": (8, 8), "t0": (8, 8)})
    cases, ending, folder = find_cases(f"{root}:Ts")
    assert [c.name for c in cases] == ["t0", "t1"] and ending == ".png" and folder == root / "imagesTs"
    with pytest.raises(PredictError, match="imagesTr does not exist"):
        find_cases(f"{root}:Tr")
    with pytest.raises(PredictError, match="no dataset.json"):
        find_cases(f"{tmp_path / 'missing'}:Ts")


# --- run checks and errors (fast, untrained hand-made runs) -------------------------------------------


def test_wrong_channel_count_fails_before_any_prediction(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "run")
    inputs = tmp_path / "in"
    write_pngs(inputs, {"a": (40, 40)})
    write_image(inputs / "b_0000.png", np.zeros((40, 40, 3), np.uint8))  # RGB: 3 channels, the run takes 1

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted before the inputs were checked")

    monkeypatch.setattr("skelrecall.inference.predict_probabilities", no_prediction)
    with pytest.raises(PredictError, match=r"case b: 3 channels in .*b_0000.png \(3\); the run takes 1"):
        predict(inputs, tmp_path / "out", [run])
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    (inputs / "b_0000.png").unlink()
    write_image(inputs / "a_0001.png", np.zeros((40, 40), np.uint8))  # a second channel file
    assert main(["-i", str(inputs), "-o", str(tmp_path / "out"), "--run", str(run)]) == 2
    write_image(inputs / "a_0001.png", np.zeros((40, 40, 2), np.uint8))  # grey + alpha: not an image we read
    with pytest.raises(PredictError, match=r"a_0001.png: expected a 2D image \(or 2D RGB\), got shape \(40, 40, 2\)"):
        predict(inputs, tmp_path / "out", [run])


def test_mismatched_runs_fail_naming_the_difference(tmp_path):
    a = fake_run(tmp_path / "a")
    b = fake_run(tmp_path / "b", "dataset.num_classes=3")
    differ = r"cannot be ensembled.*\n  classes \(dataset.num_classes\): 2 \(.*a\), 3 \(.*b\)"
    with pytest.raises(PredictError, match=differ):
        predict(tmp_path, tmp_path / "out", [a, b])
    c = fake_run(tmp_path / "c", "dataset=synthetic_cow")
    with pytest.raises(PredictError) as info:
        predict(tmp_path, tmp_path / "out", [a, c])
    assert "classes (dataset.num_classes): 2" in str(info.value) and "dims: 2" in str(info.value)
    with pytest.raises(PredictError, match="given more than once"):
        predict(tmp_path, tmp_path / "out", [a, tmp_path / "a" / ".." / "a"])


def test_missing_preprocessing_damaged_checkpoint_and_unfinished_runs(tmp_path, capsys):
    inputs = tmp_path / "in"
    write_pngs(inputs, {"a": (30, 50)})
    run = fake_run(tmp_path / "run")
    args = ["-i", str(inputs), "-o", str(tmp_path / "out"), "--run", str(run)]

    (run / "preprocessing.json").rename(run / "kept.json")
    assert main(args) == 2
    assert f"{run / 'preprocessing.json'} not found" in capsys.readouterr().err
    (run / "preprocessing.json").write_text('{"normalization": "zscore",\n "dims": 2,')
    with pytest.raises(PredictError, match=r"preprocessing.json: preprocessing.json is not valid JSON.*line 2"):
        predict(inputs, tmp_path / "out", [run])
    (run / "kept.json").rename(run / "preprocessing.json")

    ckpt = run / "checkpoints" / "last.ckpt"
    original = ckpt.read_bytes()
    ckpt.write_bytes(original[: len(original) // 2])  # truncated
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {ckpt} is damaged (checksum mismatch" in err
    ckpt.write_bytes(original)

    (run / "done").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{run} is not a finished run (status: interrupted" in err and "--allow-unfinished" in err
    assert main([*args, "--allow-unfinished"]) == 0
    assert grey(tmp_path / "out" / "a.png").shape == (30, 50)


def test_ct_statistics_and_device_choice(tmp_path):
    from skelrecall.data.datamodule import ct_normalize
    from skelrecall.inference import predict_probabilities
    from skelrecall.predict import ensemble_probabilities, load_network, open_run

    run = fake_run(tmp_path / "run")
    inputs = tmp_path / "in"
    write_pngs(inputs, {"a": (60, 44)})
    stats = {"low": [20.0], "high": [230.0], "mean": [140.0], "std": [35.0]}
    pre = json.loads((run / "preprocessing.json").read_text())
    write_json(run / "preprocessing.json", {**pre, "normalization": "ct", "ct_statistics": {**stats, "std": [1, 2]}})
    with pytest.raises(PredictError, match=r"preprocessing.json: normalization 'ct' needs ct_statistics .* 1 values"):
        predict(inputs, tmp_path / "out", [run])
    write_json(run / "preprocessing.json", {**pre, "normalization": "ct", "ct_statistics": stats})
    model = open_run(run)
    model.network = load_network(model, "cpu")
    image = grey(inputs / "a_0000.png")[None].astype(np.float32)
    direct = predict_probabilities(
        model.network,
        torch.from_numpy(ct_normalize(image, stats).astype(np.float32))[None],
        model.patch_size,
        **model.inference,
    )[0]
    torch.testing.assert_close(ensemble_probabilities([model], image), direct, rtol=0, atol=1e-6)

    assert main(["-i", str(inputs), "-o", str(tmp_path / "cpu"), "--run", str(run), "--device", "cpu"]) == 0
    if not torch.cuda.is_available():
        with pytest.raises(PredictError, match="--device cuda: no CUDA device is available"):
            predict(inputs, tmp_path / "gpu", [run], device="cuda")
    else:  # same labels up to float rounding at near-ties
        assert main(["-i", str(inputs), "-o", str(tmp_path / "gpu"), "--run", str(run), "--device", "cuda"]) == 0
        assert np.mean(grey(tmp_path / "gpu" / "a.png") == grey(tmp_path / "cpu" / "a.png")) > 0.99
        assert json.loads((tmp_path / "gpu" / "predict.json").read_text())["device"].startswith("cuda")


def test_output_folder_is_replaced_only_when_asked(tmp_path):
    run = fake_run(tmp_path / "runs" / "run")
    inputs = tmp_path / "in"
    write_pngs(inputs, {"a": (20, 20)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(PredictError, match="exists and is not empty; pass --overwrite"):
        predict(inputs, out, [run])
    assert (out / "mine.txt").exists()
    with pytest.raises(PredictError, match="holds the input folder"):
        predict(inputs, inputs, [run], overwrite=True)
    with pytest.raises(PredictError, match="holds the run folder"):
        predict(inputs, tmp_path / "runs", [run], overwrite=True)
    (tmp_path / "in").rename(tmp_path / "x.partial")  # would be the staging folder of -o x
    with pytest.raises(PredictError, match=r"x.partial holds the input folder"):
        predict(tmp_path / "x.partial", tmp_path / "x", [run])
    (tmp_path / "x.partial").rename(inputs)
    (out.with_name("out.partial")).mkdir()  # left by an interrupted prediction
    (out.with_name("out.partial") / "a.png").write_bytes(b"stale")
    written = predict(inputs, out, [run], overwrite=True)
    assert written == [out / "a.png"] and sorted(p.name for p in out.iterdir()) == ["a.png", "predict.json"]
    assert not out.with_name("out.partial").exists()
    info = json.loads((out / "predict.json").read_text())
    assert info["runs"][0]["checkpoint"] == "last.ckpt" and len(info["runs"][0]["sha256"]) == 64


def test_nifti_keeps_affine_header_and_shape_fast(tmp_path):
    run = fake_run(tmp_path / "run", "dataset=synthetic_cow")
    (tmp_path / "in").mkdir()
    source = nifti_volume(tmp_path / "in" / "vol_0000.nii.gz", (37, 29, 11))
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--run", str(run), "--mirror"]) == 0
    check_nifti_prediction(source, tmp_path / "out" / "vol.nii.gz", num_classes=14)


def test_tiff_and_mha_inputs(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    run2d = fake_run(tmp_path / "run2d")
    from PIL import Image

    (tmp_path / "tif").mkdir()
    Image.fromarray((np.random.default_rng(0).random((33, 21)) * 255).astype(np.uint8)).save(
        tmp_path / "tif" / "t_0000.tif"
    )
    assert main(["-i", str(tmp_path / "tif"), "-o", str(tmp_path / "out_tif"), "--run", str(run2d)]) == 0
    with Image.open(tmp_path / "out_tif" / "t.tif") as im:
        assert im.size == (21, 33) and im.mode == "L"

    run3d = fake_run(tmp_path / "run3d", "dataset=synthetic_cow")
    (tmp_path / "mha").mkdir()
    volume = sitk.GetImageFromArray(np.random.default_rng(1).random((9, 20, 26)).astype(np.float32))
    volume.SetSpacing((0.5, 0.75, 3.0))
    volume.SetOrigin((10.0, -4.0, 2.5))
    volume.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(volume, str(tmp_path / "mha" / "m_0000.mha"))
    assert main(["-i", str(tmp_path / "mha"), "-o", str(tmp_path / "out_mha"), "--run", str(run3d)]) == 0
    out = sitk.ReadImage(str(tmp_path / "out_mha" / "m.mha"))
    assert out.GetSize() == (26, 20, 9) and out.GetSpacing() == (0.5, 0.75, 3.0)
    assert out.GetOrigin() == (10.0, -4.0, 2.5) and out.GetDirection() == volume.GetDirection()
    assert sitk.GetArrayFromImage(out).max() < 14


# --- trained smoke runs (slow) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_2d(tiny_root) -> list[Path]:
    """Two finished 2D smoke runs (seeds 0 and 1) on the tiny synthetic dataset."""
    from skelrecall.train import run

    folders = []
    for seed in (0, 1):
        cfg = compose_train(
            "profile=smoke", "logger=none", f"paths.root={tiny_root}", "experiment_name=predict", f"seed={seed}"
        )
        run(cfg)
        folders.append(Path(cfg.run_dir))
    return folders


@pytest.mark.slow
def test_predict_new_pngs_then_evaluate(trained_2d, tiny_root, tmp_path):
    from skelrecall.evaluate import main as evaluate

    run = trained_2d[0]
    inputs, labels = tmp_path / "images", tmp_path / "gt" / "labels"
    shapes = {"new_a": (200, 150), "new_b": (96, 300), "new_c": (257, 131)}  # training images are 256x256
    write_pngs(inputs, shapes, seed=5)
    for name in shapes:
        write_image(labels / f"{name}.png", (grey(inputs / f"{name}_0000.png") > 200).astype(np.uint8))
    dataset = tiny_root / "data/nnUNet_raw/Dataset901_Synthetic2D"
    shutil.copy(dataset / "dataset.json", labels.parent / "dataset.json")

    out = tmp_path / "pred"
    assert main(["-i", str(inputs), "-o", str(out), "--run", str(run)]) == 0
    for name, shape in shapes.items():
        pred = grey(out / f"{name}.png")
        assert pred.shape == shape and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    assert evaluate(["--pred", str(out), "--labels", str(labels), "--workers", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 3 and 0.0 <= summary["headline"]["dice"]["mean"] <= 1.0

    # the same through `python -m` in a fresh process gives the same files
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}  # as the smoke profile's torch_threads=1
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "skelrecall.predict",
            "-i",
            str(inputs),
            "-o",
            str(tmp_path / "sub"),
            "--run",
            str(run),
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 cases ->" in proc.stdout
    for name in shapes:
        np.testing.assert_array_equal(grey(tmp_path / "sub" / f"{name}.png"), grey(out / f"{name}.png"))

    # the run's own test split: identical to the predictions the training wrote (same reading,
    # normalization and sliding windows)
    assert main(["-i", f"{dataset}:Ts", "-o", str(tmp_path / "ts"), "--run", str(run)]) == 0
    assert json.loads((tmp_path / "ts" / "predict.json").read_text())["runs"][0]["checkpoint"] == "last.ckpt"
    own = sorted((run / "predictions").glob("*.png"))
    assert len(own) == 3
    for path in own:
        np.testing.assert_array_equal(grey(tmp_path / "ts" / path.name), grey(path))


@pytest.mark.slow
def test_ensemble_is_the_argmax_of_averaged_probabilities(trained_2d, tmp_path):
    from skelrecall.data.datamodule import normalize
    from skelrecall.inference import predict_probabilities
    from skelrecall.predict import ensemble_probabilities, load_network, open_run

    inputs = tmp_path / "images"
    write_pngs(inputs, {"e": (150, 170)}, seed=9)
    out = tmp_path / "pred"
    assert main(["-i", str(inputs), "-o", str(out), "--run", str(trained_2d[0]), "--run", str(trained_2d[1])]) == 0

    # direct computation: each run's network from its config and checkpoint, averaged softmax
    image = torch.from_numpy(normalize(grey(inputs / "e_0000.png")[None].astype(np.float32), "zscore"))[None]
    singles = []
    for folder in trained_2d:
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        net = build_model(cfg["backbone"], dims=2, in_channels=1, num_classes=2, patch_size=cfg["data"]["patch_size"])
        state = torch.load(folder / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        net.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        singles.append(predict_probabilities(net, image.float(), cfg["data"]["patch_size"], **cfg["inference"])[0])
    expected = (singles[0] + singles[1]) / 2
    assert not torch.allclose(singles[0], singles[1], atol=1e-3)  # two different networks
    np.testing.assert_array_equal(grey(out / "e.png"), expected.argmax(0).numpy())

    models = [open_run(f) for f in trained_2d]
    for model in models:
        model.network = load_network(model, "cpu")
    probs = ensemble_probabilities(models, grey(inputs / "e_0000.png")[None].astype(np.float32))
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_3d_run_predicts_nifti_in_the_input_geometry(tmp_path):
    from skelrecall.data.synthetic.cow3d import generate
    from skelrecall.train import run

    generate(tmp_path / "data/nnUNet_raw/Dataset903_SyntheticCoW", seed=0, num_train=5, num_test=1, progress=False)
    cfg = compose_train(
        "dataset=synthetic_cow",
        "profile=smoke",
        "logger=none",
        f"paths.root={tmp_path}",
        "data.max_val_cases=1",
        "trainer.max_epochs=1",
    )
    run(cfg)
    inputs = tmp_path / "new"
    inputs.mkdir()
    sources = {
        "v1": nifti_volume(inputs / "v1_0000.nii.gz", (50, 44, 20), seed=1),
        "v2": nifti_volume(inputs / "v2_0000.nii.gz", (30, 61, 13), seed=2),
    }
    assert main(["-i", str(inputs), "-o", str(tmp_path / "pred"), "--run", cfg.run_dir]) == 0
    for name, source in sources.items():
        check_nifti_prediction(source, tmp_path / "pred" / f"{name}.nii.gz", num_classes=14)
