"""Markdown and LaTeX tables from headers and rows."""

import math

import pytest

from skelrecall.render import format_cell, latex_escape, latex_table, markdown_table


def test_markdown_table_layout_and_float_format():
    text = markdown_table(["loss", "dice", "n"], [["dice_ce", 0.81234, 3], ["cldice", math.nan, 10]], floatfmt=".3f")
    assert text.splitlines() == [
        "| loss | dice | n |",
        "|---|---|---|",
        "| dice_ce | 0.812 | 3 |",
        "| cldice | nan | 10 |",
    ]
    assert not text.endswith("\n")
    # without floatfmt every cell is str(); integers are never float-formatted
    assert markdown_table(["x", "k"], [[0.5, 2]]).splitlines()[2] == "| 0.5 | 2 |"
    assert markdown_table(["k"], [[2]], floatfmt=".3f").splitlines()[2] == "| 2 |"


def test_markdown_alignment_and_escaping():
    text = markdown_table(["a", "b", "c"], [["x|y", "two\nlines", "**bold**"]], align="lrc")
    head, rule, row = text.splitlines()
    assert rule == "|:---|---:|:---:|"
    assert row == r"| x\|y | two lines | **bold** |"
    assert markdown_table(["a", "b"], [], align="r").splitlines() == ["| a | b |", "|---:|---:|"]


@pytest.mark.parametrize("align", ["lx", "lrr", ["l"]])
def test_bad_alignment_is_refused(align):
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [["1", "2"]], align=align)


def test_row_length_must_match_header():
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
        markdown_table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="row 0"):
        latex_table(["a"], [["1", "2"]])


def test_latex_table_booktabs_rules_and_caption():
    text = latex_table(
        ["Loss", r"Dice (\%)"],
        [["a", 1.0], ["b", 2.25], ["c", 3.5]],
        align="lc",
        floatfmt=".1f",
        midrules=[2],
        caption="Results",
        label="tab:r",
    )
    assert text.endswith("\n")
    assert text.splitlines() == [
        r"\begin{table}",
        r"\centering",
        r"\caption{Results}",
        r"\label{tab:r}",
        r"\begin{tabular}{lc}",
        r"\toprule",
        r"Loss & Dice (\%) \\",
        r"\midrule",
        r"a & 1.0 \\",
        r"b & 2.2 \\",
        r"\midrule",
        r"c & 3.5 \\",
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    bare = latex_table(["a", "b"], [["1", "2"]])
    assert bare.startswith(r"\begin{tabular}{ll}") and r"\begin{table}" not in bare


def test_escaping_and_cell_format():
    assert latex_escape("w_grid 5% & $x#{y}") == r"w\_grid 5\% \& \$x\#\{y\}"
    assert latex_escape(r"a\b~^") == r"a\textbackslash{}b\textasciitilde{}\textasciicircum{}"
    assert format_cell(1.23456, ".2f") == "1.23" and format_cell("1.23456", ".2f") == "1.23456"
    assert format_cell(None) == "None"
