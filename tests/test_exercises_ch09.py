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


def flops_ok(n, d):
    return 6 * n * d


def adam_ok(n, b):
    return 4 * n * b


def split_ok(c):
    n = math.sqrt(c / 120)
    return n, 20 * n


def exponent_ok(n, loss):
    return -float(np.polyfit(np.log(n), np.log(loss), 1)[0])


def test_correct_answers_pass(capsys):
    ch09.check_block_parameters(block_ok)
    ch09.check_run_flops(flops_ok)
    ch09.check_adam_training_bytes(adam_ok)
    ch09.check_chinchilla_split(split_ok)
    ch09.check_scaling_exponent(exponent_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_library_functions_pass_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.gpt import GPTConfig
    from minillm.scaling import compute_optimal_allocation, fit_power_law, parameter_breakdown, training_flops, training_memory_estimate

    def block_from_library(d, d_ff, bias):
        parts = parameter_breakdown(GPTConfig(vocab_size=1, block_size=1, n_layers=1, n_heads=1, d_model=d, d_ff=d_ff, bias=bias))
        return parts["attention"] + parts["ffn"] + parts["norms"] - 2 * d  # minus the final LayerNorm

    ch09.check_block_parameters(block_from_library)
    ch09.check_run_flops(training_flops)
    ch09.check_adam_training_bytes(lambda n, b: sum(training_memory_estimate(n, bytes_per_value=b).values()))
    ch09.check_chinchilla_split(compute_optimal_allocation)
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
    (lambda n, d: 2 * n * d, "forward pass only"),
    (lambda n, d: 6 * n, "one token"),
    (lambda n, d: n * d, "2 FLOPs"),
])
def test_run_flops_hints(wrong, hint):
    assert hint in _hint(ch09.check_run_flops, wrong)


@pytest.mark.parametrize("wrong,hint", [
    (lambda n, b: 2 * n * b, "two more values"),
    (lambda n, b: 3 * n * b, "one value is missing"),
    (lambda n, b: 16 * n, "bytes_per_value"),
])
def test_adam_hints(wrong, hint):
    assert hint in _hint(ch09.check_adam_training_bytes, wrong)


@pytest.mark.parametrize("wrong,hint", [
    (lambda c: (math.sqrt(c / 40), 20 * math.sqrt(c / 40)), "not 2 N D"),
    (lambda c: (20 * math.sqrt(c / 120), math.sqrt(c / 120)), "swapped"),
    (lambda c: (c / 120, c / 6), "square root"),
])
def test_chinchilla_hints(wrong, hint):
    assert hint in _hint(ch09.check_chinchilla_split, wrong)


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
        ch09.check_run_flops(todo)
