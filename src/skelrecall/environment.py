"""The environment record of a run: git commit (and whether the tree was dirty), package versions,
Python, platform, GPU and the command line."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from skelrecall.paths import REPO_DIR

PACKAGES = (
    "torch",
    "lightning",
    "monai",
    "numpy",
    "scipy",
    "scikit-image",
    "connected-components-3d",
    "hydra-core",
    "wandb",
    "skelrecall",
)


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool}`` of the checkout holding the package."""
    commit = _git("rev-parse", "HEAD")
    return {"git_commit": commit, "git_dirty": bool(_git("status", "--porcelain")) if commit else False}


def environment_info() -> dict[str, Any]:
    """Git state, package versions and machine of this process."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        **git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "command": " ".join(sys.argv),
    }
