"""``skelrecall-train``: Hydra entry point: check inputs, fit, predict the test cases, evaluate.

Run folder (``run_dir``)::

    runs/<profile>/<experiment>/<dataset>/<backbone>/<loss>/w=<w>/seed=<s>/fold=<f>/
      config.yaml         the resolved config          environment.json  git commit, versions
      checkpoints/        last.ckpt, saved every epoch (resumed from if present)
      csv/attempt_<k>/    metrics.csv of each (re)start     wandb/, wandb_id.txt  W&B run (offline by default)
      predictions/        whole-image label maps of the evaluated cases
      per_case.csv        summary.json (skelrecall.evaluate)
      done                written last; a run folder with it is skipped (``force=true`` retrains from scratch)
      failed              the error of a run that crashed (removed when it later succeeds)

Everything that can be wrong with the inputs (dataset folder, label map, loss, backbone, patch
size) is checked before any training time is spent.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from skelrecall.data.layout import DatasetLayout, DatasetLayoutError, write_json
from skelrecall.io import atomic_write, write_image

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PACKAGES = ("torch", "lightning", "monai", "numpy", "scipy", "scikit-image", "connected-components-3d",
            "hydra-core", "wandb", "skelrecall")


class ConfigError(ValueError):
    """A configuration does not fit the data or the code."""


def environment_info() -> dict[str, Any]:
    """Git commit, package versions and machine of this run."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=CONFIG_DIR.parent, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain")),
            "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "command": " ".join(sys.argv)}


def open_dataset(cfg: DictConfig) -> DatasetLayout:
    """The converted dataset of ``cfg.dataset``, checked against the config."""
    root = Path(cfg.paths.nnunet_raw) / cfg.dataset.folder
    layout = DatasetLayout.open(root, hint=cfg.dataset.create)
    labels = {k: v for k, v in layout.labels.items() if k != "ignore"}
    if len(labels) != cfg.dataset.num_classes:
        raise ConfigError(f"{root}/dataset.json has {len(labels)} labels {labels}, but dataset "
                          f"{cfg.dataset.name!r} declares num_classes={cfg.dataset.num_classes}")
    if len(cfg.data.patch_size) != cfg.dataset.dims:
        raise ConfigError(f"data.patch_size {list(cfg.data.patch_size)} does not have dataset.dims={cfg.dataset.dims} entries")
    return layout


def evaluation_cases(cfg: DictConfig, layout: DatasetLayout, datamodule) -> tuple[list[str], str]:
    """Cases scored at the end of a run and their split: the test set, or the validation fold."""
    if cfg.dataset.evaluation == "test_set":
        cases, split = layout.cases("Ts"), "Ts"
        if not cases:
            raise ConfigError(f"{layout.root}/labelsTs is empty but dataset.evaluation is 'test_set'")
    elif cfg.dataset.evaluation == "cross_validation":
        cases, split = datamodule.fold_cases()[1], "Tr"
    else:
        raise ConfigError(f"dataset.evaluation must be 'test_set' or 'cross_validation', got {cfg.dataset.evaluation!r}")
    limit = cfg.data.max_test_cases
    return (cases[:limit] if limit else cases), split


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    kind = cfg.logger.name
    if kind == "none":
        return []
    # one CSV folder per attempt, so that resuming an interrupted run keeps the earlier epochs' log
    attempt = len(list((run_dir / "csv").glob("attempt_*")))
    loggers = [CSVLogger(save_dir=str(run_dir), name="csv", version=f"attempt_{attempt}")]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        mode = cfg.logger.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        id_file = run_dir / "wandb_id.txt"  # a resumed run continues the same W&B run
        if not id_file.exists():
            atomic_write(id_file, lambda tmp: tmp.write_text(uuid.uuid4().hex[:12]))
        tags = [cfg.experiment_name, cfg.dataset.name, cfg.backbone.name, cfg.loss.name, f"w={cfg.loss.w}",
                f"seed={cfg.seed}", f"fold={cfg.fold}", f"profile={cfg.profile.name}"]
        loggers.append(WandbLogger(project=cfg.logger.project, entity=cfg.logger.entity,
                                   group=f"{cfg.profile.name}/{cfg.experiment_name}", job_type=cfg.loss.name,
                                   name=cfg.run_name.replace("/", "|"), tags=tags, save_dir=str(run_dir), mode=mode,
                                   id=id_file.read_text().strip(), resume="allow",
                                   config=OmegaConf.to_container(cfg, resolve=True)))
    elif kind != "csv":
        raise ConfigError(f"logger.name must be wandb, csv or none; got {kind!r}")
    return loggers


