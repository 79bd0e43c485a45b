"""Figures of the paper, drawn from our own label maps, run folders and benchmark tables.

=============================  ==========================================================================
function                       mirrors
=============================  ==========================================================================
:func:`skeleton_comparison`    Fig. 3: label | tubed skeleton (ours) | clDice soft skeleton | overlay
:func:`qualitative_panels`     Fig. 5: image | ground truth | prediction of each loss, missed skeleton red
:func:`w_sweep`                Fig. 8 (appendix): metrics against the loss weight ``w``, per loss
:func:`overhead_vs_classes`    Fig. 7: step time / peak memory relative to ``dice_ce`` against classes C
=============================  ==========================================================================

Every function draws with matplotlib's object-oriented API (no pyplot state, no backend switch, so it
also works inside notebooks), writes one PNG atomically (:func:`skelrecall.io.atomic_write`) and
returns its path. Plots have axis labels with units on every panel and one legend for the figure;
image tiles state their size in pixels. Label maps are drawn in class colours
(:mod:`skelrecall.colours`: background black, a binary structure white, multi-class maps one fixed
qualitative colour per class, missed skeleton red), with a legend naming the classes shown. 3D label
maps are shown as maximum projections along ``z`` (axis 0, nnU-Net order); skeletons and missed
pixels are computed in 3D first and projected afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skelrecall.colours import MISSED_RGB, OTHER_RGB, class_colours, label_rgb, prediction_rgb
from skelrecall.io import atomic_write, read_image
from skelrecall.paths import REPO_DIR, work_root
from skelrecall.skeleton import tubed_skeleton

DPI = 100
TILE_INCHES = 2.6
MAX_NAMED_CLASSES = 20  # more classes present: colours without a legend entry per class
SWEEP_METRICS = {  # collect_runs column -> (panel title, y-axis label with unit)
    "dice": ("Dice", "Dice (%)"),
    "cldice": ("clDice", "clDice (%)"),
    "betti0_error": (r"$\beta_0$ error (components)", r"$|\Delta\beta_0|$ (count per case)"),
    "betti1_error": (r"$\beta_1$ error (holes / loops)", r"$|\Delta\beta_1|$ (count per case)"),
}


class FigureError(RuntimeError):
    """The inputs of a figure are missing or inconsistent; the message names the file/field/value."""


# --------------------------------------------------------------------------------------------- helpers
def _new_figure(
    ncols: int,
    nrows: int,
    tile: tuple[float, float] = (TILE_INCHES, TILE_INCHES),
    extra: float = 0.0,
    layout: str = "constrained",
):
    """Figure of ``nrows x ncols`` axes; ``extra`` inches of height for a legend; ``layout``
    ``"compressed"`` for grids of images (fixed aspect), ``"constrained"`` for plots."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(tile[0] * ncols, tile[1] * nrows + extra), dpi=DPI, layout=layout)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, out: str | Path, dpi: int = DPI, note: str | None = None) -> Path:
    """Write ``fig`` as PNG; ``note`` goes into the PNG's ``Description`` text chunk."""
    meta = {"Software": "skelrecall.figures"} | ({"Description": note} if note else {})
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=meta))


def _shared_legend(fig, axes, *, ncol: int | None = None, **kwargs) -> None:
    """One legend below the axes with every labelled artist of ``axes`` (first occurrence of a label)."""
    entries: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            entries.values(),
            entries.keys(),
            loc="outside lower center",
            ncol=ncol or min(len(entries), 4),
            fontsize=8,
            **kwargs,
        )


def _patch_legend(fig, entries: dict[str, tuple], ncol: int) -> None:
    """A legend of colour swatches (label -> RGB) below the axes."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="0.5", label=label) for label, c in entries.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def note_figure(out: Path, title: str, note: str) -> Path:
    """A PNG holding only ``title`` and ``note`` as text (for a figure that would show nothing); the
    note is also stored in the PNG's ``Description`` text chunk."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 2.0), dpi=DPI)
    fig.text(0.5, 0.8, title, ha="center", va="center", fontsize=10, weight="bold", wrap=True)
    fig.text(0.5, 0.4, note, ha="center", va="center", fontsize=9, wrap=True)
    return _save(fig, out, note=f"{title}: {note}")


