"""Checkers for the exercises of chapter 4 (notebooks/04_positional_encoding.ipynb).

The references here are written independently of ``minillm.positional``, so that a bug there
cannot make a wrong answer pass. Tolerances accept float32 answers (angles computed in float32
are off by about 1e-6 at the positions used here), so the learner need not think about dtypes.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import Mistake, compare, passed

__all__ = [
    "check_wavelengths",
    "check_sinusoidal",
    "check_rope",
    "check_rope_score",
    "check_shift_matrix",
    "check_best_order_blind_guess",
]

BASE = 10000.0


def _pair_rates(d: int, exponent: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
    """(d/2,) angular frequencies omega_i = BASE**(-2i/d), or with another exponent(i, d)."""
    i = torch.arange(d // 2, dtype=torch.float64)
    e = 2 * i / d if exponent is None else exponent(i, d)
    return BASE ** (-e)


# --- Exercise 4.1: the wavelengths ------------------------------------------------------

def _wavelengths(d_model: int, base: float) -> torch.Tensor:
    i = torch.arange(d_model // 2, dtype=torch.float64)
    return 2 * math.pi * base ** (2 * i / d_model)


def check_wavelengths(wavelengths: Callable, n_cases: int = 12) -> None:
    """Check ``wavelengths(d_model, base) -> (d_model/2,)``: 2 pi base**(2i/d_model) for each pair i."""
    cases = [(4, 10000.0), (4, 100.0), (6, 10000.0), (2, 10000.0)]
    cases += [(2 * (2 + i), [10.0, 500.0, 10000.0][i % 3]) for i in range(n_cases - len(cases))]
    i_of = lambda d: torch.arange(d // 2, dtype=torch.float64)  # noqa: E731
    mistakes = [
        Mistake(lambda d, b: b ** (2 * i_of(d) / d),
                "that is 1 / omega_i, the number of positions per *radian*; a full turn of the circle is 2 pi radians, so multiply by 2 pi."),
        Mistake(lambda d, b: b ** (-2 * i_of(d) / d),
                "you returned the angular frequencies omega_i = base**(-2i/d) (radians per position); a wavelength is 2 pi / omega_i."),
        Mistake(lambda d, b: 2 * math.pi * b ** (-2 * i_of(d) / d),
                "the sign of the exponent is flipped: the slow pairs (large i) have the *long* wavelengths, 2 pi base**(2i/d)."),
        Mistake(lambda d, b: 2 * math.pi * b ** (i_of(d) / d),
                "the exponent is 2i/d_model, with i counting pairs (0 .. d_model/2 - 1), not i/d_model."),
        Mistake(lambda d, b: _wavelengths(d, b).repeat_interleave(2),
                "return one wavelength per *pair*: d_model/2 values, not one per dimension."),
        Mistake(lambda d, b: 2 * math.pi * b ** (torch.arange(d, dtype=torch.float64) / d),
                "return one wavelength per *pair*: d_model/2 values, with exponent 2i/d_model for pair i."),
    ]
    n = compare("wavelengths", wavelengths, _wavelengths, cases, mistakes, atol=1e-9, rtol=1e-6)
    passed("wavelengths", n)


# --- Exercise 4.2: the sinusoidal encoding ----------------------------------------------

def _interleave(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return torch.stack((first, second), dim=-1).flatten(-2)


def _sinusoidal(n_positions: int, d_model: int, rates=None, start: int = 0) -> torch.Tensor:
    pos = torch.arange(start, start + n_positions, dtype=torch.float64)[:, None]
    angles = pos * (_pair_rates(d_model) if rates is None else rates)
    return _interleave(angles.sin(), angles.cos())


def _per_dimension(n: int, d: int) -> torch.Tensor:
    # a loop over every dimension j that uses 2j/d: the sin and cos of a pair get different frequencies
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)
    angles = pos / BASE ** (2 * j / d)
    return torch.where(j.long() % 2 == 0, angles.sin(), angles.cos())


def check_sinusoidal(sinusoidal: Callable, n_cases: int = 12) -> None:
    """Check ``sinusoidal(n_positions, d_model) -> (n_positions, d_model)``, base 10000, interleaved sin/cos."""
    cases = [(3, 2), (3, 4), (5, 6), (4, 8)]
    cases += [(3 + 5 * i, 2 * (2 + 2 * i)) for i in range(n_cases - len(cases))]

    def angles(n, d, rates):
        return torch.arange(n, dtype=torch.float64)[:, None] * rates

    mistakes = [
        Mistake(lambda n, d: _interleave(angles(n, d, _pair_rates(d)).cos(), angles(n, d, _pair_rates(d)).sin()),
                "sine and cosine are swapped: the even columns 2i hold sin, the odd columns 2i+1 hold cos."),
        Mistake(lambda n, d: torch.cat((angles(n, d, _pair_rates(d)).sin(), angles(n, d, _pair_rates(d)).cos()), 1),
                "you put all the sines first and all the cosines after; the paper interleaves them: column 2i = sin, column 2i+1 = cos of the same angle."),
        Mistake(lambda n, d: _sinusoidal(n, d, _pair_rates(d, lambda i, d: i / d)),
                "the exponent is 2i/d_model with i the pair index (0 .. d_model/2 - 1); you used i/d_model."),
        Mistake(lambda n, d: _sinusoidal(n, d, _pair_rates(d, lambda i, d: 4 * i / d)),
                "you used the column index j = 2i in 2j/d_model, which doubles the exponent; use 2i/d_model with i the pair index."),
        Mistake(_per_dimension,
                "each column got its own frequency 10000**(2j/d_model); the sin (column 2i) and the cos (column 2i+1) of a pair must share the angle pos / 10000**(2i/d_model)."),
        Mistake(lambda n, d: _sinusoidal(n, d, 1 / _pair_rates(d)),
                "divide the position by 10000**(2i/d_model); you multiplied by it."),
        Mistake(lambda n, d: _sinusoidal(n, d, start=1),
                "positions start at 0: the first row is (0, 1, 0, 1, ...)."),
        Mistake(lambda n, d: _sinusoidal(n, d).T,
                "the result is transposed: rows are positions, columns are dimensions."),
    ]
    n = compare("sinusoidal", sinusoidal, _sinusoidal, cases, mistakes, atol=1e-5)
    passed("sinusoidal", n)


# --- Exercise 4.3: RoPE by hand ------------------------------------------------------------

def _rotate_pairs(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Turn pair (x[..., 2i], x[..., 2i+1]) by angles[..., i], counter-clockwise."""
    a, b = x[..., 0::2], x[..., 1::2]
    return _interleave(a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos())


