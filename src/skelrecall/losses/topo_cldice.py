"""Topo-clDice: the clDice loss with the topology-preserving skeletonization of Menten et al.

Same formula as ``SoftclDiceLoss`` (see ``cldice.py``) with ``S(.)`` = ``topo_skeletonize``:
predictions are binarised stochastically (``probabilistic``, ``beta``, ``tau``), the one-hot
ground truth deterministically. Multi-class maps are skeletonized per foreground class via a
reshape to ``(B*C, 1, ...)``. The paper (and its cost) concern 2D; 3D works but is slow.
"""

from __future__ import annotations

import torch

from .cldice import ClDiceBase, cldice_from_skeletons
from .topo_skeleton import topo_skeletonize


class TopoClDiceLoss(ClDiceBase):
    """clDice with Menten et al.'s skeletonization. ``forward(logits, target, loss_mask=None)``.

    Args:
        iterations: thinning iterations (authors' demos: 5 in 2D, 10 in 3D).
        simple_point_test: ``"boolean"`` or ``"euler"`` (both exact, see ``topo_skeleton``).
        probabilistic, beta, tau: stochastic binarisation of the prediction (0.33, 1.0 upstream).
        smooth, batch_dice, softmax, sigmoid, include_background, ignore_label: as ``SoftclDiceLoss``.
    """

    def __init__(
        self,
        iterations: int = 5,
        simple_point_test: str = "boolean",
        probabilistic: bool = True,
        beta: float = 0.33,
        tau: float = 1.0,
        smooth: float = 1.0,
        batch_dice: bool = True,
        softmax: bool = True,
        sigmoid: bool = False,
        include_background: bool = False,
        ignore_label: int | None = None,
    ):
        super().__init__(smooth, batch_dice, softmax, sigmoid, include_background, ignore_label)
        if simple_point_test not in ("boolean", "euler"):
            raise ValueError(f"simple_point_test must be 'boolean' or 'euler'; got {simple_point_test!r}")
        self.iterations = int(iterations)
        self.simple_point_test = simple_point_test
        self.probabilistic, self.beta, self.tau = bool(probabilistic), float(beta), float(tau)

    def _skel(self, x: torch.Tensor, probabilistic: bool) -> torch.Tensor:
        n, c = x.shape[:2]
        flat = x.reshape(n * c, 1, *x.shape[2:])
        s = topo_skeletonize(flat, self.iterations, self.simple_point_test, probabilistic, self.beta, self.tau)
        return s.reshape(x.shape)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        probs, true, mask = self._prepare(logits, target, loss_mask)
        skel_pred = self._skel(probs, self.probabilistic)
        with torch.no_grad():
            skel_true = self._skel(true, False)
        return cldice_from_skeletons(
            probs, true, skel_pred, skel_true, smooth=self.smooth, batch_dice=self.batch_dice, mask=mask
        )
