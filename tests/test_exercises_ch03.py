"""Chapter 3's exercise checkers: the reference solutions pass, and each typical wrong answer
gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import pytest
import torch

from minillm.exercises import ExerciseFailed, ch03
from exercise_helpers import _hint


def weights_ok(q, k):
    return torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)


def causal_ok(t_q, t_k):
    return torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)


def masked_ok(q, k, v, mask):
    scores = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def split_ok(x, n_heads):
    B, T, d_model = x.shape
    return x.view(B, T, n_heads, d_model // n_heads).transpose(1, 2)


def mha_ok(x, W_q, W_k, W_v, W_o, n_heads, *, scale=None, dim=-1, split=split_ok, out=True):
    B, T, d_model = x.shape
    q, k, v = split(x @ W_q, n_heads), split(x @ W_k, n_heads), split(x @ W_v, n_heads)
    s = math.sqrt(d_model // n_heads) if scale is None else scale
    o = (torch.softmax(q @ k.transpose(-2, -1) / s, dim=dim) @ v).transpose(1, 2).reshape(B, T, d_model)
    return o @ W_o if out else o


def test_correct_answers_pass(capsys):
    ch03.check_attention_weights(weights_ok)
    ch03.check_causal_mask(causal_ok)
    ch03.check_masked_attention(masked_ok)
    ch03.check_split_heads(split_ok)
    ch03.check_multi_head_attention(mha_ok)
    assert capsys.readouterr().out.count("Correct:") == 5



@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda q, k: torch.softmax(q @ k.T, dim=-1), "not scaled"),
        (lambda q, k: torch.softmax(q @ k.T / q.shape[-1], dim=-1), "you divided by d_k"),
        (lambda q, k: torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=0), "wrong axis"),
        (lambda q, k: weights_ok(q, k).T, "transposed"),
        (lambda q, k: torch.softmax(k @ q.T / math.sqrt(q.shape[-1]), dim=-1), "k @ q.T"),
    ],
)
def test_attention_weights_hints(wrong, expected_hint):
    message = _hint(ch03.check_attention_weights, wrong)
    assert expected_hint in message and "input:" in message and "expected:" in message


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda t_q, t_k: torch.ones(t_q, t_k, dtype=torch.bool).tril(), "top-left"),
        (lambda t_q, t_k: ~causal_ok(t_q, t_k), "swapped"),
        (lambda t_q, t_k: torch.ones(t_q, t_k, dtype=torch.bool).triu(t_k - t_q), "upper triangle"),
        (lambda t_q, t_k: torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q - 1), "own position"),
        (lambda t_q, t_k: causal_ok(t_q, t_k).float(), "torch.bool"),
    ],
)
def test_causal_mask_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch03.check_causal_mask, wrong)


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda q, k, v, m: masked_ok(q, k, v, m.T), "mask is transposed"),
        (lambda q, k, v, m: masked_ok(q, k, v, ~m), "inverted"),
        (lambda q, k, v, m: torch.softmax((q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~m, 0), -1) @ v, "-inf"),
        (lambda q, k, v, m: (torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), -1) * m) @ v, "before* the softmax"),
        (lambda q, k, v, m: torch.softmax((q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~m, float("-inf")), 0) @ v, "wrong axis"),
        (lambda q, k, v, m: torch.softmax((q @ k.T).masked_fill(~m, float("-inf")), -1) @ v, "not scaled"),
    ],
)
def test_masked_attention_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch03.check_masked_attention, wrong)


def test_split_heads_hints():
    def no_transpose(x, h):
        B, T, d = x.shape
        return x.view(B, h, T, d // h)

    def no_swap(x, h):
        B, T, d = x.shape
        return x.view(B, T, h, d // h)

    def interleaved(x, h):
        B, T, d = x.shape
        return x.view(B, T, d // h, h).permute(0, 3, 1, 2)

    assert "mixes positions into heads" in _hint(ch03.check_split_heads, no_transpose)
    message = _hint(ch03.check_split_heads, no_swap)
    assert "transpose(1, 2)" in message and "shape: expected" in message
    assert "interleaved" in _hint(ch03.check_split_heads, interleaved)


def test_multi_head_attention_hints():
    def reshape_only(t, h):
        B, T, d = t.shape
        return t.reshape(B, h, T, d // h)

    check = ch03.check_multi_head_attention
    assert "reshaping (B, T, d_model) straight" in _hint(check, lambda *a: mha_ok(*a, split=reshape_only))
    assert "not 1 / sqrt(d_model)" in _hint(check, lambda *a: mha_ok(*a, scale=math.sqrt(a[0].shape[-1])))
    assert "not scaled" in _hint(check, lambda *a: mha_ok(*a, scale=1.0))
    assert "wrong axis" in _hint(check, lambda *a: mha_ok(*a, dim=-2))
    assert "output projection W_o" in _hint(check, lambda *a: mha_ok(*a, out=False))


def test_stub_is_explained():
    def stub(*args):
        raise NotImplementedError

    for check in (ch03.check_attention_weights, ch03.check_causal_mask, ch03.check_masked_attention,
                  ch03.check_split_heads, ch03.check_multi_head_attention):
        assert "not implemented yet" in _hint(check, stub)
