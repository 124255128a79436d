#!/usr/bin/env python3
"""Hand the notebooks that nbval executed to the book build's execution cache.

    python tools/cache_executed.py [EXECUTED_DIR]     # default: _build/executed

The book build (``jupyter-book build``, ``execute_notebooks: cache``) looks each notebook
up in ``_build/.jupyter_cache`` by a hash of its code cells and executes only those it
does not find. After ``tools/nbval_record.py`` has written the notebooks nbval executed,
this script stores them in that cache, so the build takes nbval's outputs and executes
nothing: one execution per notebook feeds both the tests and the book.

A notebook whose code differs from the executed copy (edited since) is not cached; the
build then executes it itself. Prints what it cached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"


def cache_executed(executed_dir: Path, cache_dir: Path = CACHE) -> list[str]:
    """Store every executed notebook whose source is unchanged; return their names."""
    cache = get_cache(str(cache_dir))
    timings_path = executed_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    cached = []
    for path in sorted(executed_dir.glob("*.ipynb")):
        source = ROOT / "notebooks" / path.name
        if not source.exists():
            continue
        executed = nbformat.read(path, as_version=4)
        stored = nbformat.read(source, as_version=4)
        if cache.create_hashed_notebook(executed)[1] != cache.create_hashed_notebook(stored)[1]:
            print(f"{path.name}: edited since nbval executed it; the build will execute it")
            continue
        bundle = CacheBundleIn(executed, str(source),
                               data={"execution_seconds": timings.get(path.name)})
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
        cached.append(path.name)
    return cached


def executed_since(since: float, cache_dir: Path = CACHE) -> list[str]:
    """Notebooks whose cached execution is newer than ``since`` (a time.time() value):
    those the book build executed itself."""
    cache = get_cache(str(cache_dir))
    newer = []
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        try:
            record = cache.match_cache_notebook(nbformat.read(source, as_version=4))
        except KeyError:
            newer.append(f"{source.name} (not in the cache)")
            continue
        if record.created.timestamp() > since:
            newer.append(source.name)
    return newer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("executed_dir", nargs="?", type=Path, default=ROOT / "_build/executed")
    parser.add_argument("--none-executed-since", type=float, metavar="TIME",
                        help="instead, check that the book build executed no notebook after "
                             "TIME (seconds since the epoch); exit 1 naming any it did")
    args = parser.parse_args(argv)
    if args.none_executed_since is not None:
        again = executed_since(args.none_executed_since)
        if again:
            print("the book build executed these notebooks again:", ", ".join(again))
            return 1
        print("the book build executed no notebook: it shows nbval's execution")
        return 0
    cached = cache_executed(args.executed_dir)
    print(f"cached {len(cached)} executed notebooks for the book build: {', '.join(cached)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
