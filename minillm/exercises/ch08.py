"""Checkers for the exercises of chapter 8 (notebooks/08_finetuning.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from . import Mistake, compare, passed

__all__ = [
    "check_freeze_all_but",
    "check_count_trainable",
    "check_lora_forward",
    "check_masked_accuracy",
    "check_last_token_states",
]


# --- Exercise 8.1: freeze all but the head ----------------------------------------------

class _Toy(nn.Module):
    """A small model whose names make the typical mistakes visible: a module inside the encoder is
    also called ``classifier_gate``, and the head has a weight and a bias."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.encoder = nn.ModuleDict({"layer": nn.Linear(d, d), "classifier_gate": nn.Linear(d, 1)})
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, 2)


def _models(seed: int) -> list[tuple[nn.Module, tuple[str, ...]]]:
    from minillm.bert import BertConfig
    from minillm.finetune import BertForSequenceClassification

    torch.manual_seed(seed)
    bert = BertForSequenceClassification(BertConfig(vocab_size=20, d_model=8, n_layers=2, n_heads=2, d_ff=16, block_size=8))
    half_frozen = _Toy()
    half_frozen.classifier.requires_grad_(False)  # a head frozen before: the function must unfreeze it
    return [(_Toy(), ("classifier",)), (_Toy(), ("classifier.",)), (half_frozen, ("classifier.",)),
            (_Toy(), ("norm.", "classifier.")), (bert, ("classifier.",)), (bert, ("bert.pooler.", "classifier."))]


def _trainable_after(function: Callable) -> Callable:
    def run(case: int) -> list[str]:
        model, prefixes = _models(800)[case]
        function(model, prefixes)
        return sorted(name for name, p in model.named_parameters() if p.requires_grad)
    return run


def _freeze_reference(model, prefixes):
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(prefix) for prefix in prefixes))


def check_freeze_all_but(freeze_all_but: Callable) -> None:
    """Check ``freeze_all_but(model, prefixes)``: only parameters whose names start with a prefix stay trainable."""

    def substring(model, prefixes):
        for name, p in model.named_parameters():
            p.requires_grad_(any(prefix in name for prefix in prefixes))

    def only_freeze(model, prefixes):
        for name, p in model.named_parameters():
            if not any(name.startswith(prefix) for prefix in prefixes):
                p.requires_grad_(False)

    def inverted(model, prefixes):
        for name, p in model.named_parameters():
            p.requires_grad_(not any(name.startswith(prefix) for prefix in prefixes))

    def weights_only(model, prefixes):
        for name, p in model.named_parameters():
            p.requires_grad_(any(name.startswith(prefix) for prefix in prefixes) and name.endswith("weight"))

    mistakes = [
        Mistake(_trainable_after(inverted), "you froze the head and left the rest trainable: it is the other way round."),
        Mistake(_trainable_after(substring), "a name must *start* with a prefix (name.startswith(prefix)); `prefix in name` also "
                "matches parameters deeper in the model, such as encoder.classifier_gate."),
        Mistake(_trainable_after(only_freeze), "also set requires_grad = True on the parameters that match: a head that was "
                "frozen before must become trainable again."),
        Mistake(_trainable_after(weights_only), "the biases of the head are parameters too: keep every parameter whose name "
                "starts with a prefix trainable, not only the weights."),
        Mistake(_trainable_after(lambda m, p: None), "nothing changed: set p.requires_grad (or call p.requires_grad_(...)) "
                "on every parameter of model.named_parameters()."),
    ]
    cases = [(i,) for i in range(len(_models(800)))]
    n = compare("freeze_all_but", _trainable_after(freeze_all_but), _trainable_after(_freeze_reference), cases, mistakes)
    passed("freeze_all_but", n)


# --- Exercise 8.2: count the trainable parameters ---------------------------------------

def _count_models() -> list[nn.Module]:
    from minillm.bert import BertConfig, BertForPreTraining
    from minillm.gpt import GPT, GPTConfig

    torch.manual_seed(801)
    toy = _Toy()
    toy.encoder.requires_grad_(False)
    gpt = GPT(GPTConfig(vocab_size=30, block_size=8, n_layers=1, n_heads=2, d_model=8))  # tied embedding
    frozen_gpt = GPT(GPTConfig(vocab_size=30, block_size=8, n_layers=2, n_heads=2, d_model=8))
    frozen_gpt.blocks.requires_grad_(False)
    bert = BertForPreTraining(BertConfig(vocab_size=25, d_model=8, n_layers=1, n_heads=2, d_ff=16, block_size=8))
    return [_Toy(), toy, gpt, frozen_gpt, bert]


def _count_reference(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_count_trainable(count_trainable: Callable) -> None:
    """Check ``count_trainable(model) -> int``: elements of the distinct parameters with requires_grad."""

    def on_model(function):
        return lambda i: function(_count_models()[i])

    mistakes = [
        Mistake(on_model(lambda m: sum(p.numel() for p in m.parameters())),
                "count only the parameters with requires_grad = True: frozen ones are not trained."),
        Mistake(on_model(lambda m: sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False) if p.requires_grad)),
                "a tied tensor (GPT's token embedding is also its output layer) is one set of numbers: count it once."),
        Mistake(on_model(lambda m: sum(v.numel() for v in m.state_dict().values())),
                "the state dict lists tied weights twice and includes frozen parameters: use model.parameters()."),
        Mistake(on_model(lambda m: sum(1 for p in m.parameters() if p.requires_grad)),
                "count the numbers in each tensor (p.numel()), not the tensors."),
    ]
    cases = [(i,) for i in range(len(_count_models()))]
    n = compare("count_trainable", on_model(count_trainable), on_model(_count_reference), cases, mistakes, atol=0, rtol=0)
    passed("count_trainable", n)


# --- Exercise 8.3: the LoRA forward pass ------------------------------------------------

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
