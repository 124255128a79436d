"""Checkers for the exercises of chapter 9 (notebooks/09_scaling.ipynb)."""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from . import Mistake, compare, passed

__all__ = [
    "check_block_parameters",
    "check_step_flops",
    "check_adam_state_numel",
    "check_compute_optimal",
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


# --- Exercise 9.2: predict, then count the FLOPs of a training step -------------------

def _measured_step_flops(config, batch_size: int, seq_len: int) -> int:
    """The FLOPs of the products with weight matrices (mm, addmm) in one forward and backward
    pass of a GPT, as PyTorch's FLOP counter reports them (the attention scores are left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..gpt import GPT

    torch.manual_seed(902)
    model = GPT(config)
    x = torch.randint(config.vocab_size, (batch_size, seq_len))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(x, x)
        loss.backward()
    counts = counter.get_flop_counts()["Global"]
    return int(sum(v for op, v in counts.items() if str(op).split(".")[-1] in ("mm", "addmm")))


def _weights(c, head: bool = True, rule: bool = False) -> int:
    per_block = 12 * c.d_model**2 if rule else 4 * c.d_model**2 + 2 * c.d_model * c.d_ff
    return c.n_layers * per_block + (c.vocab_size * c.d_model if head else 0)


def check_step_flops(step_flops: Callable) -> None:
    """Check ``step_flops(config, batch_size, seq_len) -> int`` against PyTorch's FLOP counter."""
    from ..gpt import GPTConfig

    cases = [
        (GPTConfig(vocab_size=50, block_size=32, n_layers=2, n_heads=2, d_model=32), 3, 16),
        (GPTConfig(vocab_size=70, block_size=32, n_layers=3, n_heads=4, d_model=48, d_ff=64), 2, 24),
        (GPTConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=1, d_model=16, d_ff=80, bias=False), 4, 8),
        (GPTConfig(vocab_size=90, block_size=64, n_layers=2, n_heads=2, d_model=24, d_ff=40), 1, 64),
    ]

    def tokens(b, t):
        return b * t

    mistakes = [
        Mistake(lambda c, b, t: 2 * tokens(b, t) * _weights(c), "2 N per token is the forward pass only; the backward pass costs twice that again (6 N per token in all)."),
        Mistake(lambda c, b, t: 4 * tokens(b, t) * _weights(c), "count the forward pass too: 2 N forward + 4 N backward per token."),
        Mistake(lambda c, b, t: 6 * tokens(b, t) * _weights(c, head=False), "the output layer is a product too (vocab_size x d_model per token), even when it shares its weights with the token embedding."),
        Mistake(lambda c, b, t: 6 * tokens(b, t) * c.num_parameters(), "N here counts only the weights of matrix products: embedding lookups (tokens, positions) cost no multiplication, and biases and LayerNorms are not products."),
        Mistake(lambda c, b, t: 6 * tokens(b, t) * _weights(c, rule=True), "12 d_model^2 per block assumes d_ff = 4 d_model: use the config's d_ff (4 d^2 for attention, 2 d d_ff for the feed-forward network)."),
        Mistake(lambda c, b, t: tokens(b, t) * (6 * _weights(c) + 12 * c.n_layers * t * c.d_model),
                "leave out attention's 12 n_layers seq_len d_model per token: the scores Q K^T and the weighted values are "
                "products of activations, and this count is of the products with weight matrices only."),
        Mistake(lambda c, b, t: 6 * t * _weights(c), "every sequence of the batch costs as much: multiply by batch_size * seq_len tokens."),
    ]
    n = compare("step_flops", step_flops, _measured_step_flops, cases, mistakes, atol=0, rtol=0)
    passed("step_flops", n)


# --- Exercise 9.3: predict, then measure Adam's state ----------------------------------

class _Frozen(nn.Module):
    """A small model with a frozen part, a tied weight and a parameter that gets no gradient."""

    def __init__(self, vocab: int, d: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.body = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d), nn.Linear(d, 2 * d))
        self.head = nn.Linear(2 * d, vocab, bias=False)
        self.frozen = nn.Linear(d, d)
        self.frozen.requires_grad_(False)
        self.unused = nn.Parameter(torch.zeros(3))  # trainable, but not in the forward pass
        self.out = nn.Linear(d, vocab, bias=False)
        self.out.weight = self.embed.weight  # tied

    def forward(self, ids):
        h = self.frozen(self.embed(ids))
        return self.out(h) + self.head(self.body(h))


def _adam_models() -> list[nn.Module]:
    torch.manual_seed(903)
    return [_Frozen(5, 2), _Frozen(7, 3), nn.Linear(4, 3), _Frozen(11, 6)]


def _measured_adam_state(model: nn.Module) -> int:
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.arange(4) % (model.in_features if isinstance(model, nn.Linear) else model.embed.num_embeddings)
    x = torch.randn(4, model.in_features) if isinstance(model, nn.Linear) else ids
    model(x).square().mean().backward()
    optimizer.step()
    return sum(t.numel() for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t))


def _in_step(model, trainable=True, used=True, unique=True):
    found = model.named_parameters(remove_duplicate=unique)
    return [p for name, p in found if (p.requires_grad or not trainable) and (name != "unused" or not used)]


