"""Chapter 8's exercise checkers: the reference solutions pass, and each typical wrong answer gets
the hint written for it (not just "wrong")."""

from __future__ import annotations

import torch

from minillm.exercises import ch08
from exercise_helpers import _hint


def freeze_ok(model, prefixes):
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(tuple(prefixes))


def count_ok(model):
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def lora_ok(x, weight, bias, A, B, alpha):
    return torch.nn.functional.linear(x, weight, bias) + alpha / B.shape[1] * (x @ (B @ A).T)


def accuracy_ok(logits, labels, mask):
    keep = mask == 1
    return (logits.argmax(-1)[keep] == labels[keep]).float().mean().item()


def last_ok(hidden, mask):
    idx = mask.sum(1) - 1
    return hidden.gather(1, idx[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


def test_correct_answers_pass(capsys):
    ch08.check_freeze_all_but(freeze_ok)
    ch08.check_count_trainable(count_ok)
    ch08.check_lora_forward(lora_ok)
    ch08.check_masked_accuracy(accuracy_ok)
    ch08.check_last_token_states(last_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_library_functions_pass_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.finetune import LoRALinear, count_parameters

    ch08.check_count_trainable(lambda m: count_parameters(m, trainable_only=True))

    def lora_layer(x, weight, bias, A, B, alpha):
        base = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
        with torch.no_grad():
            base.weight.copy_(weight)
            base.bias.copy_(bias)
        layer = LoRALinear(base, r=A.shape[0], alpha=alpha)
        with torch.no_grad():
            layer.lora_A.copy_(A)
            layer.lora_B.copy_(B)
        return layer(x).detach()

    ch08.check_lora_forward(lora_layer)


def test_freeze_hints():
    def substring(model, prefixes):
        for name, p in model.named_parameters():
            p.requires_grad_(any(prefix in name for prefix in prefixes))

    def only_freezes(model, prefixes):
        for name, p in model.named_parameters():
            if not name.startswith(tuple(prefixes)):
                p.requires_grad = False

    def inverted(model, prefixes):
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith(tuple(prefixes))

    assert "*start* with a prefix" in _hint(ch08.check_freeze_all_but, substring)
    assert "a head that was frozen before" in _hint(ch08.check_freeze_all_but, only_freezes)
    assert "other way round" in _hint(ch08.check_freeze_all_but, inverted)
    assert "nothing changed" in _hint(ch08.check_freeze_all_but, lambda model, prefixes: None)


def test_count_hints():
    assert "requires_grad = True" in _hint(ch08.check_count_trainable, lambda m: sum(p.numel() for p in m.parameters()))
    tied_twice = lambda m: sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False) if p.requires_grad)
    assert "count it once" in _hint(ch08.check_count_trainable, tied_twice)
    assert "p.numel()" in _hint(ch08.check_count_trainable, lambda m: len([p for p in m.parameters() if p.requires_grad]))


def test_lora_hints():
    no_scale = lambda x, W, b, A, B, alpha: x @ W.T + b + x @ A.T @ B.T
    alpha_only = lambda x, W, b, A, B, alpha: x @ W.T + b + alpha * x @ A.T @ B.T
    no_bias = lambda x, W, b, A, B, alpha: x @ W.T + alpha / A.shape[0] * x @ A.T @ B.T
    assert "alpha / r" in _hint(ch08.check_lora_forward, no_scale)
    assert "not alpha" in _hint(ch08.check_lora_forward, alpha_only)
    assert "bias" in _hint(ch08.check_lora_forward, no_bias)
    assert "low-rank update" in _hint(ch08.check_lora_forward, lambda x, W, b, A, B, alpha: x @ W.T + b)


def test_masked_accuracy_hints():
    unmasked = lambda lo, y, m: (lo.argmax(-1) == y).float().mean().item()
    by_all = lambda lo, y, m: (((lo.argmax(-1) == y) & (m == 1)).sum() / m.numel()).item()
    per_row = lambda lo, y, m: ((((lo.argmax(-1) == y) & (m == 1)).sum(1) / m.sum(1)).mean()).item()
    assert "padding positions must not count" in _hint(ch08.check_masked_accuracy, unmasked)
    assert "not by B * T" in _hint(ch08.check_masked_accuracy, by_all)
    assert "per-sentence accuracies" in _hint(ch08.check_masked_accuracy, per_row)


def test_last_token_hints():
    assert "last *position* is padding" in _hint(ch08.check_last_token_states, lambda h, m: h[:, -1])
    off_by_one = lambda h, m: h[torch.arange(len(h)), m.sum(1).clamp(max=h.shape[1] - 1)]
    assert "off by one" in _hint(ch08.check_last_token_states, off_by_one)
    mean = lambda h, m: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    assert "mean over the real tokens" in _hint(ch08.check_last_token_states, mean)


def test_stubs_and_missing_returns():
    def stub(*args):
        raise NotImplementedError()

    assert "not implemented yet" in _hint(ch08.check_lora_forward, stub)
    assert "did you forget `return`" in _hint(ch08.check_masked_accuracy, lambda *a: None)