def _rope(x: torch.Tensor, offset: int, rates=None, start_shift: int = 0) -> torch.Tensor:
    T, d = x.shape
    pos = torch.arange(offset + start_shift, offset + start_shift + T, dtype=torch.float64)[:, None]
    return _rotate_pairs(x, pos * (_pair_rates(d) if rates is None else rates))


def _rope_halves(x: torch.Tensor, offset: int) -> torch.Tensor:
    T, d = x.shape
    h = d // 2
    angles = torch.arange(offset, offset + T, dtype=torch.float64)[:, None] * _pair_rates(d)
    a, b = x[:, :h], x[:, h:]
    return torch.cat((a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()), dim=1)


def _rope_clockwise(x: torch.Tensor, offset: int) -> torch.Tensor:
    T, d = x.shape
    angles = torch.arange(offset, offset + T, dtype=torch.float64)[:, None] * _pair_rates(d)
    return _rotate_pairs(x, -angles)


def check_rope(rope: Callable, n_cases: int = 12) -> None:
    """Check ``rope(x, offset)`` for x (T, d_head): pair (2i, 2i+1) of row t turned by (offset + t) * 10000**(-2i/d)."""
    g = torch.Generator().manual_seed(403)
    shapes = [(2, 2, 0), (3, 4, 0), (3, 4, 2), (2, 6, 5), (4, 8, 0), (4, 8, 9)]
    shapes += [(2 + i, 2 * (2 + i), 3 * i) for i in range(n_cases - len(shapes))]
    cases = [(torch.randn(T, d, generator=g, dtype=torch.float64), off) for T, d, off in shapes]
    mistakes = [
        Mistake(_rope_clockwise,
                "you turned the pairs the wrong way (by -m theta): the new pair is (x0 cos - x1 sin, x0 sin + x1 cos)."),
        Mistake(_rope_halves,
                "you paired coordinate i with i + d_head/2 (the 'rotate half' layout); this exercise uses the paper's pairs (x[2i], x[2i+1])."),
        Mistake(lambda x, off: _rope(x, 0),
                "row t is the token at position offset + t; you ignored the offset."),
        Mistake(lambda x, off: _rope(x, off, start_shift=1),
                "positions start at offset (row 0 is at position offset), not offset + 1."),
        Mistake(lambda x, off: _rope(x, off, rates=_pair_rates(x.shape[1], lambda i, d: 4 * i / d)),
                "the frequency of pair i is 10000**(-2i/d_head) with i the pair index; you used the coordinate index 2i in the exponent."),
        Mistake(lambda x, off: _rope(x, off, rates=_pair_rates(x.shape[1], lambda i, d: i / d)),
                "the exponent is 2i/d_head with i the pair index, not i/d_head."),
    ]
    n = compare("rope", rope, _rope, cases, mistakes, atol=1e-5)
    passed("rope", n)


