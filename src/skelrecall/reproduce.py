"""``skelrecall-reproduce``: every run behind the paper's tables and figures, then the report.

For a profile of ``experiments/tables.yaml``: make the synthetic stand-in datasets that are missing
(profiles with ``data: synthetic``; real datasets must be converted first, see data/README.md),
launch one Hydra multirun per group (``skelrecall-train -m experiment=... loss=a,b seed=0,1,2 ...``)
through the profile's launcher, then write the tables and figures (``skelrecall-report --profile``).
Finished runs (``done`` marker) are skipped, so the command can be stopped and run again. A run that
fails is recorded in its folder (``failed``), does not stop the others, and shows as missing in the
report; the command then exits with status 1 after the report is written.

    skelrecall-reproduce --profile cpu
    skelrecall-reproduce --profile paper --launcher slurm hydra.launcher.partition=gpu
    skelrecall-reproduce --profile smoke --only table3 --dry-run
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from skelrecall.experiments import (CONFIG_DIR, SPEC_PATH, Group, SpecError, dataset_config, load_spec, plan,
                                    profile_spec)

RUN_KEYS = ["experiment", "dataset", "loss", "w", "seed", "fold"]


def finished(runs_dir: Path) -> set[tuple]:
    """(experiment, dataset, loss, w, seed, fold) of every finished run below ``runs_dir``."""
    from skelrecall.report import collect_runs

    runs = collect_runs(runs_dir) if runs_dir.exists() else None
    if runs is None or runs.empty:
        return set()
    done = runs[runs["status"] == "done"]
    return {tuple(r) for r in done[RUN_KEYS].itertuples(index=False)}


def _key(run: dict) -> tuple:
    return tuple(float(run[k]) if k == "w" else run[k] for k in RUN_KEYS)


def command(group: Group, profile: str, launcher: str | None, extra: list[str]) -> list[str]:
    """The ``skelrecall-train --multirun`` command line of ``group``."""
    cmd = [sys.executable, "-m", "skelrecall.train", "--multirun", f"profile={profile}", *group.overrides()]
    if launcher and launcher != "basic":
        cmd.append(f"hydra/launcher={launcher}")
    return cmd + extra


def missing_datasets(groups: list[Group], data_root: Path) -> list[str]:
    """Dataset configs of ``groups`` whose converted folder does not exist."""
    return [name for name in dict.fromkeys(g.dataset for g in groups)
            if not (data_root / dataset_config(name)["folder"] / "dataset.json").exists()]


def prepare_data(groups: list[Group], data_root: Path, synthetic: bool) -> None:
    """Synthesize missing stand-ins; for real data, stop with the commands that convert them."""
    missing = missing_datasets(groups, data_root)
    if missing and not synthetic:
        raise SystemExit("error: these datasets are not converted yet (see data/README.md):\n  "
                         + "\n  ".join(dataset_config(n)["create"] for n in missing))
    from skelrecall.data.synthetic import get_generator

    for name in missing:
        print(f"[reproduce] synthesizing {name}", flush=True)
        get_generator(name)(data_root / dataset_config(name)["folder"], seed=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skelrecall-reproduce", description=__doc__.split("\n\n")[0],
                                     epilog="Extra arguments are passed on to every skelrecall-train multirun "
                                            "(e.g. logger=csv, hydra.launcher.n_jobs=4).")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | paper (profiles in experiments/tables.yaml)")
    parser.add_argument("--tables", type=Path, default=SPEC_PATH, help="the plan (default: experiments/tables.yaml)")
    parser.add_argument("--only", help="comma-separated tables/figures to run, e.g. table2,w_sweep (default: all)")
    parser.add_argument("--launcher", help="Hydra launcher (configs/hydra/launcher: parallel, local, slurm; "
                                           "basic = one after the other); default: the profile's")
    parser.add_argument("--runs", type=Path, help="runs root (default: paths.runs = $SKELRECALL_ROOT/runs or ./runs)")
    parser.add_argument("--data", type=Path, help="nnU-Net raw folder (default: data/nnUNet_raw below the root)")
    parser.add_argument("--out", type=Path, help="report folder (default: reports)")
    parser.add_argument("--no-report", action="store_true", help="only train")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the number of runs, run nothing")
    args, extra = parser.parse_known_args(argv)

    try:
        spec = load_spec(args.tables)
        prof = profile_spec(spec, args.profile)
        groups = plan(spec, args.profile, args.only.split(",") if args.only else None)
    except SpecError as exc:
        raise SystemExit(f"error: {exc}") from None
    root = Path(os.environ.get("SKELRECALL_ROOT", "."))
    runs_root = args.runs or root / "runs"
    data_root = args.data or root / "data" / "nnUNet_raw"
    launcher = args.launcher or prof.get("launcher")
    extra = [f"paths.runs={runs_root}", f"paths.nnunet_raw={data_root}", *extra]

    total = {_key(r) for g in groups for r in g.runs()}
    done = finished(runs_root / args.profile)  # rescanned after each multirun, not per run
    print(f"[reproduce] profile {args.profile} ({prof['data']} data): {len(groups)} multiruns, {len(total)} runs, "
          f"{len(done & total)} already finished; launcher {launcher or 'basic'}", flush=True)
    if args.dry_run:
        for g in groups:
            print(f"  {g.name}: {len(g.runs())} runs\n    {shlex.join(command(g, args.profile, launcher, extra))}")
        return 0

    prepare_data(groups, data_root, synthetic=prof["data"] == "synthetic")
    started, failed_groups = time.time(), []
    for i, group in enumerate(groups, 1):
        todo = [r for r in group.runs() if _key(r) not in done]
        print(f"[reproduce] ({i}/{len(groups)}) {group.name}: {len(group.runs()) - len(todo)} of {len(group.runs())} "
              f"runs finished{'' if todo else ', skipping'}", flush=True)
        if not todo:
            continue
        code = subprocess.call(command(group, args.profile, launcher, extra), cwd=CONFIG_DIR.parent)
        if code != 0:
            failed_groups.append(group.name)
        done = finished(runs_root / args.profile)
        elapsed = time.time() - started
        print(f"[reproduce] {len(done & total)}/{len(total)} runs finished; {elapsed / 60:.1f} min elapsed"
              + (f"; {group.name} had failures (exit {code})" if code else ""), flush=True)

    status = 0
    if failed_groups:
        print(f"[reproduce] runs failed in: {', '.join(failed_groups)} (see the `failed` files in their run "
              "folders); the report marks them as missing", file=sys.stderr, flush=True)
        status = 1
    if not args.no_report:
        from skelrecall.report import main as report_main

        wandb = not any(a.startswith("logger=") and a != "logger=wandb" for a in extra)  # as the runs
        report_main(["--profile", args.profile, "--runs", str(runs_root), "--tables", str(args.tables),
                     *(["--wandb"] if wandb else []), *(["--out", str(args.out)] if args.out else []),
                     *(["--only", args.only] if args.only else [])])
    return status


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