def predict_cases(module, datamodule, cases: list[str], split: str, out_dir: Path, cfg: DictConfig) -> None:
    """Write whole-image label-map predictions of ``cases`` to ``out_dir`` in the dataset's format."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from skelrecall.inference import predict_labels

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # Lightning's teardown moved it to CPU
    module.to(device)
    ending = datamodule.layout.file_ending
    for name in tqdm(cases, desc="predicting", unit="case"):
        case = datamodule.load_cases([name], split)[0]  # one at a time: whole volumes can be large
        image = torch.from_numpy(case.image)[None].to(device)
        pred = predict_labels(module.model, image, cfg.data.patch_size, **cfg.inference).cpu().numpy()
        write_image(out_dir / f"{case.name}{ending}", pred.astype(np.uint8), case.meta)


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Train, predict and evaluate one configuration; return the evaluation summary."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from skelrecall.data.datamodule import SegmentationDataModule
    from skelrecall.losses import build_loss
    from skelrecall.models import build_model
    from skelrecall.module import SegmentationModule

    run_dir = Path(cfg.run_dir)
    if (run_dir / "done").exists():
        if not cfg.force:
            print(f"[skelrecall] {run_dir} is finished (done marker); skipping. Pass force=true to rerun.")
            return json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else None
        (run_dir / "done").unlink()  # force: train again from scratch, not from the final checkpoint
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)

    # --- everything that can fail on the inputs, before any training -------------------------
    layout = open_dataset(cfg)
    dims, num_classes = int(cfg.dataset.dims), int(cfg.dataset.num_classes)
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # before the network's random init
    model = build_model(cfg.backbone, dims=dims, in_channels=int(cfg.dataset.in_channels),
                        num_classes=num_classes, patch_size=list(cfg.data.patch_size))
    loss = build_loss(cfg.loss, num_classes=num_classes, dims=dims, ds_weights=getattr(model, "ds_weights", None))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True)))
    write_json(run_dir / "environment.json", environment_info())

    datamodule = SegmentationDataModule(
        layout, dims=dims, patch_size=list(cfg.data.patch_size), batch_size=int(cfg.data.batch_size),
        iterations_per_epoch=int(cfg.data.iterations_per_epoch), fold=int(cfg.fold),
        normalization=cfg.dataset.normalization, foreground_fraction=float(cfg.data.foreground_fraction),
        augment=bool(cfg.data.augment), num_workers=int(cfg.data.num_workers),
        max_train_cases=cfg.data.max_train_cases, max_val_cases=cfg.data.max_val_cases,
        skeleton=getattr(loss.loss, "needs_skeleton", True), ignore_label=cfg.dataset.ignore_label,
        seed=int(cfg.seed))
    datamodule.setup("fit")
    cases, split = evaluation_cases(cfg, layout, datamodule)

    module = SegmentationModule(model, loss, patch_size=cfg.data.patch_size,
                                optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
                                inference=OmegaConf.to_container(cfg.inference, resolve=True),
                                num_classes=num_classes)
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=1,
                                  save_on_train_epoch_end=True)  # every epoch, whatever the validation interval
    loggers = build_loggers(cfg, run_dir)
    trainer = L.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), default_root_dir=str(run_dir),
                        callbacks=[checkpoints], logger=loggers or False)
    try:
        return _fit_predict_evaluate(cfg, trainer, module, datamodule, cases, split, loggers)
    finally:
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            import wandb

            wandb.finish()  # else the next run of a multirun would log into this W&B run


def _fit_predict_evaluate(cfg, trainer, module, datamodule, cases, split, loggers) -> dict[str, Any]:
    """Fit (resuming from last.ckpt), predict ``cases`` of ``split``, evaluate, write ``done``."""
    from skelrecall.evaluate import evaluate_folder, headline_rows

    run_dir, layout = Path(cfg.run_dir), datamodule.layout
    last = run_dir / "checkpoints" / "last.ckpt"
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
    train_seconds = time.time() - started
    if trainer.interrupted or trainer.current_epoch < trainer.max_epochs:
        raise RuntimeError(f"training stopped at epoch {trainer.current_epoch} of {trainer.max_epochs}; "
                           "rerun the same command to resume from checkpoints/last.ckpt")

    # --- whole-image prediction and evaluation -------------------------------------------------
    pred_dir = run_dir / "predictions"
    predict_cases(module, datamodule, cases, split, pred_dir, cfg)
    masks = layout.root / f"masks{split}" if cfg.evaluation.fov_masks and cfg.dataset.get("fov_masks") else None
    summary = evaluate_folder(pred_dir, layout.root / f"labels{split}", run_dir, dataset_json=layout.root / "dataset.json",
                              cases=cases, mask_dir=masks, num_workers=int(cfg.evaluation.num_workers))
    headline = {k: v["mean"] for k, v in summary["headline"].items()}
    for logger in loggers:
        logger.log_metrics({f"test/{k}": v for k, v in headline.items() if v is not None})
        if hasattr(logger, "log_table"):
            import pandas as pd

            logger.log_table(key="test/per_case", dataframe=headline_rows(pd.read_csv(run_dir / "per_case.csv")))
        logger.finalize("success")
    write_json(run_dir / "done", {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "train_seconds": round(train_seconds, 1),
                                  "evaluated_split": split, "n_cases": len(cases), "headline": headline})
    (run_dir / "failed").unlink(missing_ok=True)
    print(f"[skelrecall] {run_dir}: " + ", ".join(f"{k}={v:.4g}" for k, v in headline.items() if v is not None))
    return summary


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, DatasetLayoutError) as exc:
        _record_failure(cfg, exc)
        if _in_multirun():  # an exception lets Hydra record this job as failed and run the others
            raise
        raise SystemExit(f"error: {exc}") from None
    except BaseException as exc:
        _record_failure(cfg, exc)
        raise


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    run_dir = Path(cfg.run_dir)
    if run_dir.is_dir():
        atomic_write(run_dir / "failed", lambda tmp: tmp.write_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
