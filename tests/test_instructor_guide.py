"""The instructor guide covers every chapter and its exercise index matches the notebooks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import exercise_index  # noqa: E402

GUIDE = (ROOT / "book/instructor_guide.md").read_text(encoding="utf-8")
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", GUIDE, re.M | re.S)
    assert match, f"the instructor guide has no section '## {title}'"
    return match.group(1)


def test_index_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools/exercise_index.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_index_check_catches_a_changed_difficulty(tmp_path, monkeypatch):
    items = exercise_index.exercises()
    changed = [items[0].__class__(**{**items[0].__dict__, "stars": items[0].stars % 3 + 1})] + items[1:]
    assert exercise_index.table(changed) != exercise_index.table(items)
    guide = tmp_path / "guide.md"
    guide.write_text(exercise_index._replace(GUIDE, exercise_index.table(changed)))
    monkeypatch.setattr(exercise_index, "GUIDE", guide)
    assert exercise_index.main(["--check"]) == 1


def test_every_chapter_has_at_least_four_exercises_with_difficulty():
    items = exercise_index.exercises()
    for chapter in CHAPTERS:
        mine = [ex for ex in items if ex.notebook == chapter]
        checked = [ex for ex in mine if not ex.is_open]
        assert len(checked) >= 4, f"{chapter} has {len(checked)} exercises with a checker"
        assert any(ex.is_open for ex in mine), f"{chapter} has no open question"
        assert all(1 <= ex.stars <= 3 for ex in mine)
        assert all(ex.label.startswith(f"ex-{int(chapter[:2])}-") for ex in mine), [ex.label for ex in mine]
    labels = [ex.label for ex in items]
    assert len(labels) == len(set(labels)), "two exercises share a label"
    checkers = [ex.checker for ex in items if not ex.is_open]
    assert len(checkers) == len(set(checkers)), "two exercises share a checker"
    titles = [ex.title.lower() for ex in items]
    assert len(titles) == len(set(titles)), "two exercises share a title (one repeats the other?)"


def test_missing_checker_is_an_error(tmp_path):
    nb = tmp_path / "01_x.ipynb"
    nb.write_text('{"cells": [{"cell_type": "markdown", "source": ["```{exercise-start} \\u2605 T\\n:label: ex-1-t\\n```"]}]}')
    with pytest.raises(ValueError, match="ex-1-t has no checker"):
        exercise_index.exercises(tmp_path)


def test_open_question_needs_its_model_answer(tmp_path):
    question = "```{exercise-start} \\u2605\\u2605 Open question: why?\\n:label: ex-1-why\\n```"
    answer = "```{solution} ex-1-why\\n:class: dropdown\\n\\nBecause.\\n```"
    nb = tmp_path / "01_x.ipynb"
    cells = '{"cell_type": "markdown", "source": ["%s"]}'
    nb.write_text('{"cells": [%s]}' % (cells % question))
    with pytest.raises(ValueError, match="ex-1-why is not followed by its model answer"):
        exercise_index.exercises(tmp_path)
    nb.write_text('{"cells": [%s, %s]}' % (cells % question, cells % answer))
    (found,) = exercise_index.exercises(tmp_path)
    assert found.is_open and found.checker == "" and found.stars == 2
    assert "open question: model answer" in exercise_index.table([found])


def test_syllabus_has_eleven_weeks_and_every_chapter():
    syllabus = _section("An eleven-week syllabus")
    weeks = [int(m) for m in re.findall(r"^\| (\d+) \|", syllabus, re.M)]
    assert weeks == list(range(1, 12))
    for chapter in CHAPTERS:
        assert f"../notebooks/{chapter}>" in syllabus, f"the syllabus does not link {chapter}"


def test_objectives_and_run_times_for_every_chapter():
    objectives = _section("What each chapter asks of students")
    run_times = _section("Run times")
    for chapter in CHAPTERS:
        n = int(chapter[:2])
        assert f"../notebooks/{chapter}>" in objectives, f"no learning objectives for {chapter}"
        assert re.search(rf"chapter {n}: \d+", run_times), f"no measured run time for chapter {n}"
    assert "Colab" in run_times
