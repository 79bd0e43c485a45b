"""``skelrecall-bench {metrics,losses,throughput,cache,all}``: run the benchmarks and write ``reports/bench/``."""

from __future__ import annotations

import argparse
import importlib

SUITES = {
    "metrics": "skelrecall.bench.metrics",
    "losses": "skelrecall.bench.losses",
    "throughput": "skelrecall.bench.throughput",
    "cache": "skelrecall.bench.cache",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="skelrecall-bench", description=__doc__)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("--out", default="reports/bench", help="output folder (default: reports/bench)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a fast check of the code path")
    parser.add_argument(
        "--sizes",
        choices=["paper", "cpu"],
        help="losses: the paper's sizes (2D 2x512x512, "
        "3D 2x80x160x192; default on a GPU) or reduced ones (default on CPU)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="losses: rebuild losses.{csv,md} and losses_overhead.png from the raw files in --out "
        "(losses_raw.csv, losses_paired.csv, losses_run.json) without measuring",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        if args.suite != "losses":
            parser.error("--render-only applies to the losses suite only")
        importlib.import_module(SUITES["losses"]).render_only(args.out)
        return
    for name in SUITES if args.suite == "all" else [args.suite]:
        extra = {"sizes": args.sizes} if name == "losses" and args.sizes else {}
        importlib.import_module(SUITES[name]).run(out_dir=args.out, quick=args.quick, **extra)


if __name__ == "__main__":
    main()
