"""Shared fixtures: a tiny synthetic dataset and composed configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelrecall.configs import compose


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A project root holding data/nnUNet_raw/Dataset901_Synthetic2D with 10 train + 3 test images."""
    from skelrecall.data.synthetic.tubes2d import generate

    root = tmp_path_factory.mktemp("root")
    generate(root / "data" / "nnUNet_raw" / "Dataset901_Synthetic2D", seed=3, num_train=10, num_test=3, progress=False)
    return root


def compose_train(*overrides: str):
    """The composed ``train`` config with ``overrides`` (as on the command line)."""
    return compose(overrides)
