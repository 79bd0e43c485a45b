"""The Hydra config tree of ``skelrecall-train`` (shipped with the package; ``configs/`` in the checkout
links here). ``compose(overrides)`` gives the config ``skelrecall-train <overrides>`` runs (without
Hydra's own ``hydra.*`` settings). Importing this module registers the resolvers the configs use:

- ``${effective_w:${loss.w},${loss.connectivity}}``: the loss weight a run really trains with (0 when
  the loss has no connectivity term), so that a sweep over ``loss.w`` names one Dice+CE run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """``train.yaml`` composed with command-line style ``overrides`` (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def effective_w(w: Any, connectivity: Any) -> Any:
    return 0.0 if connectivity is None else w


OmegaConf.register_new_resolver("effective_w", effective_w, replace=True)
