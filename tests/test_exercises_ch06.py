"""Chapter 6's exercise checkers: the reference solutions pass, and each typical wrong answer
gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minillm.exercises import ExerciseFailed, ch06
from exercise_helpers import _hint


def segment_ids_ok(ids, sep, pad):
    is_sep = (ids == sep).long()
    return (((is_sep.cumsum(1) - is_sep) >= 1) & (ids != pad)).long()


def apply_ok(ids, chosen, u, rnd, mask_id):
    labels = ids.masked_fill(~chosen, -100)
    inputs = ids.masked_fill(chosen & (u < 0.8), mask_id)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), rnd, inputs)
    return inputs, labels


def mlm_loss_ok(logits, labels):
    chosen = labels != -100
    lp = logits[chosen].log_softmax(-1)
    return -lp[torch.arange(len(lp)), labels[chosen]].mean()


def albert_ok(V, E, H):
    return V * E + E * H + H


def bert_count_ok(V, d, L, f, P, S):
    emb = (V + P + S) * d + 2 * d
    block = 4 * (d * d + d) + d * f + f + f * d + d + 4 * d
    return emb + L * block + d * d + d


def test_correct_answers_pass(capsys):
    ch06.check_segment_ids(segment_ids_ok)
    ch06.check_apply_80_10_10(apply_ok)
    ch06.check_masked_lm_loss(mlm_loss_ok)
    ch06.check_albert_token_embedding_params(albert_ok)
    ch06.check_bert_parameter_count(bert_count_ok)
    assert capsys.readouterr().out.count("Correct:") == 5


def test_reference_count_is_the_published_bert_base_size():
    assert bert_count_ok(30522, 768, 12, 3072, 512, 2) == 109_482_240
    assert ch06._bert_parameter_count(30522, 768, 12, 3072, 512, 2) == 109_482_240



def test_segment_ids_hints():
    def sep_in_b(ids, sep, pad):
        return (((ids == sep).long().cumsum(1) >= 1) & (ids != pad)).long()

    def padding_is_b(ids, sep, pad):
        is_sep = (ids == sep).long()
        return ((is_sep.cumsum(1) - is_sep) >= 1).long()

    assert "first [SEP] closes segment A" in _hint(ch06.check_segment_ids, sep_in_b)
    assert "padding positions get segment id 0" in _hint(ch06.check_segment_ids, padding_is_b)


def test_apply_80_10_10_hints():
    def labels_everywhere(ids, chosen, u, rnd, m):
        return apply_ok(ids, chosen, u, rnd, m)[0], ids.clone()

    def labels_zero(ids, chosen, u, rnd, m):
        return apply_ok(ids, chosen, u, rnd, m)[0], ids.masked_fill(~chosen, 0)

    def swapped(ids, chosen, u, rnd, m):
        inputs = ids.masked_fill(chosen & (u >= 0.1) & (u < 0.9), m)
        return torch.where(chosen & (u < 0.1), rnd, inputs), ids.masked_fill(~chosen, -100)

    def everywhere(ids, chosen, u, rnd, m):
        inputs = ids.masked_fill(u < 0.8, m)
        return torch.where((u >= 0.8) & (u < 0.9), rnd, inputs), ids.masked_fill(~chosen, -100)

    assert "-100 at the positions that were not chosen" in _hint(ch06.check_apply_80_10_10, labels_everywhere)
    assert "not 0" in _hint(ch06.check_apply_80_10_10, labels_zero)
    assert "u < 0.8 -> [MASK]" in _hint(ch06.check_apply_80_10_10, swapped)
    assert "only the chosen positions" in _hint(ch06.check_apply_80_10_10, everywhere)
    assert "must return a pair" in _hint(ch06.check_apply_80_10_10, lambda ids, c, u, r, m: ids)


def test_masked_lm_loss_hints():
    def over_all(logits, labels):
        lp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        return -(lp * (labels != -100)).sum() / labels.numel()

    def per_row(logits, labels):
        return torch.stack([mlm_loss_ok(logits[b:b + 1], labels[b:b + 1]) for b in range(len(labels))
                            if (labels[b] != -100).any()]).mean()

    def all_positions(logits, labels):
        return F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())

    assert "number of *chosen* positions" in _hint(ch06.check_masked_lm_loss, over_all)
    assert "not per sequence" in _hint(ch06.check_masked_lm_loss, per_row)
    assert "must be skipped" in _hint(ch06.check_masked_lm_loss, all_positions)
    assert "*mean*" in _hint(ch06.check_masked_lm_loss, lambda lg, lb: mlm_loss_ok(lg, lb) * (lb != -100).sum())


def test_albert_hints():
    assert "unfactorized" in _hint(ch06.check_albert_token_embedding_params, lambda V, E, H: V * H)
    assert "with a bias" in _hint(ch06.check_albert_token_embedding_params, lambda V, E, H: V * E + E * H)


def test_bert_count_hints():
    assert "includes the pooler" in _hint(ch06.check_bert_parameter_count,
                                          lambda V, d, L, f, P, S: bert_count_ok(V, d, L, f, P, S) - d * d - d)
    assert "every linear layer has a bias" in _hint(
        ch06.check_bert_parameter_count,
        lambda V, d, L, f, P, S: (V + P + S) * d + 2 * d + L * (4 * d * d + 2 * d * f + 4 * d) + d * d)
    assert "two LayerNorms" in _hint(ch06.check_bert_parameter_count,
                                     lambda V, d, L, f, P, S: bert_count_ok(V, d, L, f, P, S) - 2 * d * L)


def test_stub_is_explained():
    def stub(*args):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch06.check_segment_ids, stub)
    assert "not implemented yet" in _hint(ch06.check_bert_parameter_count, stub)