# --- Exercise 4.4: the score depends on the offset ------------------------------------

def _rope_score_at(q: torch.Tensor, k: torch.Tensor, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    d = q.shape[-1]
    rq = _rotate_pairs(q, m.double()[:, None] * _pair_rates(d))
    rk = _rotate_pairs(k, n.double()[:, None] * _pair_rates(d))
    return (rq * rk).sum(-1)


def _rope_score(q: torch.Tensor, k: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    # the definition: put the query at some position m and the key at m + delta
    m = torch.full_like(delta, 37)
    return _rope_score_at(q, k, m, m + delta)


def check_rope_score(rope_score: Callable, n_cases: int = 12) -> None:
    """Check ``rope_score(q, k, delta) -> (N,)``: (R_m q) . (R_{m+delta} k), which does not depend on m."""
    g = torch.Generator().manual_seed(404)
    cases = []
    for i in range(n_cases):
        n, d = 2 + i, 2 * (1 + i % 5)
        q = torch.randn(n, d, generator=g, dtype=torch.float64)
        k = torch.randn(n, d, generator=g, dtype=torch.float64)
        cases.append((q, k, torch.randint(-20, 21, (n,), generator=g)))
    zero = lambda delta: torch.zeros_like(delta)  # noqa: E731
    mistakes = [
        Mistake(lambda q, k, dl: _rope_score_at(q, k, zero(dl), -dl),
                "the sign of the offset is flipped: (R_m q) . (R_n k) = q . R_(n-m) k, so with delta = n - m the key turns by +delta (or the query by -delta)."),
        Mistake(lambda q, k, dl: (q * k).sum(-1),
                "that is the plain dot product q . k; RoPE's score turns the key by the offset first: q . R_delta k."),
        Mistake(lambda q, k, dl: _rope_score_at(q, k, zero(dl), 2 * dl),
                "you turned by twice the offset; the query and the key are delta positions apart, so the key turns by delta relative to the query."),
        Mistake(lambda q, k, dl: _rope_score_at(q, k, dl, dl),
                "turning q and k by the same angle changes nothing (rotations preserve dot products); only the key turns, by delta."),
    ]
    n = compare("rope_score", rope_score, _rope_score, cases, mistakes, atol=1e-5)
    passed("rope_score", n)


# --- Exercise 4.5: the shift matrix --------------------------------------------------------

def _shift_matrix(k: int, d_model: int, rates=None) -> torch.Tensor:
    phi = k * (_pair_rates(d_model) if rates is None else rates)
    c, s = phi.cos(), phi.sin()
    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))


