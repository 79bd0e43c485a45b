"""The reproduction plan: which runs make each paper table and figure (``experiments/tables.yaml``).

A *group* is one Hydra multirun: one experiment config (the paper's recipe for one dataset and
backbone) with a list of losses, seeds and folds, on the real dataset or its synthetic stand-in (the
real dataset config's ``stand_in``). Every planned run is composed with Hydra's compose API from the
same overrides that ``skelrecall-train`` receives, so the plan knows each run's resolved config, run
folder and identity hash (``skelrecall.runs.config_hash``): :func:`run_state` tells finished runs
from stale ones (finished with another config) and runs still to do.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from skelrecall.configs import CONFIG_DIR, compose
from skelrecall.paths import SPEC_PATH
from skelrecall.runs import RunDir, config_diff, config_hash, dataset_fingerprint

RUN_KEYS = ("experiment", "dataset", "loss", "w", "seed", "fold")


class SpecError(ValueError):
    """``tables.yaml`` names something that does not exist."""


@lru_cache(maxsize=4096)
def _compose(overrides: tuple[str, ...]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose(overrides), resolve=True)


def compose_config(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The resolved ``train`` config for command-line ``overrides`` (Hydra's own ``hydra.*`` ones are
    left out: they choose launchers and folders, not the run)."""
    kept = tuple(o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/")))
    return _compose(kept)


def available(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


@dataclass(frozen=True)
class Group:
    """One multirun: ``experiment`` x ``losses`` x ``w_values`` (None: each loss's own w) x seeds x folds."""

    name: str  # e.g. "table2/drive" or "w_sweep"
    experiment: str
    paper_dataset: str
    dataset: str  # the dataset config trained (stand-in or real)
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    w_values: tuple[float, ...] | None = None

    def overrides(self) -> list[str]:
        """Hydra overrides of this multirun (without profile and launcher)."""
        out = [
            f"experiment={self.experiment}",
            f"dataset={self.dataset}",
            "loss=" + ",".join(self.losses),
            "seed=" + ",".join(map(str, self.seeds)),
            "fold=" + ",".join(map(str, self.folds)),
        ]
        if self.w_values is not None:
            out.append("loss.w=" + ",".join(str(float(w)) for w in self.w_values))  # 1.0, not 1: names the run folder
        return out

    def loss_weight(self, loss: str) -> float:
        """The w that ``loss`` gets in this group's experiment (its config's own)."""
        return float(
            compose_config((f"experiment={self.experiment}", f"dataset={self.dataset}", f"loss={loss}"))["loss"]["w"]
        )

    def runs(self) -> list[dict[str, Any]]:
        """Every (experiment, dataset, loss, w, seed, fold) this group produces."""
        return [
            {"experiment": self.experiment, "dataset": self.dataset, "loss": loss, "w": w, "seed": s, "fold": f}
            for loss in self.losses
            for w in (self.w_values or (self.loss_weight(loss),))
            for s in self.seeds
            for f in self.folds
        ]


def run_overrides(run: dict[str, Any]) -> list[str]:
    """The single-run overrides of ``run`` (one entry of ``Group.runs()``)."""
    return [
        f"experiment={run['experiment']}",
        f"dataset={run['dataset']}",
        f"loss={run['loss']}",
        f"loss.w={float(run['w'])}",
        f"seed={run['seed']}",
        f"fold={run['fold']}",
    ]


@lru_cache(maxsize=1024)
def _composed(experiment: str, dataset: str, loss: str, profile: str, extra: tuple[str, ...]):
    from skelrecall.configs import compose as compose_train

    kept = tuple(o for o in extra if not o.lstrip("+~").startswith(("hydra.", "hydra/")))
    return compose_train(
        [f"experiment={experiment}", f"dataset={dataset}", f"loss={loss}", f"profile={profile}", *kept]
    )


def planned_config(run: dict[str, Any], profile: str, extra: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved config ``skelrecall-train`` runs for ``run`` under ``profile`` and ``extra`` overrides
    (what ``skelrecall-train <run_overrides(run)> profile=<profile> <extra>`` resolves; composed once per
    experiment, dataset and loss, then seed, fold and w set, as the command line would)."""
    from omegaconf import OmegaConf

    cfg = _composed(run["experiment"], run["dataset"], run["loss"], profile, tuple(extra)).copy()
    overridden = {o.split("=", 1)[0] for o in extra}
    cfg.seed, cfg.fold = int(run["seed"]), int(run["fold"])
    if "loss.w" not in overridden:
        cfg.loss.w = float(run["w"])
    return OmegaConf.to_container(cfg, resolve=True)


def run_state(config: dict[str, Any]) -> tuple[str, list[tuple[str, Any, Any]]]:
    """(state, differences) of the planned run ``config``: ``finished`` (done with this config),
    ``stale`` (a finished or started run of another config is in its folder; differences listed),
    ``running`` or ``todo``."""
    run = RunDir(config["run_dir"])
    if run.is_locked():
        return "running", []
    if not run.has_progress():
        return "todo", []
    stored = run.config()
    if stored is None or run.stored_hash() != config_hash(config):
        return "stale", config_diff(stored or {}, config)
    data = dataset_fingerprint(Path(config["paths"]["nnunet_raw"]) / config["dataset"]["folder"] / "dataset.json")
    trained_on = run.stored_data_fingerprint()
    if data is not None and trained_on is not None and data != trained_on:
        return "stale", [("dataset.json (the data were made again with other settings)", trained_on, data)]
    return ("finished" if run.is_done() else "todo"), []


def paper_rows(spec: dict[str, Any], table: str) -> list[dict[str, str]]:
    """The paper's rows of ``table`` (its CSV under experiments/)."""
    with (Path(spec.get("_dir", SPEC_PATH.parent)) / spec["tables"][table]["paper"]).open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_spec(path: str | Path = SPEC_PATH) -> dict[str, Any]:
    """Read and check ``tables.yaml``: every named experiment, loss and paper file exists."""
    path = Path(path)
    spec = yaml.safe_load(path.read_text())
    problems = []

    def need(kind: str, name: str, where: str) -> None:
        if not (CONFIG_DIR / kind / f"{name}.yaml").exists():
            problems.append(f"{where}: no configs/{kind}/{name}.yaml (available: {', '.join(available(kind))})")

    for key in ("profiles", "tables"):
        if key not in spec:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    for table, tspec in spec["tables"].items():
        csv_path = path.parent / tspec["paper"]
        if not csv_path.exists():
            problems.append(f"tables.{table}.paper: {csv_path} does not exist")
            continue
        for dataset, experiment in tspec["experiments"].items():
            need("experiment", experiment, f"tables.{table}.experiments.{dataset}")
        with csv_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                need("loss", row["loss"], f"{csv_path.name} row {row['dataset']}/{row['loss']}")
                if row["dataset"] not in tspec["experiments"]:
                    problems.append(f"tables.{table}.experiments has no entry for paper dataset {row['dataset']!r}")
    sweep = spec.get("figures", {}).get("w_sweep")
    if sweep:
        need("experiment", sweep["experiment"], "figures.w_sweep.experiment")
        for loss in [*sweep["losses"], sweep["baseline"]]:
            need("loss", loss, "figures.w_sweep")
    if problems:
        raise SpecError(f"{path}:\n  " + "\n  ".join(dict.fromkeys(problems)))
    spec["_dir"] = str(path.parent)  # paper CSVs are relative to the spec
    return spec


def profile_spec(spec: dict[str, Any], profile: str) -> dict[str, Any]:
    if profile not in spec["profiles"]:
        raise SpecError(f"unknown profile {profile!r}; tables.yaml defines: {', '.join(spec['profiles'])}")
    return spec["profiles"][profile]


def synthetic(spec: dict[str, Any], profile: str) -> bool:
    return profile_spec(spec, profile)["data"] == "synthetic"


def trained_dataset(spec: dict[str, Any], profile: str, experiment: str) -> str:
    """The dataset config a profile trains for ``experiment``: its real dataset, or that one's ``stand_in``."""
    dataset = compose_config((f"experiment={experiment}",))["dataset"]
    if not synthetic(spec, profile):
        return dataset["name"]
    if not dataset.get("stand_in"):
        raise SpecError(f"configs/dataset/{dataset['name']}.yaml has no stand_in (needed by profile {profile!r})")
    return dataset["stand_in"]


def dataset_config(experiment: str, dataset: str) -> dict[str, Any]:
    """The resolved ``dataset`` config as ``experiment`` trains it."""
    return compose_config((f"experiment={experiment}", f"dataset={dataset}"))["dataset"]


def _folds(spec: dict[str, Any], profile: str, experiment: str, dataset: str) -> tuple[int, ...]:
    """Validation folds: the profile's folds on cross-validated datasets, fold 0 otherwise."""
    if dataset_config(experiment, dataset)["evaluation"] == "cross_validation":
        return tuple(profile_spec(spec, profile)["folds"])
    return (0,)


def table_groups(spec: dict[str, Any], profile: str, table: str) -> list[Group]:
    """One group per dataset of ``table``, with the losses of its paper rows."""
    prof = profile_spec(spec, profile)
    losses: dict[str, list[str]] = {}
    for row in paper_rows(spec, table):
        losses.setdefault(row["dataset"], []).append(row["loss"])
    groups = []
    for paper_dataset, experiment in spec["tables"][table]["experiments"].items():
        dataset = trained_dataset(spec, profile, experiment)
        groups.append(
            Group(
                name=f"{table}/{paper_dataset}",
                experiment=experiment,
                paper_dataset=paper_dataset,
                dataset=dataset,
                losses=tuple(losses[paper_dataset]),
                seeds=tuple(prof["seeds"]),
                folds=_folds(spec, profile, experiment, dataset),
            )
        )
    return groups


def w_sweep_group(spec: dict[str, Any], profile: str) -> Group | None:
    sweep = spec.get("figures", {}).get("w_sweep")
    if not sweep or profile not in sweep["seeds"]:
        return None
    dataset = trained_dataset(spec, profile, sweep["experiment"])
    return Group(
        name="w_sweep",
        experiment=sweep["experiment"],
        paper_dataset=sweep["dataset"],
        dataset=dataset,
        losses=tuple(sweep["losses"]),
        seeds=tuple(sweep["seeds"][profile]),
        folds=_folds(spec, profile, sweep["experiment"], dataset)[:1],
        w_values=tuple(float(w) for w in sweep["w"]),
    )


def unavailable(spec: dict[str, Any], profile: str, group: Group, data_root: str | Path) -> str | None:
    """Why ``group`` cannot run under ``profile`` here (shown in its table rows), or None: its paper dataset
    is not among the profile's ``datasets``, or the real dataset is not converted below ``data_root``."""
    datasets = profile_spec(spec, profile).get("datasets")
    if datasets is not None and group.paper_dataset not in datasets:
        return f"not in profile {profile}"
    if not synthetic(spec, profile):
        cfg = dataset_config(group.experiment, group.dataset)
        if not (Path(data_root) / cfg["folder"] / "dataset.json").exists():
            return f"not available here (not converted: {cfg['create']})"
    return None


def plan(spec: dict[str, Any], profile: str, only: list[str] | None = None) -> list[Group]:
    """All groups of ``profile`` (tables first, then the w sweep); ``only`` keeps tables/figures by name."""
    groups = [g for table in spec["tables"] for g in table_groups(spec, profile, table)]
    sweep = w_sweep_group(spec, profile)
    if sweep:
        groups.append(sweep)
    if only:
        known = [*spec["tables"], *(["w_sweep"] if sweep else [])]
        unknown = [o for o in only if o not in known]
        if unknown:
            raise SpecError(f"unknown table or figure {unknown}; available: {', '.join(known)}")
        groups = [g for g in groups if g.name.split("/")[0] in only]
    return groups
