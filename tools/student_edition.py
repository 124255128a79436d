#!/usr/bin/env python3
"""Write the student edition of the book's notebooks: every solution removed, checkers kept.

    python tools/student_edition.py                 # writes student/notebooks/*.ipynb
    python tools/student_edition.py --out DIR       # somewhere else

In each code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` are replaced,
at the same indentation, by nbgrader's stub::

    # YOUR CODE HERE
    raise NotImplementedError()

The markdown cells that open and close the (now empty) solution dropdowns are dropped, and so
are the model answers of the open questions (a markdown cell holding a ```{solution} directive);
the exercise text and the checker cells stay, so a student runs a checker on their own function.
The cells keep their nbgrader metadata, so the same source also works with
``nbgrader generate_assignment``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
SOLUTION_GATE = re.compile(r"```\{solution(-start|-end)?\}")  # a gate, or a model answer


def _source(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def strip_solutions(code: str) -> str:
    """Replace every BEGIN/END SOLUTION region of a code cell by the stub, keeping its indentation."""
    out, inside = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested ### BEGIN SOLUTION")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped == END:
            if not inside:
                raise ValueError("### END SOLUTION without ### BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("### BEGIN SOLUTION without ### END SOLUTION")
    return "\n".join(out)


def student_notebook(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "markdown" and SOLUTION_GATE.search(src):
            continue
        if cell["cell_type"] == "code" and BEGIN in src:
            cell["source"] = strip_solutions(src)
        cells.append(cell)
    nb["cells"] = cells
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "student")
    args = parser.parse_args(argv)
    target = args.out / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        (target / path.name).write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {(target / path.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
