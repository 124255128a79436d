"""pytest plugin: keep the notebooks that nbval executed, so the book is built from them.

    python -m pytest --nbval-lax -p nbval_record --executed-dir _build/executed notebooks/

nbval runs every code cell of a notebook in one kernel and compares the outputs of the
cells tagged ``nbval-check-output`` with the outputs stored in the notebook. This plugin
collects each cell's fresh outputs as nbval sees them and, when every cell of a notebook
ran (a cell whose stored checked output differs still ran: nbval fails it, but its fresh
output is kept, for ``tasks.py record``), writes the executed notebook to ``--executed-dir``
(with ``timings.json``, the seconds each notebook took). ``tools/cache_executed.py`` then hands those notebooks to
the book build's execution cache, so each notebook is executed once per test run: under
nbval, and the book shows exactly that execution. A notebook with a failing cell is not
written (and an older copy of it is removed). A failing nbval run stops the test command
before the book build, so no failed notebook reaches the book.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

_runs: dict = defaultdict(dict)  # notebook path -> {code cell number: (outputs, passed, s)}
_files: dict = {}  # notebook path -> nbval's collector (holds the notebook as read)


def pytest_addoption(parser):
    parser.addoption("--executed-dir", default=None,
                     help="folder to write the notebooks nbval executed (all cells passed)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not hasattr(item, "cell_num") or not hasattr(item, "test_outputs"):
        return
    path = str(item.parent.fspath)
    _files[path] = item.parent
    outputs = copy.deepcopy(item.test_outputs or [])
    # A cell whose only fault is an output that differs from the stored one still ran: its
    # fresh outputs are kept (``tasks.py record`` stores them after an intended change).
    ran = report.passed or "Cell outputs differ" in str(getattr(call.excinfo, "value", ""))
    _runs[path][item.cell_num] = (outputs, ran, call.duration)


def executed_notebook(collector, cells: dict) -> nbformat.NotebookNode | None:
    """The collector's notebook with fresh outputs, or None if a code cell raised or did not run."""
    nb = copy.deepcopy(collector.nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if len(cells) != len(code) or not all(passed for _, passed, _ in cells.values()):
        return None
    for number, cell in enumerate(code, start=1):
        outputs, _, _ = cells[number - 1]
        cell.outputs = [_as_output(o, number) for o in outputs]
        cell.execution_count = number
    return nb


def _as_output(out: dict, number: int) -> nbformat.NotebookNode:
    kind = out["output_type"]
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out["name"], text=out["text"])
    if kind in ("display_data", "execute_result"):
        extra = {"execution_count": number} if kind == "execute_result" else {}
        return nbformat.v4.new_output(kind, data=out["data"],
                                      metadata=out.get("metadata", {}), **extra)
    return nbformat.v4.new_output("error", ename=out["ename"], evalue=out["evalue"],
                                  traceback=out["traceback"])


def pytest_sessionfinish(session):
    folder = session.config.getoption("executed_dir")
    if not folder:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    timings_path = folder / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for path, cells in _runs.items():
        target = folder / Path(path).name
        nb = executed_notebook(_files[path], cells)
        if nb is None:
            target.unlink(missing_ok=True)
            timings.pop(target.name, None)
            continue
        nbformat.validate(nb)
        nbformat.write(nb, target)
        timings[target.name] = round(sum(s for _, _, s in cells.values()), 1)
    timings_path.write_text(json.dumps(dict(sorted(timings.items())), indent=1) + "\n")
