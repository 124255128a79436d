"""Chapter 1's exercise checkers: the reference solutions pass, and each typical wrong answer
gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import pytest
import torch

from minillm.exercises import ExerciseFailed, ch01
from exercise_helpers import _hint


def ce_ok(p, t):
    return -p[torch.arange(len(t)), t].log().mean()


def trigrams_ok(ids, v):
    i = (ids[:-2] * v + ids[1:-1]) * v + ids[2:]
    return torch.bincount(i, minlength=v**3).view(v, v, v)


def ppl_ok(p, ids):
    return math.exp(-p[ids[:-1], ids[1:]].log().mean().item())


def grad_ok(W, x, y):
    rows = torch.softmax(W[x], -1)
    rows[torch.arange(len(y)), y] -= 1
    return torch.zeros_like(W).index_add_(0, x, rows / len(x))


def test_correct_answers_pass(capsys):
    ch01.check_cross_entropy(ce_ok)
    ch01.check_count_trigrams(trigrams_ok)
    ch01.check_perplexity(ppl_ok)
    ch01.check_bigram_logits_grad(grad_ok)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 4



@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda p, t: p[torch.arange(len(t)), t].log().mean(), "sign is flipped"),
        (lambda p, t: -p[torch.arange(len(t)), t].log().sum(), "divide by the number of targets"),
        (lambda p, t: -p[torch.arange(len(t)), t].log2().mean(), "log base 2"),
        (lambda p, t: -p[:, t].log().mean(), "probs[torch.arange(N), targets]"),
    ],
)
def test_cross_entropy_hints(wrong, expected_hint):
    message = _hint(ch01.check_cross_entropy, wrong)
    assert expected_hint in message and "input:" in message and "expected:" in message


def test_trigram_hints():
    assert "axes are reversed" in _hint(ch01.check_count_trigrams, lambda ids, v: trigrams_ok(ids, v).permute(2, 1, 0))

    def loop_off_by_one(ids, v):
        c = torch.zeros(v, v, v, dtype=torch.long)
        for t in range(len(ids) - 3):  # misses the last trigram
            c[ids[t], ids[t + 1], ids[t + 2]] += 1
        return c

    assert "last trigram is missing" in _hint(ch01.check_count_trigrams, loop_off_by_one)


def test_perplexity_hints():
    assert "perplexity is exp(loss)" in _hint(ch01.check_perplexity, lambda p, ids: -p[ids[:-1], ids[1:]].log().mean().item())
    assert "probs[previous, next]" in _hint(ch01.check_perplexity, lambda p, ids: ppl_ok(p.T, ids))
    assert "2**loss" in _hint(ch01.check_perplexity, lambda p, ids: 2 ** (-p[ids[:-1], ids[1:]].log().mean().item()))


def test_gradient_hints():
    def assigned(W, x, y):
        rows = torch.softmax(W[x], -1)
        rows[torch.arange(len(y)), y] -= 1
        g = torch.zeros_like(W)
        g[x] = rows / len(x)
        return g

    assert "index_add_" in _hint(ch01.check_bigram_logits_grad, assigned)
    assert "sign is flipped" in _hint(ch01.check_bigram_logits_grad, lambda W, x, y: -grad_ok(W, x, y))
    assert "divided by N" in _hint(ch01.check_bigram_logits_grad, lambda W, x, y: grad_ok(W, x, y) * len(x))


def test_unrecognised_wrong_answer_still_shows_the_case():
    message = _hint(ch01.check_cross_entropy, lambda p, t: torch.tensor(0.123))
    assert "wrong answer on case 1" in message and "hint:" in message


def test_stub_and_errors_are_explained():
    def stub(p, t):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch01.check_cross_entropy, stub)
    assert "did you forget `return`" in _hint(ch01.check_cross_entropy, lambda p, t: None)
    message = _hint(ch01.check_cross_entropy, lambda p, t: p[t, t, t])
    assert "your function raised IndexError" in message and "on input" in message


def test_checker_is_not_fooled_by_in_place_edits():
    def cheat(p, t):  # modifies its input so that a shared reference would agree
        p.fill_(1.0)
        return torch.tensor(0.0)

    with pytest.raises(ExerciseFailed):
        ch01.check_cross_entropy(cheat)


def test_a_mistake_is_named_only_if_it_explains_the_later_cases_too():
    """On one tiny input two different mistakes can coincide; the hint must fit the learner's mistake."""
    from minillm.exercises import ExerciseFailed, Mistake, compare

    cases = [(1,), (2,), (5,)]
    reference = lambda n: 3 * n  # noqa: E731
    mistakes = [Mistake(lambda n: n + 1, "HINT-PLUS-ONE"), Mistake(lambda n: n * n + 1, "HINT-SQUARE-PLUS-ONE")]
    # n=1: n+1 and n*n+1 both give 2; only the later cases tell them apart
    with pytest.raises(ExerciseFailed, match="HINT-SQUARE-PLUS-ONE"):
        compare("toy", lambda n: n * n + 1, reference, cases, mistakes)
    with pytest.raises(ExerciseFailed, match="HINT-PLUS-ONE"):
        compare("toy", lambda n: n + 1, reference, cases, mistakes)
    with pytest.raises(ExerciseFailed, match="by hand"):  # wrong, and like neither mistake after case 1
        compare("toy", lambda n: 2 if n == 1 else 0, reference, cases, mistakes)
