"""Tables as text: Markdown (GitHub pipe tables) and LaTeX (booktabs), from one shape of input.

Both take ``headers`` (one string per column) and ``rows`` (sequences of cells, as long as
``headers``). A cell that is a ``float`` is written with ``floatfmt`` (a format spec such as
``".3f"``) when one is given; every other cell with ``str``. ``align`` is one letter per column,
``l`` (left), ``c`` (centre) or ``r`` (right), or one letter for all columns; ``None`` leaves Markdown
columns unaligned (``---``) and LaTeX columns left-aligned. Markdown cells are escaped (``|``, line
breaks); LaTeX cells are written as given (escape text with :func:`latex_escape`), so that cells can
hold math and ``\\textbf``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_MD_RULE = {None: "---", "l": ":---", "c": ":---:", "r": "---:"}
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def format_cell(value: object, floatfmt: str | None = None) -> str:
    """``value`` as text: floats with ``floatfmt`` if given, anything else with ``str``."""
    if floatfmt is not None and isinstance(value, float):
        return format(value, floatfmt)
    return str(value)


def _alignments(align: str | Sequence[str] | None, n: int) -> list[str | None]:
    if align is None:
        return [None] * n
    letters = [align] * n if isinstance(align, str) and len(align) == 1 else list(align)
    if len(letters) != n or any(a not in ("l", "c", "r") for a in letters):
        raise ValueError(f"align must be one of l, c, r per column ({n} columns), got {align!r}")
    return letters


def _cells(headers: Sequence[str], rows: Iterable[Sequence[object]], floatfmt: str | None) -> list[list[str]]:
    out = []
    for i, row in enumerate(rows):
        cells = [format_cell(v, floatfmt) for v in row]
        if len(cells) != len(headers):
            raise ValueError(f"row {i} has {len(cells)} cells, the header {len(headers)}: {cells}")
        out.append(cells)
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|").replace("\r\n", " ").replace("\n", " ")


def markdown_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    align: str | Sequence[str] | None = None,
    floatfmt: str | None = None,
) -> str:
    """A Markdown pipe table (header line, rule line, one line per row; no trailing newline)."""
    headers = [str(h) for h in headers]
    body = _cells(headers, rows, floatfmt)
    rule = "|" + "".join(_MD_RULE[a] + "|" for a in _alignments(align, len(headers)))
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (for cells of :func:`latex_table`)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def latex_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    align: str | Sequence[str] | None = None,
    floatfmt: str | None = None,
    midrules: Iterable[int] = (),
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """A booktabs ``tabular`` (``\\toprule``, ``\\midrule``, ``\\bottomrule``; ends with a newline).

    ``midrules``: indices of the rows that get a ``\\midrule`` above them (e.g. where a group starts).
    With ``caption`` (and optionally ``label``) the tabular is wrapped in a centred ``table``
    environment with the caption above it. Headers, cells and caption are written as given.
    """
    headers = [str(h) for h in headers]
    body = _cells(headers, rows, floatfmt)
    spec = "".join(a or "l" for a in _alignments(align, len(headers)))
    rules = set(midrules)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    for i, cells in enumerate(body):
        if i in rules and i > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption is not None:
        head = [r"\begin{table}", r"\centering", rf"\caption{{{caption}}}"]
        if label is not None:
            head.append(rf"\label{{{label}}}")
        lines = [*head, *lines, r"\end{table}"]
    return "\n".join(lines) + "\n"
