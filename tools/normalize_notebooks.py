#!/usr/bin/env python3
"""Put every notebook in its stored form: no outputs, a standard kernel, and nbgrader metadata.

    python tools/normalize_notebooks.py          # rewrite notebooks/*.ipynb in place
    python tools/normalize_notebooks.py --check  # exit 1 if any notebook is not normalized

What it does to each notebook:

* removes outputs and execution counts (notebooks are stored without outputs; the
  book build and nbval execute them);
* sets the kernel to ``python3``;
* gives nbgrader's cell metadata to exercise cells, so an instructor can run
  ``nbgrader generate_assignment`` on them: a code cell containing
  ``### BEGIN SOLUTION`` becomes a solution cell, and a code cell that calls a
  checker (``chNN.check_...(``) becomes a locked, graded test cell worth one point.
  Each gets a ``grade_id`` made of the notebook's number and the function name.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
CHECKER_CALL = re.compile(r"\bch\d\d\.(check_\w+)\(")
DEF_NAME = re.compile(r"^\s*(?:def|class)\s+(\w+)", re.M)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def normalize(nb: dict, chapter: str) -> dict:
    nb["metadata"] = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        **{k: v for k, v in nb.get("metadata", {}).items() if k not in ("kernelspec", "language_info", "widgets")},
    }
    for cell in nb["cells"]:
        cell.pop("id", None)  # ids churn between editors; nbformat 4.4 does not need them
        src = _source(cell)
        cell["source"] = src
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)
        meta.pop("nbgrader", None)
        if cell["cell_type"] != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        if "### BEGIN SOLUTION" in src:
            names = DEF_NAME.findall(src)
            meta["nbgrader"] = _nbgrader(f"ch{chapter}-{names[0] if names else 'solution'}", solution=True)
        else:
            calls = CHECKER_CALL.findall(src)
            if calls:
                meta["nbgrader"] = _nbgrader(f"ch{chapter}-{calls[0]}", solution=False)
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def _nbgrader(grade_id: str, solution: bool) -> dict:
    if solution:
        return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": True, "task": False}
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": 1, "schema_version": 3, "solution": False, "task": False}


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def normalized_text(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return dumps(normalize(nb, path.name[:2]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    bad = []
    for path in paths:
        text = normalized_text(path)
        if path.read_text(encoding="utf-8") != text:
            if args.check:
                bad.append(path)
            else:
                path.write_text(text, encoding="utf-8")
                print(f"normalized {path}")
    if bad:
        print("not normalized (run `python tools/normalize_notebooks.py`):", *bad, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
