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

PANEL_TITLES = ("image", "label", "tubed skeleton", "prediction\nmissed skeleton: red")


def make_panel(
    image: np.ndarray, label: np.ndarray, prediction: np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """RGB ``uint8`` panel ``image | label | tubed skeleton | prediction`` with the column titles
    (:data:`PANEL_TITLES`) drawn above the tiles (W&B shows images in grids without captions).

    2D; 3D: the slice with most foreground. Labels, skeleton and prediction are in class colours
    (:mod:`skelrecall.colours`, as in the figures: background black, binary white, multi-class one
    colour per class with a key of class values below the tiles); skeleton pixels the prediction
    labels background are red (cf. the paper's Fig. 5). ``num_classes`` (with background) default:
    from the largest value in label and prediction. Tiles narrower than 160 px are enlarged.
    """
    from skelrecall.colours import class_colours, label_rgb, prediction_rgb, titled_strip

    if label.ndim == 3:
        z = int(np.argmax((label > 0).sum(axis=(1, 2))))
        image, label, prediction = image[:, z], label[z], prediction[z]
    if num_classes is None:
        num_classes = max(int(label.max(initial=0)), int(prediction.max(initial=0))) + 1
    num_classes = max(int(num_classes), 2)
    grey = image[0]
    lo, hi = np.percentile(grey, [1, 99])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-8), 0, 1)
    skeleton = tubed_skeleton(np.where(label < num_classes, label, 0).astype(np.int32))
    tiles = [
        np.repeat(grey[..., None], 3, axis=-1),
        label_rgb(label, num_classes),
        label_rgb(skeleton, num_classes),
        prediction_rgb(prediction, (skeleton > 0) & (prediction == 0), num_classes),
    ]
    key = None
    if num_classes > 2:
        colours = class_colours(num_classes)
        key = {str(k): tuple(colours[k]) for k in range(1, num_classes)}
    return titled_strip(tiles, PANEL_TITLES, legend=key)


class SegmentationModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        *,
        patch_size: Sequence[int],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any],
        inference: dict[str, Any],
        num_classes: int,
    ):
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
            raise FloatingPointError(
                f"training loss is {total.item()} at step {self.global_step} (epoch "
                f"{self.current_epoch}); lower the learning rate or loss.w, or check the data"
            )
        bs = batch["image"].shape[0]
        # sync_dist: epoch means over every process's batches in a distributed run
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("train/generic", parts["generic"], on_step=True, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log(
            "train/connectivity", parts["connectivity"], on_step=True, on_epoch=True, batch_size=bs, sync_dist=True
        )
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        image = batch["image"][None].to(self.device)
        pred = predict_labels(self.model, image, self.patch_size, **self.inference_cfg).cpu().numpy()
        label = batch["label"][0].numpy()
        scores = [dice(pred == c, label == c) for c in range(1, self.num_classes)]
        if not np.all(np.isnan(scores)):
            self._val_dice.append(float(np.nanmean(scores)))
        if batch_idx == 0:
            self.log_panel(
                make_panel(batch["image"].numpy(), label, pred, self.num_classes),
                f"{batch['case']} epoch {self.current_epoch}",
            )

    def on_validation_epoch_end(self) -> None:
        if self._val_dice:
            # every rank validates every case (no distributed sampler): the mean is the same on all ranks
            self.log("val/dice", float(np.mean(self._val_dice)), prog_bar=True, sync_dist=True)
        self._val_dice = []

    def log_panel(self, panel: np.ndarray, caption: str) -> None:
        """Send the panel (:func:`make_panel`, titles drawn in) to every logger that takes images (W&B),
        captioned ``caption`` and the column titles."""
        columns = " | ".join(t.replace("\n", ", ") for t in PANEL_TITLES)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(
                    key="val/panel", images=[panel], caption=[f"{caption}: {columns}"], step=self.global_step
                )

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        schedule = self.scheduler_factory(opt, total_iters=max(int(self.trainer.max_epochs or 1), 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
