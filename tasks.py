#!/usr/bin/env python3
"""The book's two commands (and a few smaller ones). Needs only Python 3.10+ and pip.

    python3 tasks.py book     build the whole book, executing every notebook, into _build/html
    python3 tasks.py test     run the whole test suite: unit and oracle tests, package sync,
                              notebook checks; every notebook executed once, under nbval
                              (checked outputs compared); the strict book build from those
                              executed notebooks; a headless-browser check of the pages

Smaller steps, for working on the book:

    python3 tasks.py setup    only create/update the virtual environment (.venv)
    python3 tasks.py unit     only the pytest suite in tests/ (extra arguments go to pytest)
    python3 tasks.py nbval    only execute every notebook under nbval (copies kept in
                              _build/executed, which `test` builds the book from)
    python3 tasks.py record   store the checked cells' outputs from the last nbval run
    python3 tasks.py html     only check the already built pages in a headless browser
    python3 tasks.py export   regenerate minillm/ from the notebooks' `#| export` cells
    python3 tasks.py student  write the student edition (solutions removed) into student/

On first use each command creates `.venv` and installs torch (MINILLM_TORCH, default
torch==2.13.0) and requirements.txt into it; later runs reuse it until requirements.txt
or pyproject.toml change. Data files are downloaded on first use into the cache, unless
MINILLM_DATA_DIR points at a folder that already holds them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MINILLM_VENV", ROOT / ".venv"))
TORCH = os.environ.get("MINILLM_TORCH", "torch==2.13.0")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".minillm-installed"


def log(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def run(*cmd: str | Path, check: bool = True, **kw) -> int:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    rc = subprocess.call([str(c) for c in cmd], cwd=kw.pop("cwd", ROOT), **kw)
    if check and rc != 0:
        sys.exit(rc)
    return rc


def _fingerprint() -> str:
    h = hashlib.sha256(TORCH.encode())
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def setup() -> None:
    """Create .venv and install everything, unless it is already up to date."""
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _fingerprint() and PY.exists():
        return
    start = time.perf_counter()
    if not PY.exists():
        log(f"creating the virtual environment {VENV}")
        run(sys.executable, "-m", "venv", VENV)
    log(f"installing {TORCH} first (a range that it satisfies then installs nothing more)")
    run(PY, "-m", "pip", "install", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", TORCH)
    log("installing requirements.txt (minillm itself, editable, and the book and test tools)")
    run(PY, "-m", "pip", "install", "-r", "requirements.txt")
    STAMP.write_text(_fingerprint())
    print(f"environment ready in {time.perf_counter() - start:.0f} s")


def venv_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("PYTHONHASHSEED", "0")
    # No MPLBACKEND here: a kernel started with MPLBACKEND=Agg draws nothing on plt.show(), and the
    # book would be built without its figures. Headless, matplotlib picks a non-GUI backend by itself.
    env.setdefault("MINILLM_PROGRESS", "0")  # no progress-bar widgets in executed notebooks and the static book
    return env


def book() -> None:
    """Build the book strictly: every notebook executed, any warning or failing cell is an error."""
    setup()
    log("building the book into _build/html (notebooks are executed; unchanged ones come from the cache)")
    start = time.perf_counter()
    shutil.rmtree(ROOT / "_build" / "html", ignore_errors=True)  # no stale pages; the execution cache stays
    env = venv_env()
    # Notebook kernels must use their inline backend, which puts the figures into the pages: with
    # MPLBACKEND=Agg, plt.show() draws nothing and the book has no figures.
    env.pop("MPLBACKEND", None)
    run(BIN / "jupyter-book", "build", ".", "--builder", "html", "-W", "-n", "--keep-going", env=env)
    print(f"book built in {time.perf_counter() - start:.0f} s: open {ROOT / '_build/html/index.html'}")


def unit(*pytest_args: str) -> None:
    setup()
    log("pytest tests/ (unit, oracle, package-sync and notebook checks)")
    run(PY, "-m", "pytest", "-m", "not rendered_book", "--durations=15", *pytest_args,
        env=venv_env())


EXECUTED = ROOT / "_build" / "executed"


def nbval() -> None:
    """Execute every notebook once under nbval; keep the executed copies for the book."""
    setup()
    log("executing every notebook under nbval (checked outputs compared; copies kept in "
        f"{EXECUTED.relative_to(ROOT)})")
    env = venv_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tools"), env.get("PYTHONPATH")]))
    run(PY, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-p", "nbval_record",
        "--executed-dir", EXECUTED, "notebooks/", env=env)


def cache_executed() -> None:
    """Give the notebooks nbval executed to the book build, which then executes none of them."""
    run(PY, "tools/cache_executed.py", EXECUTED, env=venv_env())


def record() -> None:
    """Store the checked cells' outputs from the last nbval run (after an intended change)."""
    setup()
    if not EXECUTED.exists():
        sys.exit("no executed notebooks: run `python3 tasks.py nbval` first")
    run(PY, "tools/normalize_notebooks.py", "--record-from", EXECUTED, env=venv_env())


def find_chromium() -> str:
    for name in (os.environ.get("MINILLM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing Chromium (Debian package) for the rendered-page checks")
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", "chromium", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if shutil.which("chromium"):
            return shutil.which("chromium")
    sys.exit(
        "The rendered-page checks need Chromium or Chrome. Install it (e.g. `apt-get install chromium`, "
        "or your system's package) or set MINILLM_CHROMIUM to its path."
    )


def html() -> None:
    setup()
    if not (ROOT / "_build/html/index.html").exists():
        sys.exit("no built book in _build/html: run `python3 tasks.py book` first")
    env = venv_env()
    env["MINILLM_CHROMIUM"] = find_chromium()
    log("checking every built page in headless Chromium")
    run(PY, "-m", "pytest", "-m", "rendered_book", "tests/test_rendered_book.py", env=env)


def test() -> None:
    start = time.perf_counter()
    setup()
    find_chromium()  # fail early, before the long steps, if no browser can be had
    unit()
    nbval()  # the one execution of every notebook ...
    cache_executed()
    built_after = time.time()
    book()  # ... which the book is built from:
    run(PY, "tools/cache_executed.py", "--none-executed-since", str(built_after), env=venv_env())
    html()
    log(f"all tests passed in {time.perf_counter() - start:.0f} s")


def export() -> None:
    setup()
    run(PY, "tools/export_notebooks.py", env=venv_env())


def student() -> None:
    setup()
    run(PY, "tools/student_edition.py", env=venv_env())


COMMANDS = {
    "student": student, "setup": setup, "book": book, "test": test, "unit": unit,
    "nbval": nbval, "html": html, "export": export, "record": record,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    command, extra = sys.argv[1], sys.argv[2:]
    if extra and command != "unit":
        sys.exit(f"`{command}` takes no arguments (only `unit` passes its arguments to pytest)")
    COMMANDS[command](*extra)
