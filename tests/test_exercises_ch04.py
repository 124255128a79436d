"""Chapter 4's exercise checkers: the reference solutions pass, and each typical wrong answer
gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minillm.exercises import ExerciseFailed, ch04
from exercise_helpers import _hint

# --- the notebook's solutions, written out again -------------------------------------------


def wavelengths_ok(d_model, base):
    i = torch.arange(d_model // 2, dtype=torch.float64)
    return 2 * math.pi * base ** (2 * i / d_model)


def sinusoidal_ok(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float64)
    angles = pos / 10000 ** (2 * i / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = angles.sin()
    pe[:, 1::2] = angles.cos()
    return pe


def _angles(T, d, offset, exponent=lambda i, d: 2 * i / d, start=0):
    i = torch.arange(d // 2, dtype=torch.float64)
    return torch.arange(offset + start, offset + start + T, dtype=torch.float64)[:, None] * 10000 ** (-exponent(i, d))


def rope_ok(x, offset, angle=None):
    T, d = x.shape
    angle = _angles(T, d, offset) if angle is None else angle
    even, odd = x[:, 0::2], x[:, 1::2]
    out = torch.empty_like(x)
    out[:, 0::2] = even * angle.cos() - odd * angle.sin()
    out[:, 1::2] = even * angle.sin() + odd * angle.cos()
    return out


def rope_score_ok(q, k, delta, sign=1):
    d = q.shape[-1]
    theta = 10000 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = sign * delta.double()[:, None] * theta
    k_even, k_odd = k[:, 0::2], k[:, 1::2]
    rk_even = k_even * angle.cos() - k_odd * angle.sin()
    rk_odd = k_even * angle.sin() + k_odd * angle.cos()
    return (q[:, 0::2] * rk_even + q[:, 1::2] * rk_odd).sum(-1)


def shift_matrix_ok(k, d_model, transpose=False, exponent=lambda i, d: 2 * i / d):
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i in range(d_model // 2):
        phi = k * 10000 ** (-exponent(i, d_model))
        c, s = math.cos(phi), math.sin(phi)
        M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = c, s
        M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -s, c
    return M.T if transpose else M


def guess_ok(x):
    one_hot = F.one_hot(x, 10)
    return (one_hot.sum(1, keepdim=True) - one_hot).argmax(-1)


def test_correct_answers_pass(capsys):
    ch04.check_wavelengths(wavelengths_ok)
    ch04.check_sinusoidal(sinusoidal_ok)
    ch04.check_rope(rope_ok)
    ch04.check_rope_score(rope_score_ok)
    ch04.check_shift_matrix(shift_matrix_ok)
    ch04.check_best_order_blind_guess(guess_ok)
    assert capsys.readouterr().out.count("Correct:") == 6


def test_the_library_passes_its_own_exercises(capsys):
    """minillm.positional, written independently of the checkers, agrees with them."""
    from minillm.positional import RotaryEmbedding, sinusoidal_encoding, sinusoidal_shift_matrix

    ch04.check_sinusoidal(lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64))
    ch04.check_shift_matrix(sinusoidal_shift_matrix)

    def rope_lib(x, offset):
        rope = RotaryEmbedding(x.shape[1], max_positions=offset + x.shape[0])
        return rope(x, offset=offset)

    ch04.check_rope(rope_lib)
    assert capsys.readouterr().out.count("Correct:") == 3



@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda d, b: b ** (2 * torch.arange(d // 2, dtype=torch.float64) / d), "multiply by 2 pi"),
        (lambda d, b: b ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d), "angular frequencies"),
        (lambda d, b: 2 * math.pi * b ** (torch.arange(d // 2, dtype=torch.float64) / d), "not i/d_model"),
        (lambda d, b: 2 * math.pi * b ** (torch.arange(d, dtype=torch.float64) / d), "one wavelength per *pair*"),
    ],
)
def test_wavelength_hints(wrong, expected_hint):
    message = _hint(ch04.check_wavelengths, wrong)
    assert expected_hint in message and "input:" in message and "expected:" in message


def _blog_version(n, d):
    """The loop over dimensions that circulates in blog posts: each column its own frequency."""
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for j in range(0, d, 2):
            pe[pos, j] = math.sin(pos / 10000 ** ((2 * j) / d))
            pe[pos, j + 1] = math.cos(pos / 10000 ** ((2 * (j + 1)) / d))
    return pe


def _pair_index_exponent(n, d):
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d // 2):
            pe[pos, 2 * i] = math.sin(pos / 10000 ** (i / d))
            pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (i / d))
    return pe


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda n, d: sinusoidal_ok(n, d)[:, torch.arange(d) ^ 1], "sine and cosine are swapped"),
        (lambda n, d: torch.cat((sinusoidal_ok(n, d)[:, 0::2], sinusoidal_ok(n, d)[:, 1::2]), 1), "all the sines first"),
        (_pair_index_exponent, "you used i/d_model"),
        (_blog_version, "must share the angle"),
        (lambda n, d: torch.cat((torch.zeros(1, d, dtype=torch.float64), sinusoidal_ok(n + 1, d)[2:]), 0) if n > 1 else sinusoidal_ok(n, d), "hint:"),
        (lambda n, d: sinusoidal_ok(n + 1, d)[1:], "positions start at 0"),
        (lambda n, d: sinusoidal_ok(n, d).T.contiguous(), "transposed"),
    ],
)
def test_sinusoidal_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch04.check_sinusoidal, wrong)


def test_sinusoidal_multiplied_hint():
    def multiplied(n, d):
        pos = torch.arange(n, dtype=torch.float64)[:, None]
        angles = pos * 10000 ** (2 * torch.arange(d // 2, dtype=torch.float64) / d)
        return torch.stack((angles.sin(), angles.cos()), -1).reshape(n, d)

    assert "you multiplied" in _hint(ch04.check_sinusoidal, multiplied)


def test_rope_hints():
    def clockwise(x, offset):
        return rope_ok(x, offset, angle=-_angles(*x.shape, offset))

    def halves(x, offset):
        T, d = x.shape
        a, b, ang = x[:, : d // 2], x[:, d // 2 :], _angles(T, d, offset)
        return torch.cat((a * ang.cos() - b * ang.sin(), a * ang.sin() + b * ang.cos()), 1)

    assert "wrong way" in _hint(ch04.check_rope, clockwise)
    assert "rotate half" in _hint(ch04.check_rope, halves)
    assert "ignored the offset" in _hint(ch04.check_rope, lambda x, off: rope_ok(x, 0))
    assert "not offset + 1" in _hint(ch04.check_rope, lambda x, off: rope_ok(x, off, _angles(*x.shape, off, start=1)))
    assert "coordinate index 2i" in _hint(ch04.check_rope, lambda x, off: rope_ok(x, off, _angles(*x.shape, off, lambda i, d: 4 * i / d)))
    assert "not i/d_head" in _hint(ch04.check_rope, lambda x, off: rope_ok(x, off, _angles(*x.shape, off, lambda i, d: i / d)))


def test_rope_score_hints():
    assert "sign of the offset is flipped" in _hint(ch04.check_rope_score, lambda q, k, dl: rope_score_ok(q, k, dl, sign=-1))
    assert "plain dot product" in _hint(ch04.check_rope_score, lambda q, k, dl: (q * k).sum(-1))
    assert "twice the offset" in _hint(ch04.check_rope_score, lambda q, k, dl: rope_score_ok(q, k, dl, sign=2))

    def query_turned(q, k, dl):  # turning the query by +delta is the same sign error
        return rope_score_ok(k, q, dl)

    assert "sign of the offset is flipped" in _hint(ch04.check_rope_score, query_turned)


def test_shift_matrix_hints():
    assert "transpose of M_k" in _hint(ch04.check_shift_matrix, lambda k, d: shift_matrix_ok(k, d, transpose=True))
    assert "you left out k" in _hint(ch04.check_shift_matrix, lambda k, d: shift_matrix_ok(1, d))
    assert "not i/d_model" in _hint(ch04.check_shift_matrix, lambda k, d: shift_matrix_ok(k, d, exponent=lambda i, d: i / d))
    assert "frequency of pair 0" in _hint(ch04.check_shift_matrix, lambda k, d: shift_matrix_ok(k, d, exponent=lambda i, d: 0))

    def halves(k, d):
        h = d // 2
        phi = k * 10000 ** (-2 * torch.arange(h, dtype=torch.float64) / d)
        M = torch.zeros(d, d, dtype=torch.float64)
        idx = torch.arange(h)
        M[idx, idx], M[idx, idx + h], M[idx + h, idx], M[idx + h, idx + h] = phi.cos(), phi.sin(), -phi.sin(), phi.cos()
        return M

    assert "not i and i + d_model/2" in _hint(ch04.check_shift_matrix, halves)


def test_best_order_blind_guess_hints():
    def including_own(x):
        return F.one_hot(x, 10).sum(1, keepdim=True).expand(-1, x.shape[1], -1).argmax(-1)

    def ties_to_larger(x):
        one_hot = F.one_hot(x, 10)
        others = (one_hot.sum(1, keepdim=True) - one_hot).flip(-1)
        return 9 - others.argmax(-1)

    assert "count only the other T - 1" in _hint(ch04.check_best_order_blind_guess, including_own)
    assert "towards the *smaller* digit" in _hint(ch04.check_best_order_blind_guess, ties_to_larger)
    assert "copies the input" in _hint(ch04.check_best_order_blind_guess, lambda x: x.clone())


def test_stub_is_explained():
    def stub(*args):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch04.check_rope, stub)


def test_float32_answers_are_accepted(capsys):
    ch04.check_sinusoidal(lambda n, d: sinusoidal_ok(n, d).float())
    ch04.check_wavelengths(lambda d, b: wavelengths_ok(d, b).float())
    ch04.check_shift_matrix(lambda k, d: shift_matrix_ok(k, d).float())
    ch04.check_rope(lambda x, off: rope_ok(x.float(), off, _angles(*x.shape, off).float()))
    assert capsys.readouterr().out.count("Correct:") == 4