def _project(array: np.ndarray) -> np.ndarray:
    """2D arrays unchanged; 3D arrays ``(z, y, x)``: maximum projection along ``z``."""
    return array.max(axis=0) if array.ndim == 3 else array


def _grey(image: np.ndarray) -> np.ndarray:
    """Scale an image to [0, 1] between its 1st and 99th percentile (per array, RGB kept RGB)."""
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, [1, 99])
    return np.clip((image - lo) / max(hi - lo, 1e-8), 0.0, 1.0)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------------------- Fig. 3
@dataclass(frozen=True)
class SkeletonViews:
    """What :func:`skeleton_comparison` draws, before any projection.

    ``foreground = label > 0``; ``tubed = tubed_skeleton(label) > 0``; ``soft`` = clDice's
    ``soft_skeleton`` of ``foreground`` as float (values in [0, 1]; binary input gives 0/1 output).
    Counts are pixels (2D) or voxels (3D) of the full array; ``n_soft`` counts ``soft > 0.5``.
    """

    foreground: np.ndarray
    tubed: np.ndarray
    soft: np.ndarray

    @property
    def n_foreground(self) -> int:
        return int(self.foreground.sum())

    @property
    def n_tubed(self) -> int:
        return int(self.tubed.sum())

    @property
    def n_soft(self) -> int:
        return int((self.soft > 0.5).sum())

    @property
    def n_both(self) -> int:
        return int((self.tubed & (self.soft > 0.5)).sum())


def skeleton_views(label: np.ndarray, *, iterations: int = 10) -> SkeletonViews:
    """Tubed skeleton and clDice soft skeleton of one 2D/3D label map (see :class:`SkeletonViews`)."""
    import torch

    from skelrecall.losses.cldice import soft_skeleton

    label = np.asarray(label)
    try:
        tubed = tubed_skeleton(label) > 0  # checks the label: 2D/3D, integer
    except ValueError as exc:
        raise FigureError(str(exc)) from None
    foreground = label > 0
    with torch.no_grad():
        x = torch.from_numpy(foreground.astype(np.float32))[None, None]
        soft = soft_skeleton(x, iterations=iterations)[0, 0].numpy()
    return SkeletonViews(foreground=foreground, tubed=tubed, soft=soft)


OVERLAY = {  # overlay category -> (colour, legend text)
    "tubed": ((0.0, 0.8, 0.0), "tubed skeleton only"),
    "soft": ((1.0, 0.0, 1.0), "soft skeleton only"),
    "both": ((1.0, 1.0, 1.0), "both skeletons"),
    "rest": ((0.25, 0.25, 0.25), "rest of the label"),
}


def overlay_masks(v: SkeletonViews) -> dict[str, np.ndarray]:
    """Disjoint masks of :data:`OVERLAY`'s categories (projected like the figure)."""
    fg, tubed, soft = _project(v.foreground), _project(v.tubed), _project(v.soft) > 0.5
    return {"tubed": tubed & ~soft, "soft": soft & ~tubed, "both": tubed & soft, "rest": fg & ~tubed & ~soft}


