"""The LightningModule: one training step = backbone forward, ``L_generic + w * L_connectivity``
with deep supervision, backward; validation = whole-image sliding-window Dice of the foreground.

Optimizer and learning-rate schedule come from the config as factories (``optimizer`` and
``scheduler``, Hydra ``_partial_``): by default nnU-Net's SGD (momentum 0.99, Nesterov, weight decay
3e-5) and PolyLR ``lr = lr0 * (1 - epoch / max_epochs) ** 0.9`` stepped once per epoch (the
scheduler gets ``total_iters = max_epochs``). Gradient clipping (norm 12) is a Trainer argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from skelrecall.inference import predict_labels
from skelrecall.metrics import dice
from skelrecall.skeleton import tubed_skeleton


def make_panel(image: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """RGB panel ``image | label | tubed skeleton | prediction`` (2D; 3D: the slice with most foreground).

    In the prediction tile, skeleton pixels the prediction misses are red (cf. the paper's Fig. 5).
    """
    if label.ndim == 3:
        z = int(np.argmax((label > 0).sum(axis=(1, 2))))
        image, label, prediction = image[:, z], label[z], prediction[z]
    grey = image[0]
    lo, hi = np.percentile(grey, [1, 99])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-8), 0, 1)
    skeleton = tubed_skeleton(label.astype(np.int32)) > 0

    def tile(mask: np.ndarray) -> np.ndarray:
        return np.repeat(mask.astype(np.float32)[..., None], 3, axis=-1)

    pred_tile = tile(prediction > 0)
    pred_tile[skeleton & (prediction == 0)] = (1.0, 0.0, 0.0)
    tiles = [np.repeat(grey[..., None], 3, axis=-1), tile(label > 0), tile(skeleton), pred_tile]
    return (np.concatenate(tiles, axis=1) * 255).round().astype(np.uint8)


class SegmentationModule(L.LightningModule):
    def __init__(self, model: nn.Module, loss: nn.Module, *, patch_size: Sequence[int],
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any],
                 inference: dict[str, Any], num_classes: int):
        super().__init__()
        self.model, self.loss = model, loss
        self.patch_size = tuple(int(p) for p in patch_size)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.inference_cfg = dict(inference)
        self.num_classes = num_classes
        self._val_dice: list[float] = []

    def forward(self, x: torch.Tensor):
        return self.model(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        outputs = self.model(batch["image"])
        total, parts = self.loss(outputs, batch["label"], batch.get("skeleton"))
        if not torch.isfinite(total):
            raise FloatingPointError(f"training loss is {total.item()} at step {self.global_step} (epoch "
                                     f"{self.current_epoch}); lower the learning rate or loss.w, or check the data")
        bs = batch["image"].shape[0]
        # sync_dist: epoch means over every process's batches in a distributed run
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("train/generic", parts["generic"], on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("train/connectivity", parts["connectivity"], on_step=False, on_epoch=True, batch_size=bs,
                 sync_dist=True)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        image = batch["image"][None].to(self.device)
        pred = predict_labels(self.model, image, self.patch_size, **self.inference_cfg).cpu().numpy()
        label = batch["label"][0].numpy()
        scores = [dice(pred == c, label == c) for c in range(1, self.num_classes)]
        if not np.all(np.isnan(scores)):
            self._val_dice.append(float(np.nanmean(scores)))
        if batch_idx == 0:
            self.log_panel(make_panel(batch["image"].numpy(), label, pred), f"{batch['case']} epoch {self.current_epoch}")

    def on_validation_epoch_end(self) -> None:
        if self._val_dice:
            # every rank validates every case (no distributed sampler): the mean is the same on all ranks
            self.log("val/dice", float(np.mean(self._val_dice)), prog_bar=True, sync_dist=True)
        self._val_dice = []

    def log_panel(self, panel: np.ndarray, caption: str) -> None:
        """Send the panel to every logger that takes images (W&B)."""
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/panel", images=[panel], caption=[caption], step=self.global_step)

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        schedule = self.scheduler_factory(opt, total_iters=max(int(self.trainer.max_epochs or 1), 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
