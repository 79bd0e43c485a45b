"""Synthetic 3D stand-in for TopCoW: a Circle-of-Willis-like vessel tree with 13 labelled segments.

Labels follow TopCoW (after our 15 -> 13 remapping): 1 BA, 2 R-PCA, 3 L-PCA, 4 R-ICA, 5 R-MCA,
6 L-ICA, 7 L-MCA, 8 R-Pcom, 9 L-Pcom, 10 Acom, 11 R-ACA, 12 L-ACA, 13 3rd-A2. The tree: the
basilar artery rises and splits into both PCAs; both ICAs rise and split into MCA and ACA; the
ACAs are joined by the short, thin Acom; the thin Pcoms join each ICA to its PCA. The
communicating segments (Acom, Pcoms, radius about 0.8 voxels, i.e. one voxel wide) are the ones a
segmentation breaks most easily. Anatomical variants as in real data: a Pcom is missing with
probability ``p_no_pcom`` per side and a 3rd A2 is present with probability ``p_third_a2``.

MRA-like image: bright vessels on darker "brain" with a smooth bias field; thin vessels are
dimmer (partial volume) and each segment gets its own flow brightness; a few unlabelled
distractor vessels; blur and Rician noise; int16 values (vessels about 600-900, tissue about 200).
A fixed receive-coil gradient (``lateral``) makes the patient's right brighter than the left: the
template is left-right symmetric, and training mirrors patches along every axis (image and label
together), so without such a cue R- and L- segments could not be told apart.

Arrays are (z, y, x) = ``shape`` in memory (NIfTI files store (x, y, z)); isotropic ``spacing``
mm; deterministic in ``(seed, split, index)``; 20 + 10 cases in about a second. The default
24 x 48 x 48 at 1.2 mm is sized so that a CPU-scale patch (16 x 32 x 32) covers 30 % of a volume;
there the segments are drawn at ``radius_scale`` = 1.5-2x the template radii (ICA 3-4 voxels; with
the former 0.85-1.15x, 200-step trainings of the 13-class task predicted empty masks for two of
three seeds), while Acom and Pcoms keep ``thin_scale`` (one voxel wide), and the ACAs run far
enough apart that the Acom shows between them in every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from skelrecall.data.converters.topcow import MULTICLASS_LABELS
from skelrecall.data.synthetic.canal3d import render_tubes, smooth_noise, spline_curve
from skelrecall.data.synthetic.writer import make_style, write_synthetic

FOLDER = "Dataset903_SyntheticCoW"
BINARY_FOLDER = "Dataset904_SyntheticCoWBinary"
LABELS = MULTICLASS_LABELS  # TopCoW's 13 classes, names and values as the converter writes them

# Control points in normalised (z, y, x) coordinates; x < 0.5 is the patient's right.
_RIGHT_TEMPLATE = {
    "ICA": [(0.02, 0.60, 0.36), (0.25, 0.56, 0.34), (0.45, 0.57, 0.37), (0.58, 0.58, 0.38)],
    "MCA": [(0.58, 0.58, 0.38), (0.62, 0.60, 0.25), (0.66, 0.55, 0.14), (0.72, 0.52, 0.04)],
    "ACA": [(0.58, 0.58, 0.38), (0.61, 0.66, 0.41), (0.62, 0.71, 0.42), (0.70, 0.84, 0.43), (0.80, 0.97, 0.43)],
    "PCA": [(0.55, 0.36, 0.50), (0.56, 0.38, 0.42), (0.60, 0.30, 0.30), (0.64, 0.16, 0.22), (0.68, 0.03, 0.20)],
    "Pcom": [(0.52, 0.55, 0.37), (0.545, 0.46, 0.40), (0.56, 0.38, 0.42)],
}
_BA = [(0.02, 0.30, 0.50), (0.25, 0.33, 0.50), (0.45, 0.35, 0.50), (0.55, 0.36, 0.50)]
_ACOM = [(0.62, 0.71, 0.42), (0.62, 0.715, 0.50), (0.62, 0.71, 0.58)]
_THIRD_A2 = [(0.62, 0.715, 0.50), (0.70, 0.84, 0.50), (0.78, 0.95, 0.50)]
_RADIUS = {"BA": 1.8, "PCA": 1.3, "ICA": 2.0, "MCA": 1.5, "ACA": 1.2, "Pcom": 0.8, "Acom": 0.8, "3rd-A2": 0.9}


@dataclass(frozen=True)
class CowStyle:
    shape: tuple[int, int, int] = (24, 48, 48)  # (z, y, x)
    spacing: float = 1.2  # mm
    jitter: float = 1.0  # control point jitter (voxels, standard deviation); the whole tree shifts by 0.75 of it
    radius_scale: tuple[float, float] = (1.5, 2.0)  # x the template radii (ICA 2 ... ACA 1.2 voxels)
    thin_scale: tuple[float, float] = (0.85, 1.15)  # x the communicating segments' 0.8 voxels: one voxel wide
    p_no_pcom: float = 0.15
    p_third_a2: float = 0.25
    distractors: tuple[int, int] = (1, 3)
    noise: tuple[float, float] = (0.05, 0.09)  # Rician noise sigma (relative to vessel intensity 1)
    lateral: float = 0.3  # receive-coil gradient: intensity x (1 + lateral) at the patient's right border,
    # x (1 - lateral) at the left one (a fixed left-right cue, kept under mirroring with the labels)


def _mirror(points):
    return [(z, y, 1.0 - x) for z, y, x in points]


def segments(rng: np.random.Generator, style: CowStyle = CowStyle()) -> list[tuple[int, np.ndarray, float]]:
    """The case's segments as ``(label, control points in voxels (K, 3), radius)``."""
    scale = np.array(style.shape, float) - 1
    shift = rng.normal(0.0, 0.75 * style.jitter, 3)
    # jitter shared control points consistently (junctions stay connected): cache by rounded key
    cache: dict[tuple, np.ndarray] = {}

    def place(points):
        out = []
        for p in points:
            key = tuple(round(v, 4) for v in p)
            if key not in cache:
                cache[key] = np.asarray(p) * scale + shift + rng.normal(0.0, style.jitter, 3)
            out.append(cache[key])
        return np.array(out)

    def radius(name):
        return _RADIUS[name] * rng.uniform(*(style.thin_scale if name in ("Pcom", "Acom") else style.radius_scale))

    left = {k: _mirror(v) for k, v in _RIGHT_TEMPLATE.items()}
    segs = [(LABELS["BA"], place(_BA), radius("BA"))]
    for side, tmpl in (("R", _RIGHT_TEMPLATE), ("L", left)):
        segs.append((LABELS[f"{side}-PCA"], place(tmpl["PCA"]), radius("PCA")))
        segs.append((LABELS[f"{side}-ICA"], place(tmpl["ICA"]), radius("ICA")))
        segs.append((LABELS[f"{side}-MCA"], place(tmpl["MCA"]), radius("MCA")))
        segs.append((LABELS[f"{side}-ACA"], place(tmpl["ACA"]), radius("ACA")))
        if rng.random() >= style.p_no_pcom:
            segs.append((LABELS[f"{side}-Pcom"], place(tmpl["Pcom"]), radius("Pcom")))
    segs.append((LABELS["Acom"], place(_ACOM), radius("Acom")))
    if rng.random() < style.p_third_a2:
        segs.append((LABELS["3rd-A2"], place(_THIRD_A2), radius("3rd-A2")))
    return sorted(segs, key=lambda s: s[0])


