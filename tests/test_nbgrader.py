"""The notebooks work with nbgrader as they are: `nbgrader generate_assignment` accepts every
chapter's cell metadata and releases a version with the solutions stubbed out and the checker
cells kept (and locked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from normalize_notebooks import read_joined

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_generate_assignment(path, tmp_path):
    course = tmp_path / "course"
    source = course / "source" / path.stem
    source.mkdir(parents=True)
    shutil.copy(path, source / path.name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", path.stem, "--force",
         f"--CourseDirectory.root={course}"],
        cwd=course, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    released = json.loads((course / "release" / path.stem / path.name).read_text())
    original = read_joined(path)
    text = json.dumps(released)
    assert "BEGIN SOLUTION" not in text
    n_solutions = sum("### BEGIN SOLUTION" in c["source"] for c in original["cells"] if c["cell_type"] == "code")
    stubs = sum("YOUR CODE HERE" in "".join(c["source"]) for c in released["cells"] if c["cell_type"] == "code")
    assert stubs == n_solutions >= 4

    def graded(nb):
        return [("".join(c["source"]), c["metadata"]["nbgrader"]["grade_id"]) for c in nb["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade")]

    assert graded(released) == graded(original)
    assert all(c["metadata"]["nbgrader"]["locked"] for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("grade"))
