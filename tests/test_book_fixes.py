"""The page shows the code without the tools' machinery (book/_ext/book_fixes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "book" / "_ext"))

import book_fixes  # noqa: E402


def test_directives_and_solution_delimiters_are_stripped():
    code = (
        "#| export\n"
        "def f(x: int) -> int:\n"
        "    ### BEGIN SOLUTION\n"
        "    y = x + 1  # a comment with #| inside stays\n"
        "    return y\n"
        "    ### END SOLUTION\n"
    )
    assert book_fixes.strip_machinery(code) == (
        "def f(x: int) -> int:\n    y = x + 1  # a comment with #| inside stays\n    return y")
    assert book_fixes.strip_machinery("#| default_exp gpt") == ""
    assert book_fixes.strip_machinery("# NBVAL_CHECK_OUTPUT\nprint(1)") == "print(1)"
    ordinary = "x = 1\n\n# ### not a delimiter\nprint(x)"
    assert book_fixes.strip_machinery(ordinary) == ordinary
