"""Checkers for the exercises of chapter 5 (notebooks/05_layernorm_and_blocks.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from . import Mistake, compare, passed

__all__ = [
    "check_layer_norm",
    "check_rms_norm",
    "check_batch_norm_train",
    "check_pre_ln_block",
    "check_layer_norm_backward",
]

DTYPE = torch.float64


def _tokens(g: torch.Generator, shape: tuple, scale: float = 1.0) -> torch.Tensor:
    """Random activations whose tokens have their own offset and scale (so a missing mean shows)."""
    offset = torch.randn(*shape[:-1], 1, generator=g, dtype=DTYPE) * 2
    spread = torch.rand(*shape[:-1], 1, generator=g, dtype=DTYPE) * 2 + 0.5
    return (torch.randn(*shape, generator=g, dtype=DTYPE) * spread + offset) * scale


# Cases go from small to large; eps varies so that where it goes (inside or outside the square
# root, or missing) changes the result by more than the comparison's tolerance.
_EPS = [0.1, 1e-5, 0.5, 1e-3]
_SHAPES = [(2, 4), (3, 5), (2, 3, 6), (4, 8), (2, 2, 3, 16), (5, 32)]


# --- Exercise 5.1: LayerNorm ------------------------------------------------------------

def _layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _ln_stats(x, dim, unbiased=False):
    return x.mean(dim=dim, keepdim=True), x.var(dim=dim, keepdim=True, unbiased=unbiased)


def check_layer_norm(layer_norm: Callable, n_cases: int = 18) -> None:
    """Check ``layer_norm(x, weight, bias, eps) -> (..., C)`` against equation (eq-layernorm)."""
    g = torch.Generator().manual_seed(501)
    cases = []
    for i in range(n_cases):
        shape = _SHAPES[i % len(_SHAPES)]
        C = shape[-1]
        cases.append((_tokens(g, shape), torch.randn(C, generator=g, dtype=DTYPE),
                      torch.randn(C, generator=g, dtype=DTYPE), _EPS[i % len(_EPS)]))

    def over(dim):
        def wrong(x, w, b, eps):
            mean, var = _ln_stats(x, dim)
            return (x - mean) / torch.sqrt(var + eps) * w + b
        return wrong

    def no_mean(x, w, b, eps):
        return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w + b

    def unbiased(x, w, b, eps):
        mean, var = _ln_stats(x, -1, unbiased=True)
        return (x - mean) / torch.sqrt(var + eps) * w + b

    def eps_outside(x, w, b, eps):
        mean, var = _ln_stats(x, -1)
        return (x - mean) / (torch.sqrt(var) + eps) * w + b

    def no_eps(x, w, b, eps):
        mean, var = _ln_stats(x, -1)
        return (x - mean) / torch.sqrt(var) * w + b

    def l2(x, w, b, eps):
        return x / x.pow(2).sum(dim=-1, keepdim=True).sqrt()

    mistakes = [
        Mistake(no_mean, "you did not subtract the mean: dividing x by its root mean square is RMSNorm, not LayerNorm. Use (x - mean) in the numerator and the variance of x around its mean."),
        Mistake(l2, "x / sqrt(sum of squares) is L2 normalization (length 1), not LayerNorm: subtract the mean, divide by sqrt(variance + eps), then apply weight and bias (see the Common misconception box)."),
        Mistake(over(0), "the statistics must be taken over the last dimension (the C features of each token, dim=-1), not over dim 0, the batch."),
        Mistake(over(None), "you averaged over the whole tensor; LayerNorm computes one mean and one variance per token, over its last dimension (dim=-1, keepdim=True)."),
        Mistake(lambda x, w, b, eps: (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True) * w + b,
                "x.std() is the unbiased standard deviation (divides by C - 1) and has no eps: LayerNorm divides by sqrt(biased variance + eps), i.e. sqrt(x.var(-1, unbiased=False) + eps)."),
        Mistake(unbiased, "LayerNorm uses the biased variance, dividing by C, not C - 1: torch.var defaults to unbiased=True, so pass unbiased=False (or use ((x - mean)**2).mean(-1))."),
        Mistake(eps_outside, "eps goes inside the square root: sqrt(var + eps), not sqrt(var) + eps."),
        Mistake(no_eps, "eps is missing: divide by sqrt(var + eps), so that a token with zero variance gives no division by zero."),
        Mistake(lambda x, w, b, eps: (_layer_norm(x, torch.ones_like(w), torch.zeros_like(b), eps) + b) * w,
                "weight and bias are applied in the wrong order: first multiply by the gain (weight), then add the bias."),
        Mistake(lambda x, w, b, eps: _layer_norm(x, torch.ones_like(w), torch.zeros_like(b), eps),
                "the normalization is right, but the gain and the bias are missing: return x_hat * weight + bias."),
        Mistake(lambda x, w, b, eps: _layer_norm(x, torch.ones_like(w), b, eps), "the gain (weight) is missing: multiply x_hat by weight before adding bias."),
        Mistake(lambda x, w, b, eps: _layer_norm(x, w, torch.zeros_like(b), eps), "the bias is missing: add bias after multiplying by weight."),
    ]
    n = compare("layer_norm", layer_norm, _layer_norm, cases, mistakes, atol=1e-6, rtol=1e-5)
    passed("layer_norm", n)


# --- Exercise 5.2: RMSNorm --------------------------------------------------------------

def _rms_norm(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def check_rms_norm(rms_norm: Callable, n_cases: int = 18) -> None:
    """Check ``rms_norm(x, weight, eps) -> (..., C)`` against equation (eq-rmsnorm)."""
    g = torch.Generator().manual_seed(502)
    cases = []
    for i in range(n_cases):
        shape = _SHAPES[i % len(_SHAPES)]
        cases.append((_tokens(g, shape), torch.randn(shape[-1], generator=g, dtype=DTYPE), _EPS[i % len(_EPS)]))

    def centred(x, w, eps):
        return _rms_norm(x - x.mean(dim=-1, keepdim=True), w, eps)

    def summed(x, w, eps):
        return x / torch.sqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps) * w

    mistakes = [
        Mistake(centred, "RMSNorm does not subtract the mean (that is LayerNorm): divide x itself by sqrt(mean(x**2) + eps)."),
        Mistake(lambda x, w, eps: x / x.pow(2).sum(dim=-1, keepdim=True).sqrt(),
                "x / sqrt(sum of squares) is L2 normalization: RMSNorm uses the MEAN of the squares (which makes the output's length sqrt(C), not 1), adds eps, and multiplies by the gain."),
        Mistake(summed, "use the mean of the squares over the last dimension, not their sum (the sum makes the result depend on C)."),
        Mistake(lambda x, w, eps: x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps) * w, "eps goes inside the square root: sqrt(mean(x**2) + eps)."),
        Mistake(lambda x, w, eps: x / x.pow(2).mean(dim=-1, keepdim=True).sqrt() * w, "eps is missing: divide by sqrt(mean(x**2) + eps)."),
        Mistake(lambda x, w, eps: x / (x.pow(2).mean(dim=-1, keepdim=True) + eps) * w, "the square root is missing: divide by sqrt(mean(x**2) + eps), the root mean square."),
        Mistake(lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(dim=0, keepdim=True) + eps) * w, "take the mean over the last dimension (dim=-1, the features of one token), not over dim 0."),
        Mistake(lambda x, w, eps: _rms_norm(x, torch.ones_like(w), eps), "the gain is missing: multiply the normalized x by weight."),
        Mistake(lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) / w, "multiply by the gain (weight), do not divide by it."),
    ]
    n = compare("rms_norm", rms_norm, _rms_norm, cases, mistakes, atol=1e-6, rtol=1e-5)
    passed("rms_norm", n)


# --- Exercise 5.3: BatchNorm over (B, T, C) -------------------------------------------

def _batch_norm_train(x, eps):
    mean = x.mean(dim=(0, 1), keepdim=True)
    var = x.var(dim=(0, 1), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def check_batch_norm_train(batch_norm_train: Callable, n_cases: int = 15) -> None:
    """Check ``batch_norm_train(x, eps) -> (B, T, C)``: each feature normalized over the B * T tokens."""
    g = torch.Generator().manual_seed(503)
    cases = []
    shapes = [(2, 3, 4), (3, 2, 5), (2, 4, 3), (4, 5, 6), (3, 7, 8)]
    for i in range(n_cases):
        B, T, C = shapes[i % len(shapes)]
        # each feature gets its own offset and scale, each token too, so every wrong axis shows
        feature = torch.randn(C, generator=g, dtype=DTYPE) * 2
        cases.append((_tokens(g, (B, T, C)) + feature, _EPS[i % len(_EPS)]))

    def over(dims, unbiased=False):
        def wrong(x, eps):
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
            return (x - mean) / torch.sqrt(var + eps)
        return wrong

    mistakes = [
        Mistake(over(-1), "you normalized each token over its features: that is LayerNorm. BatchNorm normalizes each FEATURE, over all B * T tokens: dim=(0, 1)."),
        Mistake(over(0), "you averaged over the batch only, so each position t got its own statistics; BatchNorm1d on (B, C, T) averages over the batch AND the positions: dim=(0, 1) here."),
        Mistake(over(1), "you averaged over the positions of each sequence only; BatchNorm averages over the whole batch too: dim=(0, 1)."),
        Mistake(over((0, 1), unbiased=True), "in training mode BatchNorm normalizes with the biased variance (divide by B * T, not B * T - 1): pass unbiased=False."),
        Mistake(lambda x, eps: (x - x.mean(dim=(0, 1), keepdim=True)) / (x.std(dim=(0, 1), keepdim=True, unbiased=False) + eps),
                "eps goes inside the square root: sqrt(var + eps)."),
        Mistake(lambda x, eps: _batch_norm_train(x.transpose(1, 2), eps).transpose(1, 2),
                "the features are in the LAST dimension of x (B, T, C); averaging over dims (0, 1) of a (B, C, T) view mixes the features."),
    ]
    n = compare("batch_norm_train", batch_norm_train, _batch_norm_train, cases, mistakes, atol=1e-6, rtol=1e-5)
    passed("batch_norm_train", n)


# --- Exercise 5.4: a pre-LN block from its parts ---------------------------------------

class _Sublayer:
    """A random, deterministic stand-in for attention (mixes positions) or the FFN (does not)."""

    def __init__(self, kind: str, C: int, T: int, g: torch.Generator):
        self.kind, self.C = kind, C
        self.W1 = torch.randn(C, C, generator=g, dtype=DTYPE) / C**0.5
        self.W2 = torch.randn(C, C, generator=g, dtype=DTYPE) / C**0.5
        self.mix = torch.softmax(torch.randn(T, T, generator=g, dtype=DTYPE), dim=-1)  # (T, T)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "attn":
            return self.mix @ (x @ self.W1)  # (T, T) @ (B, T, C)
        return torch.tanh(x @ self.W1) @ self.W2

    def __repr__(self) -> str:
        return f"<{self.kind}: a fixed random map (B, T, {self.C}) -> (B, T, {self.C})>"


class _Norm:
    """A LayerNorm with a random gain and bias."""

    def __init__(self, name: str, C: int, g: torch.Generator):
        self.name = name
        self.w = torch.randn(C, generator=g, dtype=DTYPE) * 0.5 + 1
        self.b = torch.randn(C, generator=g, dtype=DTYPE) * 0.5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _layer_norm(x, self.w, self.b, 1e-5)

    def __repr__(self) -> str:
        return f"<{self.name}: LayerNorm({len(self.w)}) with a random gain and bias>"


def _pre_ln_block(x, attn, ffn, norm1, norm2):
    h = x + attn(norm1(x))
    return h + ffn(norm2(h))


def check_pre_ln_block(pre_ln_block: Callable, n_cases: int = 10) -> None:
    """Check ``pre_ln_block(x, attn, ffn, norm1, norm2)`` against equation (eq-pre-ln)."""
    g = torch.Generator().manual_seed(504)
    cases = []
    for i in range(n_cases):
        B, T, C = 1 + i % 3, 2 + i % 4, 4 + 2 * (i % 3)
        cases.append((_tokens(g, (B, T, C)), _Sublayer("attn", C, T, g), _Sublayer("ffn", C, T, g),
                      _Norm("norm1", C, g), _Norm("norm2", C, g)))

    def post_ln(x, attn, ffn, norm1, norm2):
        h = norm1(x + attn(x))
        return norm2(h + ffn(h))

    def normalized_stream(x, attn, ffn, norm1, norm2):
        x = norm1(x)
        h = x + attn(x)
        h = norm2(h)
        return h + ffn(h)

    def normalized_first_residual(x, attn, ffn, norm1, norm2):
        h = norm1(x) + attn(norm1(x))
        return h + ffn(norm2(h))

    mistakes = [
        Mistake(post_ln, "that is the post-LN block (norm after the residual sum). Pre-LN normalizes the INPUT of each sub-layer: h = x + attn(norm1(x)), then h + ffn(norm2(h))."),
        Mistake(normalized_stream, "the residual path must carry the un-normalized x: add attn(norm1(x)) to x itself, not to norm1(x) (do not overwrite x with norm1(x))."),
        Mistake(normalized_first_residual, "the residual path must carry the un-normalized x: add attn(norm1(x)) to x itself, not to norm1(x)."),
        Mistake(lambda x, a, f, n1, n2: f(n2(a(n1(x)))), "both residual connections are missing: each sub-layer's output is ADDED to its input."),
        Mistake(lambda x, a, f, n1, n2: a(n1(x)) + f(n2(a(n1(x)))), "the first residual connection is missing: h = x + attn(norm1(x))."),
        Mistake(lambda x, a, f, n1, n2: f(n2(x + a(n1(x)))), "the second residual connection is missing: return h + ffn(norm2(h))."),
        Mistake(lambda x, a, f, n1, n2: x + a(n1(x)) + f(n2(x)), "the FFN must read h = x + attn(norm1(x)), the stream AFTER attention, not the block's input x."),
        Mistake(lambda x, a, f, n1, n2: _pre_ln_block(x, a, f, n2, n1), "the norms are swapped: norm1 goes before attention, norm2 before the FFN."),
        Mistake(lambda x, a, f, n1, n2: n2(_pre_ln_block(x, a, f, n1, n1)), "a pre-LN block ends with the residual sum, with no LayerNorm after it; norm2 goes before the FFN."),
    ]
    n = compare("pre_ln_block", pre_ln_block, _pre_ln_block, cases, mistakes, atol=1e-8, rtol=1e-6)
    passed("pre_ln_block", n)


# --- Exercise 5.5: the gradient of LayerNorm -------------------------------------------

def _layer_norm_backward(x, grad_out, eps):
    x = x.detach().clone().requires_grad_(True)
    mean = x.mean(dim=-1, keepdim=True)
    x_hat = (x - mean) / torch.sqrt((x - mean).pow(2).mean(dim=-1, keepdim=True) + eps)
    (x_hat * grad_out).sum().backward()
    return x.grad


def check_layer_norm_backward(layer_norm_backward: Callable, n_cases: int = 12) -> None:
    """Check ``layer_norm_backward(x, grad_out, eps) -> (N, C)``: d L / d x for x_hat = LayerNorm(x) without gain and bias."""
    g = torch.Generator().manual_seed(505)
    cases = []
    for i in range(n_cases):
        N, C = 1 + i % 3, 3 + 2 * (i % 4)
        cases.append((_tokens(g, (N, C)), torch.randn(N, C, generator=g, dtype=DTYPE), _EPS[i % len(_EPS)]))

    def parts(x, g_out, eps):
        mean = x.mean(dim=-1, keepdim=True)
        s = 1 / torch.sqrt((x - mean).pow(2).mean(dim=-1, keepdim=True) + eps)
        return s, (x - mean) * s, g_out

    def constants(x, g_out, eps):
        s, _, g_ = parts(x, g_out, eps)
        return s * g_

    def no_var_term(x, g_out, eps):
        s, _, g_ = parts(x, g_out, eps)
        return s * (g_ - g_.mean(dim=-1, keepdim=True))

    def no_mean_term(x, g_out, eps):
        s, xh, g_ = parts(x, g_out, eps)
        return s * (g_ - xh * (g_ * xh).mean(dim=-1, keepdim=True))

    def var_sign(x, g_out, eps):
        s, xh, g_ = parts(x, g_out, eps)
        return s * (g_ - g_.mean(dim=-1, keepdim=True) + xh * (g_ * xh).mean(dim=-1, keepdim=True))

    def summed(x, g_out, eps):
        s, xh, g_ = parts(x, g_out, eps)
        return s * (g_ - g_.sum(dim=-1, keepdim=True) - xh * (g_ * xh).sum(dim=-1, keepdim=True))

    mistakes = [
        Mistake(constants, "you treated the mean and the variance as constants: they depend on x, so their gradients add two correction terms."),
        Mistake(no_var_term, "the term from the variance is missing: it is - x_hat * mean(grad_out * x_hat), times s."),
        Mistake(no_mean_term, "the term from the mean is missing: subtract mean(grad_out) over each row, times s."),
        Mistake(var_sign, "the variance term has the wrong sign: it is MINUS x_hat * mean(grad_out * x_hat)."),
        Mistake(summed, "the two corrections use the MEAN over the C features (the mean and variance are means), not the sum."),
    ]
    n = compare("layer_norm_backward", layer_norm_backward, _layer_norm_backward, cases, mistakes, atol=1e-8, rtol=1e-6)
    passed("layer_norm_backward", n)
