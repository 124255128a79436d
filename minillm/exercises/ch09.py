"""Checkers for the exercises of chapter 9 (notebooks/09_scaling.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import Mistake, compare, passed

__all__ = [
    "check_block_parameters",
    "check_run_flops",
    "check_adam_training_bytes",
    "check_chinchilla_split",
    "check_scaling_exponent",
]


# --- Exercise 9.1: the parameters of one block -----------------------------------------

def _block(d: int, d_ff: int, bias: bool) -> int:
    return 4 * d * d + 2 * d * d_ff + (4 * d + d_ff + d if bias else 0) + 4 * d


def check_block_parameters(block_parameters: Callable, n_cases: int = 20) -> None:
    """Check ``block_parameters(d_model, d_ff, bias) -> int``: one GPT block's parameter count."""
    cases = [(2, 3, True), (2, 3, False), (4, 16, True)]
    g = torch.Generator().manual_seed(901)
    while len(cases) < n_cases:
        d = int(torch.randint(1, 64, (1,), generator=g))
        cases.append((d, int(torch.randint(1, 256, (1,), generator=g)), bool(len(cases) % 2)))
    mistakes = [
        Mistake(lambda d, f, b: _block(d, f, b) - 4 * d, "the two LayerNorms are missing: each has a gain and a bias, 2 * d_model parameters."),
        Mistake(lambda d, f, b: _block(d, f, b) - 2 * d, "each of the two LayerNorms has d_model gains AND d_model biases: 4 * d_model in all."),
        Mistake(lambda d, f, b: 12 * d * d, "12 * d_model**2 is the rule of thumb: use d_ff (not 4 * d_model) and count the biases and LayerNorms."),
        Mistake(lambda d, f, b: _block(d, f, b) - (4 * d + f + d if b else 0), "with bias=True, the four attention projections have d_model biases each, fc1 has d_ff and fc2 d_model."),
        Mistake(lambda d, f, b: _block(d, f, True), "with bias=False the linear layers have no biases (the LayerNorms keep theirs)."),
        Mistake(lambda d, f, b: 3 * d * d + 2 * d * f + (3 * d + f + d if b else 0) + 4 * d, "attention has FOUR d_model x d_model projections: query, key, value and the output projection."),
        Mistake(lambda d, f, b: 4 * d * d + d * f + (4 * d + f if b else 0) + 4 * d, "the feed-forward network has two matrices: d_model x d_ff and d_ff x d_model."),
    ]
    n = compare("block_parameters", block_parameters, _block, cases, mistakes)
    passed("block_parameters", n)


# --- Exercise 9.2: the compute of a training run ---------------------------------------

def check_run_flops(run_flops: Callable, n_cases: int = 20) -> None:
    """Check ``run_flops(n_params, n_tokens) -> float``: about 6 N D."""
    cases = [(1.0, 1.0), (2.0, 5.0), (124e6, 1e9), (175e9, 300e9)]
    g = torch.Generator().manual_seed(902)
    while len(cases) < n_cases:
        cases.append(tuple(float(10 ** (3 + 9 * torch.rand(1, generator=g))) for _ in range(2)))
    mistakes = [
        Mistake(lambda n, d: 2 * n * d, "2 N D is the forward pass only; the backward pass costs twice as much again (4 N D)."),
        Mistake(lambda n, d: 4 * n * d, "count the forward pass too: 2 N D forward + 4 N D backward."),
        Mistake(lambda n, d: 6 * n, "that is the cost of one token: multiply by the number of tokens."),
        Mistake(lambda n, d: n * d, "each weight costs 2 FLOPs (a multiply and an add) per token forward, and twice that backward: 6 per weight per token."),
        Mistake(lambda n, d: 3 * n * d, "a multiply-add is 2 FLOPs: forward 2 N per token, training 6 N per token."),
    ]
    n = compare("run_flops", run_flops, lambda n, d: 6 * n * d, cases, mistakes, rtol=1e-6, atol=0.0)
    passed("run_flops", n)


# --- Exercise 9.3: memory for Adam -----------------------------------------------------

