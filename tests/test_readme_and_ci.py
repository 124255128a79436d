"""The README's quick start is exactly two commands, and CI runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands():
    assert _quick_start_commands() == ["python3 tasks.py book", "python3 tasks.py test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = _quick_start_commands()[1]
    assert re.search(rf"^{re.escape(test_command)}$", ci, re.M), ".ci/run must call the README's test command"


def test_readme_figure_exists():
    for src in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / src).is_file(), src


def test_tasks_help_lists_the_commands():
    out = subprocess.run([sys.executable, str(ROOT / "tasks.py")], capture_output=True, text=True)
    assert out.returncode == 2 and "python3 tasks.py book" in out.stdout and "python3 tasks.py test" in out.stdout


def test_package_metadata_is_colab_safe():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.10"
    deps = {re.split(r"[<>=!~ ]", d, 1)[0]: d for d in meta["dependencies"]}
    assert deps["torch"] == "torch>=2.1", "torch must stay a loose lower bound: Colab's torch is never replaced"
    assert deps["ipywidgets"] == "ipywidgets>=7.7,<9", "Colab ships ipywidgets 7.7"
    for spec in meta["dependencies"]:
        assert "==" not in spec, f"no exact pins in the package: {spec}"


def test_version():
    import minillm

    assert re.fullmatch(r"\d+\.\d+\.\d+", minillm.__version__)
    built = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('minillm'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert built == minillm.__version__
