"""minillm installs as a package: from the source folder and from a git URL, with every module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _modules(target: Path) -> set[str]:
    return {p.relative_to(target).as_posix() for p in (target / "minillm").rglob("*.py")}


def _expected() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "minillm").rglob("*.py")}


def _pip_install(source: str, target: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), source],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_install_from_source_folder(tmp_path):
    _pip_install(str(ROOT), tmp_path / "site")
    assert _modules(tmp_path / "site") == _expected()
    out = subprocess.run([sys.executable, "-c", "import minillm, minillm.bigram, minillm.exercises.ch01; print(minillm.__version__)"],
                         cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"), "PATH": ""}, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == __import__("minillm").__version__, out.stderr


def test_install_from_git_url(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.fail("the repository has no commit to install from")
    _pip_install(f"git+file://{ROOT}", tmp_path / "site")
    committed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "minillm/*.py", "minillm/**/*.py"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert _modules(tmp_path / "site") == set(committed)
