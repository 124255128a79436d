"""Checkers for the exercises of chapter 7 (notebooks/07_gpt.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import Mistake, compare, passed

__all__ = [
    "check_query_key_pairs",
    "check_top_k_logits",
    "check_top_p_logits",
    "check_gpt2_parameter_count",
    "check_cached_attention_step",
]


# --- Exercise 7.1: what the KV cache saves ---------------------------------------------

def _triangle(n: int) -> int:
    return n * (n + 1) // 2


def _query_key_pairs(prompt_len: int, n_new: int, cache: bool) -> int:
    # generating n_new tokens takes n_new passes, over P, P + 1, ..., P + n_new - 1 tokens;
    # with a cache, every allowed (query, key) pair of the final sequence is scored once
    if cache:
        return _triangle(prompt_len + n_new - 1)
    return sum(_triangle(t) for t in range(prompt_len, prompt_len + n_new))


def check_query_key_pairs(query_key_pairs: Callable, n_cases: int = 20) -> None:
    """Check ``query_key_pairs(prompt_len, n_new, cache) -> int`` (one head of one layer)."""
    cases = [(2, 3, True), (2, 3, False), (1, 4, True), (5, 2, False), (3, 1, True), (4, 4, False)]
    g = torch.Generator().manual_seed(701)
    while len(cases) < n_cases:
        p, n = (int(torch.randint(1, 60, (1,), generator=g)) for _ in range(2))
        cases.append((p, n, bool(len(cases) % 2)))

    def square(p, n, cache):  # counts the masked pairs too
        if cache:
            return p * p + sum(range(p + 1, p + n))
        return sum(t * t for t in range(p, p + n))

    def fed_back(p, n, cache):  # one pass too many: the last new token is fed back in
        return _query_key_pairs(p, n + 1, cache)

    def no_prompt_pass(p, n, cache):  # with a cache, the prompt counted as one query per step
        return sum(range(p, p + n)) if cache else _query_key_pairs(p, n, cache)

    def no_diagonal(p, n, cache):  # the new query does not see its own key
        return _triangle(p + n - 2) if cache else sum(_triangle(t - 1) for t in range(p, p + n))

    mistakes = [
        Mistake(square, "count only the pairs the causal mask allows: over T tokens, query t sees t + 1 keys, so T(T + 1) / 2 pairs, not T^2."),
        Mistake(fed_back, "one pass too many: n_new tokens take n_new passes, over P, P + 1, ..., P + n_new - 1 tokens (the last new token is never fed back in)."),
        Mistake(no_prompt_pass, "with a cache, the first pass still runs the whole prompt (P queries, P(P + 1) / 2 pairs); only the later passes have a single query."),
        Mistake(no_diagonal, "each query also attends to its own key (the diagonal of the causal mask)."),
        Mistake(lambda p, n, cache: _query_key_pairs(p, n, False), "with cache=True a pass after the first scores one query (the newest token) against all the keys so far, not the whole sequence again."),
        Mistake(lambda p, n, cache: _query_key_pairs(p, n, True), "with cache=False every pass recomputes the scores of the whole sequence so far: sum the triangles T(T + 1) / 2 for T = P, ..., P + n_new - 1."),
    ]
    n = compare("query_key_pairs", query_key_pairs, _query_key_pairs, cases, mistakes, atol=0, rtol=0)
    passed("query_key_pairs", n)


# --- Exercise 7.2: top-k filtering ------------------------------------------------------

def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _logit_cases(seed: int, n_cases: int, with_k: bool) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]), 2 if with_k else 0.8)]
    for i in range(n_cases - 1):
        b, v = 1 + i % 3, 4 + i % 7
        logits = torch.randn(b, v, generator=g, dtype=torch.float64) * 2
        if with_k:
            cases.append((logits, 1 + int(torch.randint(v, (1,), generator=g))))
        else:
            cases.append((logits, float(torch.rand(1, generator=g)) * 0.98 + 0.01))
    return cases


def check_top_k_logits(top_k_logits: Callable, n_cases: int = 20) -> None:
    """Check ``top_k_logits(logits (B, V), k) -> (B, V)`` with all but the k largest of each row at -inf."""
    cases = _logit_cases(702, n_cases, with_k=True)
    mistakes = [
        Mistake(lambda x, k: _top_k(x, min(k + 1, x.shape[-1])), "you kept k + 1 tokens: the k-th largest is at index k - 1 of the sorted row."),
        Mistake(lambda x, k: _top_k(x, max(k - 1, 1)), "you kept k - 1 tokens: keep every logit >= the k-th largest (index k - 1 of the row sorted in decreasing order)."),
        Mistake(lambda x, k: x.masked_fill(x < torch.topk(x, k, dim=-1).values[:, -1:], 0.0), "removed tokens must get -inf, not 0: a logit of 0 still has probability > 0 after the softmax."),
        Mistake(lambda x, k: x.masked_fill(x > torch.topk(x, k, dim=-1, largest=False).values[:, -1:], float("-inf")), "you kept the k *smallest* logits; keep the k largest (sort in decreasing order)."),
        Mistake(lambda x, k: x.masked_fill(x < torch.topk(x.flatten(), k).values[-1], float("-inf")), "the k largest are chosen per row (per sequence of the batch), not over the whole batch."),
    ]
    n = compare("top_k_logits", top_k_logits, _top_k, cases, mistakes)
    passed("top_k_logits", n)


# --- Exercise 7.3: top-p filtering ------------------------------------------------------

def _top_p(logits: torch.Tensor, p: float, strict: bool = False, include_self: bool = False) -> torch.Tensor:
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) if include_self else probs.cumsum(dim=-1) - probs
    drop_sorted = before > p if strict else before >= p
    if not include_self:
        drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def check_top_p_logits(top_p_logits: Callable, n_cases: int = 20) -> None:
    """Check ``top_p_logits(logits (B, V), p) -> (B, V)``: keep the most likely tokens until they hold >= p."""
    cases = _logit_cases(703, n_cases, with_k=False)

    def on_logits(x, p):  # compares cumulated *logits* to p
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        drop_sorted = sorted_x.cumsum(-1) - sorted_x >= p
        drop_sorted[..., 0] = False
        return x.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), float("-inf"))

    def unsorted(x, p):  # cumulates in vocabulary order
        probs = x.softmax(-1)
        drop = probs.cumsum(-1) - probs >= p
        drop[..., 0] = False
        return x.masked_fill(drop, float("-inf"))

    mistakes = [
        Mistake(lambda x, p: _top_p(x, p, include_self=True), "you dropped the token that crosses p: a token is kept when the tokens *before* it hold less than p (so the kept set sums to at least p)."),
        Mistake(lambda x, p: x.masked_fill(_top_p(x, p) == float("-inf"), 0.0), "removed tokens must get -inf, not 0: a logit of 0 still has probability > 0 after the softmax."),
        Mistake(on_logits, "accumulate *probabilities* (softmax of the sorted logits), not the logits themselves."),
        Mistake(unsorted, "sort the tokens by decreasing probability before accumulating: the nucleus is made of the most likely tokens."),
    ]
    n = compare("top_p_logits", top_p_logits, _top_p, cases, mistakes)
    passed("top_p_logits", n)


# --- Exercise 7.4: parameter count ------------------------------------------------------

def _count(vocab_size: int, block_size: int, n_layers: int, d_model: int, tied: bool = True,
           positions: bool = True, biases: bool = True, final_norm: bool = True) -> int:
    d = d_model
    attn = 4 * d * d + (4 * d if biases else 0)
    mlp = 8 * d * d + (5 * d if biases else 0)
    norms = 4 * d
    embeddings = vocab_size * d * (1 if tied else 2) + (block_size * d if positions else 0)
    return embeddings + n_layers * (attn + mlp + norms) + (2 * d if final_norm else 0)


def check_gpt2_parameter_count(gpt2_parameter_count: Callable, n_cases: int = 12) -> None:
    """Check ``gpt2_parameter_count(vocab_size, block_size, n_layers, d_model) -> int``."""
    cases = [(50257, 1024, 12, 768), (10, 4, 1, 8), (65, 64, 4, 128), (50257, 1024, 24, 1024), (50257, 1024, 48, 1600)]
    g = torch.Generator().manual_seed(704)
    while len(cases) < n_cases:
        v, b, l, d = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((5, 500), (4, 300), (1, 8), (1, 40)))
        cases.append((v, b, l, 4 * d))

    mistakes = [
        Mistake(lambda v, b, l, d: _count(v, b, l, d, tied=False), "the output layer is tied to the token embeddings: count the (vocab_size, d_model) matrix once."),
        Mistake(lambda v, b, l, d: _count(v, b, l, d, positions=False), "the learned position embeddings, block_size x d_model, are parameters too."),
        Mistake(lambda v, b, l, d: _count(v, b, l, d, biases=False), "every linear layer of attention and of the feed-forward network has a bias (4 d for attention, 4 d + d for the MLP)."),
        Mistake(lambda v, b, l, d: _count(v, b, l, d, final_norm=False), "a pre-LN GPT has a final LayerNorm (ln_f) after the last block: 2 d_model more."),
        Mistake(lambda v, b, l, d: _count(v, b, l, d) - 4 * d * l, "each block has two LayerNorms, each with a weight and a bias: 4 d_model per block."),
    ]
    n = compare("gpt2_parameter_count", gpt2_parameter_count, _count, cases, mistakes, atol=0, rtol=0)
    passed("gpt2_parameter_count", n)


# --- Exercise 7.5: one attention step with a KV cache -----------------------------------

def _step(q, k, v, k_past, v_past, scale: float | None = None):
    keys, values = torch.cat([k_past, k], dim=-2), torch.cat([v_past, v], dim=-2)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    return (q @ keys.transpose(-2, -1) * scale).softmax(-1) @ values


def check_cached_attention_step(cached_attention_step: Callable, n_cases: int = 15) -> None:
    """Check ``cached_attention_step(q, k, v, k_past, v_past) -> (B, H, 1, d_head)``."""
    g = torch.Generator().manual_seed(705)
    cases = []
    for i in range(n_cases):
        b, h, t, d = 1 + i % 2, 1 + i % 3, 1 + i, 2 + 2 * (i % 4)
        new = [torch.randn(b, h, 1, d, generator=g, dtype=torch.float64) for _ in range(3)]
        past = [torch.randn(b, h, t, d, generator=g, dtype=torch.float64) for _ in range(2)]
        cases.append((*new, *past))

    def no_self(q, k, v, k_past, v_past):
        return (q @ k_past.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ v_past

    def wrong_axis(q, k, v, k_past, v_past):
        keys, values = torch.cat([k_past, k], dim=-2), torch.cat([v_past, v], dim=-2)
        w = (q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-2)
        return w @ values

    mistakes = [
        Mistake(no_self, "the new position must attend to itself too: append k and v to the cached keys and values before attending."),
        Mistake(lambda *a: _step(*a, scale=1.0), "scale the scores by 1 / sqrt(d_head) (the last dimension of q)."),
        Mistake(lambda q, *rest: _step(q, *rest, scale=1 / q.shape[-1]), "the scale is 1 / sqrt(d_head), not 1 / d_head."),
        Mistake(wrong_axis, "the softmax runs over the keys (the last dimension of the scores), not over the queries."),
    ]
    n = compare("cached_attention_step", cached_attention_step, _step, cases, mistakes, atol=1e-9)
    passed("cached_attention_step", n)