def render(rng: np.random.Generator, style: CowStyle = CowStyle()) -> tuple[np.ndarray, np.ndarray]:
    """One MRA-like volume (int16) and its 13-class label map (uint8), both ``style.shape``."""
    shape = style.shape
    segs = segments(rng, style)
    curves, radii, labels, flows = [], [], [], []
    for lab, pts, r in segs:
        curve, t = spline_curve(pts)
        curves.append(curve)
        radii.append(np.full(len(curve), r, np.float32) * (1.0 - 0.1 * t).astype(np.float32))  # slight taper
        labels.append(lab)
        flows.append(rng.uniform(0.75, 1.0))
    idx, margin, _, _ = render_tubes(shape, curves, radii)
    inside = (idx > 0) & (margin >= 0)
    lut = np.array([0, *labels], np.uint8)
    label = np.where(inside, lut[idx], 0).astype(np.uint8)

    # image: soft vessel profile, thin vessels dimmer, per-segment flow
    r_lut = np.array([1.0, *[float(r.max()) for r in radii]], np.float32)
    f_lut = np.array([0.0, *flows], np.float32)
    soft = np.clip(margin + 0.5, 0.0, 1.0)
    soft[idx == 0] = 0.0
    vessel = soft * f_lut[idx] * np.minimum(1.0, 0.45 + 0.4 * r_lut[idx])
    n_dis = int(rng.integers(style.distractors[0], style.distractors[1] + 1))
    if n_dis:
        Z, Y, X = shape
        d_curves, d_radii = [], []
        for _ in range(n_dis):
            side = rng.choice([0.08, 0.92])
            pts = np.stack(
                [
                    rng.uniform(0.05, 0.95, 4) * (Z - 1),
                    np.sort(rng.uniform(0.05, 0.95, 4)) * (Y - 1),
                    (side + rng.normal(0, 0.03, 4)) * (X - 1),
                ],
                axis=1,
            )
            c, _ = spline_curve(pts)
            d_curves.append(c)
            d_radii.append(np.full(len(c), rng.uniform(0.8, 1.3), np.float32))
        didx, dmargin, _, _ = render_tubes(shape, d_curves, d_radii)
        dsoft = np.where(didx > 0, np.clip(dmargin + 0.5, 0.0, 1.0), 0.0)
        vessel = np.maximum(vessel, dsoft * rng.uniform(0.4, 0.7))
    bias = np.clip(1.0 + 0.15 * smooth_noise(rng, shape, 12.0), 0.6, 1.4)  # coil inhomogeneity
    x = np.linspace(1.0, -1.0, shape[2], dtype=np.float32)  # +1 at the patient's right (x = 0)
    bias = bias * (1.0 + style.lateral * x)[None, None, :]
    tissue = 0.22 + 0.03 * smooth_noise(rng, shape, 2.0)
    img = (tissue + vessel * 0.8) * bias
    img = ndimage.gaussian_filter(img, 0.6)
    sigma = rng.uniform(*style.noise)
    img = np.sqrt((img + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    return np.clip(img * 1000.0, 0, 32000).round().astype(np.int16), label


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 20,
    num_test: int = 10,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: object,
) -> Path:
    """Write the synthetic CoW dataset (nnU-Net v2 raw layout, NIfTI, 13 classes) to ``out_dir``.

    ``style`` overrides :class:`CowStyle` fields. Idempotent for equal parameters; written into a
    temporary sibling folder and renamed into place once verified.
    """
    st = make_style(CowStyle, style)
    return write_synthetic(
        out_dir,
        folder=FOLDER,
        generator="cow3d",
        render=lambda rng: render(rng, st),
        style=st,
        labels=LABELS,
        channel_names={0: "MRA"},
        case_prefix="cow",
        description="synthetic Circle-of-Willis-like vessel trees, MRA-like (skelrecall)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
        affine=np.diag([st.spacing] * 3 + [1.0]),
    )


def generate_binary(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 20,
    num_test: int = 10,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: object,
) -> Path:
    """The same volumes as :func:`generate` (equal ``seed``) with every segment merged into vessel = 1,
    as ``topcow_binary`` is to ``topcow_multiclass``."""
    st = make_style(CowStyle, style)

    def render_binary(rng):
        image, label = render(rng, st)
        return image, (label > 0).astype(np.uint8)

    return write_synthetic(
        out_dir,
        folder=BINARY_FOLDER,
        generator="cow3d_binary",
        render=render_binary,
        style=st,
        labels={"background": 0, "vessel": 1},
        channel_names={0: "MRA"},
        case_prefix="cow",
        description="synthetic Circle-of-Willis-like vessel trees, MRA-like, binary (skelrecall)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
        affine=np.diag([st.spacing] * 3 + [1.0]),
    )
