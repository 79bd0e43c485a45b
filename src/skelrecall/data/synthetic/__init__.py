"""Synthetic datasets that need no download, written in the nnU-Net v2 raw layout.

Each generator is ``generate(out_dir, *, seed, num_train, num_test, **options) -> Path`` and is
deterministic in ``seed``. ``GENERATORS`` maps a dataset config name to ``module:function``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

GENERATORS: dict[str, str] = {
    "synthetic_2d": "skelrecall.data.synthetic.tubes2d:generate",
    "synthetic_roads": "skelrecall.data.synthetic.standins2d:generate_roads",
    "synthetic_drive": "skelrecall.data.synthetic.standins2d:generate_drive",
    "synthetic_cracks": "skelrecall.data.synthetic.standins2d:generate_cracks",
    "synthetic_canal": "skelrecall.data.synthetic.canal3d:generate",
    "synthetic_cow": "skelrecall.data.synthetic.cow3d:generate",
    "synthetic_cow_binary": "skelrecall.data.synthetic.cow3d:generate_binary",
}


def get_generator(name: str) -> Callable:
    """The generator registered under ``name``; unknown names list the available ones."""
    if name not in GENERATORS:
        raise KeyError(f"unknown synthetic dataset {name!r}; available: {', '.join(sorted(GENERATORS))}")
    module, func = GENERATORS[name].split(":")
    return getattr(importlib.import_module(module), func)
