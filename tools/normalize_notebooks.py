#!/usr/bin/env python3
"""Put every notebook in its stored form: diffable, no stray outputs, nbgrader metadata.

    python tools/normalize_notebooks.py          # rewrite notebooks/*.ipynb in place
    python tools/normalize_notebooks.py --check  # exit 1 if any notebook is not normalized

What it does to each notebook:

* stores every cell's source as a list of lines (nbformat's own layout), so that
  ``git diff`` of a one-line edit shows one changed line;
* removes outputs and execution counts, except the outputs of cells tagged
  ``nbval-check-output``: those are the book's checked outputs, kept (text only)
  so that nbval compares each fresh run against them (``python3 tasks.py record``
  stores them from the last nbval run). Such a cell keeps an execution count of 1:
  nbval treats a cell whose count is null as never run, and refuses one that has
  outputs ("Unrun reference cell has outputs");
* turns nbval's old comment marker ``# NBVAL_CHECK_OUTPUT`` into that tag;
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
CHECK_TAG = "nbval-check-output"
OLD_MARKER = re.compile(r"^# NBVAL_CHECK_OUTPUT[ \t]*\n?")
# What a checked output may hold: small text, nothing a machine renders differently.
MAX_CHECKED_CHARS = 4000


def source(cell: dict) -> str:
    """A cell's source as one string, whichever way it is stored."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def lines(text: str) -> list[str]:
    """nbformat's multi-line layout: every line keeps its newline except the last."""
    return text.splitlines(keepends=True)


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def is_checked(cell: dict) -> bool:
    return cell["cell_type"] == "code" and CHECK_TAG in tags(cell)


def checked_outputs(outputs: list[dict], where: str) -> list[dict]:
    """The stored form of a checked cell's outputs: streams and plain-text results only."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            kept.append({"name": out["name"], "output_type": "stream",
                         "text": lines(source({"source": out["text"]}))})
        elif kind == "execute_result":
            data = out.get("data", {})
            if set(data) - {"text/plain"}:
                raise ValueError(f"{where}: a checked cell may only show text, not {sorted(data)}")
            kept.append({"data": {"text/plain": lines(source({"source": data["text/plain"]}))},
                         "execution_count": None, "metadata": {},
                         "output_type": "execute_result"})
        else:
            raise ValueError(f"{where}: a checked cell may not store a {kind!r} output")
    size = sum(len(source({"source": o.get("text") or o["data"]["text/plain"]})) for o in kept)
    if size > MAX_CHECKED_CHARS:
        raise ValueError(f"{where}: checked output of {size} characters; keep checked outputs "
                         f"under {MAX_CHECKED_CHARS} (check a smaller printout)")
    return kept


def normalize(nb: dict, chapter: str) -> dict:
    nb["metadata"] = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        **{k: v for k, v in nb.get("metadata", {}).items()
           if k not in ("kernelspec", "language_info", "widgets")},
    }
    for i, cell in enumerate(nb["cells"]):
        cell.pop("id", None)  # ids churn between editors; nbformat 4.4 does not need them
        src = source(cell)
        meta = cell.setdefault("metadata", {})
        if cell["cell_type"] == "code" and OLD_MARKER.match(src):
            src = OLD_MARKER.sub("", src, count=1)
            meta["tags"] = sorted(set(tags(cell)) | {CHECK_TAG})
        cell["source"] = lines(src)
        meta.pop("execution", None)
        meta.pop("nbgrader", None)
        if cell["cell_type"] != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        where = f"notebook {chapter}, cell {i}"
        if is_checked(cell):
            cell["outputs"] = checked_outputs(cell.get("outputs", []), where)
            cell["execution_count"] = 1  # nbval compares only cells that were "run"
        else:
            cell["outputs"], cell["execution_count"] = [], None
        if "### BEGIN SOLUTION" in src:
            names = DEF_NAME.findall(src)
            grade_id = f"ch{chapter}-{names[0] if names else 'solution'}"
            meta["nbgrader"] = _nbgrader(grade_id, solution=True)
        else:
            calls = CHECKER_CALL.findall(src)
            if calls:
                meta["nbgrader"] = _nbgrader(f"ch{chapter}-{calls[0]}", solution=False)
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def _nbgrader(grade_id: str, solution: bool) -> dict:
    common = {"grade_id": grade_id, "schema_version": 3, "task": False}
    if solution:
        return {**common, "grade": False, "locked": False, "solution": True}
    return {**common, "grade": True, "locked": True, "points": 1, "solution": False}


def read_joined(path: Path) -> dict:
    """A stored notebook with every source joined into one string (for tools and tests)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = source(cell)
    return nb


def record(nb: dict, executed: dict) -> int:
    """Copy the outputs of the checked cells from an executed copy of the notebook.

    Returns how many cells changed. The two must have the same code cells."""
    mine = [c for c in nb["cells"] if c["cell_type"] == "code"]
    ran = [c for c in executed["cells"] if c["cell_type"] == "code"]
    if [source(c) for c in mine] != [source(c) for c in ran]:
        raise ValueError("the executed copy has other code than the notebook: run nbval again")
    changed = 0
    for cell, fresh in zip(mine, ran):
        if is_checked(cell) and cell.get("outputs") != fresh["outputs"]:
            cell["outputs"] = fresh["outputs"]
            changed += 1
    return changed


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def normalized_text(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return dumps(normalize(nb, path.name[:2]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--record-from", type=Path, metavar="DIR",
                        help="first store the checked cells' outputs from the executed "
                             "notebooks in DIR (what `python3 tasks.py nbval` wrote)")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    bad = []
    for path in paths:
        if args.record_from:
            executed = args.record_from / path.name
            if not executed.exists():
                print(f"{path.name}: no executed copy in {args.record_from}, nothing recorded")
                continue
            nb = json.loads(path.read_text(encoding="utf-8"))
            changed = record(nb, json.loads(executed.read_text(encoding="utf-8")))
            path.write_text(dumps(nb), encoding="utf-8")
            print(f"{path.name}: recorded the outputs of {changed} checked cells")
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
