"""Checkers for the exercises of chapter 10 (notebooks/10_modern_llms.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import Mistake, compare, passed

__all__ = [
    "check_swiglu",
    "check_repeat_kv",
    "check_max_context",
    "check_rope_at",
]


# --- Exercise 10.1: SwiGLU ---------------------------------------------------------------

def _swiglu(x, w_gate, w_up, w_down, act=F.silu):
    return (act(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def check_swiglu(swiglu: Callable, n_cases: int = 12) -> None:
    """Check ``swiglu(x (..., d), w_gate (f, d), w_up (f, d), w_down (d, f)) -> (..., d)``."""
    g = torch.Generator().manual_seed(1001)
    cases = []
    for i in range(n_cases):
        d, f = 2 + i % 3, 3 + i % 4
        shape = (d,) if i == 0 else (1 + i % 2, 1 + i % 3, d)
        x = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
        ws = [torch.randn(f, d, generator=g, dtype=torch.float64) for _ in range(2)]
        cases.append((x, *ws, torch.randn(d, f, generator=g, dtype=torch.float64)))

    mistakes = [
        Mistake(lambda x, g_, u, d: _swiglu(x, u, g_, d), "the activation goes on the *gate* projection, silu(x @ w_gate.T), which then multiplies the up projection x @ w_up.T."),
        Mistake(lambda x, g_, u, d: _swiglu(x, g_, u, d, act=torch.sigmoid), "SwiGLU's gate is SiLU, z * sigmoid(z), not the sigmoid alone (that would be the original GLU)."),
        Mistake(lambda x, g_, u, d: _swiglu(x, g_, u, d, act=F.gelu), "that is GEGLU: SwiGLU's gate is SiLU (swish), z * sigmoid(z)."),
        Mistake(lambda x, g_, u, d: _swiglu(x, g_, u, d, act=lambda z: z), "the gate projection goes through SiLU before the product; without it the unit is bilinear."),
        Mistake(lambda x, g_, u, d: (F.silu(x @ g_.T) + x @ u.T) @ d.T, "the gate and the up projection are *multiplied* elementwise, not added."),
        Mistake(lambda x, g_, u, d: F.silu((x @ g_.T) * (x @ u.T)) @ d.T, "apply SiLU to the gate projection alone, then multiply by the up projection."),
    ]
    n = compare("swiglu", swiglu, _swiglu, cases, mistakes, atol=1e-9)
    passed("swiglu", n)


# --- Exercise 10.2: sharing key/value heads ----------------------------------------------

def _repeat_kv(k: torch.Tensor, n_rep: int) -> torch.Tensor:
    return k.repeat_interleave(n_rep, dim=1)


def check_repeat_kv(repeat_kv: Callable, n_cases: int = 12) -> None:
    """Check ``repeat_kv(k (B, n_kv, T, d_head), n_rep) -> (B, n_kv * n_rep, T, d_head)``."""
    g = torch.Generator().manual_seed(1002)
    cases = [(torch.arange(2.0).view(1, 2, 1, 1), 2)]
    for i in range(n_cases - 1):
        b, kv, t, d, rep = 1 + i % 2, 2 + i % 3, 1 + i % 4, 2 + i % 3, 2 + i % 3
        cases.append((torch.randn(b, kv, t, d, generator=g, dtype=torch.float64), rep))

    mistakes = [
        Mistake(lambda k, r: k.repeat(1, r, 1, 1), "query head h belongs to the group of key/value head h // n_rep: each head is repeated n_rep times in place (0, 0, 1, 1, ...), not the whole stack tiled (0, 1, 0, 1, ...)."),
        Mistake(lambda k, r: k.repeat_interleave(r, dim=2), "repeat the heads (dimension 1), not the positions (dimension 2)."),
        Mistake(lambda k, r: k.repeat_interleave(r, dim=0), "repeat the heads (dimension 1), not the batch (dimension 0)."),
    ]
    n = compare("repeat_kv", repeat_kv, _repeat_kv, cases, mistakes, atol=0, rtol=0)
    passed("repeat_kv", n)


# --- Exercise 10.3: how long a context fits ----------------------------------------------

def _max_context(memory_bytes, n_layers, n_kv_heads, d_head, bytes_per_value, batch_size=1,
                 factor=2, round_up=False):
    per_token = factor * n_layers * n_kv_heads * d_head * bytes_per_value * batch_size
    return -(-memory_bytes // per_token) if round_up else memory_bytes // per_token


def check_max_context(max_context: Callable, n_cases: int = 14) -> None:
    """Check ``max_context(memory_bytes, n_layers, n_kv_heads, d_head, bytes_per_value,
    batch_size) -> int``, the most tokens per sequence whose KV cache fits."""
    cases = [(1000, 1, 1, 2, 2, 1), (4 * 2**30, 16, 8, 64, 2, 1), (8 * 2**30, 28, 8, 128, 2, 4),
             (10**9, 30, 3, 64, 2, 8)]
    g = torch.Generator().manual_seed(1003)
    while len(cases) < n_cases:
        values = [int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in
                  ((10**5, 10**9), (1, 40), (1, 9), (8, 129), (1, 5), (1, 9))]
        cases.append(tuple(values))

    mistakes = [
        Mistake(lambda *a: _max_context(*a, factor=1), "the cache holds keys *and* values: 2 numbers per layer, key/value head and coordinate."),
        Mistake(lambda m, l, kv, d, b, bs: _max_context(m, l, kv, d, b, 1), "every sequence of the batch has its own cache: multiply by batch_size."),
        Mistake(lambda *a: _max_context(*a, round_up=True), "round down: a context one token longer would not fit."),
        Mistake(lambda m, l, kv, d, b, bs: m / (2 * l * kv * d * b * bs), "return a whole number of tokens (use //)."),
    ]
    n = compare("max_context", max_context, _max_context, cases, mistakes, atol=0, rtol=0)
    passed("max_context", n)


# --- Exercise 10.4: rotary embedding at an offset ----------------------------------------

def _rope_at(x, offset, base=10000.0, interleaved=False, pair_exponent=2, sign=1.0):
    d, t = x.shape[-1], x.shape[-2]
    inv = base ** (-pair_exponent * torch.arange(d // 2, dtype=torch.float64) / d)
    angles = torch.arange(offset, offset + t, dtype=torch.float64)[:, None] * inv  # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), sign * angles.sin().to(x.dtype)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


def check_rope_at(rope_at: Callable, n_cases: int = 12) -> None:
    """Check ``rope_at(x (..., T, d_head), offset, base) -> same shape``: the rows of x
    rotated as positions offset .. offset + T - 1, pairs (i, i + d_head/2)."""
    g = torch.Generator().manual_seed(1004)
    cases = []
    for i in range(n_cases):
        d, t = 2 * (1 + i % 4), 1 + i % 3
        shape = (t, d) if i < 2 else (1 + i % 2, 1 + i % 3, t, d)
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        cases.append((x, 3 + 2 * i, [10000.0, 100.0, 500000.0][i % 3]))

    mistakes = [
        Mistake(lambda x, o, b: _rope_at(x, 0, b), "the rows sit at positions offset, offset + 1, ...: with a KV cache, the new token's position is the number of tokens already cached, not 0."),
        Mistake(lambda x, o, b: _rope_at(x, o, b, interleaved=True), "that is the RoFormer pairing (0, 1), (2, 3), ...; Hugging Face's Llama rotates the halves: pairs (i, i + d_head/2)."),
        Mistake(lambda x, o, b: _rope_at(x, o, b, pair_exponent=1), "pair i turns by base ** (-2i / d_head) radians per position (i = 0 .. d_head/2 - 1), not base ** (-i / d_head)."),
        Mistake(lambda x, o, b: _rope_at(x, o, b, sign=-1.0), "the rotation goes the other way: (a, b) -> (a cos - b sin, a sin + b cos)."),
        Mistake(lambda x, o, b: _rope_at(x, o + 1, b), "positions count from offset itself: the first row is at position offset, not offset + 1."),
    ]
    n = compare("rope_at", rope_at, _rope_at, cases, mistakes, atol=1e-9)
    passed("rope_at", n)
