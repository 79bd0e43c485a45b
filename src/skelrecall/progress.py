"""What a run prints: one line per epoch when no progress bar is shown, one result line per run,
and quiet third-party logging (each line once, no warnings that say nothing to a user).

- ``EpochLine``: ``[skelrecall] <run> epoch 3/8: loss 0.412, val Dice 0.615 (9.1 s/epoch, ETA 46 s)``,
  for logs written to a file and for several runs sharing one terminal (profile ``cpu``).
- ``MultirunSummary`` (a Hydra callback): after a multirun whose jobs ran in other processes
  (joblib, submitit), the result line of every run that finished or failed during it.
- ``quiet_logging()``: Lightning's informational lines (devices found, tips) and known harmless
  warnings are dropped; warnings and errors stay.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from lightning.pytorch.callbacks import Callback


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class EpochLine(Callback):
    """Print one line at the end of every training epoch (see the module docstring)."""

    def __init__(self, name: str):
        self.name = name
        self._start = self._epoch_start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.time()
        self._first_epoch = trainer.current_epoch  # a resumed run starts later

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        metrics = trainer.callback_metrics
        parts = []
        if "train/loss_epoch" in metrics:
            parts.append(f"loss {float(metrics['train/loss_epoch']):.4g}")
        every = trainer.check_val_every_n_epoch or 0
        if "val/dice" in metrics and every and epoch % every == 0:
            parts.append(f"val Dice {float(metrics['val/dice']):.3f}")
        done = epoch - self._first_epoch
        per_epoch = (time.time() - self._start) / max(done, 1)
        timing = f"{per_epoch:.1f} s/epoch, ETA {_duration(per_epoch * (total - epoch))}"
        print(
            f"[skelrecall] {self.name} epoch {epoch}/{total}: {', '.join(parts) or 'no metrics'} ({timing})", flush=True
        )


class MultirunSummary(HydraCallback):
    """Print the result of each run of a multirun whose jobs wrote their output elsewhere (joblib,
    submitit): runs below ``paths.runs`` whose ``done`` or ``failed`` marker appeared during it."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        self._start = time.time()

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from skelrecall.runs import RunDir

        launcher = str(config.hydra.launcher.get("_target_", ""))
        if "BasicLauncher" in launcher or not hasattr(self, "_start"):
            return  # one process: every run printed its own result line already
        rows = []
        for marker in [*Path(config.paths.runs).rglob("done"), *Path(config.paths.runs).rglob("failed")]:
            if marker.stat().st_mtime >= self._start:
                run = RunDir(marker.parent)
                if marker.name == "done":
                    headline = (run.done_info() or {}).get("headline", {})
                    rows.append(
                        f"[skelrecall] {run.path}: "
                        + ", ".join(f"{k}={v:.4g}" for k, v in headline.items() if v is not None)
                    )
                else:
                    rows.append(f"[skelrecall] {run.path}: FAILED: {(run.failure() or {}).get('error', '?')}")
        print(f"[skelrecall] multirun: {len(rows)} runs finished or failed", flush=True)
        for row in sorted(rows):
            print(row, flush=True)


def quiet_logging() -> None:
    """Lightning at WARNING (its device and tip lines are INFO), one handler path, known noise filtered."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # lightning internals
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")  # num_workers=0 is deliberate
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
