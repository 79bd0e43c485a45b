"""``skelrecall-data``: make datasets in the nnU-Net v2 raw layout.

    skelrecall-data list
    skelrecall-data synthesize synthetic_2d [--seed 0] [--num-train N] [--num-test N] [--out DIR]
    skelrecall-data convert drive --raw /path/to/DRIVE [--out DIR] [--workers N]

The default output folder is ``data/nnUNet_raw/<folder>`` with ``<folder>`` from
``configs/dataset/<name>.yaml`` (``$SKELRECALL_ROOT/data/...`` when that variable is set).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "dataset"


def dataset_config(name: str):
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise SystemExit(f"error: unknown dataset {name!r}; available: {', '.join(available)}")
    return OmegaConf.load(path)


def default_out(name: str) -> Path:
    root = Path(os.environ.get("SKELRECALL_ROOT", "."))
    return root / "data" / "nnUNet_raw" / dataset_config(name).folder


def main(argv: list[str] | None = None) -> None:
    from skelrecall.data.synthetic import GENERATORS

    parser = argparse.ArgumentParser(prog="skelrecall-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the datasets that can be synthesized or converted")
    syn = sub.add_parser("synthesize", help="generate a synthetic dataset (no download)")
    syn.add_argument("name", help=f"one of: {', '.join(GENERATORS)}")
    syn.add_argument("--out", type=Path, help="output dataset folder")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--num-train", type=int, help="training cases (default: the generator's)")
    syn.add_argument("--num-test", type=int, help="test cases (default: the generator's)")
    syn.add_argument("--overwrite", action="store_true", help="replace a folder made with other parameters")
    conv = sub.add_parser("convert", help="convert a downloaded dataset (see data/README.md)")
    conv.add_argument("name")
    conv.add_argument("--raw", type=Path, required=True, help="the download folder")
    conv.add_argument("--out", type=Path, help="output dataset folder")
    conv.add_argument("--workers", type=int, default=1)
    conv.add_argument("--overwrite", action="store_true", help="replace a folder converted with other options")
    args = parser.parse_args(argv)

    from skelrecall.data.converters import CONVERTERS, ConversionError

    if args.command == "list":
        print("synthesize:", ", ".join(GENERATORS))
        print("convert:   ", ", ".join(CONVERTERS))
        return
    if args.command == "synthesize":
        if args.name not in GENERATORS:
            raise SystemExit(f"error: unknown synthetic dataset {args.name!r}; available: {', '.join(GENERATORS)}")
        from skelrecall.data.synthetic import get_generator

        options = {k: v for k, v in (("num_train", args.num_train), ("num_test", args.num_test)) if v is not None}
        out = get_generator(args.name)(args.out or default_out(args.name), seed=args.seed,
                                       overwrite=args.overwrite, **options)
    else:
        if args.name not in CONVERTERS:
            raise SystemExit(f"error: unknown dataset {args.name!r}; available: {', '.join(CONVERTERS)}")
        try:
            out = CONVERTERS[args.name](args.raw, args.out or default_out(args.name), workers=args.workers,
                                        overwrite=args.overwrite)
        except (ConversionError, FileExistsError, FileNotFoundError) as exc:
            raise SystemExit(f"error: {exc}") from None
    print(f"{args.name}: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
