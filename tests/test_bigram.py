"""minillm.bigram (generated from chapter 1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minillm.bigram import (
    EmbeddingBigram,
    NeuralBigram,
    bigram_nll,
    bigram_probabilities,
    bigram_table,
    count_bigrams,
    sample_bigram,
)


def test_count_bigrams_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(7, (500,), generator=g)
    expected = torch.zeros(7, 7, dtype=torch.long)
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist()):
        expected[a, b] += 1
    assert torch.equal(count_bigrams(ids, 7), expected)


@pytest.mark.parametrize(
    "ids, message",
    [
        (torch.tensor([0, 1, 7]), r"ids holds token id 7, outside the vocabulary \[0, 7\)"),
        (torch.tensor([0, -1, 2]), r"token id -1, outside the vocabulary \[0, 7\)"),
        (torch.tensor([[0, 1], [1, 2]]), r"ids must have shape \(T,\), got \(2, 2\)"),
        (torch.tensor([3]), "at least 2 tokens"),
        (torch.tensor([0.0, 1.0]), "torch.long"),
    ],
)
def test_count_bigrams_rejects_bad_ids(ids, message):
    with pytest.raises((ValueError, TypeError), match=message):
        count_bigrams(ids, 7)


def test_probabilities_and_nll():
    counts = torch.tensor([[0, 3], [1, 1]])
    p = bigram_probabilities(counts, alpha=1.0)
    assert torch.allclose(p, torch.tensor([[1 / 5, 4 / 5], [1 / 2, 1 / 2]], dtype=torch.float64))
    mle = bigram_probabilities(counts, alpha=0.0)
    assert torch.allclose(mle[0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    ids = torch.tensor([0, 1, 1, 0])
    expected = -(torch.log(p[0, 1]) + torch.log(p[1, 1]) + torch.log(p[1, 0])) / 3
    assert bigram_nll(p, ids) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="square"):
        bigram_probabilities(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        bigram_probabilities(counts, alpha=-1)
    with pytest.raises(ValueError, match="all zero"):
        bigram_probabilities(torch.tensor([[0, 0], [1, 1]]), alpha=0.0)
    with pytest.raises(TypeError, match="alpha must be a number"):
        bigram_probabilities(counts, alpha="1")
    with pytest.raises(ValueError, match=r"at least 2 tokens to contain a bigram, got 1"):
        bigram_nll(p, torch.tensor([1]))


def test_mle_table_is_a_lower_bound_for_any_table():
    """No table of P(next | current) has a lower NLL on the data it was counted from."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, (2000,), generator=g)
    bound = bigram_nll(bigram_probabilities(count_bigrams(ids, 5), alpha=0.0), ids)
    for _ in range(20):
        other = torch.softmax(torch.randn(5, 5, generator=g, dtype=torch.float64), dim=1)
        assert bigram_nll(other, ids) > bound


def test_sampling_follows_the_table():
    p = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert sample_bigram(p, 0, 5).tolist() == [0, 1, 2, 0, 1, 2]
    a = sample_bigram(torch.full((4, 4), 0.25), 1, 50, generator=torch.Generator().manual_seed(3))
    b = sample_bigram(torch.full((4, 4), 0.25), 1, 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len(a) == 51
    with pytest.raises(ValueError, match=r"start must be a token id in \[0, 3\), got 3"):
        sample_bigram(p, 3, 2)
    with pytest.raises(ValueError, match=r"start must be a token id in \[0, 3\), got -1"):
        sample_bigram(p, -1, 2)
    with pytest.raises(TypeError, match="start must be an int, got float 1.0"):
        sample_bigram(p, 1.0, 2)


@pytest.mark.parametrize("make", [lambda: NeuralBigram(11), lambda: EmbeddingBigram(11, d_model=4)])
def test_models_follow_the_logits_loss_convention(make):
    torch.manual_seed(0)
    model = make()
    idx = torch.randint(11, (3, 6))
    targets = torch.randint(11, (3, 6))
    logits, loss = model(idx)
    assert logits.shape == (3, 6, 11) and loss is None
    logits, loss = model(idx, targets)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)))
    # a last-token model's predictions are rows of its table
    table = bigram_table(model, 11)
    assert torch.allclose(torch.softmax(logits.double(), -1), table[idx], atol=1e-6)
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\), got \(2,\)"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"token id 11, outside the vocabulary \[0, 11\)"):
        model(torch.tensor([[1, 11]]))
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(idx, targets[:, :-1])
    with pytest.raises(TypeError, match="idx must be a torch.long tensor"):
        model(idx.float())
