"""The chapter modules of minillm/ are exactly what the notebooks' `#| export` cells generate."""

from __future__ import annotations

import importlib
import json
import re
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
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and src.startswith("#| export") and old in src:
            cell["source"] = src.replace(old, new, 1)
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
    nb["cells"] = [c for c in nb["cells"] if not "".join(c["source"]).startswith("#| default_exp")]
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="no `#| default_exp NAME` cell"):
        export_notebooks.generate(sandbox / "notebooks")


def test_every_block_names_the_cell_it_comes_from(root):
    """Each `# %% notebook, cell N` comment points at an export cell holding that code."""
    for path, text in export_notebooks.generate().items():
        origins = re.findall(r"^( *)# %% (notebooks/\S+), cell (\d+)(?::.*)?$", text, re.M)
        assert origins, f"{path.name} names no cells"
        for indent, notebook, index in origins:
            cells = json.loads((root / notebook).read_text())["cells"]
            src = "".join(cells[int(index)]["source"])
            assert src.startswith("#| export"), f"{path.name}: cell {index} is not an export cell"
            # the exporter drops `@add_to_class(...)` lines: the method's code follows the comment
            first_code = next(line for line in src.splitlines()[1:]
                              if line.strip() and not line.startswith("@add_to_class("))
            at = re.search(rf"# %% {re.escape(notebook)}, cell {index}(:[^\n]*)?\n", text)
            assert text[at.end():].startswith(indent + first_code), (path.name, index)


def _notebook(cells: list[str]) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                       "source": src} for src in cells],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


@pytest.mark.parametrize("directive", ["#|exports", "#| exprot", "#| hide_input", "#|"])
def test_unknown_directives_are_errors(sandbox, directive):
    nb = _notebook(["#| default_exp toy", f"{directive}\nx = 1"])
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="cell 1: unknown directive"):
        export_notebooks.generate(sandbox / "notebooks")


def test_a_directive_below_the_code_is_an_error(sandbox):
    nb = _notebook(["#| default_exp toy", "x = 1\n#| export\ny = 2"])
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="cell 1, line 2: `#| export` is not at the top"):
        export_notebooks.generate(sandbox / "notebooks")
    nb = _notebook(["#| default_exp toy", "#| export\nx = 1\n  #| export"])
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="not at the top"):
        export_notebooks.generate(sandbox / "notebooks")


SPLIT_CLASS = [
    "#| default_exp toy",
    "#| export\nfrom minillm.support import add_to_class",
    "#| export\nclass Counter:\n    \"\"\"Counts.\"\"\"\n\n    def __init__(self, start: int = 0):\n"
    "        self.count = start\n\n\nSTEP = 2",
    "c = Counter()  # not exported: the reader tries it out",
    "#| export\n@add_to_class(Counter)\ndef step(self) -> int:\n    \"\"\"One step.\"\"\"\n"
    "    self.count += STEP\n    return self.count\n\n\n@add_to_class(Counter)\n@property\n"
    "def doubled(self) -> int:\n    return 2 * self.count",
    "#| export\n@add_to_class(Counter)\n@classmethod\ndef at(cls, start: int) -> \"Counter\":\n"
    "    return cls(start)",
]


def test_a_class_split_across_cells_is_one_class_in_the_module(sandbox):
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(_notebook(SPLIT_CLASS)))
    export_notebooks.main([])
    text = (sandbox / "minillm/toy.py").read_text()
    assert "add_to_class(Counter)" not in text
    namespace: dict = {}
    exec(compile(text, "toy.py", "exec"), namespace)
    counter = namespace["Counter"].at(3)
    assert counter.step() == 5 and counter.doubled == 10
    assert "step" in vars(namespace["Counter"]) and namespace["__all__"] == ["Counter"]
    # the methods sit inside the class body, each under the comment naming its cell
    body = text.split("class Counter:", 1)[1].split("\nSTEP = 2", 1)[0]
    assert "    # %% notebooks/50_toy.ipynb, cell 4\n    def step(self)" in body
    assert "    # %% notebooks/50_toy.ipynb, cell 5\n    @classmethod\n    def at(" in body
    assert "    @property\n    def doubled(self)" in body

    # in the notebook itself, add_to_class attaches the same methods at run time
    from minillm.support import add_to_class

    ns: dict = {"add_to_class": add_to_class}
    for src in SPLIT_CLASS[2:]:
        exec("\n".join(l for l in src.splitlines() if not l.startswith("#|")), ns)
    assert ns["Counter"].at(3).step() == 5 and ns["c"].doubled == 0


def test_add_to_class_needs_an_earlier_class_and_a_cell_of_its_own(sandbox):
    cells = SPLIT_CLASS[:2] + [SPLIT_CLASS[4]]
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(_notebook(cells)))
    with pytest.raises(ValueError, match="no earlier exported cell of this notebook defines"):
        export_notebooks.generate(sandbox / "notebooks")
    mixed = SPLIT_CLASS[:3] + [SPLIT_CLASS[4] + "\n\nTOTAL = 0"]
    (sandbox / "notebooks/50_toy.ipynb").write_text(json.dumps(_notebook(mixed)))
    with pytest.raises(ValueError, match="must hold nothing else"):
        export_notebooks.generate(sandbox / "notebooks")
