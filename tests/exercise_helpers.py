"""Shared by tests/test_exercises_chNN.py: run a checker on a wrong answer and return its message."""

from __future__ import annotations

import pytest

from minillm.exercises import ExerciseFailed


def _hint(check, fn) -> str:
    """The message of the ExerciseFailed that ``check(fn)`` must raise."""
    with pytest.raises(ExerciseFailed) as info:
        check(fn)
    return str(info.value)
