#!/usr/bin/env python3
"""Execute notebooks in a fresh kernel each and print how long each took.

    python tools/time_notebooks.py            # every notebook
    python tools/time_notebooks.py 01 03      # the notebooks whose names start with these

The budget is 3 minutes per notebook and 15 minutes for the whole book on 2 CPU cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 180


def main(prefixes: list[str]) -> int:
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in prefixes)]
    total, over = 0.0, []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        total += seconds
        flag = "" if seconds <= BUDGET_S else "  OVER BUDGET"
        if flag:
            over.append(path.name)
        print(f"{path.name:<36} {seconds:7.1f} s{flag}", flush=True)
    print(f"{'total':<36} {total:7.1f} s")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
