"""Synthetic 2D thin-structure images that are hard in the way that matters for topology.

Each sample is a curvilinear network (a minimum spanning tree of random points plus a few extra
edges that close loops), drawn as wiggly curves 1-5 px wide over a textured, unevenly lit,
noisy background. A smooth random *contrast field* makes whole stretches of the network faint,
and occluders (texture patches placed on the network) hide short pieces of it while the label
keeps them. A per-pixel loss can score well while breaking exactly those stretches, which is what
connectivity losses are meant to fix.

Everything is deterministic in ``(seed, split, index)``; images are grey uint8 PNG, labels
0/1 uint8 PNG, written in the nnU-Net v2 raw layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay

from skelrecall.data.synthetic.draw2d import curve, smooth_field
from skelrecall.data.synthetic.writer import make_style, write_synthetic


@dataclass(frozen=True)
class Style:
    """Parameters of one family of synthetic images."""

    size: int = 256
    nodes: tuple[int, int] = (10, 18)  # number of graph nodes (min, max)
    extra_edges: tuple[int, int] = (1, 4)  # loop-closing edges beyond the spanning tree
    widths: tuple[int, ...] = (1, 2, 3, 4, 5)  # line widths in pixels, drawn per edge
    wiggle: float = 0.12  # curve bending, as a fraction of the edge length
    amplitude: float = 0.45  # structure brightness above background at full contrast
    low_contrast: float = 0.12  # contrast-field minimum (fraction of amplitude)
    occluders: tuple[int, int] = (2, 5)  # number of occluding patches
    occluder_radius: tuple[float, float] = (3.0, 9.0)
    noise: tuple[float, float] = (0.04, 0.09)  # pixel noise standard deviation


def _graph_edges(rng: np.random.Generator, points: np.ndarray, n_extra: int) -> list[tuple[int, int]]:
    """Spanning-tree edges of the Delaunay graph of ``points`` plus ``n_extra`` loop-closing edges."""
    tri = Delaunay(points)
    pairs = {
        tuple(sorted((int(a), int(b)))) for s in tri.simplices for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2]))
    }
    pairs = sorted(pairs)
    n = len(points)
    weights = np.zeros((n, n))
    for a, b in pairs:
        weights[a, b] = np.linalg.norm(points[a] - points[b])
    tree = minimum_spanning_tree(weights).tocoo()
    edges = sorted(zip(tree.row.tolist(), tree.col.tolist()))
    unused = [p for p in pairs if p not in set(edges) and (p[1], p[0]) not in set(edges)]
    if unused and n_extra:
        for i in rng.choice(len(unused), size=min(n_extra, len(unused)), replace=False):
            edges.append(unused[int(i)])
    return edges


def render(rng: np.random.Generator, style: Style = Style()) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image uint8, label uint8 in {0, 1})`` pair of shape ``(size, size)``."""
    size = style.size
    shape = (size, size)
    n_nodes = int(rng.integers(*style.nodes, endpoint=True))
    points = rng.uniform(-0.05 * size, 1.05 * size, (n_nodes, 2))
    edges = _graph_edges(rng, points, int(rng.integers(*style.extra_edges, endpoint=True)))

    # centre lines grouped by width, then a Euclidean distance threshold of (width - 1) / 2
    label = np.zeros(shape, bool)
    centre = {w: np.zeros(shape, bool) for w in style.widths}
    for a, b in edges:
        pts = np.rint(curve(rng, points[a], points[b], style.wiggle)).astype(int)
        pts = pts[((pts >= 0) & (pts < size)).all(axis=1)]
        centre[int(rng.choice(style.widths))][pts[:, 0], pts[:, 1]] = True
    for width, lines in centre.items():
        if lines.any():
            label |= ndimage.distance_transform_edt(~lines) <= (width - 1) / 2

    # background: multi-scale texture and an illumination gradient
    yy, xx = np.mgrid[0:size, 0:size] / size
    background = 0.5 + 0.04 * smooth_field(rng, shape, 2) + 0.07 * smooth_field(rng, shape, 10)
    background += rng.uniform(-0.15, 0.15) * (yy - 0.5) + rng.uniform(-0.15, 0.15) * (xx - 0.5)

    # structure: soft tubular profile times a contrast field that fades whole stretches
    contrast = 1.0 / (1.0 + np.exp(-2.5 * smooth_field(rng, shape, 18)))
    contrast = style.low_contrast + (1.0 - style.low_contrast) * contrast
    profile = ndimage.gaussian_filter(label.astype(float), 0.6)
    profile /= max(profile.max(), 1e-9)
    image = background + style.amplitude * contrast * profile

    # occluders centred on the structure: texture patches the label does not see
    on_structure = np.argwhere(label)
    n_occ = int(rng.integers(*style.occluders, endpoint=True)) if len(on_structure) else 0
    occluder_texture = background + 0.05 * smooth_field(rng, shape, 1.5)
    for _ in range(n_occ):
        cy, cx = on_structure[rng.integers(len(on_structure))]
        ry, rx = rng.uniform(*style.occluder_radius, 2)
        blob = ((yy * size - cy) / ry) ** 2 + ((xx * size - cx) / rx) ** 2 <= 1.0
        image = np.where(blob, occluder_texture + rng.uniform(-0.1, 0.1), image)

    image += rng.normal(0, rng.uniform(*style.noise), shape)
    image = np.clip(image, 0.0, 1.0)
    return (image * 255).round().astype(np.uint8), label.astype(np.uint8)


def generate(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    num_train: int = 240,
    num_test: int = 60,
    folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    **style: object,
) -> Path:
    """Write ``Dataset901_Synthetic2D`` (grey PNG; labels 0 background, 1 structure) to ``out_dir``
    (see :func:`skelrecall.data.synthetic.writer.write_synthetic`); ``style`` overrides
    :class:`Style` fields."""
    st = make_style(Style, style)
    return write_synthetic(
        out_dir,
        folder="Dataset901_Synthetic2D",
        generator="tubes2d",
        render=lambda rng: render(rng, st),
        style=st,
        labels={"background": 0, "structure": 1},
        channel_names={0: "grey"},
        case_prefix="synth",
        description="synthetic thin curvilinear networks (skelrecall)",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        folds=folds,
        overwrite=overwrite,
        progress=progress,
    )
