"""The checked outputs really are checked: nbval passes on a chapter's stored outputs and fails
as soon as one checked value is doctored; the executed notebooks nbval leaves behind are what the
book build takes from its cache, so the build executes nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import normalize_notebooks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"


def _prefix_of_chapter_1(tmp_path: Path) -> tuple[Path, int]:
    """Chapter 1 up to its first checked cell (what a doctored copy needs; seconds to run)."""
    nb = json.loads((ROOT / "notebooks/01_background.ipynb").read_text(encoding="utf-8"))
    first = next(i for i, c in enumerate(nb["cells"]) if normalize_notebooks.is_checked(c))
    nb["cells"] = nb["cells"][: first + 1]
    path = tmp_path / "01_prefix.ipynb"
    path.write_text(normalize_notebooks.dumps(nb), encoding="utf-8")
    return path, first


def _nbval(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-p",
         "nbval_record", *extra, str(path)],
        capture_output=True, text=True, env=env, cwd=path.parent)


def test_a_doctored_checked_output_fails(tmp_path, data_dir):
    path, checked = _prefix_of_chapter_1(tmp_path)
    executed = tmp_path / "executed"
    ok = _nbval(path, "--executed-dir", str(executed))
    assert ok.returncode == 0, ok.stdout[-3000:]

    # the executed copy holds the fresh outputs of every code cell
    copy = nbformat.read(executed / path.name, as_version=4)
    printed = "".join(o.get("text", "") for o in copy.cells[checked].outputs)
    assert "1,115,394 characters, 65 distinct" in printed

    nb = json.loads(path.read_text(encoding="utf-8"))
    stored = nb["cells"][checked]["outputs"][0]["text"]
    assert stored[0] == "1,115,394 characters, 65 distinct\n"
    stored[0] = "1,115,395 characters, 65 distinct\n"  # one digit off
    path.write_text(normalize_notebooks.dumps(nb), encoding="utf-8")
    doctored = _nbval(path, "--executed-dir", str(executed))
    assert doctored.returncode == 1, doctored.stdout[-3000:]
    assert "Cell outputs differ" in doctored.stdout and "1,115,395" in doctored.stdout
    # the doctored run still executed every cell: its copy holds the fresh output, which
    # `tasks.py record` would store after an intended change
    copy = nbformat.read(executed / path.name, as_version=4)
    assert "1,115,394" in "".join(o.get("text", "") for o in copy.cells[checked].outputs)

    # a cell that raises leaves no executed copy at all
    nb["cells"][checked]["outputs"][0]["text"][0] = "1,115,394 characters, 65 distinct\n"
    nb["cells"][checked]["source"].append("\nraise RuntimeError('broken')")
    path.write_text(normalize_notebooks.dumps(nb), encoding="utf-8")
    broken = _nbval(path, "--executed-dir", str(executed))
    assert broken.returncode == 1 and "RuntimeError" in broken.stdout
    assert not (executed / path.name).exists()


def test_executed_notebooks_are_found_in_the_book_cache(tmp_path, data_dir, monkeypatch):
    """What nbval executed, handed to jupyter-cache, is what the book build looks up."""
    from jupyter_cache import get_cache

    import cache_executed

    path, _ = _prefix_of_chapter_1(tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    source = notebooks / path.name
    path.rename(source)
    executed = tmp_path / "executed"
    assert _nbval(source, "--executed-dir", str(executed)).returncode == 0
    assert json.loads((executed / "timings.json").read_text())[source.name] > 0

    monkeypatch.setattr(cache_executed, "ROOT", tmp_path)
    cache_dir = tmp_path / "cache"
    assert cache_executed.cache_executed(executed, cache_dir) == [source.name]
    # myst-nb reads the stored notebook and asks the cache for a match
    cache = get_cache(str(cache_dir))
    record = cache.match_cache_notebook(nbformat.read(source, as_version=4))
    _, merged = cache.merge_match_into_notebook(nbformat.read(source, as_version=4))
    assert record.data["execution_seconds"] > 0
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and any(c.outputs for c in code)

    # an edit after the nbval run: not cached, so the build would execute it
    nb = json.loads(source.read_text(encoding="utf-8"))
    nb["cells"][-1]["source"].append("\nprint('edited')")
    source.write_text(json.dumps(nb), encoding="utf-8")
    assert cache_executed.cache_executed(executed, tmp_path / "cache2") == []


def test_cache_executed_command_line(tmp_path):
    """The command tasks.py runs: it caches what it finds and says so, and its check that the
    book build executed nothing fails when a notebook is missing from the cache."""
    tool = TOOLS / "cache_executed.py"
    empty = tmp_path / "executed"
    empty.mkdir()
    out = subprocess.run([sys.executable, str(tool), str(empty)], capture_output=True, text=True)
    assert out.returncode == 0 and "cached 0 executed notebooks" in out.stdout, out.stderr
    check = subprocess.run([sys.executable, str(tool), "--none-executed-since", "0"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode in (0, 1) and "book build" in check.stdout, check.stderr
