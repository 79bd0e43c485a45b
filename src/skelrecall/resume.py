"""What makes a resumed run continue bit for bit: atomic, checksummed checkpoints that carry the
random state of the training process.

- ``AtomicCheckpointIO`` (a Lightning ``CheckpointIO`` plugin): each checkpoint is written to a
  temporary name in its own folder, flushed to disk (fsync), renamed into place, and then its
  SHA-256 is written beside it (``<name>.ckpt.sha256``); ``skelrecall.runs.RunDir.resume_checkpoint``
  checks it before resuming.
- ``RandomStateCallback``: the states of Python's, NumPy's and torch's (CPU and CUDA) generators
  at the end of each epoch go into the checkpoint and are restored when training resumes.

Training patches do not depend on any process-wide generator: the sampler draws patch ``i`` of
epoch ``e`` from a generator seeded with ``(seed, e, i)`` (``skelrecall.data.datamodule``), so the
number of loader workers and where a run was stopped do not change them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from skelrecall.io import atomic_write
from skelrecall.runs import CHECKSUM, write_checksum


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, fsync, rename, then write the checksum."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), fsync=True)
        write_checksum(path)

    def remove_checkpoint(self, path) -> None:
        path = Path(path)
        path.with_name(path.name + CHECKSUM).unlink(missing_ok=True)
        path.unlink(missing_ok=True)


class RandomStateCallback(Callback):
    """Save and restore the process-wide random generators with each checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()  # as tensors/numbers: loadable with weights_only
        state = {
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