def skeleton_comparison(label: np.ndarray, out: Path, *, iterations: int = 10) -> Path:
    """Fig. 3: ``label | tubed skeleton (ours) | clDice soft skeleton | overlay`` of one label map.

    Overlay colours (:data:`OVERLAY`): tubed skeleton only green, soft skeleton only magenta, both
    white, the rest of the label dark grey; the legend lists only the categories present, with their
    pixel counts (of the drawn, projected image). Titles state pixel (voxel) counts of the full array;
    3D inputs are max-projected along z.
    """
    v = skeleton_views(label, iterations=iterations)
    unit = "voxels" if v.foreground.ndim == 3 else "px"
    size = "x".join(str(n) for n in v.foreground.shape)
    fg, tubed, soft = _project(v.foreground), _project(v.tubed), _project(v.soft)
    masks = overlay_masks(v)
    overlay = np.zeros((*fg.shape, 3), np.float32)
    for name, mask in masks.items():
        overlay[mask] = OVERLAY[name][0]

    fig, axes = _new_figure(4, 1, extra=0.6, layout="compressed")
    tiles = [
        (fg, f"label ({size} {unit})\n{v.n_foreground} {unit} foreground"),
        (tubed, f"tubed skeleton (ours)\n{v.n_tubed} {unit}"),
        (soft, f"clDice soft skeleton ({iterations} it.)\n{v.n_soft} {unit} > 0.5"),
        (overlay, "overlay of the two skeletons" + ("" if masks["soft"].any() else "\n(no soft-only pixels)")),
    ]
    for ax, (img, title) in zip(axes[0], tiles):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        _off(ax)
    entries = {
        f"{text}: {int(masks[name].sum())} px": colour for name, (colour, text) in OVERLAY.items() if masks[name].any()
    }
    _patch_legend(fig, entries, ncol=len(entries))
    if v.foreground.ndim == 3:
        fig.suptitle("maximum projections along z; legend counts are of the projected overlay", fontsize=9)
    return _save(fig, out)


# ------------------------------------------------------------------------------------------- Fig. 5
@dataclass(frozen=True)
class RunInfo:
    """The parts of a finished run folder that the qualitative figure needs."""

    run_dir: Path
    loss: str
    dataset: str
    seed: int
    split: str
    dataset_root: Path
    ending: str


def _resolve_dataset_root(run_dir: Path, cfg: dict, nnunet_raw: str | Path | None) -> Path:
    """``<nnunet_raw>/<dataset.folder>``; a relative ``paths.nnunet_raw`` of the run's config is tried
    against the work root (``$SKELRECALL_ROOT`` or the working directory), then the checkout."""
    try:
        folder = cfg["dataset"]["folder"]
        raw = Path(nnunet_raw) if nnunet_raw is not None else Path(cfg["paths"]["nnunet_raw"])
    except (KeyError, TypeError) as exc:
        raise FigureError(
            f"{run_dir / 'config.yaml'}: missing field {exc} (need dataset.folder and paths.nnunet_raw)"
        ) from None
    candidates = [raw] if raw.is_absolute() else list(dict.fromkeys([work_root().resolve() / raw, REPO_DIR / raw]))
    for base in candidates:
        if (base / folder / "dataset.json").is_file():
            return base / folder
    tried = ", ".join(str(c / folder) for c in candidates)
    raise FigureError(
        f"{run_dir}: dataset folder not found (tried {tried}); pass nnunet_raw=... "
        f"or create it with `{cfg['dataset'].get('create', 'skelrecall-data')}`"
    )


def _run_info(run_dir: Path, nnunet_raw: str | Path | None) -> RunInfo:
    from skelrecall.data.layout import DatasetLayout
    from skelrecall.runs import RunDir

    run = RunDir(run_dir)
    run_dir = run.path
    if not run.is_done() or not (run / "predictions").is_dir():
        raise FigureError(f"{run_dir}: not a finished run folder (status {run.status()!r})")
    cfg = run.config()
    split = run.done_info().get("evaluated_split")
    if split not in ("Ts", "Tr"):
        raise FigureError(f"{run_dir / 'done'}: evaluated_split is {split!r}, expected 'Ts' or 'Tr'")
    root = _resolve_dataset_root(run_dir, cfg, nnunet_raw)
    layout = DatasetLayout.open(root)
    return RunInfo(
        run_dir=run_dir,
        loss=cfg["loss"]["name"],
        dataset=cfg["dataset"]["name"],
        seed=int(cfg.get("seed", 0)),
        split=split,
        dataset_root=root,
        ending=layout.file_ending,
    )


