"""A chapter runs on its own, as in Colab: copied outside the repository, executed in a fresh
virtual environment that lacks minillm, whose install cell then installs minillm from the local
checkout (MINILLM_INSTALL_SOURCE overrides the git URL)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

CHAPTER = "01_background.ipynb"  # the fastest chapter; every chapter shares the same install cell


def _purelib(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_chapter_runs_in_a_fresh_environment_without_minillm(tmp_path, root, data_dir, monkeypatch):
    venv = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    fresh_site = _purelib(python)
    # Like Colab, the environment already has torch, matplotlib, ipykernel...: reuse this
    # environment's packages through a path entry. Only the path is added; the .pth files in it
    # (among them the editable install of minillm) are not processed, so minillm is missing.
    (fresh_site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([str(python), "-c", "import torch, ipykernel; import minillm"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert "No module named 'minillm'" in probe.stderr, probe.stderr

    # a kernel that runs in the fresh environment
    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh venv", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MINILLM_INSTALL_SOURCE", str(root))
    monkeypatch.delenv("PYTHONPATH", raising=False)

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    # The install cell, the imports and the first cell that reads the data: what depends on the
    # environment. (nbval runs every chapter whole, once per test run, in the repository's venv.)
    nb = nbformat.read(root / "notebooks" / CHAPTER, as_version=4)
    first_data_cell = next(i for i, c in enumerate(nb.cells) if "load_tiny_shakespeare()" in c.source)
    nb.cells = nb.cells[: first_data_cell + 1]
    nbformat.write(nb, workdir / CHAPTER)
    NotebookClient(nb, timeout=600, kernel_name="fresh", resources={"metadata": {"path": str(workdir)}}).execute()

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert "1,115,394 characters" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    installed = subprocess.run([str(python), "-c", "import minillm; print(minillm.__file__)"],
                               capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert installed.startswith(str(fresh_site)), f"minillm was not installed into the fresh venv: {installed}"
    # the install cell did not touch torch or ipywidgets
    assert not (fresh_site / "torch").exists() and not (fresh_site / "ipywidgets").exists()
