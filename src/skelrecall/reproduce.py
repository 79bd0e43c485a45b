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
import shlex
import subprocess
import sys
import time
from pathlib import Path

from skelrecall.experiments import (
    Group,
    SpecError,
    dataset_config,
    load_spec,
    plan,
    planned_config,
    profile_spec,
    run_state,
    unavailable,
)
from skelrecall.paths import REPO_DIR, SPEC_PATH, work_root
from skelrecall.runs import RunDir


def _key(run: dict) -> tuple:
    return tuple(float(run[k]) if k == "w" else run[k] for k in ("experiment", "dataset", "loss", "w", "seed", "fold"))


def states(groups: list[Group], profile: str, extra: list[str]) -> dict[tuple, tuple[str, dict, list]]:
    """run key -> (state, planned config, differences) for every planned run (see ``run_state``)."""
    out = {}
    for group in groups:
        for run in group.runs():
            config = planned_config(run, profile, extra)
            state, diff = run_state(config)
            out[_key(run)] = (state, config, diff)
    return out


def command(group: Group, profile: str, launcher: str | None, extra: list[str]) -> list[str]:
    """The ``skelrecall-train --multirun`` command line of ``group``."""
    cmd = [sys.executable, "-m", "skelrecall.train", "--multirun", f"profile={profile}", *group.overrides()]
    if launcher and launcher != "basic":
        cmd.append(f"hydra/launcher={launcher}")
    return cmd + extra


def missing_datasets(groups: list[Group], data_root: Path) -> dict[str, dict]:
    """Dataset configs (name -> resolved config) of ``groups`` whose converted folder does not exist."""
    missing = {}
    for g in groups:
        cfg = dataset_config(g.experiment, g.dataset)
        if not (data_root / cfg["folder"] / "dataset.json").exists():
            missing[g.dataset] = cfg
    return missing


def runnable_groups(
    spec: dict, profile: str, groups: list[Group], data_root: Path, dry_run: bool = False
) -> list[Group]:
    """The groups that can run here; the others (``experiments.unavailable``: not in the profile, or a
    real dataset not converted) are printed with the reason, which the report shows in their rows. A dry
    run keeps groups whose data are only missing here (it may plan jobs for a cluster's data)."""
    notes = {g.name: unavailable(spec, profile, g, data_root) for g in groups}
    kept = [g for g in groups if not notes[g.name] or (dry_run and not notes[g.name].startswith("not in profile"))]
    left = {name: note for name, note in notes.items() if note}
    if left:
        print(
            f"[reproduce] {'not runnable here' if dry_run else 'left out'} (their table rows say why):\n  "
            + "\n  ".join(f"{name}: {note}" for name, note in left.items()),
            flush=True,
        )
    return kept


def prepare_data(groups: list[Group], data_root: Path, prof: dict) -> None:
    """Synthesize missing stand-ins (of the profile's ``synthetic_cases`` size, if it sets one) and check
    the existing ones against their generator's parameters."""
    if prof["data"] != "synthetic":
        return
    missing = missing_datasets(groups, data_root)
    from skelrecall.data.synthetic import get_generator

    stand_ins = {g.dataset: dataset_config(g.experiment, g.dataset) for g in groups}
    for name, cfg in stand_ins.items():  # idempotent: an existing folder is kept if made with the same parameters
        if name in missing:
            print(f"[reproduce] synthesizing {name}", flush=True)
        try:
            get_generator(name)(data_root / cfg["folder"], seed=0, **prof.get("synthetic_cases", {}))
        except FileExistsError as exc:
            raise SystemExit(
                f"error: {exc}\nThe stand-in's generator changed since it was written; regenerate it "
                f"with: skelrecall-data synthesize {name} --out {data_root / cfg['folder']} --overwrite "
                "(runs trained on the old data are then stale)"
            ) from None


