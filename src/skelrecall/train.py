"""``skelrecall-train``: Hydra entry point: check inputs, fit, predict the evaluation cases, evaluate.

The run folder (``cfg.run_dir``) and its rules (identity hash, status markers, lock, checkpoints)
belong to :class:`skelrecall.runs.RunDir`. A run:

1. takes the folder's lock (a second command on a live run exits with code 2, naming the holder);
2. compares its config with the folder's: a finished run of the same config is skipped, an unfinished
   one resumes from its newest intact checkpoint, a different config is refused (exit code 2, the
   differing keys named); ``force=true`` deletes the old run and trains from scratch;
3. checks everything that can be wrong with the inputs (dataset folder and JSON files, every label
   file's values, case ids, loss weight, patch size) before any training time is spent;
4. fits, predicts the evaluation cases (into ``predictions.partial/``, moved into place when
   complete), evaluates, and writes ``done`` last.

Ctrl-C leaves an ``interrupted`` marker, a crash a ``failed`` marker with the traceback and the
command-line overrides; both resume when the same command is run again.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import skelrecall.configs  # noqa: F401  (registers the configs' resolvers before Hydra composes)
from skelrecall.data.layout import DatasetLayout, DatasetLayoutError
from skelrecall.io import atomic_write, staged_dir, write_image, write_json
from skelrecall.runs import CheckpointError, RunConflictError, RunDir, dataset_fingerprint, rank_zero


class ConfigError(ValueError):
    """A configuration does not fit the data or the code."""


def check_config(cfg: DictConfig) -> None:
    """Values that no code path would reject before training."""
    w = cfg.loss.w
    if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
        raise ConfigError(f"loss.w must be a finite number >= 0; got {w!r}")


def open_dataset(cfg: DictConfig) -> DatasetLayout:
    """The converted dataset of ``cfg.dataset``, checked against the config."""
    root = Path(cfg.paths.nnunet_raw) / cfg.dataset.folder
    hint = cfg.dataset.create
    if cfg.dataset.get("stand_in"):
        hint += (
            f"\n  or train on its synthetic stand-in (no download): add dataset={cfg.dataset.stand_in} "
            "to the command (after experiment=...)"
        )
    layout = DatasetLayout.open(root, hint=hint)
    labels = {k: v for k, v in layout.labels.items() if k != "ignore"}
    if len(labels) != cfg.dataset.num_classes:
        raise ConfigError(
            f"{root}/dataset.json has {len(labels)} labels {labels}, but dataset "
            f"{cfg.dataset.name!r} declares num_classes={cfg.dataset.num_classes}"
        )
    if len(cfg.data.patch_size) != cfg.dataset.dims:
        raise ConfigError(
            f"data.patch_size {list(cfg.data.patch_size)} does not have dataset.dims={cfg.dataset.dims} entries"
        )
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
        raise ConfigError(
            f"dataset.evaluation must be 'test_set' or 'cross_validation', got {cfg.dataset.evaluation!r}"
        )
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
        tags = [
            cfg.experiment_name,
            cfg.dataset.name,
            cfg.backbone.name,
            cfg.loss.name,
            f"w={cfg.loss.w}",
            f"seed={cfg.seed}",
            f"fold={cfg.fold}",
            f"profile={cfg.profile.name}",
        ]
        import wandb

        # the run is started here and handed to Lightning (whose own wandb.init call passes settings
        # that recent W&B versions warn about on every run)
        experiment = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=f"{cfg.profile.name}/{cfg.experiment_name}",
            job_type=cfg.loss.name,
            name=cfg.run_name.replace("/", "|"),
            tags=tags,
            dir=str(run_dir),
            mode=mode,
            id=id_file.read_text().strip(),
            resume="allow",
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        loggers.append(WandbLogger(experiment=experiment, save_dir=str(run_dir)))
    elif kind != "csv":
        raise ConfigError(f"logger.name must be wandb, csv or none; got {kind!r}")
    return loggers


def predict_cases(module, datamodule, cases: list[str], split: str, out_dir: Path, cfg: DictConfig) -> int:
    """Write whole-image label-map predictions of ``cases`` to ``out_dir`` in the dataset's format;
    return how many of them hold no foreground at all."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from skelrecall.inference import predict_labels

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # Lightning's teardown moved it to CPU
    module.to(device)
    ending = datamodule.layout.file_ending
    empty = 0
    with staged_dir(out_dir) as staging:  # moved into place only when complete
        for name in tqdm(cases, desc="predicting", unit="case", disable=None, leave=False):  # a bar on terminals
            case = datamodule.load_cases([name], split)[0]  # one at a time: whole volumes can be large
            image = torch.from_numpy(case.image)[None].to(device)
            pred = predict_labels(module.model, image, cfg.data.patch_size, **cfg.inference).cpu().numpy()
            empty += not pred.any()
            write_image(staging / f"{case.name}{ending}", pred.astype(np.uint8), case.meta)
    return empty


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Train, predict and evaluate one configuration; return the evaluation summary."""
    if cfg.loss.connectivity is None and cfg.loss.w != 0:  # e.g. dice_ce in a sweep over loss.w
        print(
            f"[skelrecall] loss {cfg.loss.name} has no connectivity term: loss.w={cfg.loss.w} has no effect; "
            "running it as w=0 (once for the whole sweep)"
        )
        cfg.loss.w = 0.0
    config = OmegaConf.to_container(cfg, resolve=True)  # interpolation errors surface here
    run_dir = RunDir(cfg.run_dir)
    if not rank_zero():  # a further process of a distributed run: train only; rank 0 owns the folder
        return _run(cfg, run_dir, config)
    with run_dir.lock():
        if cfg.force:
            run_dir.clear()  # force: everything of the old run goes, training starts from scratch
        elif run_dir.is_done():
            run_dir.check_identity(config)
            run_dir.check_data(dataset_fingerprint(Path(cfg.paths.nnunet_raw) / cfg.dataset.folder / "dataset.json"))
            print(f"[skelrecall] {run_dir.path} is finished with this config; skipping. Pass force=true to rerun.")
            return run_dir.summary()
        else:
            run_dir.check_identity(config)
            if not run_dir.has_progress():
                run_dir.clear()  # a run that failed before training: nothing worth keeping
        run_dir.begin(config)
        return _run(cfg, run_dir, config)


def _run(cfg: DictConfig, run_dir: RunDir, config: dict[str, Any]) -> dict[str, Any] | None:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from skelrecall.data.datamodule import SegmentationDataModule
    from skelrecall.losses import build_loss
    from skelrecall.models import build_model
    from skelrecall.module import SegmentationModule
    from skelrecall.progress import EpochLine, quiet_logging
    from skelrecall.resume import AtomicCheckpointIO, RandomStateCallback

    quiet_logging()

    # --- everything that can fail on the inputs, before any training -------------------------
    check_config(cfg)
    layout = open_dataset(cfg)
    data_fingerprint = dataset_fingerprint(layout.root / "dataset.json")
    if rank_zero():
        run_dir.check_data(data_fingerprint)  # progress made on other data is never continued
        run_dir.record_data_fingerprint(data_fingerprint)
    dims, num_classes = int(cfg.dataset.dims), int(cfg.dataset.num_classes)
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # before the network's random init
    model = build_model(
        cfg.backbone,
        dims=dims,
        in_channels=int(cfg.dataset.in_channels),
        num_classes=num_classes,
        patch_size=list(cfg.data.patch_size),
    )
    loss = build_loss(cfg.loss, num_classes=num_classes, dims=dims, ds_weights=getattr(model, "ds_weights", None))
    datamodule = SegmentationDataModule(
        layout,
        dims=dims,
        patch_size=list(cfg.data.patch_size),
        batch_size=int(cfg.data.batch_size),
        iterations_per_epoch=int(cfg.data.iterations_per_epoch),
        fold=int(cfg.fold),
        normalization=cfg.dataset.normalization,
        foreground_fraction=float(cfg.data.foreground_fraction),
        augmentation=OmegaConf.to_container(cfg.augmentation, resolve=True),
        num_workers=int(cfg.data.num_workers),
        max_train_cases=cfg.data.max_train_cases,
        max_val_cases=cfg.data.max_val_cases,
        skeleton=loss.needs_skeleton,
        ignore_label=cfg.dataset.ignore_label,
        seed=int(cfg.seed),
        cache=bool(cfg.data.cache.enabled),
        cache_dir=cfg.data.cache.dir,
    )
    datamodule.setup("fit")  # reads and checks the training and validation labels
    if rank_zero():
        write_json(run_dir / "preprocessing.json", datamodule.preprocessing())  # for skelrecall-predict
    cases, split = evaluation_cases(cfg, layout, datamodule)
    for case in cases:
        layout.image_files(case, split)  # the evaluation cases' files exist ...
    layout.check_labels(cases, split, cfg.dataset.ignore_label)  # ... and their labels hold declared values
    resume_from = run_dir.resume_checkpoint(report=rank_zero())  # every process resumes from the same file

    module = SegmentationModule(
        model,
        loss,
        patch_size=cfg.data.patch_size,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler),
        inference=OmegaConf.to_container(cfg.inference, resolve=True),
        num_classes=num_classes,
    )
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        save_last=True,
        save_top_k=1,
        save_on_train_epoch_end=True,  # every epoch, whatever the validation interval
        enable_version_counter=False,
    )
    loggers = build_loggers(cfg, run_dir.path) if rank_zero() else []
    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_args["enable_progress_bar"] = bar = bool(trainer_args.get("enable_progress_bar")) and sys.stdout.isatty()
    callbacks = [checkpoints, RandomStateCallback()] + ([] if bar or not rank_zero() else [EpochLine(cfg.run_name)])
    if resume_from is not None and rank_zero():
        print(f"[skelrecall] {run_dir.path}: resuming from {resume_from.name}")
    # use_distributed_sampler=False: with several processes each draws its own training keys (EpochSampler)
    # and validates every validation case, so val/dice is the same full-set value on every rank
    trainer = L.Trainer(
        **trainer_args,
        default_root_dir=str(run_dir.path),
        use_distributed_sampler=False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
    )
    try:
        return _fit_predict_evaluate(
            cfg, run_dir, config, trainer, module, datamodule, cases, split, loggers, resume_from
        )
    finally:
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            import wandb

            wandb.finish()  # else the next run of a multirun would log into this W&B run


class Interrupted(SystemExit):
    """Training was stopped by Ctrl-C; the run resumes when the same command is run again."""


def _fit_predict_evaluate(
    cfg, run_dir: RunDir, config, trainer, module, datamodule, cases, split, loggers, resume_from: Path | None
) -> dict[str, Any] | None:
    """Fit (resuming from ``resume_from``), predict ``cases`` of ``split``, evaluate, write ``done``."""
    import signal

    from skelrecall.evaluate import evaluate_folder, headline_rows

    layout = datamodule.layout
    started = time.time()
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into a graceful stop and SystemExit(1)
            raise Interrupted(130) from None
        raise
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C after the first
    train_seconds = time.time() - started
    if trainer.world_size > 1 and rank_zero():  # Lightning's own line is INFO, silenced by quiet_logging
        import torch.distributed as dist

        size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else trainer.world_size
        print(f"[skelrecall] {cfg.run_name}: trained by {size} processes", flush=True)
    if trainer.interrupted or trainer.current_epoch < trainer.max_epochs:
        raise RuntimeError(
            f"training stopped at epoch {trainer.current_epoch} of {trainer.max_epochs}; "
            "rerun the same command to resume from checkpoints/last.ckpt"
        )
    if not rank_zero():
        return None

    # --- whole-image prediction and evaluation -------------------------------------------------
    pred_dir = run_dir / "predictions"
    empty = predict_cases(module, datamodule, cases, split, pred_dir, cfg)
    fov = cfg.dataset.get("fov_masks")
    masks = layout.root / f"{fov}{split}" if cfg.evaluation.fov_masks and fov else None
    summary = evaluate_folder(
        pred_dir,
        layout.root / f"labels{split}",
        run_dir.path,
        dataset_json=layout.root / "dataset.json",
        cases=cases,
        mask_dir=masks,
        num_workers=int(cfg.evaluation.num_workers),
    )
    val_cases = [c.name for c in datamodule.val_cases]
    if cfg.get("objective") and (split, cases) != ("Tr", val_cases):  # a test-set dataset: score the validation fold
        predict_cases(module, datamodule, val_cases, "Tr", run_dir / "validation" / "predictions", cfg)
        evaluate_folder(
            run_dir / "validation" / "predictions",
            layout.root / "labelsTr",
            run_dir / "validation",
            dataset_json=layout.root / "dataset.json",
            cases=val_cases,
            mask_dir=layout.root / f"{fov}Tr" if masks is not None else None,
            num_workers=int(cfg.evaluation.num_workers),
        )
    headline = {k: v["mean"] for k, v in summary["headline"].items()}
    for logger in loggers:
        logger.log_metrics({f"test/{k}": v for k, v in headline.items() if v is not None})
        if hasattr(logger, "log_table"):
            import pandas as pd

            logger.log_table(key="test/per_case", dataframe=headline_rows(pd.read_csv(run_dir / "per_case.csv")))
        logger.finalize("success")
    import torch

    gpu = (
        {"peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3)} if torch.cuda.is_available() else {}
    )
    run_dir.mark_done(
        config,
        train_seconds=round(train_seconds, 1),
        evaluated_split=split,
        n_cases=len(cases),
        empty_predictions=empty,
        headline=headline,
        data_fingerprint=dataset_fingerprint(layout.root / "dataset.json"),
        **gpu,
    )
    if empty == len(cases):
        print(f"[skelrecall] {run_dir.path}: every prediction is empty: this run did not train (tables say so)")
    print(f"[skelrecall] {run_dir.path}: " + ", ".join(f"{k}={v:.4g}" for k, v in headline.items() if v is not None))
    return summary


def objective_value(cfg: DictConfig, run_dir: RunDir) -> float | None:
    """The validation metric a sweeper optimizes (``objective.metric``: mean over the fold's validation
    cases, never the test set); None without an objective."""
    if not cfg.get("objective"):
        return None
    path = run_dir / "validation" / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else run_dir.summary()  # cross-validation: the same cases
    value = summary["headline"].get(cfg.objective.metric, {}).get("mean")
    if value is None:
        raise ConfigError(
            f"objective.metric {cfg.objective.metric!r} is not in {path}; available: {', '.join(summary['headline'])}"
        )
    print(f"[skelrecall] {run_dir.path}: objective validation {cfg.objective.metric} = {value:.4g}")
    return float(value)


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(config_path="configs", config_name="train", version_base="1.3")  # skelrecall/configs
def _hydra_main(cfg: DictConfig) -> float | None:
    run_dir = RunDir(cfg.run_dir)
    try:
        run(cfg)
        return objective_value(cfg, run_dir) if rank_zero() else None
    except RunConflictError as exc:  # nothing of the folder was touched: no marker
        _exit(exc, code=2)
    except Interrupted:
        if rank_zero():
            run_dir.mark_interrupted()
        print(f"[skelrecall] {run_dir.path}: interrupted; rerun the same command to resume", file=sys.stderr)
        raise
    except (ConfigError, DatasetLayoutError, CheckpointError) as exc:
        if rank_zero():
            run_dir.mark_failed(exc, _overrides())
        _exit(exc, code=1)
    except BaseException as exc:
        if rank_zero():
            run_dir.mark_failed(exc, _overrides())
        raise


def _exit(exc: Exception, code: int) -> None:
    """Stop with ``code`` and the message; inside a multirun, raise so Hydra records the job as failed
    and runs the others."""
    if _in_multirun():
        raise exc
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(code)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