def _shift_matrix_halves(k: int, d: int) -> torch.Tensor:
    phi = k * _pair_rates(d)
    c, s = torch.diag(phi.cos()), torch.diag(phi.sin())
    return torch.cat((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 0)


def check_shift_matrix(shift_matrix: Callable, n_cases: int = 10) -> None:
    """Check ``shift_matrix(k, d_model) -> (d_model, d_model)`` with PE[pos + k] = M @ PE[pos]."""
    cases = [(1, 2), (1, 4), (3, 4), (-2, 6), (5, 8)]
    cases += [(7 * i - 10, 2 * (2 + i)) for i in range(n_cases - len(cases))]
    mistakes = [
        Mistake(lambda k, d: _shift_matrix(k, d).T,
                "your matrix shifts by -k (it is the transpose of M_k): sin(a + phi) = sin(a) cos(phi) + cos(a) sin(phi), so row 2i is (cos phi, sin phi) and row 2i+1 is (-sin phi, cos phi)."),
        Mistake(lambda k, d: _shift_matrix(k, d, rates=torch.ones(d // 2, dtype=torch.float64)),
                "every block turned at the frequency of pair 0; pair i turns by k * 10000**(-2i/d_model)."),
        Mistake(lambda k, d: _shift_matrix(1, d),
                "the angle of pair i is k times its frequency, k * 10000**(-2i/d_model); you left out k."),
        Mistake(lambda k, d: _shift_matrix(k, d, rates=_pair_rates(d, lambda i, d: i / d)),
                "the exponent is 2i/d_model with i the pair index, not i/d_model."),
        Mistake(_shift_matrix_halves,
                "the encoding interleaves sin and cos: pair i occupies rows and columns 2i and 2i+1, not i and i + d_model/2."),
    ]
    n = compare("shift_matrix", shift_matrix, _shift_matrix, cases, mistakes, atol=1e-5)
    passed("shift_matrix", n)


# --- Exercise 4.6: the best order-blind guess ------------------------------------------

def _best_order_blind_guess(x: torch.Tensor) -> torch.Tensor:
    one_hot = F.one_hot(x, 10)
    others = one_hot.sum(1, keepdim=True) - one_hot
    best = others.max(-1, keepdim=True).values
    digits = torch.arange(10).expand_as(others)
    return torch.where(others == best, digits, 10).min(-1).values  # the smallest digit among the ties


def check_best_order_blind_guess(best_order_blind_guess: Callable, n_cases: int = 12) -> None:
    """Check ``best_order_blind_guess(x) -> (N, T)``: most frequent digit among the other T - 1 digits, ties to the smaller."""
    g = torch.Generator().manual_seed(406)
    cases = [(torch.tensor([[3, 3, 5]]),), (torch.tensor([[1, 2, 2, 1, 7]]),)]
    for i in range(n_cases - len(cases)):
        cases.append((torch.randint(10 if i % 2 else 4, (2 + i, 3 + i), generator=g),))

    def including_own(x):
        counts = F.one_hot(x, 10).sum(1, keepdim=True).expand(-1, x.shape[1], -1)
        return counts.argmax(-1)

    def ties_to_larger(x):
        return 9 - _best_order_blind_guess(9 - x)

    mistakes = [
        Mistake(including_own,
                "you counted the position's own digit too; the digit to output stands at another position, so count only the other T - 1 digits."),
        Mistake(ties_to_larger, "break ties towards the *smaller* digit (torch.argmax returns the first maximum)."),
        Mistake(lambda x: x, "that copies the input; the target is one of the *other* digits of the sequence."),
    ]
    n = compare("best_order_blind_guess", best_order_blind_guess, _best_order_blind_guess, cases, mistakes)
    passed("best_order_blind_guess", n)