def default_data_root(profile: str, prof: dict) -> Path:
    """``data/nnUNet_raw`` below the work root; ``data/nnUNet_raw_<profile>`` for small synthetic stand-ins."""
    return work_root() / "data" / ("nnUNet_raw" + (f"_{profile}" if prof.get("synthetic_cases") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="skelrecall-reproduce",
        description=__doc__.split("\n\n")[0],
        epilog="Extra arguments are passed on to every skelrecall-train multirun "
        "(e.g. logger=csv, hydra.launcher.n_jobs=4).",
    )
    parser.add_argument(
        "--profile", default="cpu", help="smoke | cpu | cpu_real | paper (profiles in experiments/tables.yaml)"
    )
    parser.add_argument("--tables", type=Path, default=SPEC_PATH, help="the plan (default: experiments/tables.yaml)")
    parser.add_argument("--only", help="comma-separated tables/figures to run, e.g. table2,w_sweep (default: all)")
    parser.add_argument(
        "--launcher",
        help="Hydra launcher (configs/hydra/launcher: parallel, local, slurm; "
        "basic = one after the other); default: the profile's",
    )
    parser.add_argument("--runs", type=Path, help="runs root (default: paths.runs = $SKELRECALL_ROOT/runs or ./runs)")
    parser.add_argument(
        "--data",
        type=Path,
        help="nnU-Net raw folder (default: data/nnUNet_raw below the root; "
        "data/nnUNet_raw_<profile> for profiles with small stand-ins)",
    )
    parser.add_argument("--out", type=Path, help="report folder (default: reports)")
    parser.add_argument("--no-report", action="store_true", help="only train")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the number of runs, run nothing")
    parser.add_argument(
        "--retrain-stale",
        action="store_true",
        help="delete planned runs that were made with another config and train them again",
    )
    args, extra = parser.parse_known_args(argv)

    try:
        spec = load_spec(args.tables)
        prof = profile_spec(spec, args.profile)
        groups = plan(spec, args.profile, args.only.split(",") if args.only else None)
    except SpecError as exc:
        raise SystemExit(f"error: {exc}") from None
    root = work_root()
    runs_root = args.runs or root / "runs"
    data_root = args.data or default_data_root(args.profile, prof)
    launcher = args.launcher or prof.get("launcher")
    extra = [f"paths.runs={runs_root}", f"paths.nnunet_raw={data_root}", *extra]

    groups = runnable_groups(spec, args.profile, groups, data_root, dry_run=args.dry_run)
    planned = states(groups, args.profile, extra)
    count = {s: sum(1 for st, _, _ in planned.values() if st == s) for s in ("finished", "stale", "running", "todo")}
    print(
        f"[reproduce] profile {args.profile} ({prof['data']} data): {len(groups)} multiruns, {len(planned)} runs: "
        f"{count['finished']} finished, {count['todo']} to do, {count['stale']} stale, {count['running']} running; "
        f"launcher {launcher or 'basic'}",
        flush=True,
    )
    stale = {k: v for k, v in planned.items() if v[0] == "stale"}
    if stale:
        lines = []
        for _, config, diff in list(stale.values())[:10]:
            keys = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diff[:4]) + (" ..." if len(diff) > 4 else "")
            lines.append(f"  {config['run_dir']}: {keys}")
        msg = (
            f"{len(stale)} planned runs were made with another config (the folder's results would not match "
            "the plan):\n" + "\n".join(lines) + ("\n  ..." if len(stale) > 10 else "")
        )
        if not args.retrain_stale:
            print(
                f"error: {msg}\nRerun with --retrain-stale to delete those runs and train them again.", file=sys.stderr
            )
            return 2
        print(f"[reproduce] {msg}\n[reproduce] --retrain-stale: deleting them", flush=True)
        for _, config, _ in stale.values():
            RunDir(config["run_dir"]).clear()
    if args.dry_run:
        resources = launcher_resources(launcher, args.profile, extra)
        for g in groups:
            todo = sum(1 for r in g.runs() if planned[_key(r)][0] != "finished")
            print(
                f"  {g.name}: {len(g.runs())} runs ({todo} to run), one job each"
                + (f"; per job: {resources}" if resources else "")
                + f"\n    {shlex.join(command(g, args.profile, launcher, extra))}"
            )
        return 0

    prepare_data(groups, data_root, prof)
    started, failed_groups = time.time(), []
    for i, group in enumerate(groups, 1):
        todo = [r for r in group.runs() if planned[_key(r)][0] != "finished"]
        print(
            f"[reproduce] ({i}/{len(groups)}) {group.name}: {len(group.runs()) - len(todo)} of {len(group.runs())} "
            f"runs finished{'' if todo else ', skipping'}",
            flush=True,
        )
        if not todo:
            continue
        code = subprocess.call(command(group, args.profile, launcher, extra), cwd=REPO_DIR)
        if code != 0:
            failed_groups.append(group.name)
        for run in group.runs():
            key = _key(run)
            planned[key] = (run_state(planned[key][1])[0], *planned[key][1:])
        finished = sum(1 for st, _, _ in planned.values() if st == "finished")
        print(
            f"[reproduce] {finished}/{len(planned)} runs finished; {(time.time() - started) / 60:.1f} min elapsed"
            + (f"; {group.name} had failures (exit {code})" if code else ""),
            flush=True,
        )

    status = 0
    if failed_groups:
        print(
            f"[reproduce] runs failed in: {', '.join(failed_groups)} (see the `failed` files in their run "
            "folders); the report marks them as missing",
            file=sys.stderr,
            flush=True,
        )
        status = 1
    if not args.no_report:
        from skelrecall.report import main as report_main

        wandb = not any(a.startswith("logger=") and a != "logger=wandb" for a in extra)  # as the runs
        report_main(
            [
                "--profile",
                args.profile,
                "--runs",
                str(runs_root),
                "--tables",
                str(args.tables),
                *(["--wandb"] if wandb else []),
                *(["--out", str(args.out)] if args.out else []),
                *(["--only", args.only] if args.only else []),
                *extra_report_args(extra),
            ]
        )
    return status


def launcher_resources(launcher: str | None, profile: str, extra: list[str]) -> str:
    """What a cluster launcher requests per job (nodes, tasks, GPUs, CPUs, memory, time, partition), as
    composed from ``configs/hydra/launcher/<launcher>.yaml`` and the overrides; empty for local launchers."""
    if launcher in (None, "basic", "parallel"):
        return ""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from skelrecall.configs import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            overrides=[
                f"hydra/launcher={launcher}",
                f"profile={profile}",
                *[o for o in extra if o.startswith("hydra.launcher.")],
            ],
            return_hydra_config=True,
        )
    keys = (
        "nodes",
        "tasks_per_node",
        "gpus_per_node",
        "cpus_per_task",
        "mem_gb",
        "timeout_min",
        "partition",
        "account",
        "qos",
        "array_parallelism",
    )
    found = {k: cfg.hydra.launcher.get(k) for k in keys if cfg.hydra.launcher.get(k) is not None}
    return ", ".join(f"{k}={v}" for k, v in found.items())


def extra_report_args(extra: list[str]) -> list[str]:
    """The config overrides the report must compose the plan with (those that reach the runs' configs)."""
    return [f"--override={o}" for o in extra if not o.startswith(("paths.runs=", "hydra"))]


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
