"""Synthetic datasets that need no download, written in the nnU-Net v2 raw layout.

Each generator is ``generate(out_dir, *, seed, num_train, num_test, **options) -> Path`` and is
deterministic in ``seed``. ``GENERATORS`` maps a dataset config name to ``module:function``: one
module per generator (``tubes2d``, ``roads2d``, ``drive2d``, ``cracks2d``, ``canal3d``; ``cow3d`` also
writes its binary variant), the drawing helpers the 2D ones share in ``draw2d`` and the one writer
in ``writer``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

GENERATORS: dict[str, str] = {
    "synthetic_2d": "skelrecall.data.synthetic.tubes2d:generate",
    "synthetic_roads": "skelrecall.data.synthetic.roads2d:generate",
    "synthetic_drive": "skelrecall.data.synthetic.drive2d:generate",
    "synthetic_cracks": "skelrecall.data.synthetic.cracks2d:generate",
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
