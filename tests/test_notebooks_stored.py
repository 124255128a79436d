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
    return normalize_notebooks.read_joined(path)["cells"]


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
def test_only_checked_cells_store_outputs(path):
    checked = 0
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code":
            continue
        if normalize_notebooks.is_checked(cell):
            checked += 1
            assert cell["outputs"], (
                f"cell {i} is tagged {normalize_notebooks.CHECK_TAG} but stores no output: "
                "run `python3 tasks.py nbval && python3 tasks.py record`")
        else:
            assert cell.get("outputs") == [], f"cell {i} has stored outputs but is not checked"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
    assert checked >= 1, "every chapter checks at least one deterministic output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_dead_nbval_markers(path):
    """nbval's comment markers are replaced by cell tags; none may linger."""
    for i, cell in enumerate(_cells(path)):
        assert "NBVAL_" not in _src(cell), f"cell {i} has an NBVAL_ comment; tag the cell instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_sources_are_stored_line_by_line(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(raw["cells"]):
        src = cell["source"]
        assert isinstance(src, list), f"cell {i}: source stored as one string"
        assert all(line.endswith("\n") for line in src[:-1]) and "\n" not in "".join(
            line[:-1] for line in src), f"cell {i}: not one line per entry"


def test_the_old_one_string_layout_is_rejected(tmp_path):
    path = tmp_path / NOTEBOOKS[0].name
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    assert normalize_notebooks.main(["--check", str(path)]) == 1
    assert normalize_notebooks.main([str(path)]) == 0  # rewrites it ...
    assert path.read_text(encoding="utf-8") == NOTEBOOKS[0].read_text(encoding="utf-8")


def test_a_one_line_edit_diffs_as_one_line(tmp_path):
    """Edit one line of the longest code cell of chapter 7: git sees one line change."""
    import difflib

    path = ROOT / "notebooks" / "07_gpt.ipynb"
    before = path.read_text(encoding="utf-8")
    nb = json.loads(before)
    cell = max(nb["cells"], key=lambda c: len(c["source"]))
    k = len(cell["source"]) // 2
    cell["source"][k] = cell["source"][k].replace("\n", "  # edited\n")
    after = normalize_notebooks.dumps(normalize_notebooks.normalize(nb, "07"))
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and "# edited" in changed[1], changed


def test_checked_outputs_are_small_text():
    nb = {"cells": [{"cell_type": "code", "source": "print(1)", "metadata": {"tags": [
        normalize_notebooks.CHECK_TAG]}, "outputs": [{"output_type": "display_data", "data": {
            "image/png": "..."}, "metadata": {}}]}], "metadata": {}}
    with pytest.raises(ValueError, match="display_data"):
        normalize_notebooks.normalize(nb, "01")
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 5000}]
    with pytest.raises(ValueError, match="5000 characters"):
        normalize_notebooks.normalize(nb, "01")


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
    titles = [_src(cells[i]).splitlines()[0] for i in starts]
    assert any("Open question:" in t for t in titles), "every chapter has an open question"
    for i in starts:
        text = _src(cells[i])
        label = re.search(r":label: (\S+)", text).group(1)
        title = text.splitlines()[0]
        assert re.search(r"★{1,3} ", title), f"{label}: difficulty (★ to ★★★) in the title"
        if "Open question:" in title:  # a discussion question: its model answer in a dropdown
            answer = _src(cells[i + 1])
            assert cells[i + 1]["cell_type"] == "markdown" and f"```{{solution}} {label}\n" in answer
            assert ":class: dropdown" in answer and len(answer.split()) > 40, f"{label}: no model answer"
            continue
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
