"""Checkers for the exercises of chapter 3 (notebooks/03_attention.ipynb).

The references are PyTorch's own functions where one exists
(``torch.nn.functional.scaled_dot_product_attention``), not the book's code.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import ExerciseFailed, Mistake, compare, passed

__all__ = [
    "check_attention_weights",
    "check_causal_mask",
    "check_masked_attention",
    "check_split_heads",
    "check_multi_head_attention",
]


def _randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


# --- Exercise 3.1: attention weights ------------------------------------------------------

def _attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)


def check_attention_weights(attention_weights: Callable, n_cases: int = 20) -> None:
    """Check ``attention_weights(q, k) -> (T_q, T_k)``: softmax over keys of q k^T / sqrt(d_k)."""
    g = torch.Generator().manual_seed(301)
    cases = []
    for i in range(n_cases):
        t = 2 + i % 4  # square first, so that a transposed answer has the right shape and gets its hint
        t_k = t if i < n_cases // 2 else t + 1 + i % 3
        d_k = 4 * (1 + i % 4)
        cases.append((_randn(g, t, d_k, scale=1.5), _randn(g, t_k, d_k, scale=1.5)))

    def scores(q, k):
        return q @ k.T

    mistakes = [
        Mistake(lambda q, k: torch.softmax(scores(q, k), -1), "the scores are not scaled: divide q k^T by sqrt(d_k), where d_k = q.shape[-1]."),
        Mistake(lambda q, k: torch.softmax(scores(q, k) / q.shape[-1], -1), "you divided by d_k; the scaling is 1 / sqrt(d_k)."),
        Mistake(lambda q, k: torch.softmax(scores(q, k) * math.sqrt(q.shape[-1]), -1), "you multiplied by sqrt(d_k); divide by it."),
        Mistake(lambda q, k: torch.softmax(scores(q, k) / math.sqrt(q.shape[-1]), 0), "the softmax runs over the wrong axis: each *query* (row) distributes its attention over the keys, so use dim=-1 and every row sums to 1."),
        Mistake(lambda q, k: _attention_weights(q, k).T, "the result is transposed: rows are queries and columns are keys, so compute q @ k.T (shape (T_q, T_k))."),
        Mistake(lambda q, k: torch.softmax(k @ q.T / math.sqrt(q.shape[-1]), -1), "you computed k @ q.T: the scores are q @ k.T, one row per query."),
    ]
    n = compare("attention_weights", attention_weights, _attention_weights, cases, mistakes)
    passed("attention_weights", n)


# --- Exercise 3.2: a causal mask for a KV cache -----------------------------------------

def _causal_mask(t_q: int, t_k: int) -> torch.Tensor:
    i = torch.arange(t_q)[:, None] + (t_k - t_q)  # the position of each query among the t_k keys
    return torch.arange(t_k)[None, :] <= i


def check_causal_mask(causal_mask: Callable, n_cases: int = 12) -> None:
    """Check ``causal_mask(t_q, t_k) -> bool (t_q, t_k)``: True where key j is at or before query i,
    the queries being the last t_q of the t_k positions."""
    # square ones first (easy to check by hand; (1, 1) is not first: too small to tell mistakes apart)
    cases = [(2, 2), (3, 3), (1, 1), (4, 4), (1, 3), (2, 4), (2, 3), (3, 5), (1, 2), (4, 7), (3, 4), (5, 9)]
    cases = cases[:max(n_cases, 4)]

    def as_bool(fn):
        return lambda tq, tk: fn(tq, tk).bool()

    mistakes = [
        Mistake(lambda tq, tk: torch.ones(tq, tk).tril().bool(), "the diagonal is aligned to the top-left corner; with t_k > t_q the queries are the *last* t_q positions, so use tril(diagonal=t_k - t_q)."),
        Mistake(lambda tq, tk: _causal_mask(tq, tk).logical_not(), "True and False are swapped: the convention is True = may attend."),
        Mistake(as_bool(lambda tq, tk: torch.ones(tq, tk).triu(tk - tq)), "that is the upper triangle (the future); a query may attend to keys at or *before* its position."),
        Mistake(as_bool(lambda tq, tk: torch.ones(tq, tk).tril(tk - tq - 1)), "a query must be allowed to attend to its own position: keep the diagonal."),
    ]
    n = compare("causal_mask", causal_mask, _causal_mask, cases, mistakes)
    got = causal_mask(2, 3)
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
        raise ExerciseFailed(
            f"causal_mask: the values are right, but the result has dtype {getattr(got, 'dtype', type(got).__name__)}.\n"
            "  hint: return a torch.bool tensor (masks in this book are bool, True = may attend); "
            "a 0/1 float mask would be *added* to the scores by torch's attention."
        )
    passed("causal_mask", n)


# --- Exercise 3.3: masked attention ----------------------------------------------------------

def _mask_with_both(g: torch.Generator, t_q: int, t_k: int) -> torch.Tensor:
    """A random bool mask in which every row and every column holds both a True and a False and,
    if square, that differs from its transpose: so that the typical wrong answers (a transposed
    or inverted mask, a softmax over queries) give finite results that differ from the right one."""
    while True:
        m = torch.rand(t_q, t_k, generator=g) < 0.5
        rows_ok = bool((m.any(1) & ~m.all(1)).all())
        cols_ok = bool((m.any(0) & ~m.all(0)).all())
        if rows_ok and cols_ok and (t_q != t_k or not torch.equal(m, m.T)):
            return m


def _masked_attention(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def check_masked_attention(masked_attention: Callable, n_cases: int = 16) -> None:
    """Check ``masked_attention(q, k, v, mask) -> (T_q, d_v)`` with a bool mask, True = may attend."""
    g = torch.Generator().manual_seed(303)
    cases = []
    for i in range(n_cases):
        t_q = 3 + i % 2
        t_k = t_q if i < n_cases // 2 else t_q + 1 + i % 2  # square first: a transposed mask still runs
        d = 2 + i % 3
        cases.append((_randn(g, t_q, d), _randn(g, t_k, d), _randn(g, t_k, d + 1), _mask_with_both(g, t_q, t_k)))

    def weights_of(q, k):
        return q @ k.T / math.sqrt(q.shape[-1])

    def after_softmax(q, k, v, m):
        return (torch.softmax(weights_of(q, k), -1) * m) @ v

    mistakes = [
        Mistake(lambda q, k, v, m: _masked_attention(q, k, v, m.T), "the mask is transposed: mask[i, j] says whether query i may attend to key j (rows = queries)."),
        Mistake(lambda q, k, v, m: _masked_attention(q, k, v, ~m), "the mask convention is inverted: True = may attend, so fill the scores where the mask is *False*."),
        Mistake(lambda q, k, v, m: torch.softmax(weights_of(q, k).masked_fill(~m, 0.0), -1) @ v, "a masked score set to 0 still gets weight e^0 = 1 before normalising; set it to -inf (float('-inf')) so that its weight is exactly 0."),
        Mistake(after_softmax, "you zeroed the masked weights after the softmax, so the rows no longer sum to 1; mask the scores *before* the softmax."),
        Mistake(lambda q, k, v, m: torch.softmax(weights_of(q, k).masked_fill(~m, float("-inf")), 0) @ v, "the softmax runs over the wrong axis: normalise over the keys, dim=-1."),
        Mistake(lambda q, k, v, m: torch.softmax((q @ k.T).masked_fill(~m, float("-inf")), -1) @ v, "the scores are not scaled: divide q k^T by sqrt(d_k) before masking."),
    ]
    n = compare("masked_attention", masked_attention, _masked_attention, cases, mistakes)
    passed("masked_attention", n)


# --- Exercise 3.4: splitting into heads -----------------------------------------------------

def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, d_model = x.shape
    return x.reshape(B, T, n_heads, d_model // n_heads).permute(0, 2, 1, 3)


def check_split_heads(split_heads: Callable, n_cases: int = 12) -> None:
    """Check ``split_heads(x, n_heads)``: (B, T, d_model) -> (B, n_heads, T, d_head), head h being
    features h * d_head to (h + 1) * d_head."""
    cases = []
    for i in range(n_cases):
        B, n_heads, d_head = 1 + i % 2, 2 + i % 3, 1 + i % 3
        T = n_heads + 1 + i % 2  # T != n_heads, so that mixing up the two axes changes the shape
        d_model = n_heads * d_head
        x = torch.arange(B * T * d_model, dtype=torch.float64).reshape(B, T, d_model)  # easy to read
        cases.append((x, n_heads))

    def no_transpose(x, h):
        B, T, d = x.shape
        return x.reshape(B, h, T, d // h)

    def interleaved(x, h):
        B, T, d = x.shape
        return x.reshape(B, T, d // h, h).permute(0, 3, 1, 2)

    mistakes = [
        Mistake(no_transpose, "reshaping (B, T, d_model) straight to (B, n_heads, T, d_head) mixes positions into heads; reshape to (B, T, n_heads, d_head) first, then swap axes 1 and 2."),
        Mistake(lambda x, h: _split_heads(x, h).transpose(1, 2), "split into (B, T, n_heads, d_head), then transpose(1, 2) to get (B, n_heads, T, d_head)."),
        Mistake(interleaved, "the heads are interleaved: head h must be the *contiguous* features h * d_head ... (h + 1) * d_head, so reshape to (..., n_heads, d_head), not (..., d_head, n_heads)."),
    ]
    n = compare("split_heads", split_heads, _split_heads, cases, mistakes)
    passed("split_heads", n)


# --- Exercise 3.5: multi-head attention from weight matrices ----------------------------------

def _mha(x, W_q, W_k, W_v, W_o, n_heads, *, scale_by=None, softmax_dim=-1, no_transpose=False, skip_out=False):
    B, T, d_model = x.shape
    d_head = d_model // n_heads

    def split(t):
        if no_transpose:
            return t.reshape(B, n_heads, T, d_head)
        return t.reshape(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = split(x @ W_q), split(x @ W_k), split(x @ W_v)
    scale = math.sqrt(d_head) if scale_by is None else scale_by
    w = torch.softmax(q @ k.transpose(-2, -1) / scale, dim=softmax_dim)
    out = (w @ v).transpose(1, 2).reshape(B, T, d_model)
    return out if skip_out else out @ W_o


def _multi_head_attention(x, W_q, W_k, W_v, W_o, n_heads):
    B, T, d_model = x.shape
    split = lambda t: t.reshape(B, T, n_heads, d_model // n_heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(x @ W_q), split(x @ W_k), split(x @ W_v))
    return out.transpose(1, 2).reshape(B, T, d_model) @ W_o


def check_multi_head_attention(multi_head_attention: Callable, n_cases: int = 12) -> None:
    """Check ``multi_head_attention(x, W_q, W_k, W_v, W_o, n_heads) -> (B, T, d_model)``
    (self-attention, no mask, no biases; projections are ``x @ W``)."""
    g = torch.Generator().manual_seed(305)
    cases = []
    for i in range(n_cases):
        B, T, n_heads, d_head = 1 + i % 2, 3 + i % 3, 2 + i % 2, 4 + 2 * (i % 2)
        d_model = n_heads * d_head
        s = 1.5 / math.sqrt(d_model)
        cases.append((_randn(g, B, T, d_model), *(_randn(g, d_model, d_model, scale=s * 2) for _ in range(3)),
                      _randn(g, d_model, d_model, scale=s), n_heads))

    mistakes = [
        Mistake(lambda *a: _mha(*a, no_transpose=True), "the heads were split by reshaping (B, T, d_model) straight to (B, n_heads, T, d_head); reshape to (B, T, n_heads, d_head), then transpose(1, 2) (exercise 3.4)."),
        Mistake(lambda *a: _mha(*a, scale_by=math.sqrt(a[0].shape[-1])), "each head's scores are scaled by 1 / sqrt(d_head), the size of *its* queries and keys, not 1 / sqrt(d_model)."),
        Mistake(lambda *a: _mha(*a, scale_by=1.0), "the scores are not scaled: divide by sqrt(d_head)."),
        Mistake(lambda *a: _mha(*a, softmax_dim=-2), "the softmax runs over the wrong axis: normalise over the keys, dim=-1."),
        Mistake(lambda *a: _mha(*a, skip_out=True), "after concatenating the heads, apply the output projection W_o."),
    ]
    n = compare("multi_head_attention", multi_head_attention, _multi_head_attention, cases, mistakes)
    passed("multi_head_attention", n)
