"""The notebooks as stored: no outputs, normalized, in the table of contents, Colab-ready,
with the book's conventions for titles and exercises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import normalize_notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _src(cell: dict) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", []))
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS and all(re.fullmatch(r"\d\d_[a-z_]+\.ipynb", p.name) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_normalized(path):
    assert path.read_text(encoding="utf-8") == normalize_notebooks.normalized_text(path), (
        "run `python tools/normalize_notebooks.py`"
    )


def test_every_notebook_is_in_the_toc_and_every_toc_file_exists():
    files = _toc_files()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in files, f"{path.name} is not listed in _toc.yml"
    for f in files:
        assert any((ROOT / f"{f}{ext}").is_file() for ext in (".md", ".ipynb")), f"_toc.yml lists {f}, which does not exist"


def _repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cells_follow_the_conventions(path):
    cells = _cells(path)
    first = _src(cells[0])
    assert cells[0]["cell_type"] == "markdown"
    number = int(path.name[:2])
    assert first.startswith(f"# Chapter {number}: "), "the first cell starts with the chapter title"
    assert "**Run time**" in first and "**Prerequisites**" in first and "You will learn" in first
    code = [c for c in cells if c["cell_type"] == "code"]
    install = _src(code[0])
    assert 'find_spec("minillm") is None' in install
    assert "MINILLM_INSTALL_SOURCE" in install
    assert f'"git+{_repository_url()}"' in install, "the install URL must be the one in _config.yml"
    for untouchable in ("torch", "ipywidgets"):
        assert untouchable not in install, f"the install cell must not touch {untouchable}"
    assert any("set_seed(" in _src(c) for c in code), "notebooks are seeded"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises(path):
    cells = _cells(path)
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "{exercise-start}" in _src(c)]
    assert len(starts) >= 4, "every chapter has at least four exercises"
    for i in starts:
        text = _src(cells[i])
        label = re.search(r":label: (\S+)", text).group(1)
        title = text.splitlines()[0]
        assert re.search(r"★{1,3} ", title), f"{label}: difficulty (★ to ★★★) in the title"
        # exercise, then a gated solution holding one solution cell, then the checker call
        rest = cells[i + 1 :]
        sol_start = next(k for k, c in enumerate(rest) if "{solution-start}" in _src(c))
        assert label in _src(rest[sol_start]) and ":class: dropdown" in _src(rest[sol_start])
        solution, sol_end, checker = rest[sol_start + 1], rest[sol_start + 2], rest[sol_start + 3]
        assert "### BEGIN SOLUTION" in _src(solution) and "### END SOLUTION" in _src(solution)
        assert solution["metadata"]["nbgrader"]["solution"] is True
        assert "{solution-end}" in _src(sol_end)
        assert checker["cell_type"] == "code" and re.search(r"ch\d\d\.check_\w+\(", _src(checker))
        assert checker["metadata"]["nbgrader"]["grade"] is True
