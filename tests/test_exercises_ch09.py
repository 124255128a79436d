"""Chapter 9's exercise checkers: the reference solutions pass, and each typical wrong answer gets
the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minillm.exercises import ExerciseFailed, ch09
from exercise_helpers import _hint


def block_ok(d, d_ff, bias):
    return 4 * d * d + 2 * d * d_ff + (5 * d + d_ff if bias else 0) + 4 * d


def flops_ok(config, batch_size, seq_len):
    d = config.d_model
    weights = config.n_layers * (4 * d * d + 2 * d * config.d_ff) + config.vocab_size * d
    return 6 * batch_size * seq_len * weights


def _adam_params(model, trainable=True, unique=True, skip_unused=True):
    return [p for name, p in model.named_parameters(remove_duplicate=unique)
            if (p.requires_grad or not trainable) and not (skip_unused and name == "unused")]


def adam_ok(model, **kw):
    params = _adam_params(model, **kw)
    return 2 * sum(p.numel() for p in params) + len(params)  # exp_avg, exp_avg_sq, step


def optimal_ok(c, A, B, alpha, beta):
    # minimise A N^-alpha + B (6 N / C)^beta: alpha A N^-alpha = beta B (6 N / C)^beta
    n = (alpha * A / (beta * B) * (c / 6) ** beta) ** (1 / (alpha + beta))
    return n, c / (6 * n)


def exponent_ok(n, loss):
    return -float(np.polyfit(np.log(n), np.log(loss), 1)[0])


def test_correct_answers_pass(capsys):
    ch09.check_block_parameters(block_ok)
    ch09.check_step_flops(flops_ok)
    ch09.check_adam_state_numel(adam_ok)
    ch09.check_compute_optimal(optimal_ok)
    ch09.check_scaling_exponent(exponent_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_library_functions_pass_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.gpt import GPTConfig
    from minillm.scaling import fit_power_law, flops_per_token, parameter_breakdown

    def block_from_library(d, d_ff, bias):
        parts = parameter_breakdown(GPTConfig(vocab_size=1, block_size=1, n_layers=1, n_heads=1, d_model=d, d_ff=d_ff, bias=bias))
        return parts["attention"] + parts["ffn"] + parts["norms"] - 2 * d  # minus the final LayerNorm

    ch09.check_block_parameters(block_from_library)
    # the chapter's flops_per_token without its attention term (12 L T d per token)
    ch09.check_step_flops(lambda c, b, t: b * t * (flops_per_token(c, t) - 12 * c.n_layers * t * c.d_model))
    ch09.check_scaling_exponent(lambda n, loss: fit_power_law(n, loss).alpha)


@pytest.mark.parametrize("wrong,hint", [
    (lambda d, f, b: block_ok(d, f, b) - 4 * d, "LayerNorms are missing"),
    (lambda d, f, b: 12 * d * d, "rule of thumb"),
    (lambda d, f, b: block_ok(d, f, True), "bias=False"),
    (lambda d, f, b: 3 * d * d + 2 * d * f + (4 * d + f if b else 0) + 4 * d, "FOUR"),
])
def test_block_parameters_hints(wrong, hint):
    assert hint in _hint(ch09.check_block_parameters, wrong)


@pytest.mark.parametrize("wrong,hint", [
    (lambda c, b, t: flops_ok(c, b, t) // 3, "forward pass only"),
    (lambda c, b, t: flops_ok(c, b, t) - 6 * b * t * c.vocab_size * c.d_model, "output layer is a product too"),
    (lambda c, b, t: 6 * b * t * c.num_parameters(), "embedding lookups"),
    (lambda c, b, t: 6 * b * t * (12 * c.n_layers * c.d_model**2 + c.vocab_size * c.d_model), "use the config's d_ff"),
    (lambda c, b, t: flops_ok(c, b, t) + 12 * b * t * t * c.n_layers * c.d_model, "leave out attention"),
    (lambda c, b, t: flops_ok(c, b, t) // b, "batch_size * seq_len"),
])
def test_step_flops_hints(wrong, hint):
    assert hint in _hint(ch09.check_step_flops, wrong)


@pytest.mark.parametrize("wrong,hint", [
    (lambda m: 2 * sum(p.numel() for p in _adam_params(m)), "step counter"),
    (lambda m: adam_ok(m, skip_unused=False), "no gradient"),
    (lambda m: adam_ok(m, trainable=False), "frozen parameters"),
    (lambda m: adam_ok(m, unique=False), "tied weight"),
    (lambda m: sum(p.numel() for p in _adam_params(m)) + len(_adam_params(m)), "TWO moving averages"),
])
def test_adam_state_hints(wrong, hint):
    assert hint in _hint(ch09.check_adam_state_numel, wrong)


def _optimal(c, A, B, a, b, g=None, e=None, k=6):
    g = (a * A / (b * B)) ** (1 / (a + b)) if g is None else g
    n = g * (c / k) ** ((b if e is None else e) / (a + b))
    return n, c / (k * n)


@pytest.mark.parametrize("wrong,hint", [
    (lambda c, A, B, a, b: optimal_ok(c, A, B, a, b)[::-1], "swapped: return (n_params, n_tokens)"),
    (lambda c, A, B, a, b: _optimal(c, A, B, a, b, k=2), "not 2 N D"),
    (lambda c, A, B, a, b: _optimal(c, A, B, a, b, e=a), "exponents are swapped"),
    (lambda c, A, B, a, b: _optimal(c, A, B, a, b, g=(b * B / (a * A)) ** (1 / (a + b))), "upside down"),
    (lambda c, A, B, a, b: _optimal(c, A, B, a, b, g=(A / B) ** (1 / (a + b))), "brings down a factor alpha"),
    (lambda c, A, B, a, b: (math.sqrt(c / 120), 20 * math.sqrt(c / 120)), "rule of thumb"),
])
def test_compute_optimal_hints(wrong, hint):
    assert hint in _hint(ch09.check_compute_optimal, wrong)


@pytest.mark.parametrize("wrong,hint", [
    (lambda n, l: float(np.polyfit(np.log(n), np.log(l), 1)[0]), "MINUS the slope"),
    (lambda n, l: float(-np.polyfit(n, l, 1)[0]), "fit the logarithms"),
    (lambda n, l: float(-(np.log(l[-1]) - np.log(l[0])) / (np.log(n[-1]) - np.log(n[0]))), "first and last points"),
])
def test_scaling_exponent_hints(wrong, hint):
    assert hint in _hint(ch09.check_scaling_exponent, wrong)


def test_unimplemented_answer_says_so():
    def todo(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not implemented"):
        ch09.check_compute_optimal(todo)
