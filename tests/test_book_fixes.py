"""The page shows the code without the tools' machinery (book/_ext/book_fixes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "book" / "_ext"))

import book_fixes  # noqa: E402


def test_directives_and_solution_delimiters_are_stripped():
    code = (
        "#| export\n"
        "def f(x: int) -> int:\n"
        "    ### BEGIN SOLUTION\n"
        "    y = x + 1  # a comment with #| inside stays\n"
        "    return y\n"
        "    ### END SOLUTION\n"
    )
    assert book_fixes.strip_machinery(code) == (
        "def f(x: int) -> int:\n    y = x + 1  # a comment with #| inside stays\n    return y")
    assert book_fixes.strip_machinery("#| default_exp gpt") == ""
    assert book_fixes.strip_machinery("# NBVAL_CHECK_OUTPUT\nprint(1)") == "print(1)"
    ordinary = "x = 1\n\n# ### not a delimiter\nprint(x)"
    assert book_fixes.strip_machinery(ordinary) == ordinary


def _figure_notebook(path: Path, second_cell_name: str) -> None:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode()

    def image():
        return nbformat.v4.new_output(
            "display_data", data={"image/png": png, "text/plain": "<Figure>"}
        )

    def cell(outputs, name):
        c = nbformat.v4.new_code_cell("plt.show()", outputs=outputs)
        c.metadata["mystnb"] = {
            "figure": {"caption": f"Caption of {name}.", "name": name},
            "image": {"alt": f"A line, {name}"},
        }
        return c

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Figures\n\nSee {numref}`fig-t-loop-2`."),
        cell([image(), image()], "fig-t-loop"),  # one cell, one figure per layer
        cell([image()], second_cell_name),
    ]
    nbformat.write(nb, path / "index.ipynb")
    ext = Path(book_fixes.__file__).parent
    (path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ext)!r})\n"
        "extensions = ['myst_nb', 'book_fixes']\nnumfig = True\n"
        "nb_execution_mode = 'off'\n"
    )


def _sphinx(path: Path) -> tuple[int, str]:
    import subprocess

    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", ".", "_out"],
        cwd=path,
        capture_output=True,
        text=True,
    )
    return run.returncode, run.stderr


def test_each_figure_of_a_cell_gets_its_own_number(tmp_path):
    _figure_notebook(tmp_path, "fig-t-other")
    rc, err = _sphinx(tmp_path)
    assert rc == 0, err
    page = (tmp_path / "_out" / "index.html").read_text()
    for n, name in enumerate(["fig-t-loop", "fig-t-loop-2", "fig-t-other"], start=1):
        assert f'id="{name}"' in page
        assert f'<span class="caption-number">Fig. {n} </span>' in page
    assert page.count('alt="A line, fig-t-loop"') == 2


def test_a_name_repeated_in_another_cell_is_still_reported(tmp_path):
    _figure_notebook(tmp_path, "fig-t-loop")
    rc, err = _sphinx(tmp_path)
    assert rc != 0 and 'Duplicate explicit target name: "fig-t-loop"' in err


def _chapters(path: Path) -> None:
    """A root page and two chapter pages, each with a figure, an equation and an exercise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path / "line.png")
    plt.close(fig)
    (path / "notebooks").mkdir()
    for n in (1, 2):
        body = "\n".join(
            [
                f"# Chapter {n}",
                "",
                f"## {n}.1 A section",
                "",
                "```{figure} ../line.png",
                f":name: fig-c{n}",
                "",
                f"A caption of chapter {n}.",
                "```",
                "",
                "```{math}",
                f":label: eq-c{n}",
                "x = 1",
                "```",
                "",
                f"```{{exercise}} Exercise of chapter {n}",
                f":label: ex-c{n}",
                "",
                "Do it.",
                "```",
                "",
            ]
        )
        (path / "notebooks" / f"0{n}_chapter.md").write_text(body)
    (path / "index.md").write_text(
        "# Book\n\n```{toctree}\nnotebooks/01_chapter\nnotebooks/02_chapter\n```\n"
    )
    ext = Path(book_fixes.__file__).parent
    (path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ext)!r})\n"
        "extensions = ['myst_parser', 'sphinx_exercise', 'book_fixes']\n"
        "numfig = True\nmath_numfig = True\nmyst_enable_extensions = ['amsmath']\n"
    )


def test_numbers_restart_in_each_chapter_and_headings_stay_as_written(tmp_path):
    _chapters(tmp_path)
    rc, err = _sphinx(tmp_path)
    assert rc == 0, err
    for n in (1, 2):
        page = (tmp_path / "_out" / "notebooks" / f"0{n}_chapter.html").read_text()
        assert f'<span class="caption-number">Fig. {n}.1 </span>' in page
        assert f"Exercise {n}.1" in page
        assert f'<span class="eqno">({n}.1)' in page
        # the headings keep their own numbers; Sphinx adds none ("1.1. 1.1 A section")
        assert f">{n}.1 A section<" in page
        assert 'class="section-number"' not in page
    assert book_fixes.chapter_number("notebooks/05_layernorm_and_blocks") == 5
    assert book_fixes.chapter_number("book/intro") is None
