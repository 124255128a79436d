"""Chapter 8's exercise checkers: the reference solutions pass, and each typical wrong answer gets
the hint written for it (not just "wrong")."""

from __future__ import annotations

import torch

from minillm.exercises import ch08
from exercise_helpers import _hint


def lrs_ok(model, n_layers, base_lr, decay):
    lrs = {}
    for name, _ in model.named_parameters():
        depth = 0  # the head
        if name.startswith("bert.blocks."):
            depth = n_layers - int(name.split(".")[2])
        elif name.startswith("bert.embeddings."):
            depth = n_layers + 1
        lrs[name] = base_lr * decay**depth
    return lrs


def grads_ok(x, A, B, alpha, grad_out):
    """By autograd, as the checker's reference is written by hand."""
    A, B = A.clone().requires_grad_(), B.clone().requires_grad_()
    y = alpha / A.shape[0] * (x @ A.T) @ B.T
    (y * grad_out).sum().backward()
    return A.grad, B.grad


def lora_ok(x, weight, bias, A, B, alpha):
    return torch.nn.functional.linear(x, weight, bias) + alpha / B.shape[1] * (x @ (B @ A).T)


def accuracy_ok(logits, labels, mask):
    keep = mask == 1
    return (logits.argmax(-1)[keep] == labels[keep]).float().mean().item()


def last_ok(hidden, mask):
    idx = mask.sum(1) - 1
    return hidden.gather(1, idx[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


def test_correct_answers_pass(capsys):
    ch08.check_layerwise_lrs(lrs_ok)
    ch08.check_lora_forward(lora_ok)
    ch08.check_lora_grads(grads_ok)
    ch08.check_masked_accuracy(accuracy_ok)
    ch08.check_last_token_states(last_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_library_functions_pass_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.finetune import LoRALinear

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


def _rule(rule):
    return lambda m, n, lr, d: {name: rule(name, n, lr, d) for name, _ in m.named_parameters()}


def _depth(name, n):
    if name.startswith("bert.blocks."):
        return int(name.split(".")[2])
    return -1 if name.startswith("bert.embeddings.") else n


def test_layerwise_lrs_hints():
    def blocks(rule):  # the reference everywhere but in the blocks
        def lrs(m, n, lr, d):
            ok = lrs_ok(m, n, lr, d)
            return {k: rule(_depth(k, n), n, lr, d) if k.startswith("bert.blocks.") else v for k, v in ok.items()}
        return lrs

    upside_down = blocks(lambda i, n, lr, d: lr * d ** (i + 1))
    assert "wrong way" in _hint(ch08.check_layerwise_lrs, upside_down)
    top_at_base = blocks(lambda i, n, lr, d: lr * d ** (n - 1 - i))
    assert "off by one" in _hint(ch08.check_layerwise_lrs, top_at_base)
    embeddings_as_block_0 = _rule(lambda name, n, lr, d: lr * d ** (n - max(_depth(name, n), 0)))
    assert "one step below the first block" in _hint(ch08.check_layerwise_lrs, embeddings_as_block_0)

    def pooler_low(m, n, lr, d):
        lrs = lrs_ok(m, n, lr, d)
        return {k: lr * d ** (n + 1) if k.startswith("bert.pooler.") else v for k, v in lrs.items()}

    assert "pooler belongs to the head" in _hint(ch08.check_layerwise_lrs, pooler_low)
    assert "multiply by decay" in _hint(ch08.check_layerwise_lrs, _rule(lambda name, n, lr, d: lr))
    assert "missing" in _hint(
        ch08.check_layerwise_lrs, lambda m, n, lr, d: {k: v for k, v in lrs_ok(m, n, lr, d).items() if "pooler" not in k})
    assert "return a dict" in _hint(ch08.check_layerwise_lrs, lambda m, n, lr, d: list(lrs_ok(m, n, lr, d).values()))


def test_lora_grads_hints():
    def scaled(s):
        return lambda x, A, B, alpha, g: tuple(t * s(alpha, A) / (alpha / A.shape[0]) for t in grads_ok(x, A, B, alpha, g))

    assert "alpha / r, and so are both" in _hint(ch08.check_lora_grads, scaled(lambda alpha, A: 1.0))
    assert "not alpha" in _hint(ch08.check_lora_grads, scaled(lambda alpha, A: alpha))
    assert "grad_A is zero only where B is zero" in _hint(
        ch08.check_lora_grads, lambda x, A, B, alpha, g: (torch.zeros_like(A), grads_ok(x, A, B, alpha, g)[1]))
    assert "every position" in _hint(ch08.check_lora_grads, lambda x, A, B, alpha, g: grads_ok(x[0], A, B, alpha, g[0]))
    assert "the shape of its parameter" in _hint(
        ch08.check_lora_grads, lambda x, A, B, alpha, g: tuple(t.T for t in grads_ok(x, A, B, alpha, g)))
    assert "return a pair" in _hint(ch08.check_lora_grads, lambda x, A, B, alpha, g: grads_ok(x, A, B, alpha, g)[0])


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
