"""Every figure a chapter draws is numbered, captioned and described for screen readers.

A code cell that shows a matplotlib figure carries MyST-NB cell metadata (the ``mystnb`` key
that the pinned MyST-NB reads; the older ``render`` key is deprecated):

    {"mystnb": {"figure": {"caption": "...", "name": "fig-ch7-short-name"},
                "image": {"alt": "..."}}}

so that the page shows the figure as "Fig. N" with its caption, other pages can refer to it
with {numref}, and the image has alt text (without it Sphinx writes the file's path there).
The rendered pages are checked too, in tests/test_rendered_book.py.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import minillm.training
import minillm.viz

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Calls that make or show a matplotlib figure: pyplot's, and the support code's plot helpers
# (minillm.viz.plot_heads and plot_attention, minillm.training.plot_history).
PYPLOT = {"show", "subplots", "figure"}
HELPERS = {
    name
    for module in (minillm.viz, minillm.training)
    for name in dir(module)
    if name.startswith("plot_")
}


def _src(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _draws_directly(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return (
            isinstance(func.value, ast.Name)
            and func.value.id == "plt"
            and func.attr in PYPLOT
        ) or func.attr in HELPERS
    return isinstance(func, ast.Name) and func.id in HELPERS


def _called_names(node: ast.AST) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def shows_a_figure(cell: dict) -> bool:
    """Whether a code cell draws a matplotlib figure into its output.

    It does if a statement that runs when the cell runs (not the body of a function that
    the cell only defines) calls ``plt.show``, ``plt.subplots``, ``plt.figure`` or a
    ``plot_*`` helper of the support code, directly or through a function the cell
    defines. Comments and strings do not count; nor does a cell tagged ``remove-output``,
    whose output (an ipywidgets explorer) the page never shows.
    """
    if cell["cell_type"] != "code":
        return False
    if "remove-output" in cell.get("metadata", {}).get("tags", []):
        return False
    lines = [
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in _src(cell).splitlines()
    ]
    tree = ast.parse("\n".join(lines))
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }

    def draws(node: ast.AST, seen: frozenset = frozenset()) -> bool:
        if any(isinstance(n, ast.Call) and _draws_directly(n) for n in ast.walk(node)):
            return True
        return any(
            draws(functions[name], seen | {name})
            for name in _called_names(node) & functions.keys() - seen
        )

    top_level = [
        node
        for node in tree.body
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    return any(draws(node) for node in top_level)


def _figure_cells(path: Path) -> list[tuple[int, dict]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, c) for i, c in enumerate(cells) if shows_a_figure(c)]


def _chapter(path: Path) -> int:
    return int(path.name[:2])


def test_there_are_figures_in_every_chapter():
    assert len(NOTEBOOKS) >= 11
    for path in NOTEBOOKS:
        assert _figure_cells(path), (
            f"{path.name} draws no figure: is the heuristic wrong?"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_numbered_captioned_and_described(path):
    pattern = re.compile(rf"fig-ch{_chapter(path)}-[a-z0-9]+(-[a-z0-9]+)*")
    for i, cell in _figure_cells(path):
        where = f"{path.name}, cell {i}"
        meta = cell["metadata"].get("mystnb")
        assert isinstance(meta, dict), (
            f"{where} shows a figure but has no mystnb cell metadata: add "
            '{"mystnb": {"figure": {"caption": ..., "name": ...}, "image": {"alt": ...}}}'
        )
        figure, image = meta.get("figure", {}), meta.get("image", {})
        caption, name, alt = figure.get("caption"), figure.get("name"), image.get("alt")
        assert isinstance(caption, str) and len(caption.split()) >= 8, (
            f"{where}: the caption should say what is plotted and what to see: {caption!r}"
        )
        assert caption.rstrip().endswith("."), (
            f"{where}: end the caption with a full stop"
        )
        assert isinstance(name, str) and pattern.fullmatch(name), (
            f"{where}: name the figure fig-ch{_chapter(path)}-short-name, got {name!r}"
        )
        assert isinstance(alt, str) and len(alt.split()) >= 5, (
            f"{where}: the alt text should describe the image in words: {alt!r}"
        )
        assert not re.search(r"[/\\]|\.(png|svg|jpe?g)\b", alt), (
            f"{where}: the alt text looks like a file path: {alt!r}"
        )
        assert alt.strip() != caption.strip(), f"{where}: alt text repeats the caption"


def test_figure_names_are_unique_in_the_book():
    names: dict[str, str] = {}
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            name = cell["metadata"].get("mystnb", {}).get("figure", {}).get("name")
            if name is None:
                continue
            assert name not in names, (
                f"{name} names a figure in {names[name]} and {path.name}"
            )
            names[name] = f"{path.name}, cell {i}"
    assert len(names) >= len(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figure_metadata_only_on_figure_cells(path):
    """MyST-NB wraps every displayed output of a cell with figure metadata in a figure:
    on a cell that shows a table or text, the metadata would caption that instead."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        meta = cell["metadata"]
        assert "render" not in meta, f"{path.name}, cell {i}: use the key 'mystnb'"
        if "figure" in meta.get("mystnb", {}):
            assert shows_a_figure(cell), (
                f"{path.name}, cell {i} has a caption, no figure"
            )


def _code(source: str, tags=None) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {"tags": tags or []}}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()", True),
        ("plt.figure()\nplt.plot([1, 2])", True),  # shown as the cell ends, no show()
        ("ax = plot_history(history)\nplt.show()", True),
        ("plot_heads(w, tokens)", True),
        ("for w in maps:\n    viz.plot_attention(w, tokens)\n    plt.show()", True),
        (
            "def draw(x):\n    fig, ax = plt.subplots()\n    ax.plot(x)\n\n\ndraw([1])",
            True,
        ),
        (
            "def draw(x):\n    fig, ax = plt.subplots()\n    ax.plot(x)",
            False,
        ),  # only defined
        ("import matplotlib.pyplot as plt", False),
        ("from minillm.viz import plot_heads, plot_attention", False),
        ("# plt.show()\nx = 1", False),
        ('print("call plt.show() to see it")', False),
        ("%matplotlib inline\nx = 1", False),
    ],
)
def test_the_figure_cell_heuristic(source, expected):
    assert shows_a_figure(_code(source)) is expected


def test_a_hidden_widget_cell_needs_no_caption():
    assert not shows_a_figure(_code("plot_heads(w, tokens)", tags=["remove-output"]))
