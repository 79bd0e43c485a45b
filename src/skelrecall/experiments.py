"""The reproduction plan: which runs make each paper table and figure (``experiments/tables.yaml``).

A *group* is one Hydra multirun: one experiment config (the paper's recipe for one dataset and
backbone) with a list of losses, seeds and folds, on the real dataset or its synthetic stand-in.
:func:`plan` turns the spec and a profile into groups; :func:`expected_runs` lists the runs a
group must produce, so that a report can show missing and failed runs instead of dropping them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skelrecall.train import CONFIG_DIR

SPEC_PATH = CONFIG_DIR.parent / "experiments" / "tables.yaml"


class SpecError(ValueError):
    """``tables.yaml`` names something that does not exist."""


@dataclass(frozen=True)
class Group:
    """One multirun: ``experiment`` x ``losses`` x ``w_values`` (None: each loss's own w) x seeds x folds."""

    name: str                      # e.g. "table2/drive" or "w_sweep"
    experiment: str
    paper_dataset: str
    dataset: str                   # the dataset config trained (stand-in or real)
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    w_values: tuple[float, ...] | None = None

    def overrides(self) -> list[str]:
        """Hydra overrides of this multirun (without profile and launcher)."""
        out = [f"experiment={self.experiment}", f"dataset={self.dataset}", "loss=" + ",".join(self.losses),
               "seed=" + ",".join(map(str, self.seeds)), "fold=" + ",".join(map(str, self.folds))]
        if self.w_values is not None:
            out.append("loss.w=" + ",".join(str(float(w)) for w in self.w_values))  # 1.0, not 1: names the run folder
        return out

    def runs(self) -> list[dict[str, Any]]:
        """Every (loss, w, seed, fold) this group produces."""
        return [{"experiment": self.experiment, "dataset": self.dataset, "loss": loss, "w": w, "seed": s, "fold": f}
                for loss in self.losses for w in (self.w_values or (loss_weight(loss),))
                for s in self.seeds for f in self.folds]


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def loss_weight(loss: str) -> float:
    """The w of ``configs/loss/<loss>.yaml``."""
    return float(_yaml(CONFIG_DIR / "loss" / f"{loss}.yaml")["w"])


def dataset_config(name: str) -> dict[str, Any]:
    return _yaml(CONFIG_DIR / "dataset" / f"{name}.yaml")


def experiment_dataset(experiment: str) -> str:
    """The dataset an experiment config selects (its ``override /dataset: <name>``)."""
    for entry in _yaml(CONFIG_DIR / "experiment" / f"{experiment}.yaml").get("defaults", []):
        if isinstance(entry, dict) and "override /dataset" in entry:
            return entry["override /dataset"]
    raise SpecError(f"configs/experiment/{experiment}.yaml selects no dataset (`override /dataset: ...`)")


def paper_rows(spec: dict[str, Any], table: str) -> list[dict[str, str]]:
    """The paper's rows of ``table`` (its CSV under experiments/)."""
    with (Path(spec.get("_dir", SPEC_PATH.parent)) / spec["tables"][table]["paper"]).open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_spec(path: str | Path = SPEC_PATH) -> dict[str, Any]:
    """Read and check ``tables.yaml``: every named experiment, loss, dataset and paper file exists."""
    path = Path(path)
    spec = _yaml(path)
    problems = []

    def need(kind: str, name: str, where: str) -> None:
        if not (CONFIG_DIR / kind / f"{name}.yaml").exists():
            available = ", ".join(sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml")))
            problems.append(f"{where}: no configs/{kind}/{name}.yaml (available: {available})")

    for key in ("profiles", "stand_ins", "tables"):
        if key not in spec:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    for name, stand_in in spec["stand_ins"].items():
        need("dataset", stand_in, f"stand_ins.{name}")
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


def trained_dataset(spec: dict[str, Any], profile: str, paper_dataset: str, experiment: str) -> str:
    """The dataset config a profile trains for ``paper_dataset``: the real one or its stand-in."""
    if profile_spec(spec, profile)["data"] == "synthetic":
        return spec["stand_ins"][paper_dataset]
    return experiment_dataset(experiment)


def _folds(spec: dict[str, Any], profile: str, dataset: str) -> tuple[int, ...]:
    """Validation folds: the profile's folds on cross-validated datasets, fold 0 otherwise."""
    if dataset_config(dataset)["evaluation"] == "cross_validation":
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
        dataset = trained_dataset(spec, profile, paper_dataset, experiment)
        groups.append(Group(name=f"{table}/{paper_dataset}", experiment=experiment, paper_dataset=paper_dataset,
                            dataset=dataset, losses=tuple(losses[paper_dataset]), seeds=tuple(prof["seeds"]),
                            folds=_folds(spec, profile, dataset)))
    return groups


def w_sweep_group(spec: dict[str, Any], profile: str) -> Group | None:
    sweep = spec.get("figures", {}).get("w_sweep")
    if not sweep:
        return None
    dataset = trained_dataset(spec, profile, sweep["dataset"], sweep["experiment"])
    return Group(name="w_sweep", experiment=sweep["experiment"], paper_dataset=sweep["dataset"], dataset=dataset,
                 losses=tuple(sweep["losses"]), seeds=tuple(sweep["seeds"][profile]),
                 folds=_folds(spec, profile, dataset)[:1], w_values=tuple(float(w) for w in sweep["w"]))


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