def check_adam_state_numel(adam_state_numel: Callable) -> None:
    """Check ``adam_state_numel(model) -> int`` against the state of ``torch.optim.Adam`` after one step."""
    models = _adam_models()

    class Case:
        def __init__(self, i):
            self.i = i

        def __repr__(self):
            return f"model {self.i}: {models[self.i]!r}".replace("\n", " ")

    def on_model(function):
        return lambda case: function(copy.deepcopy(models[case.i]))

    def count(params, per_value=2, counters=True):
        return per_value * sum(p.numel() for p in params) + (len(params) if counters else 0)

    mistakes = [
        Mistake(on_model(lambda m: count(_in_step(m), counters=False)), "Adam also keeps a step counter for each parameter tensor: a one-element tensor in optimizer.state."),
        Mistake(on_model(lambda m: count(_in_step(m, used=False))), "a parameter that gets no gradient (p.grad is None after backward) is skipped by the step, so it gets no state."),
        Mistake(on_model(lambda m: count(_in_step(m, trainable=False))), "frozen parameters (requires_grad False) are not given to the optimizer: they have no state."),
        Mistake(on_model(lambda m: count(_in_step(m, unique=False))), "a tied weight is one tensor: the optimizer holds its state once."),
        Mistake(on_model(lambda m: count(_in_step(m), per_value=1)), "Adam keeps TWO moving averages per number: exp_avg (the first moment) and exp_avg_sq (the second)."),
        Mistake(on_model(lambda m: count(_in_step(m), per_value=4)), "the parameters and their gradients are not in optimizer.state: count only what Adam adds."),
    ]
    cases = [(Case(i),) for i in range(len(models))]
    n = compare("adam_state_numel", on_model(adam_state_numel), on_model(_measured_adam_state), cases, mistakes,
                atol=0, rtol=0)
    passed("adam_state_numel", n)


# --- Exercise 9.4: the compute-optimal split, derived ----------------------------------

def _optimal(compute, A, B, alpha, beta, flops_per=6.0):
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n = g * (compute / flops_per) ** (beta / (alpha + beta))
    return n, compute / (flops_per * n)


def check_compute_optimal(compute_optimal: Callable, n_cases: int = 16) -> None:
    """Check ``compute_optimal(compute, A, B, alpha, beta) -> (n_params, n_tokens)``: the
    minimum of A / N^alpha + B / D^beta under 6 N D = compute."""
    cases = [(6e20, 400.0, 400.0, 0.3, 0.3), (5.76e23, 406.4, 410.7, 0.34, 0.28), (1e22, 100.0, 900.0, 0.5, 0.25)]
    g = torch.Generator().manual_seed(904)
    while len(cases) < n_cases:
        u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        cases.append((10 ** (16 + 9 * u[0]), 50 + 900 * u[1], 50 + 900 * u[2], 0.15 + 0.5 * u[3], 0.15 + 0.5 * u[4]))

    def swapped_exponent(c, A, B, a, b):
        n = (a * A / (b * B)) ** (1 / (a + b)) * (c / 6) ** (a / (a + b))
        return n, c / (6 * n)

    def inverted_g(c, A, B, a, b):
        n = (b * B / (a * A)) ** (1 / (a + b)) * (c / 6) ** (b / (a + b))
        return n, c / (6 * n)

    def no_weights(c, A, B, a, b):  # forgets the alpha and beta that the derivatives bring down
        n = (A / B) ** (1 / (a + b)) * (c / 6) ** (b / (a + b))
        return n, c / (6 * n)

    mistakes = [
        Mistake(lambda c, A, B, a, b: _optimal(c, A, B, a, b)[::-1], "the pair is swapped: return (n_params, n_tokens)."),
        Mistake(lambda c, A, B, a, b: _optimal(c, A, B, a, b, flops_per=2.0), "training costs 6 N D FLOPs (forward and backward), not 2 N D: D = C / (6 N)."),
        Mistake(lambda c, A, B, a, b: _optimal(c, A, B, a, b, flops_per=1.0), "the constraint is C = 6 N D: put D = C / (6 N) into the loss before you differentiate."),
        Mistake(swapped_exponent, "the exponents are swapped: N grows as (C / 6)^(beta / (alpha + beta)); the faster the data term falls (larger beta), the more compute goes to parameters."),
        Mistake(inverted_g, "the constant is upside down: setting the derivative to zero gives alpha A N^-alpha = beta B D^-beta, so G = (alpha A / (beta B))^(1 / (alpha + beta))."),
        Mistake(no_weights, "differentiating A N^-alpha brings down a factor alpha (and B D^-beta a factor beta): G = (alpha A / (beta B))^(1 / (alpha + beta))."),
        Mistake(lambda c, A, B, a, b: (math.sqrt(c / 120), 20 * math.sqrt(c / 120)), "D = 20 N is the rule of thumb that this derivation explains; here use the loss's own A, B, alpha and beta."),
    ]
    n = compare("compute_optimal", compute_optimal, _optimal, cases, mistakes, rtol=1e-6, atol=0.0)
    passed("compute_optimal", n)


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
