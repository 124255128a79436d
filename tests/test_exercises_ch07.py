"""Chapter 7's exercise checkers: the reference solutions pass, and each typical wrong answer gets
the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import pytest
import torch

from minillm.exercises import ExerciseFailed, ch07
from exercise_helpers import _hint


def pairs_ok(prompt_len, n_new, cache):
    lengths = range(prompt_len, prompt_len + n_new)
    if cache:  # the prompt's triangle, then one query per later pass
        return prompt_len * (prompt_len + 1) // 2 + sum(lengths[1:])
    return sum(t * (t + 1) // 2 for t in lengths)


def top_k_ok(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[:, k - 1 : k]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_ok(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) - probs >= p)
    return logits.masked_fill(drop, float("-inf"))


def count_ok(vocab_size, block_size, n_layers, d_model):
    d = d_model
    return vocab_size * d + block_size * d + n_layers * (12 * d * d + 13 * d) + 2 * d


def step_ok(q, k, v, k_past, v_past):
    keys, values = torch.cat([k_past, k], -2), torch.cat([v_past, v], -2)
    return torch.softmax(q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ values


def test_correct_answers_pass(capsys):
    ch07.check_query_key_pairs(pairs_ok)
    ch07.check_top_k_logits(top_k_ok)
    ch07.check_top_p_logits(top_p_ok)
    ch07.check_gpt2_parameter_count(count_ok)
    ch07.check_cached_attention_step(step_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_library_functions_pass_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.gpt import GPTConfig, top_k_filter, top_p_filter

    ch07.check_top_k_logits(top_k_filter)
    ch07.check_top_p_logits(top_p_filter)
    ch07.check_gpt2_parameter_count(lambda v, b, l, d: GPTConfig(vocab_size=v, block_size=b, n_layers=l, n_heads=1, d_model=d).num_parameters())



def test_query_key_pairs_hints():
    def square(p, n, cache):
        return p * p + sum(range(p + 1, p + n)) if cache else sum(t * t for t in range(p, p + n))

    assert "T(T + 1) / 2 pairs, not T^2" in _hint(ch07.check_query_key_pairs, square)
    assert "one pass too many" in _hint(ch07.check_query_key_pairs, lambda p, n, c: pairs_ok(p, n + 1, c))
    assert "the first pass still runs the whole prompt" in _hint(
        ch07.check_query_key_pairs, lambda p, n, c: sum(range(p, p + n)) if c else pairs_ok(p, n, c))
    assert "a pass after the first scores one query" in _hint(
        ch07.check_query_key_pairs, lambda p, n, c: pairs_ok(p, n, False))
    assert "every pass recomputes" in _hint(ch07.check_query_key_pairs, lambda p, n, c: pairs_ok(p, n, True))
    assert "its own key" in _hint(
        ch07.check_query_key_pairs,
        lambda p, n, c: pairs_ok(p, n, c) - (p + n - 1 if c else sum(range(p, p + n))))


def test_top_k_hints():
    assert "-inf, not 0" in _hint(ch07.check_top_k_logits, lambda x, k: top_k_ok(x, k).nan_to_num(neginf=0.0))
    assert "k + 1 tokens" in _hint(ch07.check_top_k_logits, lambda x, k: top_k_ok(x, min(k + 1, x.shape[-1])))
    assert "*smallest*" in _hint(
        ch07.check_top_k_logits, lambda x, k: x.masked_fill(x > x.sort(-1).values[:, k - 1 : k], float("-inf")))


def test_top_p_hints():
    def drops_crossing(x, p):
        sorted_x, order = x.sort(dim=-1, descending=True)
        probs = sorted_x.softmax(-1)
        drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) >= p)
        return x.masked_fill(drop, float("-inf"))

    def unsorted(x, p):
        probs = x.softmax(-1)
        drop = probs.cumsum(-1) - probs >= p
        drop[..., 0] = False
        return x.masked_fill(drop, float("-inf"))

    assert "crosses p" in _hint(ch07.check_top_p_logits, drops_crossing)
    assert "sort the tokens" in _hint(ch07.check_top_p_logits, unsorted)


def test_parameter_count_hints():
    assert "count the (vocab_size, d_model) matrix once" in _hint(
        ch07.check_gpt2_parameter_count, lambda v, b, l, d: count_ok(v, b, l, d) + v * d)
    assert "position embeddings" in _hint(ch07.check_gpt2_parameter_count, lambda v, b, l, d: count_ok(v, b, l, d) - b * d)
    assert "ln_f" in _hint(ch07.check_gpt2_parameter_count, lambda v, b, l, d: count_ok(v, b, l, d) - 2 * d)


def test_kv_step_hints():
    def no_self(q, k, v, k_past, v_past):
        return torch.softmax(q @ k_past.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v_past

    assert "attend to itself" in _hint(ch07.check_cached_attention_step, no_self)
    assert "1 / sqrt(d_head)" in _hint(
        ch07.check_cached_attention_step,
        lambda q, k, v, kp, vp: torch.softmax(q @ torch.cat([kp, k], -2).transpose(-2, -1), -1) @ torch.cat([vp, v], -2))


def test_stub_and_errors_are_explained():
    def stub(*args):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch07.check_top_p_logits, stub)
    assert "did you forget `return`" in _hint(ch07.check_cached_attention_step, lambda *a: None)
