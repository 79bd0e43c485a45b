"""Colours of label maps and titled image strips, shared by the figures and the W&B validation panel.

Class ``0`` (background) is black. A binary label map (two classes) shows its structure white; a
multi-class map gives each class a fixed colour of matplotlib's qualitative ``tab10`` palette, then
its light ``tab20`` variants, without reds (red marks missed skeleton pixels) and greys (grey marks
values that are no class, such as an ignore label): 16 colours, repeated beyond that. Class ``k`` has
the same colour in every figure and panel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MISSED_RGB = (1.0, 0.0, 0.0)  # tubed-skeleton pixels of the ground truth that a prediction misses
BACKGROUND_RGB = (0.0, 0.0, 0.0)
BINARY_RGB = (1.0, 1.0, 1.0)
OTHER_RGB = (0.5, 0.5, 0.5)  # values that are no class (ignore label)
_LEFT_OUT = (6, 7, 14, 15)  # tab20's reds (red marks missed pixels) and greys (grey marks non-class values)


def class_palette() -> list[tuple[float, float, float]]:
    """The 16 foreground colours of multi-class maps, in class order (class 1 first)."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    order = [i for i in range(0, 20, 2) if i not in _LEFT_OUT] + [i for i in range(1, 20, 2) if i not in _LEFT_OUT]
    return [tuple(float(c) for c in tab20[i]) for i in order]


def class_colours(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` RGB in [0, 1] for class values ``0 .. num_classes - 1`` (row 0 black)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background + at least one class), got {num_classes}")
    if num_classes == 2:
        return np.array([BACKGROUND_RGB, BINARY_RGB], np.float32)
    palette = class_palette()
    rows = [BACKGROUND_RGB] + [palette[(k - 1) % len(palette)] for k in range(1, num_classes)]
    return np.array(rows, np.float32)


def label_rgb(label: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Float RGB image ``label.shape + (3,)`` of an integer label map in class colours.

    ``num_classes`` default: ``max(label) + 1`` (at least 2). Values outside ``0 .. num_classes - 1``
    (an ignore label such as Roads' no-data value) are grey.
    """
    label = np.asarray(label).astype(np.int64)
    if num_classes is None:
        num_classes = max(int(label.max(initial=0)) + 1, 2)
    colours = np.concatenate([class_colours(num_classes), np.array([OTHER_RGB], np.float32)])
    index = np.where((label >= 0) & (label < num_classes), label, num_classes)
    return colours[index]


def prediction_rgb(prediction: np.ndarray, missed: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """:func:`label_rgb` of ``prediction`` with the ``missed`` (boolean) pixels red."""
    tile = label_rgb(prediction, num_classes)
    tile[np.asarray(missed, bool)] = MISSED_RGB
    return tile


def titled_strip(
    tiles: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    legend: dict[str, tuple] | None = None,
    min_width: int = 160,
    fontsize: float = 8.0,
    gap: int = 2,
) -> np.ndarray:
    """Tiles side by side under their titles, as one ``uint8`` RGB image.

    ``tiles``: float RGB arrays in [0, 1] of one height; tiles narrower than ``min_width`` pixels are
    enlarged by an integer factor (nearest neighbour), so that the titles stay legible. ``legend``
    (label -> RGB) adds a row of colour keys below the tiles; ``gap`` grey pixels separate the tiles.
    The tiles' pixels are copied unchanged: pixel ``(y, x)`` of tile ``j`` (width ``w``) is at
    ``(header + y * f, j * (w * f + gap) + x * f)`` and its ``f * f`` copies (``f``: :func:`strip_scale`,
    ``header``: :func:`strip_header_height`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if len(tiles) != len(titles) or not tiles:
        raise ValueError(f"need one title per tile, got {len(tiles)} tiles and {len(titles)} titles")
    factor = strip_scale(tiles[0].shape[1], min_width)
    big = [np.repeat(np.repeat(np.asarray(t, np.float32), factor, 0), factor, 1) for t in tiles]
    sep = np.full((big[0].shape[0], gap, 3), 0.4, np.float32)
    body = np.concatenate([part for t in big for part in (t, sep)][:-1], axis=1)
    body = (body.clip(0, 1) * 255).round().astype(np.uint8)
    head = strip_header_height(fontsize)
    foot = int(round(2.2 * fontsize * 100 / 72)) if legend else 0
    height, width = body.shape[0] + head + foot, body.shape[1]
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="black")
    fig.figimage(body, xo=0, yo=foot, origin="upper")
    x = 0
    for tile, title in zip(big, titles):
        fig.text(
            (x + tile.shape[1] / 2) / width,
            1 - 2 / height,
            title,
            ha="center",
            va="top",
            color="white",
            fontsize=fontsize,
            linespacing=1.1,
        )
        x += tile.shape[1] + gap
    if legend:
        handles = [Patch(facecolor=c, edgecolor="grey", label=name) for name, c in legend.items()]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            frameon=False,
            fontsize=fontsize * 0.85,
            labelcolor="white",
            handlelength=1.0,
            handletextpad=0.3,
            columnspacing=0.8,
            borderaxespad=0.1,
            bbox_to_anchor=(0.5, 0.0),
        )
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def strip_scale(tile_width: int, min_width: int = 160) -> int:
    """Integer enlargement of tiles narrower than ``min_width`` in :func:`titled_strip`."""
    return max(1, -(-min_width // max(int(tile_width), 1)))


def strip_header_height(fontsize: float = 8.0) -> int:
    """Pixels above the tiles in :func:`titled_strip`: two lines of titles."""
    return int(round(2.6 * fontsize * 100 / 72)) + 4
