"""Checkers for the exercises of chapter 6 (notebooks/06_bert.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import ExerciseFailed, Mistake, compare, passed

__all__ = [
    "check_segment_ids",
    "check_apply_80_10_10",
    "check_masked_lm_loss",
    "check_albert_token_embedding_params",
    "check_bert_parameter_count",
]

CLS, SEP, PAD, MASK = 2, 3, 0, 4  # the ids of chapter 2's WordPiece tokenizer


# --- Exercise 6.1: segment ids ------------------------------------------------------------

def _segment_ids(input_ids: torch.Tensor, sep_token_id: int, pad_token_id: int) -> torch.Tensor:
    out = torch.zeros_like(input_ids)
    for b, row in enumerate(input_ids.tolist()):
        seps = 0
        for t, token in enumerate(row):
            if token == pad_token_id:
                continue
            out[b, t] = 1 if seps >= 1 else 0
            if token == sep_token_id:
                seps += 1
    return out


def _pair_batch(g: torch.Generator, batch: int, max_a: int, max_b: int, vocab: int = 30) -> torch.Tensor:
    rows = []
    for _ in range(batch):
        a = torch.randint(5, vocab, (int(torch.randint(1, max_a + 1, (1,), generator=g)),), generator=g).tolist()
        b = torch.randint(5, vocab, (int(torch.randint(0, max_b + 1, (1,), generator=g)),), generator=g).tolist()
        rows.append([CLS, *a, SEP] + ([*b, SEP] if b else []))
    T = max(map(len, rows)) + 1
    return torch.tensor([r + [PAD] * (T - len(r)) for r in rows])


def check_segment_ids(segment_ids: Callable, n_cases: int = 15) -> None:
    """Check ``segment_ids(input_ids, sep_token_id, pad_token_id) -> (B, T)``: 0 through the first [SEP], 1 after, 0 on padding."""
    g = torch.Generator().manual_seed(601)
    cases = [(torch.tensor([[CLS, 7, 8, SEP, 9, SEP, PAD]]), SEP, PAD),
             (torch.tensor([[CLS, 7, SEP, PAD, PAD], [CLS, 7, SEP, 8, SEP]]), SEP, PAD)]
    cases += [(_pair_batch(g, 2 + i % 3, 2 + i % 4, 3 + i % 3), SEP, PAD) for i in range(n_cases - 2)]

    def sep_in_b(ids, sep, pad):  # the first [SEP] counted as segment B
        return (((ids == sep).long().cumsum(1) >= 1) & (ids != pad)).long()

    def padding_is_b(ids, sep, pad):
        is_sep = (ids == sep).long()
        return ((is_sep.cumsum(1) - is_sep) >= 1).long()

    def last_sep_in_a(ids, sep, pad):
        is_sep = (ids == sep).long()
        before = is_sep.cumsum(1) - is_sep
        return ((before >= 1) & (ids != pad) & (ids != sep)).long()

    mistakes = [
        Mistake(sep_in_b, "the first [SEP] closes segment A, so it gets segment id 0; only the tokens *after* it get 1 (count the [SEP]s strictly before each position)."),
        Mistake(padding_is_b, "padding positions get segment id 0 (as Hugging Face's tokenizers do); mask them with input_ids != pad_token_id."),
        Mistake(last_sep_in_a, "the final [SEP] belongs to segment B: it gets segment id 1."),
        Mistake(lambda ids, sep, pad: 1 - _segment_ids(ids, sep, pad) - (ids == pad).long(), "segments are swapped: A (with [CLS]) is 0, B is 1."),
    ]
    n = compare("segment_ids", segment_ids, _segment_ids, cases, mistakes)
    passed("segment_ids", n)


# --- Exercise 6.2: the 80/10/10 rule ------------------------------------------------------

def _apply_80_10_10(input_ids, chosen, u, random_ids, mask_token_id):
    inputs = input_ids.clone()
    labels = torch.full_like(input_ids, -100)
    for idx in chosen.nonzero().tolist():
        idx = tuple(idx)
        labels[idx] = input_ids[idx]
        if u[idx] < 0.8:
            inputs[idx] = mask_token_id
        elif u[idx] < 0.9:
            inputs[idx] = random_ids[idx]
    return inputs, labels


def _stacked(fn: Callable) -> Callable:
    def run(*args):
        out = fn(*args)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ExerciseFailed("apply_80_10_10 must return a pair (inputs, labels)")
        return torch.stack([torch.as_tensor(out[0]), torch.as_tensor(out[1])])
    return run


def check_apply_80_10_10(apply_80_10_10: Callable, n_cases: int = 15) -> None:
    """Check ``apply_80_10_10(input_ids, chosen, u, random_ids, mask_token_id) -> (inputs, labels)``."""
    g = torch.Generator().manual_seed(602)
    cases = [(torch.tensor([[10, 11, 12, 13]]), torch.tensor([[True, True, True, False]]),
              torch.tensor([[0.5, 0.85, 0.95, 0.1]]), torch.tensor([[20, 21, 22, 23]]), MASK)]
    for i in range(n_cases - 1):
        shape = (1 + i % 3, 4 + 2 * i)
        ids = torch.randint(5, 50, shape, generator=g)
        cases.append((ids, torch.rand(shape, generator=g) < 0.4, torch.rand(shape, generator=g),
                      torch.randint(5, 50, shape, generator=g), MASK))

    def r(fn):
        return _stacked(fn)

    def labels_everywhere(ids, chosen, u, rnd, m):
        inputs, _ = _apply_80_10_10(ids, chosen, u, rnd, m)
        return inputs, ids.clone()

    def labels_from_inputs(ids, chosen, u, rnd, m):
        inputs, _ = _apply_80_10_10(ids, chosen, u, rnd, m)
        return inputs, inputs.masked_fill(~chosen, -100)

    def labels_zero(ids, chosen, u, rnd, m):
        inputs, labels = _apply_80_10_10(ids, chosen, u, rnd, m)
        return inputs, labels.masked_fill(~chosen, 0)

    def not_only_chosen(ids, chosen, u, rnd, m):
        all_chosen = torch.ones_like(chosen)
        inputs, _ = _apply_80_10_10(ids, all_chosen, u, rnd, m)
        return inputs, ids.masked_fill(~chosen, -100)

    def swapped(ids, chosen, u, rnd, m):  # random when u < 0.1, [MASK] when 0.1 <= u < 0.9
        inputs = ids.masked_fill(chosen & (u >= 0.1) & (u < 0.9), m)
        inputs = torch.where(chosen & (u < 0.1), rnd, inputs)
        return inputs, ids.masked_fill(~chosen, -100)

    def ten_mask(ids, chosen, u, rnd, m):  # 10% [MASK], 80% random
        inputs = ids.masked_fill(chosen & (u < 0.1), m)
        inputs = torch.where(chosen & (u >= 0.1) & (u < 0.9), rnd, inputs)
        return inputs, ids.masked_fill(~chosen, -100)

    mistakes = [
        Mistake(r(labels_everywhere), "labels must be -100 at the positions that were not chosen, so that the loss skips them."),
        Mistake(r(labels_from_inputs), "the labels are the *original* tokens, not the corrupted inputs (a label of [MASK] teaches nothing)."),
        Mistake(r(labels_zero), "use -100 (F.cross_entropy's ignore_index) for the positions that were not chosen, not 0, which is a real token id ([PAD])."),
        Mistake(r(not_only_chosen), "only the chosen positions are corrupted; combine each condition on u with `chosen`."),
        Mistake(r(swapped), "the intervals are u < 0.8 -> [MASK], 0.8 <= u < 0.9 -> random token, u >= 0.9 -> unchanged."),
        Mistake(r(ten_mask), "80% of the chosen tokens become [MASK] (u < 0.8), only 10% a random token."),
    ]
    n = compare("apply_80_10_10", _stacked(apply_80_10_10), _stacked(_apply_80_10_10), cases, mistakes)
    passed("apply_80_10_10", n)


# --- Exercise 6.3: the MLM loss -----------------------------------------------------------

def _masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def check_masked_lm_loss(masked_lm_loss: Callable, n_cases: int = 15) -> None:
    """Check ``masked_lm_loss(logits (B, T, V), labels (B, T)) -> scalar``: mean cross-entropy over labels != -100."""
    g = torch.Generator().manual_seed(603)
    cases = []
    for i in range(n_cases):
        B, T, V = 1 + i % 3, 3 + i % 5, 4 + i % 6
        labels = torch.randint(V, (B, T), generator=g)
        keep = torch.rand(B, T, generator=g) < 0.3
        keep[0, i % T] = True  # at least one chosen position
        if B > 1:
            keep[1] = False
            keep[1, 0] = True  # rows with different numbers of chosen positions
        cases.append((torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2, labels.masked_fill(~keep, -100)))

    def over_all(logits, labels):  # zero loss at ignored positions, divided by every position
        chosen = labels != -100
        return _masked_lm_loss(logits, labels) * chosen.sum() / labels.numel()

    def summed(logits, labels):
        return _masked_lm_loss(logits, labels) * (labels != -100).sum()

    def per_row(logits, labels):
        losses = [_masked_lm_loss(logits[b:b + 1], labels[b:b + 1]) for b in range(len(labels)) if (labels[b] != -100).any()]
        return torch.stack(losses).mean()

    def all_positions(logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.clamp(min=0).reshape(-1))

    def no_log(logits, labels):
        chosen = labels != -100
        p = logits[chosen].softmax(-1)
        return -p[torch.arange(len(p)), labels[chosen]].mean()

    mistakes = [
        Mistake(over_all, "divide by the number of *chosen* positions, not by B * T: the other positions are not part of the loss."),
        Mistake(summed, "the loss is the *mean* over the chosen positions, not their sum."),
        Mistake(per_row, "average over all the chosen positions of the batch at once, not per sequence and then over sequences (rows have different numbers of masks)."),
        Mistake(all_positions, "positions labelled -100 must be skipped, not scored (clamping -100 to token 0 grades the model on positions nobody masked)."),
        Mistake(no_log, "take the log: the loss is minus the mean *log*-probability of the right token (log_softmax, not softmax)."),
    ]
    n = compare("masked_lm_loss", masked_lm_loss, _masked_lm_loss, cases, mistakes, atol=1e-8)
    passed("masked_lm_loss", n)


# --- Exercise 6.4: ALBERT's factorized embeddings -----------------------------------------

def _albert_token_embedding_params(vocab_size: int, d_embed: int, d_model: int) -> int:
    return vocab_size * d_embed + d_embed * d_model + d_model


def check_albert_token_embedding_params(albert_token_embedding_params: Callable) -> None:
    """Check ``albert_token_embedding_params(V, E, H) -> int``: V*E + E*H + H."""
    g = torch.Generator().manual_seed(604)
    cases = [(10, 2, 4), (30000, 128, 768)]
    cases += [tuple(int(x) for x in (torch.randint(50, 5000, (1,), generator=g), torch.randint(2, 64, (1,), generator=g),
                                     torch.randint(64, 512, (1,), generator=g))) for _ in range(10)]
    mistakes = [
        Mistake(lambda V, E, H: V * H, "that is BERT's unfactorized table, V x H; ALBERT stores a V x E table and an E x H projection."),
        Mistake(lambda V, E, H: V * E + E * H, "the projection from E to H is a linear layer with a bias: add H."),
        Mistake(lambda V, E, H: V * E, "the V x E table alone does not give H-dimensional vectors: add the E x H projection and its bias."),
        Mistake(lambda V, E, H: V * E + E * H + E, "the projection's bias has one entry per *output* feature: H, not E."),
    ]
    n = compare("albert_token_embedding_params", albert_token_embedding_params, _albert_token_embedding_params, cases, mistakes)
    passed("albert_token_embedding_params", n)


# --- Exercise 6.5: counting BERT's parameters ----------------------------------------------

def _bert_parameter_count(vocab_size, d_model, n_layers, d_ff, block_size, type_vocab_size) -> int:
    d = d_model
    embeddings = (vocab_size + block_size + type_vocab_size) * d + 2 * d
    block = 4 * (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 4 * d
    return embeddings + n_layers * block + d * d + d


def check_bert_parameter_count(bert_parameter_count: Callable) -> None:
    """Check ``bert_parameter_count(vocab_size, d_model, n_layers, d_ff, block_size, type_vocab_size) -> int``."""
    g = torch.Generator().manual_seed(605)
    cases = [(10, 4, 1, 8, 6, 2), (30522, 768, 12, 3072, 512, 2)]
    for _ in range(10):
        d = 8 * int(torch.randint(1, 20, (1,), generator=g))
        cases.append((int(torch.randint(50, 3000, (1,), generator=g)), d, int(torch.randint(1, 6, (1,), generator=g)),
                      4 * d, int(torch.randint(16, 128, (1,), generator=g)), int(torch.randint(1, 3, (1,), generator=g))))

    def no_pooler(V, d, L, f, P, S):
        return _bert_parameter_count(V, d, L, f, P, S) - (d * d + d)

    def no_norms(V, d, L, f, P, S):
        return _bert_parameter_count(V, d, L, f, P, S) - 2 * d - L * 4 * d

    def no_biases(V, d, L, f, P, S):
        return _bert_parameter_count(V, d, L, f, P, S) - L * (4 * d + f + d) - d

    def no_position_or_segment(V, d, L, f, P, S):
        return _bert_parameter_count(V, d, L, f, P, S) - (P + S) * d

    def one_norm_per_block(V, d, L, f, P, S):
        return _bert_parameter_count(V, d, L, f, P, S) - L * 2 * d

    mistakes = [
        Mistake(no_pooler, "BertModel includes the pooler: a d_model x d_model dense layer with its bias, applied to [CLS]."),
        Mistake(no_norms, "every LayerNorm has a gain and a bias (2 * d_model parameters): one after the embeddings and two in each block."),
        Mistake(no_biases, "every linear layer has a bias: 4 in the attention (q, k, v, out), 2 in the feed-forward network, 1 in the pooler."),
        Mistake(no_position_or_segment, "the embeddings are three tables: tokens (vocab_size rows), positions (block_size rows) and segments (type_vocab_size rows)."),
        Mistake(one_norm_per_block, "a post-LN block has two LayerNorms, one after each sub-layer."),
    ]
    n = compare("bert_parameter_count", bert_parameter_count, _bert_parameter_count, cases, mistakes)
    passed("bert_parameter_count", n)
