"""The student edition: no solution survives, the notebooks are valid, the checkers stay, and
putting the reference solutions back gives the book's notebooks again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import student_edition
from normalize_notebooks import read_joined

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(path):
    return read_joined(path)


def _solutions(nb) -> list[str]:
    """The code between the markers, per solution region."""
    regions = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            regions += re.findall(r"### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION", cell["source"], re.S)
    return regions


def test_command_writes_valid_notebooks(tmp_path):
    assert student_edition.main(["--out", str(tmp_path)]) == 0
    written = sorted((tmp_path / "notebooks").glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in written:
        nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_solution_survives_and_checkers_stay(path):
    book = _load(path)
    student = student_edition.student_notebook(book)
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "solution-start" not in text
    # an open question stays, its model answer (a {solution} dropdown) goes
    assert "```{solution}" not in text, "a model answer survived"
    assert text.count("Open question:") == json.dumps(book).count("Open question:") >= 1
    # the cells that held solutions keep none of their solution lines (the same line may
    # legitimately appear in the chapter's own code elsewhere)
    pairs = [(b["source"], st["source"]) for b, st in zip(
        [c for c in book["cells"] if c["cell_type"] == "code"],
        [c for c in student["cells"] if c["cell_type"] == "code"])]
    for original, stubbed in pairs:
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION", original, re.S):
            for line in region.splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    kept = [other.strip() for other in stubbed.splitlines()]
                    assert line.strip() not in kept, f"solution line survived: {line.strip()}"
    checkers = lambda nb: [c["source"] for c in nb["cells"] if "nbgrader" in c["metadata"] and c["metadata"]["nbgrader"]["grade"]]
    assert checkers(student) == checkers(book) and len(checkers(book)) >= 4
    stubs = sum(c["source"].count("raise NotImplementedError()") for c in student["cells"] if c["cell_type"] == "code")
    assert stubs == len(_solutions(book))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_filling_the_stubs_gives_back_the_book(path):
    """With the reference solutions put back, every code cell is the book's own, which nbval
    executes with all checks passing."""
    book = _load(path)
    student = student_edition.student_notebook(book)
    solutions = iter(_solutions(book))
    filled = []
    for cell in student["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"]
            while "# YOUR CODE HERE" in src:
                m = re.search(r"([ \t]*)# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)", src)
                indent = m.group(1)
                body = f"{indent}### BEGIN SOLUTION\n{next(solutions)}\n{indent}### END SOLUTION"
                src = src[: m.start()] + body + src[m.end():]
            filled.append(src)
    assert filled == [c["source"] for c in book["cells"] if c["cell_type"] == "code"]


def test_strip_solutions_keeps_indentation_and_rejects_broken_markers():
    code = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert student_edition.strip_solutions(code) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    with pytest.raises(ValueError, match="without ### END"):
        student_edition.strip_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without ### BEGIN"):
        student_edition.strip_solutions("x = 1\n### END SOLUTION")


@pytest.mark.slow
def test_student_chapter_1_runs_and_every_checker_reports_the_stub(tmp_path, data_dir):
    """Executed as a student receives it, chapter 1's exercises run, and each checker says the
    exercise is not implemented yet (rather than crashing or passing). Only the setup cells and
    the exercise section run here: nbval executes the whole chapter once per test run."""
    nb = nbformat.from_dict(student_edition.student_notebook(_load(ROOT / "notebooks" / "01_background.ipynb")))
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             and c.source.startswith(("## 1.1 ", "## Exercises"))]
    nb.cells = nb.cells[: heads[0]] + nb.cells[heads[1]:]
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    errors = [(c.metadata.get("nbgrader", {}), o) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 4
    for meta, out in errors:
        assert meta.get("grade") is True, "only checker cells may fail"
        assert out["ename"] == "ExerciseFailed" and "not implemented yet" in out["evalue"]
