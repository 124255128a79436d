"""Checkers for the exercises of chapter 8 (notebooks/08_finetuning.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from . import ExerciseFailed, Mistake, compare, passed

__all__ = [
    "check_layerwise_lrs",
    "check_lora_forward",
    "check_lora_grads",
    "check_masked_accuracy",
    "check_last_token_states",
]


# --- Exercise 8.1: a learning rate per layer -------------------------------------------

def _lr_models() -> list[tuple[nn.Module, int, float, float]]:
    """Tiny BERT classifiers (model, n_layers, base_lr, decay), smallest first."""
    from ..bert import BertConfig
    from ..finetune import BertForSequenceClassification

    torch.manual_seed(801)
    found = []
    for n_layers, base_lr, decay in ((2, 1e-3, 0.5), (1, 2e-4, 0.8), (3, 5e-4, 0.9), (4, 1e-4, 0.7)):
        config = BertConfig(vocab_size=12, d_model=4, n_layers=n_layers, n_heads=1, d_ff=8, block_size=6)
        found.append((BertForSequenceClassification(config, num_labels=2), n_layers, base_lr, decay))
    return found


def _layer_lr(name: str, n_layers: int, base_lr: float, decay: float, depth=None) -> float:
    if name.startswith("bert.blocks."):
        i = int(name.split(".")[2])
        return base_lr * decay ** (n_layers - i if depth is None else depth(i, n_layers))
    if name.startswith("bert.embeddings."):
        return base_lr * decay ** (n_layers + 1)
    return base_lr  # the head: pooler and classifier


def _layerwise_reference(model, n_layers, base_lr, decay):
    return {name: _layer_lr(name, n_layers, base_lr, decay) for name, _ in model.named_parameters()}


class _Case:
    """One tiny model of the checker, shown in a failure message by its settings."""

    def __init__(self, index: int, n_layers: int, base_lr: float, decay: float):
        self.index, self.text = index, f"BERT classifier, n_layers={n_layers}, base_lr={base_lr}, decay={decay}"

    def __repr__(self) -> str:
        return self.text


def check_layerwise_lrs(layerwise_lrs: Callable) -> None:
    """Check ``layerwise_lrs(model, n_layers, base_lr, decay) -> {parameter name: learning rate}``."""
    models = _lr_models()

    def as_tensor(function):
        def run(case):
            i = case.index
            model, n_layers, base_lr, decay = models[i]
            names = [name for name, _ in model.named_parameters()]
            lrs = function(model, n_layers, base_lr, decay)
            if lrs is None:
                return None
            if not isinstance(lrs, dict):
                raise ExerciseFailed(f"layerwise_lrs: return a dict {{parameter name: learning rate}}, not {type(lrs).__name__}.")
            missing = [name for name in names if name not in lrs]
            if missing:
                raise ExerciseFailed(f"layerwise_lrs: every parameter needs a learning rate; missing: {missing[:4]} "
                                     "(use the names of model.named_parameters()).")
            return torch.tensor([float(lrs[name]) for name in names], dtype=torch.float64)
        return run

    def by_name(rule):
        return as_tensor(lambda m, n, lr, d: {name: rule(name, n, lr, d) for name, _ in m.named_parameters()})

    mistakes = [
        Mistake(by_name(lambda name, n, lr, d: _layer_lr(name, n, lr, d, depth=lambda i, n: i + 1)),
                "the decay runs the wrong way: the block next to the head (the last one) gets the largest rate, "
                "base_lr * decay, and each block below it one more factor of decay."),
        Mistake(by_name(lambda name, n, lr, d: _layer_lr(name, n, lr, d, depth=lambda i, n: n - 1 - i)),
                "off by one: the head alone keeps base_lr; the last block already gets base_lr * decay."),
        Mistake(by_name(lambda name, n, lr, d: lr * d ** n if name.startswith("bert.embeddings.") else _layer_lr(name, n, lr, d)),
                "the embeddings are one step below the first block: base_lr * decay ** (n_layers + 1)."),
        Mistake(by_name(lambda name, n, lr, d: lr * d ** (n + 1) if name.startswith("bert.pooler.") else _layer_lr(name, n, lr, d)),
                "the pooler belongs to the head (it is trained for the sentence task, not pretrained as a block): base_lr."),
        Mistake(by_name(lambda name, n, lr, d: lr), "every parameter has base_lr: multiply by decay once per layer below the head."),
    ]
    cases = [(_Case(i, *models[i][1:]),) for i in range(len(models))]
    n = compare("layerwise_lrs", as_tensor(layerwise_lrs), as_tensor(_layerwise_reference), cases, mistakes,
                atol=0, rtol=1e-9)
    passed("layerwise_lrs", n)


# --- Exercise 8.2: the LoRA forward pass ------------------------------------------------

def _lora(x, weight, bias, A, B, alpha, scale=None):
    r = A.shape[0]
    s = alpha / r if scale is None else scale
    return x @ weight.T + bias + s * (x @ A.T) @ B.T


def check_lora_forward(lora_forward: Callable, n_cases: int = 12) -> None:
    """Check ``lora_forward(x, weight, bias, A, B, alpha)`` = x W^T + b + (alpha / r) x A^T B^T."""
    g = torch.Generator().manual_seed(803)
    cases = []
    for i in range(n_cases):
        d_in, d_out, r = 3 + i % 3, 2 + i % 4, 1 + i % 3
        if d_in == d_out:
            d_out += 1  # keep the shapes distinct, so that a transposed matrix fails visibly
        lead = (2,) if i < 4 else (2, 3)
        x = torch.randn(*lead, d_in, generator=g, dtype=torch.float64)
        weight = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
        bias = torch.randn(d_out, generator=g, dtype=torch.float64)
        A = torch.randn(r + 1, d_in, generator=g, dtype=torch.float64)  # rank >= 2, so alpha and alpha / r differ
        B = torch.randn(d_out, r + 1, generator=g, dtype=torch.float64)
        cases.append((x, weight, bias, A, B, float(1 + 3 * i % 7) + 0.5))
    mistakes = [
        Mistake(lambda x, W, b, A, B, alpha: _lora(x, W, b, A, B, alpha, scale=1.0), "scale the update by alpha / r."),
        Mistake(lambda x, W, b, A, B, alpha: _lora(x, W, b, A, B, alpha, scale=alpha), "the scale is alpha / r (r = A.shape[0], the rank), not alpha."),
        Mistake(lambda x, W, b, A, B, alpha: _lora(x, W, b, A, B, alpha, scale=alpha / B.shape[0]), "r is the rank, A.shape[0] (= B.shape[1]), not the output size."),
        Mistake(lambda x, W, b, A, B, alpha: _lora(x, W, b, A, B, alpha) - b, "add the bias of the frozen layer."),
        Mistake(lambda x, W, b, A, B, alpha: x @ W.T + b, "add the low-rank update (alpha / r) x A^T B^T to the frozen layer's output."),
    ]
    n = compare("lora_forward", lora_forward, _lora, cases, mistakes, atol=1e-9, rtol=1e-7)
    passed("lora_forward", n)


# --- Exercise 8.3: LoRA's gradients, without autograd ---------------------------------

def _lora_grads(x, A, B, alpha, grad_out, scale=None):
    s = alpha / A.shape[0] if scale is None else scale
    x2, g2 = x.reshape(-1, x.shape[-1]), grad_out.reshape(-1, grad_out.shape[-1])
    return s * (g2 @ B).T @ x2, s * g2.T @ (x2 @ A.T)


def check_lora_grads(lora_grads: Callable, n_cases: int = 12) -> None:
    """Check ``lora_grads(x, A, B, alpha, grad_out) -> (grad_A, grad_B)``, the gradients of
    sum(grad_out * y) for y = x W^T + b + (alpha / r) x A^T B^T."""
    g = torch.Generator().manual_seed(803)
    cases = []
    for i in range(n_cases):
        d_in, d_out, r = 3 + i % 3, 2 + i % 4, 2 + i % 3
        if d_in == d_out:
            d_out += 1  # distinct shapes, so that a transposed matrix fails visibly
        lead = (2,) if i < 4 else (2, 3)
        x = torch.randn(*lead, d_in, generator=g, dtype=torch.float64)
        A = torch.randn(r, d_in, generator=g, dtype=torch.float64)
        B = torch.randn(d_out, r, generator=g, dtype=torch.float64)
        grad_out = torch.randn(*lead, d_out, generator=g, dtype=torch.float64)
        cases.append((x, A, B, float(1 + 3 * i % 7) + 0.5, grad_out))

    def pair(function):  # the two gradients as one flat tensor, so that compare can show them
        def run(*args):
            got = function(*args)
            if got is None:
                return None
            if not (isinstance(got, tuple | list) and len(got) == 2):
                raise ExerciseFailed("lora_grads: return a pair (grad_A, grad_B).")
            grad_A, grad_B = (torch.as_tensor(t, dtype=torch.float64) for t in got)
            A, B = args[1], args[2]
            if grad_A.shape != A.shape or grad_B.shape != B.shape:
                raise ExerciseFailed(
                    f"lora_grads: a gradient has the shape of its parameter: grad_A {tuple(A.shape)} and grad_B "
                    f"{tuple(B.shape)}, you returned {tuple(grad_A.shape)} and {tuple(grad_B.shape)}.")
            return torch.cat([grad_A.flatten(), grad_B.flatten()])
        return run

    def last_only(x, A, B, alpha, g):  # sums over the last leading axis only
        return _lora_grads(x[0], A, B, alpha, g[0])

    mistakes = [
        Mistake(pair(lambda x, A, B, alpha, g: _lora_grads(x, A, B, alpha, g, scale=1.0)),
                "the update is scaled by alpha / r, and so are both gradients."),
        Mistake(pair(lambda x, A, B, alpha, g: _lora_grads(x, A, B, alpha, g, scale=alpha)),
                "the scale is alpha / r (r = A.shape[0]), not alpha."),
        Mistake(pair(lambda x, A, B, alpha, g: (torch.zeros_like(A), _lora_grads(x, A, B, alpha, g)[1])),
                "grad_A is zero only where B is zero (at initialisation); in general it is "
                "(alpha / r) (grad_out B)^T x, summed over every position."),
        Mistake(pair(last_only), "sum the gradient over every position of the batch: flatten the leading axes of x "
                "and grad_out to (N, d) first."),
    ]
    n = compare("lora_grads", pair(lora_grads), pair(_lora_grads), cases, mistakes, atol=1e-9, rtol=1e-7)
    passed("lora_grads", n)


# --- Exercise 8.4: accuracy with padding masked -----------------------------------------

def _masked_accuracy(logits, labels, mask):
    real = mask.bool()
    return float(((logits.argmax(-1) == labels) & real).sum() / real.sum())


def check_masked_accuracy(masked_accuracy: Callable, n_cases: int = 15) -> None:
    """Check ``masked_accuracy(logits (B, T, C), labels (B, T), attention_mask (B, T)) -> float``."""
    g = torch.Generator().manual_seed(804)
    # a small case by hand on which every typical mistake gives a different number: row 0 has 5 real
    # tokens, 3 predicted right; row 1 has 2 real tokens, 1 right; the 3 padding positions "right"
    logits = torch.tensor([[[2.0, 0.0]] * 5, [[0.0, 2.0]] * 5])
    labels = torch.tensor([[0, 0, 0, 1, 1], [1, 0, 1, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    cases = [(logits, labels, mask)]
    for i in range(n_cases):
        B, T, C = 2 + i % 3, 3 + i % 4, 2 + i % 3
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T  # one full row, and (almost always) shorter ones
        lengths[1] = max(1, T - 2)
        mask = (torch.arange(T)[None] < lengths[:, None]).long()
        logits = torch.randn(B, T, C, generator=g)
        labels = torch.randint(C, (B, T), generator=g)
        labels = torch.where(mask.bool(), labels, logits.argmax(-1))  # the model is "right" on padding
        cases.append((logits, labels, mask))
    mistakes = [
        Mistake(lambda lo, y, m: float((lo.argmax(-1) == y).float().mean()),
                "padding positions must not count: compare only where attention_mask is 1."),
        Mistake(lambda lo, y, m: float((((lo.argmax(-1) == y) & m.bool()).sum(1) / m.sum(1)).mean()),
                "that is the mean of per-sentence accuracies, which weighs a short sentence's tokens more: "
                "count every real token of the batch once (one sum over the batch, one division)."),
        Mistake(lambda lo, y, m: float(((lo.argmax(-1) == y) & m.bool()).sum() / m.numel()),
                "divide by the number of real tokens (attention_mask.sum()), not by B * T."),
    ]
    n = compare("masked_accuracy", masked_accuracy, _masked_accuracy, cases, mistakes)
    passed("masked_accuracy", n)


# --- Exercise 8.5: the last real token --------------------------------------------------

def _last(hidden, mask, offset=1):
    idx = (mask.long().sum(1) - offset).clamp(0, hidden.shape[1] - 1)
    return hidden[torch.arange(hidden.shape[0]), idx]


def check_last_token_states(last_token_states: Callable, n_cases: int = 15) -> None:
    """Check ``last_token_states(hidden (B, T, d), attention_mask (B, T)) -> (B, d)``, right padding."""
    g = torch.Generator().manual_seed(805)
    cases = []
    for i in range(n_cases):
        B, T, d = 2 + i % 3, 3 + i % 5, 2 + i % 3
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0], lengths[1] = T, max(1, T - 2)  # a full row and a padded one
        mask = (torch.arange(T)[None] < lengths[:, None]).long()
        cases.append((torch.randn(B, T, d, generator=g), mask))
    mistakes = [
        Mistake(lambda h, m: h[:, -1], "the last *position* is padding in a padded row: use the number of real tokens, "
                "attention_mask.sum(dim=1), to find the last real one."),
        Mistake(lambda h, m: h[:, 0], "a causal model's first token has seen only itself: take the last real token."),
        Mistake(lambda h, m: _last(h, m, offset=0), "off by one: a row with n real tokens has its last one at index n - 1."),
        Mistake(lambda h, m: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True), "that is the mean over the real tokens; "
                "the classifier reads the single vector of the last real token."),
    ]
    n = compare("last_token_states", last_token_states, _last, cases, mistakes)
    passed("last_token_states", n)