def check_adam_training_bytes(adam_training_bytes: Callable, n_cases: int = 20) -> None:
    """Check ``adam_training_bytes(n_params, bytes_per_value) -> int``: 4 values per parameter."""
    cases = [(1, 4), (10, 2), (1000, 4), (124_439_808, 4)]
    g = torch.Generator().manual_seed(903)
    while len(cases) < n_cases:
        cases.append((int(torch.randint(1, 10**9, (1,), generator=g)), [1, 2, 4, 8][len(cases) % 4]))
    mistakes = [
        Mistake(lambda n, b: n * b, "that is the parameters only: add their gradients and Adam's two states."),
        Mistake(lambda n, b: 2 * n * b, "parameters and gradients are there; Adam adds two more values per parameter (first and second moments)."),
        Mistake(lambda n, b: 3 * n * b, "one value is missing: parameters + gradients + Adam's TWO states = 4 values per parameter."),
        Mistake(lambda n, b: 4 * n, "multiply by bytes_per_value: 4 values per parameter, each bytes_per_value bytes."),
        Mistake(lambda n, b: 16 * n, "16 bytes per parameter holds for 4-byte values only: use bytes_per_value."),
    ]
    n = compare("adam_training_bytes", adam_training_bytes, lambda n, b: 4 * n * b, cases, mistakes, rtol=0.0, atol=0.5)
    passed("adam_training_bytes", n)


# --- Exercise 9.4: compute-optimal size and data ---------------------------------------

def _split(c: float) -> tuple[float, float]:
    n = math.sqrt(c / 120.0)
    return n, 20.0 * n


def check_chinchilla_split(chinchilla_split: Callable, n_cases: int = 20) -> None:
    """Check ``chinchilla_split(compute) -> (n_params, n_tokens)`` with 6 N D = C and D = 20 N."""
    cases = [(120.0,), (480.0,), (1.2e21,), (5.76e23,)]
    g = torch.Generator().manual_seed(904)
    while len(cases) < n_cases:
        cases.append((float(10 ** (10 + 15 * torch.rand(1, generator=g))),))
    mistakes = [
        Mistake(lambda c: (math.sqrt(c / 40), 20 * math.sqrt(c / 40)), "training costs 6 N D FLOPs, not 2 N D (that is the forward pass alone)."),
        Mistake(lambda c: (math.sqrt(c / 20), 20 * math.sqrt(c / 20)), "start from C = 6 N D with D = 20 N: C = 120 N^2, so N = sqrt(C / 120)."),
        Mistake(lambda c: (20 * math.sqrt(c / 120), math.sqrt(c / 120)), "the pair is swapped: return (n_params, n_tokens), with 20 times more tokens than parameters."),
        Mistake(lambda c: (c / 120, 20 * c / 120), "C = 120 N^2 is quadratic in N: take a square root."),
        Mistake(lambda c: (math.sqrt(c / 6), math.sqrt(c / 6)), "that splits the budget as N = D; Chinchilla's rule is D = 20 N."),
    ]
    n = compare("chinchilla_split", chinchilla_split, _split, cases, mistakes, rtol=1e-6, atol=0.0)
    passed("chinchilla_split", n)


# --- Exercise 9.5: fitting a scaling exponent ------------------------------------------

def _exponent(n: np.ndarray, loss: np.ndarray) -> float:
    slope = np.polyfit(np.log(n), np.log(loss), 1)[0]
    return float(-slope)


def check_scaling_exponent(scaling_exponent: Callable, n_cases: int = 12) -> None:
    """Check ``scaling_exponent(n, loss) -> alpha`` for the least-squares fit of log L = log a - alpha log N."""
    cases = [(np.array([1.0, 10.0, 100.0]), np.array([4.0, 2.0, 1.0])),
             (np.array([1e3, 1e4, 1e5, 1e6]), np.array([3.0, 2.6, 2.5, 2.1]))]
    rng = np.random.default_rng(905)
    while len(cases) < n_cases:
        k = int(rng.integers(3, 9))
        n = np.sort(10 ** rng.uniform(3, 9, size=k))
        alpha = rng.uniform(0.02, 0.4)
        cases.append((n, rng.uniform(1, 10) * n**-alpha * np.exp(rng.normal(0, 0.03, size=k))))
    mistakes = [
        Mistake(lambda n, l: -_exponent(n, l), "the sign: L = a N^(-alpha), so alpha is MINUS the slope of log L against log N."),
        Mistake(lambda n, l: float(-np.polyfit(n, l, 1)[0]), "fit the logarithms: a power law is a straight line in log L against log N, not in L against N."),
        Mistake(lambda n, l: float(-np.polyfit(np.log(n), l, 1)[0]), "take the logarithm of the loss too: log L = log a - alpha log N."),
        Mistake(lambda n, l: float(-(np.log(l[-1]) - np.log(l[0])) / (np.log(n[-1]) - np.log(n[0]))), "a line through the first and last points ignores the others: fit all points by least squares."),
        Mistake(lambda n, l: float(-np.polyfit(np.log10(n), np.log(l), 1)[0]), "use the same logarithm for N and L: the fitted exponent is independent of the base only when both use the same one."),
    ]
    n = compare("scaling_exponent", scaling_exponent, _exponent, cases, mistakes, atol=1e-6, rtol=1e-6)
    passed("scaling_exponent", n)