def case_cldice(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Per-case headline clDice (percent) of each run: index = case, one column per loss name."""
    from skelrecall.evaluate import headline_rows

    columns = {}
    for loss, run_dir in run_dirs.items():
        path = Path(run_dir) / "per_case.csv"
        if not path.is_file():
            raise FigureError(f"{path} not found")
        rows = headline_rows(pd.read_csv(path))
        if "cldice" not in rows or "case" not in rows:
            raise FigureError(f"{path}: needs columns 'case' and 'cldice'")
        columns[loss] = rows.groupby("case")["cldice"].mean() * 100.0
    return pd.DataFrame(columns)


def pick_cases(cldice: pd.DataFrame, n_cases: int) -> list[str]:
    """Cases where the losses differ most in clDice (``max - min`` over losses, largest first, ties by
    name); with a single loss, the cases with the lowest clDice. Cases lacking a value are skipped."""
    table = cldice.dropna()
    if table.empty:
        return []
    score = (table.max(axis=1) - table.min(axis=1)) if table.shape[1] > 1 else -table.iloc[:, 0]
    order = sorted(table.index, key=lambda c: (-score[c], c))
    return order[:n_cases]


def missed_skeleton(label: np.ndarray, prediction: np.ndarray, skeleton: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of ground-truth tubed-skeleton pixels that ``prediction`` labels background
    (``skeleton``: ``tubed_skeleton(label) > 0`` if already computed)."""
    if skeleton is None:
        skeleton = tubed_skeleton(np.asarray(label).astype(np.int32)) > 0
    return skeleton & (np.asarray(prediction) == 0)


def _class_names(labels: dict[str, int]) -> tuple[dict[int, str], int | None, int]:
    """(value -> class name, ignore value or None, number of classes incl. background) of dataset.json."""
    names = {int(v): k for k, v in labels.items() if k != "ignore"}
    return names, (int(labels["ignore"]) if "ignore" in labels else None), max(max(names) + 1, 2)


def _empty_tile(ax, shape: tuple[int, ...]) -> None:
    ax.imshow(np.zeros((*shape, 3), np.float32), interpolation="nearest")
    ax.text(
        0.5,
        0.5,
        "empty prediction\n(background only)",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.8",
        fontsize=8,
    )


def qualitative_panels(
    run_dirs: dict[str, Path],
    out: Path,
    *,
    cases: list[str] | None = None,
    n_cases: int = 2,
    nnunet_raw: str | Path | None = None,
) -> Path:
    """Fig. 5: one row per case, columns ``image | ground truth | prediction of each loss``.

    ``run_dirs`` maps a loss name to a finished run folder; all must be of the same dataset and
    evaluated split (the same seed/fold is the caller's choice). Images and labels are read from the
    dataset (``paths.nnunet_raw/dataset.folder`` of each run's ``config.yaml``, or ``nnunet_raw``),
    the split from ``done``. Labels and predictions are drawn in class colours
    (:mod:`skelrecall.colours`; the dataset's ignore label grey) with a legend naming the classes
    shown; in each prediction the ground-truth tubed-skeleton pixels it labels background are red,
    and the tile title gives its clDice and Skeleton Recall ``1 - missed / skeleton``. An empty
    prediction is a black tile saying so; when every prediction shown is empty, the figure is only a
    note saying that (:func:`note_figure`, also printed). Default ``cases``: the ``n_cases`` where the
    losses differ most in clDice (:func:`pick_cases`).
    """
    from skelrecall.data.layout import DatasetLayout

    if not run_dirs:
        raise FigureError("qualitative_panels needs at least one run folder (loss name -> run folder)")
    infos = {loss: _run_info(Path(d), nnunet_raw) for loss, d in run_dirs.items()}
    for what in ("dataset", "split"):
        values = {loss: getattr(i, what) for loss, i in infos.items()}
        if len(set(values.values())) > 1:
            raise FigureError(f"runs of different {what}s cannot share one figure: {values}")
    first = next(iter(infos.values()))
    layout = DatasetLayout.open(first.dataset_root)
    class_names, ignore, num_classes = _class_names(layout.labels)
    cl = case_cldice({loss: i.run_dir for loss, i in infos.items()})

    available = set(layout.cases(first.split))
    for i in infos.values():
        available &= {p.name[: -len(i.ending)] for p in (i.run_dir / "predictions").glob(f"*{i.ending}")}
    if cases is None:
        cases = [c for c in pick_cases(cl, len(cl)) if c in available][:n_cases]
        how = "cases where the losses differ most in clDice" if len(infos) > 1 else "cases with the lowest clDice"
        if not cases:
            raise FigureError(
                f"no case has a prediction in every run and a clDice value in per_case.csv: "
                f"{', '.join(str(i.run_dir) for i in infos.values())}"
            )
    else:
        how = "cases chosen by the caller"
        missing = [c for c in cases if c not in available]
        if missing:
            raise FigureError(
                f"cases {missing} lack a label in {layout.root}/labels{first.split} or a prediction in one of the runs"
            )
    if not cases:
        raise FigureError("no cases to show (cases=[])")

    losses = list(infos)
    rows = []  # per case: image, label, skeleton, {loss: prediction}
    for case in cases:
        label = read_image(layout.label_file(case, first.split))[0]
        preds = {}
        for loss, info in infos.items():
            pred = read_image(info.run_dir / "predictions" / f"{case}{info.ending}")[0]
            if pred.shape != label.shape:
                raise FigureError(
                    f"{info.run_dir}/predictions/{case}{info.ending}: shape {pred.shape} "
                    f"differs from the label's {label.shape}"
                )
            preds[loss] = pred
        known = label if ignore is None else np.where(label == ignore, 0, label)  # ignored: neither error nor structure
        skeleton = tubed_skeleton(known.astype(np.int32)) > 0
        rows.append((read_image(layout.image_files(case, first.split)[0])[0], label, skeleton, preds))
    volume = rows[0][1].ndim == 3  # a 2D RGB image is (H, W, 3) beside a 2D label: not projected
    projected = " (max projections along z)" if volume else ""
    title = f"{first.dataset}, split {first.split}: {how}{projected}"
    if not any(p.any() for *_, preds in rows for p in preds.values()):
        note = (
            f"No qualitative panel: every prediction of {', '.join(losses)} on {', '.join(cases)} is empty "
            "(background only): a panel would only show the whole skeleton as missed. The runs did not learn "
            "the structure (tables: 'did not train' or a Dice near 0)."
        )
        print(f"[figures] {Path(out).name}: {note}")
        return note_figure(out, title, note)

    fig, axes = _new_figure(2 + len(losses), len(cases), extra=0.6, layout="compressed")
    present: set[int] = set()
    for r, (image, label, skeleton, preds) in enumerate(rows):
        n_skel = int(skeleton.sum())
        shown_image = _grey(_project(image) if volume else image)
        size = "x".join(str(n) for n in label.shape)
        axes[r, 0].imshow(shown_image, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"{cases[r]}\nimage ({size} {'voxels' if volume else 'px'})", fontsize=8)
        axes[r, 1].imshow(label_rgb(_project(label), num_classes), interpolation="nearest")
        axes[r, 1].set_title("ground truth", fontsize=8)
        present |= set(np.unique(label).tolist())
        for c, loss in enumerate(losses, start=2):
            pred = preds[loss]
            missed = missed_skeleton(label, pred, skeleton)
            recall = 100.0 * (1.0 - missed.sum() / n_skel) if n_skel else math.nan
            value = cl.at[cases[r], loss] if cases[r] in cl.index else math.nan
            if pred.any():
                axes[r, c].imshow(
                    prediction_rgb(_project(pred), _project(missed), num_classes), interpolation="nearest"
                )
                present |= set(np.unique(pred).tolist())
            else:
                _empty_tile(axes[r, c], _project(label).shape)
            axes[r, c].set_title(f"{loss}\nclDice {value:.1f}%, skel. recall {recall:.1f}%", fontsize=8)
        for ax in axes[r]:
            _off(ax)
    fig.suptitle(title, fontsize=9)
    entries = _class_entries(class_names, ignore, num_classes, present)
    _patch_legend(fig, entries, ncol=min(len(entries), max(2 + len(losses), 4) + 1))
    return _save(fig, out)


def _class_entries(
    class_names: dict[int, str], ignore: int | None, num_classes: int, present: set[int]
) -> dict[str, tuple]:
    """Legend swatches: each class present (by name, up to :data:`MAX_NAMED_CLASSES`), the ignore label
    if present, and the missed skeleton."""
    colours = class_colours(num_classes)
    shown = sorted(v for v in present if 0 < v < num_classes)
    entries: dict[str, tuple] = {}
    if len(shown) <= MAX_NAMED_CLASSES:
        for v in shown:
            name = class_names.get(v, "class")
            entries[f"{v}: {name}" if num_classes > 2 else name] = tuple(colours[v])
    else:
        entries[f"{len(shown)} classes (colours: skelrecall.colours)"] = tuple(colours[shown[0]])
    if ignore is not None and ignore in present:
        entries["ignored (not evaluated)"] = OTHER_RGB
    entries["missed tubed skeleton (red)"] = MISSED_RGB
    return entries


# ------------------------------------------------------------------------------------------- Fig. 8
def w_sweep(runs: pd.DataFrame, out: Path, *, baseline: str = "dice_ce") -> Path:
    """Appendix Fig. 8: each metric against the loss weight ``w`` (log axis) for finished runs.

    ``runs`` is :func:`skelrecall.report.collect_runs`'s frame. One row of subplots per
    (dataset, backbone), one column per metric; each connectivity loss is a line of the mean over its
    runs (seeds x folds) at each ``w > 0`` with +- sample standard deviation error bars, in the same
    colour in every panel; the ``baseline`` loss is a dashed horizontal line with a +- std band. One
    legend below the panels; every panel has its axis labels with units.
    """
    if runs is None or runs.empty or "status" not in runs:
        raise FigureError("w_sweep: no runs (empty table); train a w sweep first, e.g. configs/sweep")
    done = runs[runs["status"] == "done"]
    if done.empty:
        raise FigureError(f"w_sweep: none of the {len(runs)} runs is finished (status 'done')")
    if done["profile"].nunique() > 1:
        raise FigureError(f"w_sweep: runs mix profiles {sorted(done['profile'].unique())}; pass one profile's runs")
    sweep = done[(done["loss"] != baseline) & (done["w"] > 0)]
    n_w = sweep.groupby("loss")["w"].nunique()
    if n_w.empty or n_w.max() < 2:
        raise FigureError(
            f"w_sweep: needs at least 2 values of w for some loss other than {baseline!r}; "
            f"found {n_w.to_dict() or 'no such runs'}"
        )
    groups = sorted(done.groupby(["dataset", "backbone"]).groups)
    metrics = [m for m in SWEEP_METRICS if m in done]
    colours = {loss: f"C{i}" for i, loss in enumerate(sorted(sweep["loss"].unique()))}
    fig, axes = _new_figure(len(metrics), len(groups), tile=(3.4, 2.8), extra=0.5)
    for r, (dataset, backbone) in enumerate(groups):
        sub = done[(done["dataset"] == dataset) & (done["backbone"] == backbone)]
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            base = sub.loc[sub["loss"] == baseline, metric].dropna()
            if len(base):
                mean, std = base.mean(), (base.std(ddof=1) if len(base) > 1 else 0.0)
                ax.axhline(mean, color="black", lw=1, ls="--", label=f"{baseline} (w = 0): mean")
                ax.axhspan(
                    mean - std, mean + std, color="black", alpha=0.12, lw=0, label=f"{baseline}: +- std over runs"
                )
            for loss, g in sub[(sub["loss"] != baseline) & (sub["w"] > 0)].groupby("loss"):
                stats = g.groupby("w")[metric].agg(["mean", "std", "count"]).sort_index()
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"].fillna(0.0),
                    marker="o",
                    capsize=3,
                    color=colours[loss],
                    label=f"{loss}: mean +- std over runs",
                )
            ax.set_xscale("log")
            ax.set_xlabel("loss weight w (log scale)", fontsize=8)
            ax.set_ylabel(SWEEP_METRICS[metric][1], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{dataset} / {backbone}: {SWEEP_METRICS[metric][0]}", fontsize=8)
    fig.suptitle(
        f"Metrics against the loss weight w ({done['profile'].iloc[0]} profile; runs = seeds x folds)", fontsize=9
    )
    _shared_legend(fig, axes, ncol=min(len(colours) + 2, 4))
    return _save(fig, out)


# ------------------------------------------------------------------------------------------- Fig. 7
OVERHEAD_COLUMNS = ("dims", "spatial", "classes", "loss", "cpu_ratio", "alloc_ratio")
OVERHEAD_DPI = 110


def _check_overhead_table(table: pd.DataFrame, source: str) -> None:
    missing = [c for c in OVERHEAD_COLUMNS if c not in table]
    if missing or table.empty:
        raise FigureError(f"{source}: " + (f"missing columns {missing}" if missing else "no rows"))


def overhead_figure(table: pd.DataFrame, out: Path, *, losses: list[str] | None = None) -> Path:
    """Fig. 7 from a loss-benchmark summary (the frame of ``reports/bench/losses.csv``): per
    dimensionality a column with step time (CPU) and peak allocated memory relative to ``dice_ce``
    against the number of classes C, one line per loss (``losses``: which and in which order;
    default: as they first appear in ``table``), each loss in one colour in every panel, one legend
    below the panels."""
    _check_overhead_table(table, "overhead figure")
    from matplotlib.figure import Figure

    dims_list = sorted(table["dims"].unique())
    order = [name for name in (losses or list(dict.fromkeys(table["loss"])))]
    colours = {name: f"C{i}" for i, name in enumerate(order)}
    fig = Figure(figsize=(5 * len(dims_list), 7.5), layout="constrained")
    axes = fig.subplots(2, len(dims_list), squeeze=False)
    for j, dims in enumerate(dims_list):
        sub = table[table["dims"] == dims]
        for name in order:
            g = sub[sub["loss"] == name].sort_values("classes")
            if g.empty:
                continue
            axes[0, j].plot(g["classes"], g["cpu_ratio"], marker="o", color=colours[name], label=name)
            axes[1, j].plot(g["classes"], g["alloc_ratio"], marker="o", color=colours[name], label=name)
        size = sub["spatial"].iloc[0]
        axes[0, j].set_title(f"{dims}D, {size}: training-step time (CPU)")
        axes[1, j].set_title(f"{dims}D, {size}: peak allocated memory")
        axes[0, j].set_ylabel("step time / dice_ce's (ratio, x)")
        axes[1, j].set_ylabel("peak memory / dice_ce's (ratio, x)")
        for ax in axes[:, j]:
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xlabel("number of classes C (incl. background)")
            ax.set_xticks(sorted(sub["classes"].unique()))
    _shared_legend(fig, axes, ncol=min(len(order), 5))
    return _save(fig, out, dpi=OVERHEAD_DPI)


def overhead_vs_classes(losses_csv: Path, out: Path) -> Path:
    """Fig. 7 (:func:`overhead_figure`) from ``reports/bench/losses.csv``."""
    losses_csv = Path(losses_csv)
    if not losses_csv.is_file():
        raise FigureError(f"{losses_csv} not found; run the loss benchmark first (skelrecall-bench losses)")
    table = pd.read_csv(losses_csv)
    _check_overhead_table(table, str(losses_csv))
    return overhead_figure(table, out)
