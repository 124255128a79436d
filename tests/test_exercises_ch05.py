"""Chapter 5's exercise checkers: the reference solutions pass, and each typical wrong answer
gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minillm.exercises import ExerciseFailed, ch05
from exercise_helpers import _hint


# Correct answers, written differently from the checkers' references where possible.
def layer_norm_ok(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm_ok(x, w, eps):
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def batch_norm_ok(x, eps):
    B, T, C = x.shape
    return F.batch_norm(x.reshape(B * T, C), None, None, training=True, eps=eps).reshape(B, T, C)


def pre_ln_ok(x, attn, ffn, norm1, norm2):
    x = x + attn(norm1(x))
    return x + ffn(norm2(x))


def backward_ok(x, g, eps):
    x = x.detach().clone().requires_grad_(True)
    F.layer_norm(x, (x.shape[-1],), eps=eps).backward(g)
    return x.grad


def test_correct_answers_pass(capsys):
    ch05.check_layer_norm(layer_norm_ok)
    ch05.check_rms_norm(rms_norm_ok)
    ch05.check_batch_norm_train(batch_norm_ok)
    ch05.check_pre_ln_block(pre_ln_ok)
    ch05.check_layer_norm_backward(backward_ok)
    assert capsys.readouterr().out.count("Correct:") == 5



def _ln(x, w, b, eps, dim=-1, unbiased=False, eps_outside=False):
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    std = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return (x - mean) / std * w + b


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda x, w, b, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b, "did not subtract the mean"),
        (lambda x, w, b, eps: x / x.norm(dim=-1, keepdim=True), "L2 normalization"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, dim=0), "not over dim 0"),
        (lambda x, w, b, eps: (x - x.mean()) / (x.var(unbiased=False) + eps).sqrt() * w + b, "whole tensor"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, unbiased=True), "biased variance"),
        (lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True) * w + b, "x.std() is the unbiased"),
        (lambda x, w, b, eps: _ln(x, w, b, eps, eps_outside=True), "inside the square root"),
        (lambda x, w, b, eps: _ln(x, w, b, 0.0), "eps is missing"),
        (lambda x, w, b, eps: (_ln(x, 1, 0, eps) + b) * w, "wrong order"),
        (lambda x, w, b, eps: _ln(x, 1, 0, eps), "gain and the bias are missing"),
        (lambda x, w, b, eps: _ln(x, 1, b, eps), "gain (weight) is missing"),
    ],
)
def test_layer_norm_hints(wrong, expected_hint):
    message = _hint(ch05.check_layer_norm, wrong)
    assert expected_hint in message and "input:" in message and "expected:" in message


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda x, w, eps: rms_norm_ok(x - x.mean(-1, keepdim=True), w, eps), "does not subtract the mean"),
        (lambda x, w, eps: F.normalize(x, dim=-1), "L2 normalization"),
        (lambda x, w, eps: x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt() * w, "not their sum"),
        (lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w, "inside the square root"),
        (lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) * w, "square root is missing"),
        (lambda x, w, eps: rms_norm_ok(x, torch.ones_like(w), eps), "gain is missing"),
    ],
)
def test_rms_norm_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch05.check_rms_norm, wrong)


def _bn(dims, unbiased=False):
    def f(x, eps):
        return (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True, unbiased=unbiased) + eps).sqrt()
    return f


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (_bn(-1), "that is LayerNorm"),
        (lambda x, eps: F.layer_norm(x, (x.shape[-1],), eps=eps), "that is LayerNorm"),
        (_bn(0), "batch only"),
        (_bn(1), "positions of each sequence only"),
        (_bn((0, 1), unbiased=True), "biased variance"),
        (lambda x, eps: F.batch_norm(x, None, None, training=True, eps=eps), "LAST dimension"),
    ],
)
def test_batch_norm_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch05.check_batch_norm_train, wrong)


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda x, a, f, n1, n2: n2(n1(x + a(x)) + f(n1(x + a(x)))), "post-LN block"),
        (lambda x, a, f, n1, n2: (lambda h: h + f(n2(h)))(n1(x) + a(n1(x))), "un-normalized x"),
        (lambda x, a, f, n1, n2: (lambda h: h + f(h))(n2(n1(x) + a(n1(x)))), "do not overwrite x"),
        (lambda x, a, f, n1, n2: f(n2(a(n1(x)))), "both residual connections are missing"),
        (lambda x, a, f, n1, n2: x + a(n1(x)) + f(n2(x)), "stream AFTER attention"),
        (lambda x, a, f, n1, n2: pre_ln_ok(x, a, f, n2, n1), "norms are swapped"),
    ],
)
def test_pre_ln_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch05.check_pre_ln_block, wrong)


def test_post_ln_answer_is_recognised():
    def post_ln(x, attn, ffn, norm1, norm2):
        h = norm1(x + attn(x))
        return norm2(h + ffn(h))

    assert "post-LN block" in _hint(ch05.check_pre_ln_block, post_ln)


def _parts(x, g, eps):
    mean = x.mean(-1, keepdim=True)
    s = (x.var(-1, keepdim=True, unbiased=False) + eps).rsqrt()
    return s, (x - mean) * s


@pytest.mark.parametrize(
    "wrong, expected_hint",
    [
        (lambda x, g, eps: _parts(x, g, eps)[0] * g, "treated the mean and the variance as constants"),
        (lambda x, g, eps: _parts(x, g, eps)[0] * (g - g.mean(-1, keepdim=True)), "term from the variance is missing"),
        (lambda x, g, eps: (lambda s, xh: s * (g - xh * (g * xh).mean(-1, keepdim=True)))(*_parts(x, g, eps)),
         "term from the mean is missing"),
        (lambda x, g, eps: (lambda s, xh: s * (g - g.mean(-1, keepdim=True) + xh * (g * xh).mean(-1, keepdim=True)))(*_parts(x, g, eps)),
         "wrong sign"),
    ],
)
def test_layer_norm_backward_hints(wrong, expected_hint):
    assert expected_hint in _hint(ch05.check_layer_norm_backward, wrong)


def test_stub_and_wrong_shapes_are_explained():
    def stub(*args):
        raise NotImplementedError

    for check in (ch05.check_layer_norm, ch05.check_rms_norm, ch05.check_batch_norm_train,
                  ch05.check_pre_ln_block, ch05.check_layer_norm_backward):
        assert "not implemented yet" in _hint(check, stub)
    message = _hint(ch05.check_batch_norm_train, lambda x, eps: _bn((0, 1))(x, eps).mean(1))
    assert "shape: expected" in message


def test_checkers_are_not_fooled_by_in_place_edits():
    def cheat(x, w, b, eps):  # normalizes its input in place and returns garbage
        x.zero_()
        return x

    with pytest.raises(ExerciseFailed):
        ch05.check_layer_norm(cheat)
