"""Auto-checkers for the book's exercises.

Each chapter has a module, ``minillm.exercises.chNN``, with one ``check_*`` function
per exercise. A checker calls the learner's function on randomized cases and
compares it with a reference. On a wrong answer it raises :class:`ExerciseFailed`
with what went wrong, the smallest failing input it tried, and a hint: where it
can, it recognises the typical mistake (a transposed matrix, a sum instead of a
mean, a missing minus sign...) and names it.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import torch

__all__ = ["ExerciseFailed", "Mistake", "compare", "passed"]


class ExerciseFailed(AssertionError):
    """A learner's answer to an exercise is wrong; the message says why and how to fix it."""


class Mistake:
    """A typical wrong answer: ``wrong(*args)`` computes it, ``hint`` explains it."""

    def __init__(self, wrong: Callable[..., Any], hint: str):
        self.wrong = wrong
        self.hint = hint


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    try:
        ta = torch.as_tensor(a, dtype=torch.float64)
        tb = torch.as_tensor(b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return _equal(a, b)  # not numbers (a dict, a list of strings...): compare exactly
    return ta.shape == tb.shape and bool(torch.allclose(ta, tb, atol=atol, rtol=rtol))


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _show(x: Any, limit: int = 300) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + " ..."


def compare(
    exercise: str,
    learner: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[tuple],
    mistakes: Iterable[Mistake] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> int:
    """Run ``learner`` and ``reference`` on every case; raise :class:`ExerciseFailed` on the first mismatch.

    Returns the number of cases checked. Cases should be ordered smallest first, so
    the input shown in a failure message is easy to work through by hand.
    """
    mistakes = list(mistakes)
    cases = list(cases)
    n = 0
    for args in cases:
        n += 1
        expected = reference(*_clone(args))
        try:
            got = learner(*_clone(args))
        except NotImplementedError:
            raise ExerciseFailed(f"{exercise}: not implemented yet — replace the `raise NotImplementedError` with your code.") from None
        except Exception as err:  # show the learner their own error, with the input that caused it
            raise ExerciseFailed(
                f"{exercise}: your function raised {type(err).__name__}: {err}\n"
                f"  on input: {_show(args)}"
            ) from err
        if got is None:
            raise ExerciseFailed(f"{exercise}: your function returned None — did you forget `return`?")
        if _close(got, expected, atol, rtol):
            continue
        shape_note = ""
        tg, te = _as_tensor(got), _as_tensor(expected)
        if tg is not None and te is not None and tg.shape != te.shape:
            shape_note = f"\n  shape: expected {tuple(te.shape)}, got {tuple(tg.shape)}"
        # a typical mistake is named only if it also explains the learner's answers on the next cases:
        # on one tiny input, two different mistakes can give the same wrong number
        later = cases[n : n + 2]
        hint = next(
            (m.hint for m in mistakes
             if _matches(m, args, got, atol, rtol) and _explains(m, learner, later, atol, rtol)),
            "compare your result with the expected one on this small input, by hand.",
        )
        raise ExerciseFailed(
            f"{exercise}: wrong answer on case {n}.\n"
            f"  input:    {_show(args)}\n"
            f"  expected: {_show(expected)}\n"
            f"  got:      {_show(got)}{shape_note}\n"
            f"  hint: {hint}"
        )
    return n


def _matches(mistake: Mistake, args: tuple, got: Any, atol: float, rtol: float) -> bool:
    try:
        return _close(got, mistake.wrong(*_clone(args)), atol, rtol)
    except Exception:
        return False


def _explains(mistake: Mistake, learner: Callable[..., Any], cases: list, atol: float, rtol: float) -> bool:
    """Whether the mistake gives the learner's answer on each of ``cases`` too."""
    for args in cases:
        try:
            got = learner(*_clone(args))
        except Exception:
            return False
        if not _matches(mistake, args, got, atol, rtol):
            return False
    return True


def _as_tensor(x: Any):
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        return None


def _clone(args: tuple) -> tuple:
    """Copies of the arguments (tensors, dicts, lists...), so a function that modifies its input cannot fool the checker."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else copy.deepcopy(a) for a in args)


def passed(exercise: str, n_cases: int) -> None:
    print(f"Correct: {exercise} passed all {n_cases} checks.")
