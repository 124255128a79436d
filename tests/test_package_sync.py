"""The chapter modules of minillm/ are exactly what the notebooks' `#| export` cells generate."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

import export_notebooks


def test_committed_package_matches_notebooks():
    problems = export_notebooks.differences(export_notebooks.generate())
    assert not problems, "\n".join(problems) + "\nrun `python tools/export_notebooks.py`"


def test_every_generated_module_names_its_notebook(root):
    generated = export_notebooks.generate()
    assert generated, "no notebook exports a module"
    for path, text in generated.items():
        first = text.splitlines()[0]
        assert first.startswith(export_notebooks.MARKER)
        notebook = first[len(export_notebooks.MARKER):].split(" -- ")[0]
        assert (root / notebook).is_file(), f"{path.name} names {notebook}, which does not exist"
        module = importlib.import_module(f"minillm.{path.stem}")
        assert module.__doc__ and notebook in module.__doc__
        for name in module.__all__:
            assert getattr(module, name).__module__ == module.__name__


@pytest.fixture
def sandbox(tmp_path, monkeypatch, root):
    """A copy of notebooks/ and minillm/ that the exporter is pointed at."""
    shutil.copytree(root / "notebooks", tmp_path / "notebooks")
    shutil.copytree(root / "minillm", tmp_path / "minillm", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(export_notebooks, "ROOT", tmp_path)
    monkeypatch.setattr(export_notebooks, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(export_notebooks, "PACKAGE", tmp_path / "minillm")
    return tmp_path


def _edit_first_export_cell(nb_path, old, new):
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and cell["source"].startswith("#| export") and old in cell["source"]:
            cell["source"] = cell["source"].replace(old, new, 1)
            break
    else:
        raise AssertionError(f"no export cell contains {old!r}")
    nb_path.write_text(json.dumps(nb))


def test_an_edit_in_the_notebook_is_detected(sandbox):
    assert export_notebooks.main(["--check"]) == 0
    _edit_first_export_cell(sandbox / "notebooks/01_background.ipynb", "return smoothed / row_sums", "return smoothed")
    problems = export_notebooks.differences(export_notebooks.generate(sandbox / "notebooks"))
    assert len(problems) == 1 and "-    return smoothed / row_sums" in problems[0]
    assert export_notebooks.main(["--check"]) == 1
    assert export_notebooks.main([]) == 0  # regenerate
    assert "    return smoothed\n" in (sandbox / "minillm/bigram.py").read_text()
    assert export_notebooks.main(["--check"]) == 0


def test_an_edit_in_the_package_is_detected(sandbox):
    module = sandbox / "minillm/bigram.py"
    module.write_text(module.read_text().replace("alpha: float = 1.0", "alpha: float = 0.5"))
    assert export_notebooks.main(["--check"]) == 1


def test_stale_generated_module_is_detected_and_removed(sandbox):
    stale = sandbox / "minillm/old_chapter.py"
    stale.write_text(f"{export_notebooks.MARKER}notebooks/99_gone.ipynb -- DO NOT EDIT.\n")
    assert any("old_chapter.py" in p for p in export_notebooks.differences(export_notebooks.generate()))
    export_notebooks.main([])
    assert not stale.exists()
    assert (sandbox / "minillm/data.py").exists()  # hand-written modules are never touched


def test_export_cell_without_module_is_an_error(sandbox):
    nb_path = sandbox / "notebooks/01_background.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"] = [c for c in nb["cells"] if not c["source"].startswith("#| default_exp")]
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="no `#| default_exp NAME` cell"):
        export_notebooks.generate(sandbox / "notebooks")
