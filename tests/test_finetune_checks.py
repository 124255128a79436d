"""The argument checks of chapter 8 (minillm.support, section "Chapter 8: fine-tuning"): each
bad input fails early with the right exception and a message that names the value and what was
expected. tests/test_finetune.py covers the most common ones through the package's own API."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from minillm.bert import BertConfig, BertModel
from minillm.finetune import (
    BagOfWordsClassifier,
    BertForSequenceClassification,
    BertForTokenClassification,
    ClassificationDataset,
    GPTForSequenceClassification,
    LoRALinear,
    apply_lora,
    fine_tune,
    mcnemar_test,
    wilson_interval,
)
from minillm.gpt import GPTConfig
from minillm.support import (
    check_attention_mask,
    check_class_labels,
    check_indices,
    check_lora_targets,
    check_predictions,
)
from minillm.tokenization import train_wordpiece

TINY = BertConfig(vocab_size=60, d_model=16, n_layers=1, n_heads=4, d_ff=32, block_size=24)
GPT_TINY = GPTConfig(vocab_size=40, block_size=12, n_layers=1, n_heads=2, d_model=16)


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(["a good film", "a bad film", "good acting", "bad acting"] * 3,
                           vocab_size=60)


def test_heads_check_their_config_and_classes():
    with pytest.raises(TypeError, match="config must be a BertConfig, got GPTConfig"):
        BertForSequenceClassification(GPT_TINY)
    with pytest.raises(TypeError, match="config must be a GPTConfig, got BertConfig"):
        GPTForSequenceClassification(TINY)
    with pytest.raises(ValueError, match="num_labels must be an int >= 2, got 1"):
        BertForTokenClassification(TINY, num_labels=1)
    with pytest.raises(TypeError, match="num_labels must be an int, got float 2.0"):
        BagOfWordsClassifier(10, num_labels=2.0)
    with pytest.raises(ValueError, match="vocab_size must be a positive int, got 0"):
        BagOfWordsClassifier(0)


def test_from_hf_refuses_other_problem_types():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=4, intermediate_size=32,
                                        num_labels=3, problem_type="regression")
    hf = transformers.BertForSequenceClassification(hf_config)
    with pytest.raises(ValueError, match="problem_type must be one of .*got 'regression'"):
        BertForSequenceClassification.from_hf(hf)


def test_class_labels():
    with pytest.raises(TypeError, match="labels must be a torch.long tensor of class ids, got"):
        check_class_labels([0, 1], 2)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(3,\), got \(2,\)"):
        check_class_labels(torch.tensor([0, 1]), 2, batch_size=3)
    check_class_labels(torch.tensor([0, -100, 1]), 2, ignore_index=-100)
    with pytest.raises(ValueError, match="prediction 2 is outside the 2 classes"):
        check_predictions(torch.tensor([0, 2]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"\(N,\) tensors of the same shape, got \(2, 1\)"):
        column = torch.zeros(2, 1, dtype=torch.long)
        check_predictions(column, column, 2)


def test_attention_masks():
    check_attention_mask(torch.tensor([[1, 1, 0]]), (1, 3), right_padded=True)
    check_attention_mask(torch.tensor([[0, 1, 1]]), (1, 3))  # left padding: fine for a mean
    with pytest.raises(ValueError, match="padding on the right"):
        check_attention_mask(torch.tensor([[0, 1, 1]]), (1, 3), right_padded=True)
    with pytest.raises(ValueError, match=r"shape \(B, T\) = \(1, 3\), got \(1, 2\)"):
        check_attention_mask(torch.tensor([[1, 1]]), (1, 3))
    with pytest.raises(ValueError, match=r"shape \(B, T\) = \(1, 3\), got list"):
        check_attention_mask([[1, 1, 1]], (1, 3))
    model = GPTForSequenceClassification(GPT_TINY)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(1, 3\)"):
        model(torch.tensor([[5, 9, 2]]), attention_mask=torch.tensor([[1, 1]]))


def test_dataset_arguments(tokenizer):
    texts, labels = ["a good film", "a bad film"], [1, 0]
    with pytest.raises(ValueError, match="max_len must be an int >= 2, got 1"):
        ClassificationDataset(texts, labels, tokenizer, max_len=1)
    with pytest.raises(ValueError, match="num_labels must be an int >= 2, got 1"):
        ClassificationDataset(texts, labels, tokenizer, num_labels=1)
    with pytest.raises(TypeError, match="got True"):
        ClassificationDataset(texts, [True, False], tokenizer)
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "a": 1, "good": 2, "bad": 3, "film": 4}
    no_pad = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))  # no [PAD], no [SEP]
    no_pad.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match=r"no \[PAD\] token: pass pad_token_id"):
        ClassificationDataset(texts, labels, no_pad)
    assert ClassificationDataset(texts, labels, no_pad, pad_token_id=0).pad_token_id == 0
    data = ClassificationDataset(texts, labels, tokenizer)
    with pytest.raises(ValueError, match=r"positions in \[0, 2\), got \[0, 5\]"):
        data.subset([0, 5])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        next(data.batches(0))
    with pytest.raises(ValueError, match="the subset is empty"):
        check_indices(torch.tensor([], dtype=torch.long), 2)


def test_fine_tune_arguments(tokenizer):
    data = ClassificationDataset(["a good film", "a bad film"], [1, 0], tokenizer)
    model = BagOfWordsClassifier(tokenizer.get_vocab_size())
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        fine_tune(model, data, epochs=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        fine_tune(model, data, batch_size=0)
    with pytest.raises(ValueError, match=r"warmup must be in \[0, 1\), got 1.5"):
        fine_tune(model, data, warmup=1.5)
    with pytest.raises(TypeError, match="data must be a ClassificationDataset, got list"):
        fine_tune(model, [("a good film", 1)])


def test_wilson_interval_arguments():
    with pytest.raises(ValueError, match="k must be an int between 0 and n = 10, got -1"):
        wilson_interval(-1, 10)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        wilson_interval(1, 10.0)


def test_lora_arguments():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        LoRALinear(nn.Linear(2, 2), dropout=1.0)
    with pytest.raises(TypeError, match="alpha must be a number, got str"):
        LoRALinear(nn.Linear(2, 2), alpha="16")
    model = BertForSequenceClassification(TINY)
    with pytest.raises(TypeError, match="trainable must be a list or tuple of names"):
        apply_lora(model, trainable="classifier")
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="no nn.Linear of the model matches"):
        check_lora_targets(BertModel(TINY), ("q",), (), lambda name, targets: False)


def test_mcnemar_test_refuses_what_is_not_two_bool_vectors_of_one_length():
    right = torch.tensor([True, False, True])
    with pytest.raises(TypeError, match="correct_b must be a bool tensor"):
        mcnemar_test(right, torch.tensor([1, 0, 1]))  # predictions, not right/wrong
    with pytest.raises(TypeError, match="correct_a must be a bool tensor"):
        mcnemar_test([True, False, True], right)
    with pytest.raises(TypeError, match=r"\(2, 3\)"):
        mcnemar_test(right.repeat(2, 1), right.repeat(2, 1))
    with pytest.raises(ValueError, match=r"same N >= 1 examples.*\(3,\) and \(4,\)"):
        mcnemar_test(right, torch.tensor([True, False, True, True]))
    with pytest.raises(ValueError, match="same N >= 1"):
        mcnemar_test(torch.tensor([], dtype=torch.bool), torch.tensor([], dtype=torch.bool))
