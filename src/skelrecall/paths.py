"""Where the project's files are: the Hydra configs, the plan and the working root.

- The Hydra config tree is ``skelrecall.configs.CONFIG_DIR`` (shipped inside the package; the
  checkout's top-level ``configs`` links there), so an installed package trains from any folder.
- ``REPO_DIR``: the checkout (``experiments/`` with the plan and the paper's numbers, ``reports/``).
- ``work_root()``: the folder that holds ``data/``, ``runs/`` and ``reports/``: ``$SKELRECALL_ROOT``
  when set, else the current directory (the repository root when run through the Makefile). The
  configs' ``paths.root`` reads the same variable, so both agree.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parents[1]  # src/skelrecall -> the checkout (editable installs)
SPEC_PATH = REPO_DIR / "experiments" / "tables.yaml"


def work_root() -> Path:
    """``$SKELRECALL_ROOT`` or the current directory."""
    return Path(os.environ.get("SKELRECALL_ROOT", "."))
