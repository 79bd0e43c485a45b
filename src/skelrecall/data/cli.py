"""``skelrecall-data``: make datasets in the nnU-Net v2 raw layout.

    skelrecall-data list
    skelrecall-data synthesize synthetic_2d [--seed 0] [--num-train N] [--num-test N] [--out DIR]
    skelrecall-data convert drive --raw /path/to/DRIVE [--out DIR] [--workers N] [--overwrite]
    skelrecall-data convert roads --raw /path/to/mass_roads --option nodata=background

The default output folder is ``data/nnUNet_raw/<folder>`` with ``<folder>`` from
``configs/dataset/<name>.yaml`` (``$SKELRECALL_ROOT/data/...`` when that variable is set).
``--option KEY=VALUE`` (repeatable) sets a converter's own keyword option (values are read as
YAML: ``0.5``, ``true``, ``null``, text); ``skelrecall-data list`` shows each converter's options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def default_out(name: str) -> Path:
    """``data/nnUNet_raw/<folder>`` below the work root, ``<folder>`` from ``configs/dataset/<name>.yaml``."""
    from skelrecall.configs import CONFIG_DIR, compose
    from skelrecall.paths import work_root

    if not (CONFIG_DIR / "dataset" / f"{name}.yaml").is_file():
        available = sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))
        raise SystemExit(f"error: unknown dataset {name!r}; available: {', '.join(available)}")
    return work_root() / "data" / "nnUNet_raw" / compose([f"dataset={name}"]).dataset.folder


def parse_options(items: list[str], known: dict, name: str) -> dict:
    """``["key=value", ...]`` -> ``{key: value}`` (values read as YAML), keys checked against ``known``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SystemExit(f"error: --option {item!r}: expected KEY=VALUE")
        if key not in known:
            listed = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
            raise SystemExit(f"error: --option {key}: not an option of the {name} converter; its options: {listed}")
        try:
            options[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise SystemExit(f"error: --option {item!r}: cannot read the value ({exc})") from None
    return options


def main(argv: list[str] | None = None) -> None:
    from skelrecall.data.synthetic import GENERATORS

    parser = argparse.ArgumentParser(
        prog="skelrecall-data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    conv.add_argument(
        "--option",
        "-O",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a converter option, e.g. nodata=background (repeatable; `skelrecall-data list` shows them)",
    )
    args = parser.parse_args(argv)

    from skelrecall.data.converters import CONVERTERS, ConversionError, converter_options

    if args.command == "list":
        print("synthesize:", ", ".join(GENERATORS))
        print("convert:   ", ", ".join(CONVERTERS))
        for name in CONVERTERS:
            opts = ", ".join(f"{k}={v!r}" for k, v in converter_options(name).items())
            print(f"  {name} options: {opts}")
        return
    if args.command == "synthesize":
        if args.name not in GENERATORS:
            raise SystemExit(f"error: unknown synthetic dataset {args.name!r}; available: {', '.join(GENERATORS)}")
        from skelrecall.data.synthetic import get_generator

        options = {k: v for k, v in (("num_train", args.num_train), ("num_test", args.num_test)) if v is not None}
        out = get_generator(args.name)(
            args.out or default_out(args.name), seed=args.seed, overwrite=args.overwrite, **options
        )
    else:
        if args.name not in CONVERTERS:
            raise SystemExit(f"error: unknown dataset {args.name!r}; available: {', '.join(CONVERTERS)}")
        options = parse_options(args.option, converter_options(args.name), args.name)
        if not args.raw.exists():
            raise SystemExit(f"error: {args.raw}: download folder does not exist")
        if not args.raw.is_dir():
            raise SystemExit(f"error: {args.raw}: is a file, not a folder (unpack the download first)")
        if args.workers < 1:
            raise SystemExit(f"error: --workers must be at least 1, got {args.workers}")
        try:
            out = CONVERTERS[args.name](
                args.raw, args.out or default_out(args.name), workers=args.workers, overwrite=args.overwrite, **options
            )
        except (ConversionError, FileExistsError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None
    print(f"{args.name}: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
