"""Checkers for the exercises of chapter 1 (notebooks/01_background.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import ExerciseFailed, Mistake, compare, passed

__all__ = [
    "check_cross_entropy",
    "check_count_trigrams",
    "check_perplexity",
    "check_bigram_logits_grad",
]


def _random_probs(g: torch.Generator, n: int, v: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, v, generator=g, dtype=torch.float64) * 2, dim=-1)


# --- Exercise 1.1: cross-entropy from probabilities -----------------------------------

def _cross_entropy(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -probs[torch.arange(len(targets)), targets].log().mean()


def check_cross_entropy(cross_entropy: Callable, n_cases: int = 20) -> None:
    """Check ``cross_entropy(probs, targets) -> scalar``: mean of -ln probs[i, targets[i]]."""
    g = torch.Generator().manual_seed(101)
    cases = []
    for i in range(n_cases):
        n, v = 2 + i % 5, 3 + i % 4
        cases.append((_random_probs(g, n, v), torch.randint(v, (n,), generator=g)))
    mistakes = [
        Mistake(lambda p, t: -_cross_entropy(p, t), "the sign is flipped: the loss is *minus* the mean log-probability, so it is >= 0."),
        Mistake(lambda p, t: _cross_entropy(p, t) * len(t), "you summed over the examples; the loss is the *mean*, so divide by the number of targets."),
        Mistake(lambda p, t: _cross_entropy(p, t) / math.log(2), "you used log base 2 (bits); the book measures loss in nats, with the natural log (torch.log)."),
        Mistake(lambda p, t: -p[:, t].log().mean(), "probs[:, targets] picks a whole (N, N) block; pick one entry per row with probs[torch.arange(N), targets]."),
        Mistake(lambda p, t: -p.log().mean(), "you averaged -log p over *every* entry; only the probability of each row's target counts."),
    ]
    n = compare("cross_entropy", cross_entropy, _cross_entropy, cases, mistakes)
    passed("cross_entropy", n)


# --- Exercise 1.2: trigram counts -------------------------------------------------------

def _count_trigrams(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, vocab_size, vocab_size, dtype=torch.long)
    for a, b, c in zip(ids[:-2].tolist(), ids[1:-1].tolist(), ids[2:].tolist()):
        counts[a, b, c] += 1
    return counts


def check_count_trigrams(count_trigrams: Callable, n_cases: int = 15) -> None:
    """Check ``count_trigrams(ids, vocab_size) -> (V, V, V)`` where ``[a, b, c]`` counts ``a, b, c`` in a row."""
    g = torch.Generator().manual_seed(102)
    cases = [(torch.tensor([0, 1, 2, 0, 1, 2, 1]), 3)]
    for i in range(n_cases - 1):
        v = 2 + i % 4
        cases.append((torch.randint(v, (4 + 3 * i,), generator=g), v))
    mistakes = [
        Mistake(lambda ids, v: _count_trigrams(ids, v).permute(2, 1, 0), "the axes are reversed: counts[a, b, c] must count a followed by b followed by c."),
        Mistake(lambda ids, v: _count_trigrams(ids[:-1], v), "the last trigram is missing: a sequence of length L has L - 2 trigrams (an off-by-one in the loop bound?)."),
        Mistake(lambda ids, v: _count_trigrams(torch.cat([ids, ids[:2]]), v), "you wrapped around the end of the sequence; the last token has no successor."),
        Mistake(lambda ids, v: (_count_trigrams(ids, v) > 0).long(), "each entry must be a *count*, not just 1 when the trigram occurs."),
    ]
    n = compare("count_trigrams", count_trigrams, _count_trigrams, cases, mistakes)
    passed("count_trigrams", n)


# --- Exercise 1.3: perplexity of a bigram table ---------------------------------------

def _perplexity(probs: torch.Tensor, ids: torch.Tensor) -> float:
    return math.exp(-probs[ids[:-1], ids[1:]].log().mean().item())


def check_perplexity(perplexity: Callable, n_cases: int = 20) -> None:
    """Check ``perplexity(probs, ids) -> float``: exp of the mean -ln probs[ids[t], ids[t+1]]."""
    g = torch.Generator().manual_seed(103)
    cases = []
    for i in range(n_cases):
        v = 3 + i % 4
        cases.append((_random_probs(g, v, v), torch.randint(v, (3 + 2 * i,), generator=g)))
    mistakes = [
        Mistake(lambda p, ids: math.log(_perplexity(p, ids)), "that is the cross-entropy loss; perplexity is exp(loss)."),
        Mistake(lambda p, ids: 2 ** math.log(_perplexity(p, ids)), "with the loss in nats, perplexity is e**loss, not 2**loss."),
        Mistake(lambda p, ids: _perplexity(p.T, ids), "the table is indexed probs[previous, next]: row = current token, column = the token after it."),
        Mistake(lambda p, ids: math.exp(-p[ids[:-1], ids[1:]].log().sum().item()), "use the *mean* log-probability per token, not the sum, so that perplexity does not depend on length."),
        Mistake(lambda p, ids: float(torch.exp(-p[ids[:-1], ids[1:]].log()).mean()), "average the log-probabilities first, then take exp once (exp of a mean, not a mean of exps)."),
    ]
    n = compare("perplexity", perplexity, _perplexity, cases, mistakes, rtol=1e-6)
    passed("perplexity", n)


# --- Exercise 1.4: the gradient of the neural bigram by hand -------------------------

def _bigram_logits_grad(W: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    W = W.detach().clone().requires_grad_(True)
    F.cross_entropy(W[x], y).backward()
    return W.grad


def check_bigram_logits_grad(bigram_logits_grad: Callable, n_cases: int = 15) -> None:
    """Check ``bigram_logits_grad(W, x, y) -> (V, V)``: d/dW of mean cross_entropy(W[x], y), without autograd."""
    g = torch.Generator().manual_seed(104)
    cases = [(torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 0]), torch.tensor([1, 1]))]
    for i in range(n_cases - 1):
        v, n = 3 + i % 3, 2 + i
        W = torch.randn(v, v, generator=g, dtype=torch.float64)
        cases.append((W, torch.randint(v, (n,), generator=g), torch.randint(v, (n,), generator=g)))

    def summed(W, x, y):
        return _bigram_logits_grad(W, x, y) * len(x)

    def assigned(W, x, y):  # rows seen more than once keep only the last contribution
        p = torch.softmax(W[x], dim=-1)
        p[torch.arange(len(y)), y] -= 1
        grad = torch.zeros_like(W)
        grad[x] = p / len(x)
        return grad

    mistakes = [
        Mistake(lambda W, x, y: -_bigram_logits_grad(W, x, y), "the sign is flipped: the gradient of the loss is softmax(logits) - one_hot(target)."),
        Mistake(summed, "the loss is a mean over the N examples, so each example's gradient is divided by N."),
        Mistake(assigned, "a token that occurs several times in x must *add up* its rows' gradients; grad[x] = ... keeps only one. Use grad.index_add_(0, x, rows)."),
        Mistake(lambda W, x, y: torch.softmax(W, -1) / len(x), "subtract the one-hot target from the softmax, and only for the rows that appear in x."),
    ]
    n = compare("bigram_logits_grad", bigram_logits_grad, _bigram_logits_grad, cases, mistakes, atol=1e-9)
    passed("bigram_logits_grad", n)
