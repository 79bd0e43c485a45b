"""``skelrecall-predict``: label maps of new images from one or several finished runs (as nnU-Net's
``nnUNetv2_predict -i IN -o OUT``)::

    skelrecall-predict -i INPUT -o OUT --run RUN_DIR [--run RUN_DIR ...]
                       [--mirror | --no-mirror] [--device auto|cpu|cuda] [--allow-unfinished] [--overwrite]

``INPUT`` is a folder of images named the nnU-Net way (``CASE_0000<ending>``, one file per channel; a
PNG/TIFF RGB(A) file holds 3 channels) or a split of a converted dataset, ``DATASET_FOLDER:Ts`` or
``DATASET_FOLDER:Tr`` (its ``imagesTs``/``imagesTr``). Endings: those of :mod:`skelrecall.io` (``.png``,
``.tif``/``.tiff``, ``.nii.gz``, ``.mha``, ``.npy``, ``.npz``); one ending per folder.

Everything the network needs comes from the run folder: ``config.yaml`` (backbone, classes, channels,
dims, patch size, sliding-window settings), ``preprocessing.json`` (normalization and its statistics)
and ``checkpoints/last.ckpt``, whose checksum must match. Several runs (the folds or seeds of one
experiment) are an ensemble: each run normalizes the image with its own statistics and slides its own
patch size, the softmax probabilities are averaged over the runs, then the argmax is taken. The runs
must agree on classes, input channels, dims and normalization scheme.

Everything is checked before any prediction: the runs (finished, files present, checkpoint intact,
weights fit the network), their agreement, every input file's channels and dimensions (read from the
headers), and the output folder. Output: ``OUT/CASE<ending>`` per case in the input's format and
geometry (NIfTI: the input's affine and header; MHA: spacing, origin, direction), with the input's
spatial shape, uint8 labels (uint16 beyond 256 classes), and ``OUT/predict.json`` (runs, checkpoints
and their SHA-256, settings). Files are written to ``OUT.partial/``, which is renamed to ``OUT`` once
every case is written, so an interrupted prediction never looks complete; an existing non-empty ``OUT``
is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from skelrecall.data.datamodule import read_channels
from skelrecall.data.layout import DatasetLayout, DatasetLayoutError
from skelrecall.io import (
    ENDINGS,
    ImageReadError,
    JSONFileError,
    image_shape,
    read_json,
    staged_dir,
    write_image,
    write_json,
)
from skelrecall.runs import CHECKSUM, RunDir, checkpoint_problem, config_hash

INFERENCE_KEYS = ("overlap", "sw_batch_size", "mirror")  # what skelrecall.inference takes from config.inference
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_SPLIT = re.compile(r"^(?P<root>.+):(?P<split>Tr|Ts)$")
MAX_LISTED = 20


class PredictError(RuntimeError):
    """Runs, inputs or the output folder cannot be used; the message names the file, field and value."""


# --- runs ------------------------------------------------------------------------------------------


@dataclass
class RunModel:
    """One run of an ensemble: what its config and preprocessing say, its checkpoint, and (once
    :func:`load_network` has run) its network."""

    run: RunDir
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    checkpoint: Path
    dims: int
    in_channels: int
    num_classes: int
    patch_size: tuple[int, ...]
    inference: dict[str, Any]
    sha256: str = ""  # of the checkpoint, as its checksum file records it
    network: Any = None

    def agreement(self) -> dict[str, Any]:
        """What every run of an ensemble must share."""
        return {
            "classes (dataset.num_classes)": self.num_classes,
            "input channels": self.in_channels,
            "dims": self.dims,
            "normalization": self.preprocessing["normalization"],
        }


def _field(node: Any, dotted: str, where: Path) -> Any:
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise PredictError(f"{where}: field {dotted!r} is missing")
        node = node[key]
    return node


def _positive_int(value: Any, name: str, where: Path, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PredictError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:  # tensors and plain Python only (our checkpoints hold nothing else): no code runs on load
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PredictError(f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]})") from None
    if not isinstance(ckpt, dict):
        raise PredictError(f"checkpoint {path}: not a Lightning checkpoint (a {type(ckpt).__name__})")
    return ckpt


def _checkpoint(run: RunDir) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise PredictError(f"checkpoint {path} not found (the run saved no checkpoint)")
    problem = checkpoint_problem(path)  # the checksum rule of RunDir.resume_checkpoint
    if problem is not None:
        hint = (
            "the run is training right now and may be saving it: try again"
            if run.status() == "running"
            else "predict with another run, or retrain this one (skelrecall-train ... force=true)"
        )
        raise PredictError(f"checkpoint {path} is damaged ({problem}); {hint}")
    return path


def _check_preprocessing(pre: Any, path: Path, dims: int, in_channels: int, config_file: Path) -> dict[str, Any]:
    if not isinstance(pre, dict):
        raise PredictError(f"{path}: expected a JSON object, got {type(pre).__name__}")
    scheme = _field(pre, "normalization", path)
    if scheme not in ("zscore", "ct"):
        raise PredictError(f"{path}: normalization must be 'zscore' or 'ct', got {scheme!r}")
    for key, expected in (("dims", dims), ("in_channels", in_channels)):
        if _field(pre, key, path) != expected:
            raise PredictError(f"{path}: {key}={pre[key]!r} disagrees with {config_file} ({expected!r})")
    if scheme == "ct":
        stats = pre.get("ct_statistics")
        ok = isinstance(stats, dict) and all(
            isinstance(stats.get(k), list) and len(stats[k]) == in_channels for k in ("low", "high", "mean", "std")
        )
        if not ok:
            raise PredictError(
                f"{path}: normalization 'ct' needs ct_statistics with low, high, mean and std lists "
                f"of {in_channels} values (one per channel); got {stats!r}"
            )
    return pre


def open_run(path: str | Path, *, allow_unfinished: bool = False) -> RunModel:
    """Read and check one run folder (no network is built yet); errors name the file and field."""
    run = RunDir(path)
    config_file = run / "config.yaml"
    if not run.path.is_dir():
        raise PredictError(f"run folder {run.path} does not exist")
    if not config_file.is_file():
        raise PredictError(f"{config_file} not found: {run.path} is not a run folder of skelrecall-train")
    if not run.is_done() and not allow_unfinished:
        raise PredictError(
            f"{run.path} is not a finished run (status: {run.status()}; no 'done' marker), so its "
            "checkpoint may be from the middle of training. Finish it (rerun its skelrecall-train "
            "command) or pass --allow-unfinished to predict with it anyway"
        )
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as exc:
        raise PredictError(f"{config_file}: not valid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise PredictError(f"{config_file}: expected a mapping, got {type(config).__name__}")
    dims = _positive_int(_field(config, "dataset.dims", config_file), "dataset.dims", config_file, 2)
    if dims not in (2, 3):
        raise PredictError(f"{config_file}: dataset.dims must be 2 or 3, got {dims}")
    in_channels = _positive_int(_field(config, "dataset.in_channels", config_file), "dataset.in_channels", config_file)
    num_classes = _positive_int(
        _field(config, "dataset.num_classes", config_file), "dataset.num_classes", config_file, 2
    )
    patch = _field(config, "data.patch_size", config_file)
    if not isinstance(patch, list) or len(patch) != dims:
        raise PredictError(f"{config_file}: data.patch_size must list {dims} sizes, got {patch!r}")
    patch_size = tuple(_positive_int(p, "data.patch_size", config_file) for p in patch)
    if not isinstance(_field(config, "backbone.name", config_file), str):
        raise PredictError(f"{config_file}: backbone.name must be a string, got {config['backbone']['name']!r}")
    inference = config.get("inference") or {}
    inference = {k: inference[k] for k in INFERENCE_KEYS if k in inference}

    pre_file = run / "preprocessing.json"
    if not pre_file.is_file():
        raise PredictError(
            f"{pre_file} not found: it records the normalization the network was trained with "
            "(skelrecall-train writes it before training); retrain this run with the current "
            "version (skelrecall-train ... force=true)"
        )
    try:
        pre = read_json(pre_file, "preprocessing.json")
    except JSONFileError as exc:
        raise PredictError(str(exc)) from None
    pre = _check_preprocessing(pre, pre_file, dims, in_channels, config_file)
    ckpt = _checkpoint(run)
    return RunModel(
        run=run,
        config=config,
        preprocessing=pre,
        checkpoint=ckpt,
        dims=dims,
        in_channels=in_channels,
        num_classes=num_classes,
        patch_size=patch_size,
        inference=inference,
        sha256=ckpt.with_name(ckpt.name + CHECKSUM).read_text().strip(),
    )


def check_agreement(models: Sequence[RunModel]) -> None:
    """Refuse an ensemble whose runs differ in classes, input channels, dims or normalization scheme."""
    paths = [m.run.path.resolve() for m in models]
    if len(set(paths)) < len(paths):
        twice = sorted({str(p) for p in paths if paths.count(p) > 1})
        raise PredictError(f"run folder given more than once: {', '.join(twice)}")
    problems = []
    for key in models[0].agreement():
        values = [m.agreement()[key] for m in models]
        if any(v != values[0] for v in values):
            problems.append(f"{key}: " + ", ".join(f"{v!r} ({m.run.path})" for v, m in zip(values, models)))
    if problems:
        raise PredictError("the runs cannot be ensembled; they differ in\n  " + "\n  ".join(problems))


def load_network(model: RunModel, device: Any) -> Any:
    """Build the run's network from its config and load the checkpoint's ``model.*`` weights (strictly)."""
    from skelrecall.models import build_model

    backbone = dict(model.config["backbone"])
    if backbone.get("pretrained") is not None:
        backbone["pretrained"] = None  # initial weights are replaced by the checkpoint's anyway
    try:
        network = build_model(
            backbone,
            dims=model.dims,
            in_channels=model.in_channels,
            num_classes=model.num_classes,
            patch_size=model.patch_size,
        )
    except (ValueError, TypeError) as exc:
        raise PredictError(
            f"{model.run / 'config.yaml'}: cannot build backbone {backbone.get('name')!r}: {exc}"
        ) from None
    state = _load_checkpoint(model.checkpoint).get("state_dict")
    if not isinstance(state, dict):
        raise PredictError(f"checkpoint {model.checkpoint}: no 'state_dict' (not a Lightning checkpoint)")
    weights = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not weights:
        raise PredictError(f"checkpoint {model.checkpoint}: no network weights ('model.*' entries of its state_dict)")
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise PredictError(
            f"checkpoint {model.checkpoint}: its weights do not fit the network described by "
            f"{model.run / 'config.yaml'}: {str(exc)[:600]}"
        ) from None
    return network.to(device).eval()


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputCase:
    name: str
    files: tuple[Path, ...]  # channel files, in channel order


def _ending(name: str) -> str | None:
    """The supported ending of a file name (``skelrecall.io.ENDINGS``), or None."""
    return next((e for e in ENDINGS if name.endswith(e)), None)


def _listed(items: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:MAX_LISTED])
    return shown + (f" ... ({len(items)} in all)" if len(items) > MAX_LISTED else "")


def find_cases(source: str | Path) -> tuple[list[InputCase], str, Path]:
    """``(cases, ending, folder)`` of a folder of ``CASE_0000<ending>`` files, or of ``DATASET_FOLDER:Ts|Tr``."""
    text = str(source)
    split = _SPLIT.match(text)
    if split and not Path(text).is_dir():
        try:
            layout = DatasetLayout.open(split["root"])
            ending = layout.file_ending
        except DatasetLayoutError as exc:
            raise PredictError(f"input {text}: {exc}") from None
        folder = layout.root / f"images{split['split']}"
        if not folder.is_dir():
            raise PredictError(f"input {text}: {folder} does not exist")
        if ending not in ENDINGS:
            raise PredictError(
                f"{layout.root / 'dataset.json'}: file_ending {ending!r} is not supported here ({', '.join(ENDINGS)})"
            )
    else:
        folder, ending = Path(text), None
        if not folder.is_dir():
            raise PredictError(
                f"input folder {folder} does not exist (a split of a converted dataset is written "
                "DATASET_FOLDER:Ts or DATASET_FOLDER:Tr)"
            )
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))  # .x.tmp: partial
    if ending is None:
        found = sorted({e for p in files if (e := _ending(p.name))})
        if len(found) != 1:
            raise PredictError(
                f"input folder {folder}: "
                + (
                    f"images with several endings {found}; put one format per folder"
                    if found
                    else f"no image files (CASE_0000<ending>, ending one of {', '.join(ENDINGS)})"
                )
            )
        ending = found[0]
    channels: dict[str, dict[int, Path]] = {}
    misnamed = []
    for path in files:
        if _ending(path.name) != ending:
            continue
        match = _CHANNEL_FILE.match(path.name[: -len(ending)])
        if match is None:
            misnamed.append(path.name)
            continue
        channels.setdefault(match["case"], {})[int(match["channel"])] = path
    if misnamed:
        raise PredictError(
            f"input folder {folder}: files not named CASE_<4-digit channel>{ending} "
            f"(e.g. case1_0000{ending}): {_listed(misnamed)}"
        )
    if not channels:
        raise PredictError(f"input folder {folder}: no images CASE_0000{ending}")
    cases = []
    for name, by_channel in sorted(channels.items()):
        if sorted(by_channel) != list(range(len(by_channel))):
            raise PredictError(
                f"input folder {folder}: case {name!r} has channel files "
                f"{_listed([p.name for _, p in sorted(by_channel.items())])}; expected "
                f"{name}_0000{ending}, {name}_0001{ending}, ... without gaps"
            )
        cases.append(InputCase(name, tuple(p for _, p in sorted(by_channel.items()))))
    return cases, ending, folder


def _channels(shape: tuple[int, ...], dims: int, path: Path) -> tuple[int, tuple[int, ...]]:
    """``(channels, spatial shape)`` of one file, by the rule of ``datamodule.read_case_image``."""
    if len(shape) == dims + 1 and shape[-1] in (3, 4):  # RGB(A): 3 channels, alpha dropped
        return 3, shape[:-1]
    if len(shape) == dims:
        return 1, shape
    raise PredictError(f"{path}: expected a {dims}D image (or {dims}D RGB), got shape {shape}")


def check_inputs(cases: Sequence[InputCase], dims: int, in_channels: int) -> None:
    """Every case has ``in_channels`` channels of one ``dims``-D shape (headers only; before any prediction)."""
    problems = []
    for case in cases:
        try:
            found = [(path, *_channels(image_shape(path), dims, path)) for path in case.files]
        except (PredictError, ImageReadError) as exc:
            problems.append(str(exc))
            continue
        total = sum(n for _, n, _ in found)
        if total != in_channels:
            detail = ", ".join(f"{p} ({n})" for p, n, _ in found)
            problems.append(
                f"case {case.name}: {total} channels in {detail}; the run takes {in_channels} "
                "(dataset.in_channels of its config.yaml)"
            )
        if len({s for _, _, s in found}) > 1:
            problems.append(
                f"case {case.name}: channel files differ in shape: " + ", ".join(f"{p} {s}" for p, _, s in found)
            )
    if problems:
        more = [f"... ({len(problems)} problems in all)"] if len(problems) > MAX_LISTED else []
        raise PredictError("cannot predict these inputs:\n  " + "\n  ".join(problems[:MAX_LISTED] + more))


# --- prediction ------------------------------------------------------------------------------------


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PredictError(
            f"--device cuda: no CUDA device is available to torch {torch.__version__}; use --device cpu (or auto)"
        )
    if name not in ("cpu", "cuda"):
        raise PredictError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def ensemble_probabilities(
    models: Sequence[RunModel], image: np.ndarray, *, mirror: bool | None = None, device: Any = "cpu"
) -> Any:
    """Softmax probabilities ``(K, *spatial)`` of one raw case ``image`` ``(C, *spatial)``, averaged over
    ``models`` (each normalizes with its own preprocessing and uses its own patch size and settings;
    ``mirror`` overrides their ``inference.mirror``)."""
    import torch

    from skelrecall.data.datamodule import normalize
    from skelrecall.inference import predict_probabilities

    total = None
    for model in models:
        pre = model.preprocessing
        x = normalize(image, pre["normalization"], pre.get("ct_statistics"))
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(device)
        settings = {**model.inference, **({} if mirror is None else {"mirror": mirror})}
        probs = predict_probabilities(model.network, x, model.patch_size, **settings)[0]
        total = probs if total is None else total + probs
    return total / len(models)


def _check_output(out: Path, protected: Sequence[tuple[str, Path]], overwrite: bool) -> None:
    target = out.resolve()
    for what, path in protected:
        path = path.resolve()
        for folder in (target, target.with_name(target.name + ".partial")):  # both are deleted before writing
            if folder == path or folder in path.parents:
                raise PredictError(f"output folder {folder} holds the {what} {path}; choose another -o")
    if target.exists() and not target.is_dir():
        raise PredictError(f"output {out} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise PredictError(
            f"output folder {out} exists and is not empty; pass --overwrite to replace it (everything in it is deleted)"
        )


def predict(
    source: str | Path,
    out: str | Path,
    runs: Sequence[str | Path],
    *,
    mirror: bool | None = None,
    device: str = "auto",
    allow_unfinished: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Predict every case of ``source`` with the ensemble of ``runs`` into ``out``; return the files written.

    Checks everything (runs, inputs, output folder) before the first prediction; raises
    :class:`PredictError` naming the file and value.
    """
    from tqdm import tqdm

    if not runs:
        raise PredictError("no run folder given (--run RUN_DIR)")
    models = [open_run(r, allow_unfinished=allow_unfinished) for r in runs]
    check_agreement(models)
    dims, in_channels, num_classes = models[0].dims, models[0].in_channels, models[0].num_classes
    cases, ending, folder = find_cases(source)
    check_inputs(cases, dims, in_channels)
    out = Path(out)
    _check_output(out, [("input folder", folder), *(("run folder", m.run.path) for m in models)], overwrite)
    torch_device = resolve_device(device)
    for model in models:
        model.network = load_network(model, torch_device)

    dtype = np.uint8 if num_classes <= 256 else np.uint16
    written = []
    with staged_dir(out) as staging:  # renamed to `out` only once complete
        for case in tqdm(cases, desc="predicting", unit="case", file=sys.stderr, disable=None if progress else True):
            image, meta = read_channels(case.files, dims)
            probs = ensemble_probabilities(models, image, mirror=mirror, device=torch_device)
            labels = probs.argmax(dim=0).cpu().numpy().astype(dtype)
            written.append(write_image(staging / f"{case.name}{ending}", labels, meta).name)
        write_json(
            staging / "predict.json",
            {
                "created": datetime.datetime.now().isoformat(timespec="seconds"),
                "input": str(source),
                "file_ending": ending,
                "cases": [c.name for c in cases],
                "mirror": mirror,
                "device": str(torch_device),
                "runs": [
                    {
                        "path": str(m.run.path.resolve()),
                        "checkpoint": m.checkpoint.name,
                        "sha256": m.sha256,
                        "config_hash": config_hash(m.config),
                        "finished": m.run.is_done(),
                        "patch_size": list(m.patch_size),
                        "inference": {**m.inference, **({} if mirror is None else {"mirror": mirror})},
                    }
                    for m in models
                ],
            },
        )
    return [out / name for name in written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="skelrecall-predict",
        description="Label maps of new images from one run or an ensemble of runs (nnU-Net file names).",
    )
    parser.add_argument(
        "-i",
        "--input",
        required=True,
        help="folder of CASE_0000<ending> images, or DATASET_FOLDER:Ts / DATASET_FOLDER:Tr",
    )
    parser.add_argument("-o", "--output", required=True, help="output folder, one CASE<ending> per case")
    parser.add_argument(
        "--run",
        dest="runs",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="finished run folder; repeat for an ensemble (probabilities are averaged)",
    )
    parser.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirroring test-time augmentation (default: each run's inference.mirror)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when available (default)"
    )
    parser.add_argument(
        "--allow-unfinished", action="store_true", help="also use runs without a 'done' marker (e.g. still training)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    args = parser.parse_args(argv)
    try:
        written = predict(
            args.input,
            args.output,
            args.runs,
            mirror=args.mirror,
            device=args.device,
            allow_unfinished=args.allow_unfinished,
            overwrite=args.overwrite,
        )
    except (PredictError, ImageReadError) as exc:
        print(f"skelrecall-predict: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"skelrecall-predict: interrupted; {args.output} was not written (the cases done so far are in "
            f"{args.output}.partial, which the next run replaces)",
            file=sys.stderr,
        )
        return 130
    print(f"{len(written)} cases -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
