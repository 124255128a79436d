"""minillm.finetune: task heads against Hugging Face (every parameter perturbed), the GPT classifier's
padding invariance, LoRA (B = 0, gradients, merging, errors), datasets, training and evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minillm.bert import IGNORE_INDEX, BertConfig, BertForPreTraining, BertModel
from minillm.finetune import (
    BagOfWordsClassifier,
    BertForSequenceClassification,
    BertForTokenClassification,
    ClassificationDataset,
    GPTForSequenceClassification,
    LoRALinear,
    align_word_labels,
    apply_lora,
    confusion_matrix,
    count_parameters,
    evaluate_classifier,
    fine_tune,
    masked_mean,
    mcnemar_test,
    merge_lora,
    pretrain_mlm,
    wilson_interval,
)
from minillm.gpt import GPT, GPTConfig
from minillm.tokenization import special_token_ids, train_wordpiece

transformers = pytest.importorskip("transformers")

TINY = BertConfig(vocab_size=60, d_model=16, n_layers=2, n_heads=4, d_ff=32, block_size=24)


def _perturb(model: nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def _batch(vocab_size=60, B=3, T=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = torch.zeros(B, T, dtype=torch.long)
    types[0, 5:] = 1
    return ids, types, mask


def _hf_bert_config(num_labels=3, **kw):
    return transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=32, max_position_embeddings=24, num_labels=num_labels, **kw)


# --- heads against Hugging Face ------------------------------------------------------------

@pytest.mark.parametrize("num_labels", [2, 3])
def test_sequence_classifier_matches_hugging_face(num_labels):
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification(_hf_bert_config(num_labels)).eval()
    _perturb(hf)
    ours = BertForSequenceClassification.from_hf(hf).eval()
    ids, types, mask = _batch()
    labels = torch.tensor([0, num_labels - 1, 1])
    out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
    logits, loss = ours(ids, types, mask, labels=labels)
    assert logits.shape == (3, num_labels)
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=1e-5)


def test_sequence_classifier_dropout_and_mode_follow_hugging_face():
    hf = transformers.BertForSequenceClassification(_hf_bert_config(2, classifier_dropout=0.3))
    ours = BertForSequenceClassification.from_hf(hf)
    assert ours.training and ours.dropout.p == 0.3
    assert BertForSequenceClassification.from_hf(hf.eval()).training is False


def test_token_classifier_matches_hugging_face():
    torch.manual_seed(1)
    hf = transformers.BertForTokenClassification(_hf_bert_config(4)).eval()
    _perturb(hf, seed=1)
    ours = BertForTokenClassification(BertConfig.from_hf(hf.config), num_labels=4).eval()
    from minillm.bert import _hf_encoder_names, _renamed

    state = hf.state_dict()
    names = {k: v for k, v in _hf_encoder_names(ours.config, "bert", "bert.").items() if "pooler" not in k}
    missing, unexpected = ours.load_state_dict(_renamed(state, names), strict=False)
    assert sorted(missing) == ["bert.pooler.bias", "bert.pooler.weight", "classifier.bias", "classifier.weight"]
    assert not unexpected  # (Hugging Face's token classifier has no pooler; ours is not used)
    ours.classifier.load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
    ids, types, mask = _batch(seed=1)
    labels = torch.randint(4, ids.shape)
    labels[mask == 0] = IGNORE_INDEX
    out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
    logits, loss = ours(ids, types, mask, labels=labels)
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=1e-5)


def test_from_pretraining_copies_the_encoder_only():
    torch.manual_seed(2)
    pre = BertForPreTraining(TINY)
    _perturb(pre, seed=2)
    clf = BertForSequenceClassification.from_pretraining(pre, num_labels=2).eval()
    ids, types, mask = _batch()
    hidden, pooled = pre.bert.eval()(ids, types, mask)
    torch.testing.assert_close(clf.classifier(pooled), clf(ids, types, mask)[0])
    clf.bert.embeddings.token.weight.data.zero_()  # a copy, not shared
    assert pre.bert.embeddings.token.weight.abs().sum() > 0
    assert isinstance(BertForSequenceClassification.from_pretraining(BertModel(TINY)), BertForSequenceClassification)


def test_sequence_classifier_errors():
    with pytest.raises(ValueError, match="add_pooler"):
        BertForSequenceClassification(BertConfig(vocab_size=60, d_model=16, n_layers=1, n_heads=4, d_ff=32,
                                                 block_size=24, add_pooler=False, sentence_task=None))
    with pytest.raises(ValueError, match="num_labels"):
        BertForSequenceClassification(TINY, num_labels=1)
    clf = BertForSequenceClassification(TINY, num_labels=2)
    ids, types, mask = _batch()
    with pytest.raises(ValueError, match="label 2 is outside the 2 classes"):
        clf(ids, types, mask, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="label -1"):
        clf(ids, types, mask, labels=torch.tensor([0, -1, 1]))
    with pytest.raises(TypeError, match="torch.long"):
        clf(ids, types, mask, labels=torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        clf(ids, types, mask, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        clf(torch.full((1, 4), 60), labels=torch.tensor([0]))
    with pytest.raises(TypeError, match="pretrained must be a BertForPreTraining or BertModel"):
        BertForSequenceClassification.from_pretraining(nn.Linear(2, 2))



# --- mean pooling ------------------------------------------------------------------------------

def test_mean_pooling_matches_hugging_face_hidden_states_averaged_over_real_tokens():
    torch.manual_seed(6)
    hf = transformers.BertForSequenceClassification(_hf_bert_config(3)).eval()
    _perturb(hf, seed=6)
    cls_model = BertForSequenceClassification.from_hf(hf).eval()
    assert cls_model.pooling == "cls"  # the default is BERT's (and Hugging Face's) pooled [CLS] vector
    mean_model = BertForSequenceClassification(cls_model.config, 3, pooling="mean").eval()
    mean_model.load_state_dict(cls_model.state_dict())
    ids, types, mask = _batch(seed=2)
    hidden = hf.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state  # (B, T, d)
    m = mask[..., None].float()
    expected = hf.classifier((hidden * m).sum(1) / m.sum(1))
    torch.testing.assert_close(mean_model(ids, types, mask)[0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cls_model(ids, types, mask)[0], expected, atol=1e-3)  # "cls" reads something else


def test_padding_does_not_change_the_mean_pooled_logits():
    torch.manual_seed(7)
    model = BertForSequenceClassification(TINY, num_labels=2, pooling="mean")
    _perturb(model, seed=7)
    model.eval()
    texts = [[2, 17, 42, 3], [2, 8, 9, 10, 11, 3], [2, 5, 3]]
    alone = torch.cat([model(torch.tensor([t]))[0] for t in texts])  # no padding, no mask
    for T in (6, 11):
        ids = torch.full((3, T), 23)  # padding of any id: it must not matter
        mask = torch.zeros(3, T, dtype=torch.long)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor(t)
            mask[i, : len(t)] = 1
        torch.testing.assert_close(model(ids, attention_mask=mask)[0], alone, atol=1e-5, rtol=1e-5)
        # without the mask, the padding is averaged in and the logits change
        assert not torch.allclose(model(ids)[0], alone, atol=1e-3)


def test_masked_mean_and_pooling_errors():
    hidden = torch.arange(24.0).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(masked_mean(hidden, mask), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))
    torch.testing.assert_close(masked_mean(hidden, mask.bool()), masked_mean(hidden, mask))
    torch.testing.assert_close(masked_mean(hidden), hidden.mean(1))
    with pytest.raises(ValueError, match="row 0 of attention_mask has no real token"):
        masked_mean(hidden, torch.tensor([[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\) = \(2, 3\)"):
        masked_mean(hidden, mask[:, :2])
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertForSequenceClassification(TINY, pooling="max")
    no_pooler = BertConfig(vocab_size=60, d_model=16, n_layers=1, n_heads=4, d_ff=32, block_size=24,
                           add_pooler=False, sentence_task=None)
    with pytest.raises(ValueError, match="add_pooler"):
        BertForSequenceClassification(no_pooler, pooling="cls")
    model = BertForSequenceClassification(no_pooler, pooling="mean")  # the mean needs no pooler
    assert model(torch.tensor([[2, 7, 3]]))[0].shape == (1, 2)
    pre = BertForPreTraining(TINY)
    assert BertForSequenceClassification.from_pretraining(pre, pooling="mean").pooling == "mean"
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertForSequenceClassification.from_pretraining(pre, pooling="CLS")


def test_token_classifier_ignores_unlabelled_positions_and_rejects_bad_labels():
    torch.manual_seed(3)
    model = BertForTokenClassification(TINY, num_labels=3).eval()
    ids, types, mask = _batch()
    labels = torch.randint(3, ids.shape)
    labels[mask == 0] = IGNORE_INDEX
    logits, loss = model(ids, types, mask, labels=labels)
    keep = labels != IGNORE_INDEX
    torch.testing.assert_close(loss, F.cross_entropy(logits[keep], labels[keep]))
    with pytest.raises(ValueError, match="every label is IGNORE_INDEX"):
        model(ids, types, mask, labels=torch.full_like(ids, IGNORE_INDEX))
    with pytest.raises(ValueError, match="label 3 is outside"):
        model(ids, types, mask, labels=torch.full_like(ids, 3))
    with pytest.raises(ValueError, match="shape of input_ids"):
        model(ids, types, mask, labels=labels[:, :3])


def test_align_word_labels():
    assert align_word_labels([None, 0, 1, 1, 1, 2, None], [5, 6, 7]) == [-100, 5, 6, -100, -100, 7, -100]
    with pytest.raises(ValueError, match="2 word labels for a text of 3 words"):
        align_word_labels([None, 0, 1, 2, None], [1, 2])


# --- the GPT classifier -----------------------------------------------------------------------

def _gpt_classifier(seed=4):
    torch.manual_seed(seed)
    model = GPTForSequenceClassification(GPTConfig(vocab_size=40, block_size=12, n_layers=2, n_heads=2, d_model=16), 3)
    _perturb(model, seed=seed)
    return model.eval()


def test_gpt_classifier_right_padding_does_not_change_the_logits():
    model = _gpt_classifier()
    texts = [[5, 9, 2, 7], [11, 3], [8, 8, 8, 1, 30, 4, 2]]
    alone = torch.cat([model(torch.tensor([t]))[0] for t in texts])
    for T in (7, 12):
        ids = torch.zeros(3, T, dtype=torch.long)
        mask = torch.zeros(3, T, dtype=torch.long)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor(t)
            ids[i, len(t):] = 17  # padding of any id: it must not matter
            mask[i, : len(t)] = 1
        torch.testing.assert_close(model(ids, attention_mask=mask)[0], alone, atol=1e-6, rtol=1e-5)


def test_gpt_classifier_against_a_manual_computation():
    model = _gpt_classifier(seed=5)
    ids = torch.tensor([[5, 9, 2, 7, 0], [11, 3, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    gpt = model.gpt
    x = gpt.wte(ids) + gpt.wpe.embedding.weight[:5]  # learned positions 0..4
    for block in gpt.blocks:
        x = block(x)
    x = F.layer_norm(x, (16,), gpt.ln_f.weight, gpt.ln_f.bias, eps=gpt.config.eps)
    expected = torch.stack([x[0, 3], x[1, 1]]) @ model.score.weight.T
    logits, loss = model(ids, attention_mask=mask, labels=torch.tensor([2, 0]))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, F.cross_entropy(expected, torch.tensor([2, 0])), atol=1e-5, rtol=1e-5)


def test_gpt_classifier_from_gpt_and_errors():
    torch.manual_seed(6)
    gpt = GPT(GPTConfig(vocab_size=40, block_size=12, n_layers=1, n_heads=2, d_model=16))
    model = GPTForSequenceClassification.from_gpt(gpt, 2)
    assert torch.equal(model.gpt.wte.weight, gpt.wte.weight) and model.gpt.wte.weight is not gpt.wte.weight
    ids = torch.tensor([[5, 9, 2]])
    with pytest.raises(ValueError, match="padding on the right"):
        model(ids, attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="no real token"):
        model(ids, attention_mask=torch.tensor([[0, 0, 0]]))
    with pytest.raises(ValueError, match="only 1"):
        model(ids, attention_mask=torch.tensor([[1, 2, 0]]))
    with pytest.raises(ValueError, match="label 2"):
        model(ids, labels=torch.tensor([2]))
    with pytest.raises(TypeError, match="gpt must be a GPT, got BertModel"):
        GPTForSequenceClassification.from_gpt(BertModel(TINY))


# --- LoRA -----------------------------------------------------------------------------------

def _lora_model(seed=7):
    torch.manual_seed(seed)
    model = BertForSequenceClassification(TINY, num_labels=2)
    _perturb(model, seed=seed)
    return model.eval()


def test_lora_with_b_zero_leaves_outputs_unchanged():
    model = _lora_model()
    ids, types, mask = _batch()
    before = model(ids, types, mask)[0]
    lora = apply_lora(copy.deepcopy(model), r=4, alpha=8, target_modules=("qkv_proj", "fc1"))
    assert sum(isinstance(m, LoRALinear) for m in lora.modules()) == 2 * TINY.n_layers
    assert all(m.lora_A.abs().sum() > 0 and not m.lora_B.any() for m in lora.modules() if isinstance(m, LoRALinear))
    torch.testing.assert_close(lora(ids, types, mask)[0], before, atol=0, rtol=0)


def test_only_lora_parameters_receive_gradients():
    model = apply_lora(_lora_model(), r=2, alpha=4, target_modules=("qkv_proj",), trainable=("classifier",))
    ids, types, mask = _batch()
    _, loss = model.train()(ids, types, mask, labels=torch.tensor([0, 1, 1]))
    loss.backward()
    for name, p in model.named_parameters():
        lora_or_head = "lora_" in name or name.startswith("classifier.")
        assert p.requires_grad == lora_or_head, name
        assert (p.grad is not None) == lora_or_head, name
    # LoRA A gets a gradient only through B, which starts at zero; B gets one right away
    assert all(m.lora_B.grad.abs().sum() > 0 for m in model.modules() if isinstance(m, LoRALinear))
    # per block, A (2, d) and B (3d, 2) on the stacked projection; the head: (d + 1) * 2
    expected = TINY.n_layers * 2 * (TINY.d_model + 3 * TINY.d_model) + (TINY.d_model + 1) * 2
    assert count_parameters(model, trainable_only=True) == expected


def test_lora_linear_forward_is_the_formula():
    torch.manual_seed(8)
    base = nn.Linear(5, 3)
    layer = LoRALinear(base, r=2, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 7, 5)
    expected = x @ base.weight.T + base.bias + 3.0 * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    assert not base.weight.requires_grad and not base.bias.requires_grad


def test_merged_and_unmerged_models_agree_after_training():
    model = apply_lora(_lora_model(seed=9), r=4, alpha=8, target_modules=("qkv_proj", "out_proj"),
                       trainable=("classifier",))
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, types, mask = _batch()
    model.train()
    for _ in range(5):
        _, loss = model(ids, types, mask, labels=torch.tensor([0, 1, 1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_before[n]), f"{n} changed although frozen"
    loras = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert all(m.lora_B.abs().max() > 1e-3 for m in loras)  # B moved away from zero
    model.eval()
    unmerged = model(ids, types, mask)[0]
    merged = merge_lora(copy.deepcopy(model))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert count_parameters(merged) == count_parameters(_lora_model())
    torch.testing.assert_close(merged(ids, types, mask)[0], unmerged, atol=1e-5, rtol=1e-5)
    plain = _lora_model(seed=9)
    assert set(merged.state_dict()) == set(plain.state_dict())  # the original architecture again


def test_lora_bad_arguments():
    model = _lora_model()
    with pytest.raises(ValueError, match="rank r must be a positive int"):
        apply_lora(model, r=0)
    with pytest.raises(ValueError, match="rank r must be a positive int"):
        apply_lora(model, r=-2)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        apply_lora(model, r=2, alpha=0)
    with pytest.raises(ValueError, match=r"no nn.Linear of the model matches target_modules=\['query'\].*qkv_proj"):
        apply_lora(model, target_modules=["query"])
    with pytest.raises(ValueError, match="target_modules is empty"):
        apply_lora(model, target_modules=())
    with pytest.raises(TypeError, match="a list or tuple"):
        apply_lora(model, target_modules="qkv_proj")
    with pytest.raises(ValueError, match="no module of the model"):
        apply_lora(model, trainable=("head",))
    assert all(p.requires_grad for p in model.parameters()), "a failed call must not freeze anything"
    apply_lora(model)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model)
    with pytest.raises(ValueError, match="no LoRALinear"):
        merge_lora(_lora_model())
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1))


def test_lora_targets_match_whole_names():
    model = apply_lora(_lora_model(), r=2, target_modules=("attn.out_proj",))
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert names == [f"bert.blocks.{i}.attn.out_proj" for i in range(TINY.n_layers)]
    with pytest.raises(ValueError, match="matches"):
        apply_lora(_lora_model(), target_modules=("proj",))  # a suffix of a name is not a match


# --- data, training and evaluation -------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_data():
    pos = ["a wonderful film", "truly great acting", "great and wonderful", "a moving story", "wonderful music"]
    neg = ["a dull film", "truly awful acting", "dull and awful", "a boring story", "awful music"]
    texts, labels = pos + neg, [1] * 5 + [0] * 5
    tokenizer = train_wordpiece(texts * 3, vocab_size=80)
    return tokenizer, texts, labels


def test_dataset_batches_and_truncation(toy_data):
    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts + ["wonderful " * 20], labels + [1], tokenizer, max_len=8)
    assert len(data) == 11 and data.n_truncated == 1
    assert len(data.ids[-1]) == 8 and data.ids[-1][-1] == tokenizer.token_to_id("[SEP]")
    batches = list(data.batches(4))
    assert [len(b["labels"]) for b in batches] == [4, 4, 3]
    torch.testing.assert_close(torch.cat([b["labels"] for b in batches]), data.labels)
    b = batches[0]
    assert b["input_ids"].shape == b["attention_mask"].shape
    assert torch.equal(b["attention_mask"].sum(1), data.lengths[:4])
    shuffled = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert sorted(torch.cat([b["labels"] for b in shuffled]).tolist()) == sorted(data.labels.tolist())
    as_tensor = ClassificationDataset(texts, torch.tensor(labels), tokenizer)
    assert torch.equal(as_tensor.labels, torch.tensor(labels))
    sub = data.subset([0, 5])
    assert sub.texts == [texts[0], texts[5]] and sub.labels.tolist() == [1, 0]


def test_dataset_errors(toy_data):
    tokenizer, texts, labels = toy_data
    with pytest.raises(ValueError, match="empty"):
        ClassificationDataset([], [], tokenizer)
    with pytest.raises(ValueError, match="label 2 is outside the 2 classes"):
        ClassificationDataset(texts[:2], [0, 2], tokenizer)
    with pytest.raises(ValueError, match="label -1"):
        ClassificationDataset(texts[:2], [0, -1], tokenizer)
    with pytest.raises(ValueError, match="2 texts but 3 labels"):
        ClassificationDataset(texts[:2], [0, 1, 1], tokenizer)
    with pytest.raises(TypeError, match="ints"):
        ClassificationDataset(texts[:2], ["neg", "pos"], tokenizer)
    with pytest.raises(TypeError, match="ints"):
        ClassificationDataset(texts[:2], torch.tensor([0.0, 1.0]), tokenizer)
    with pytest.raises(TypeError, match="one str"):
        ClassificationDataset("a film", [1], tokenizer)
    data = ClassificationDataset(texts, labels, tokenizer)
    with pytest.raises(ValueError, match="empty"):
        data.subset([])


def test_fine_tune_learns_and_checks_the_vocabulary(toy_data):
    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts, labels, tokenizer)
    V = tokenizer.get_vocab_size()
    config = BertConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=32, block_size=16, dropout=0.0)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    history = fine_tune(model, data, epochs=30, lr=1e-2, batch_size=5, generator=torch.Generator().manual_seed(0))
    assert len(history.train_loss) == 60 and history.train_loss[-1] < 0.3 * history.train_loss[0]
    assert evaluate_classifier(model, data).accuracy == 1.0
    wrong_vocab = BertForSequenceClassification(BertConfig(vocab_size=V + 7, d_model=16, n_layers=1, n_heads=2,
                                                           d_ff=32, block_size=16))
    with pytest.raises(ValueError, match=f"the tokenizer of the data has {V} tokens but the model's vocabulary has {V + 7}"):
        fine_tune(wrong_vocab, data)
    with pytest.raises(ValueError, match="vocabulary"):
        evaluate_classifier(wrong_vocab, data)
    with pytest.raises(ValueError, match="3 classes but the data has 2"):
        fine_tune(BertForSequenceClassification(config, num_labels=3), data)
    frozen = BagOfWordsClassifier(V)
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        fine_tune(frozen, data)


def test_frozen_parameters_stay_unchanged_in_fine_tune(toy_data):
    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts, labels, tokenizer)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), d_model=16, n_layers=1, n_heads=2, d_ff=32, block_size=16)
    model = BertForSequenceClassification(config)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("classifier."))
    before = copy.deepcopy(model.state_dict())
    fine_tune(model, data, epochs=2, batch_size=4)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_bag_of_words_is_a_sum_over_real_tokens():
    bow = BagOfWordsClassifier(10, 3)
    with torch.no_grad():
        bow.weight.copy_(torch.randn(10, 3))
        bow.bias.copy_(torch.randn(3))
    ids = torch.tensor([[2, 5, 5, 3, 0], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    logits, _ = bow(ids, mask)
    torch.testing.assert_close(logits[0], bow.weight[[2, 5, 5, 3]].sum(0) + bow.bias)
    torch.testing.assert_close(logits[1], bow.weight[[2, 7, 3]].sum(0) + bow.bias)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        bow(torch.tensor([[10]]))


def test_evaluate_classifier_keeps_the_order_and_restores_the_mode(toy_data):
    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts + ["a b c d e f g wonderful film"], labels + [1], tokenizer)
    model = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.get_vocab_size(), d_model=16, n_layers=1,
                                                     n_heads=2, d_ff=32, block_size=32)).train()
    result = evaluate_classifier(model, data, batch_size=3)
    assert model.training
    model.eval()
    for i in (0, 4, 10):
        logits, _ = model(**{k: v for k, v in data.batch([i]).items() if k != "labels"})
        torch.testing.assert_close(result.probs[i], logits[0].softmax(-1), atol=1e-5, rtol=1e-5)
    assert torch.equal(result.labels, data.labels) and result.losses.shape == (11,)
    assert result.n_correct == int((result.predictions == data.labels).sum())
    assert result.confusion().sum() == 11


def test_pretrain_mlm_lowers_the_loss(toy_data):
    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts, labels, tokenizer)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), d_model=16, n_layers=1, n_heads=2, d_ff=32,
                        block_size=16, sentence_task=None, masking="dynamic", dropout=0.0)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    losses = pretrain_mlm(model, data, steps=60, special=special_token_ids(tokenizer), batch_size=5, lr=1e-2,
                          generator=torch.Generator().manual_seed(0)).train_loss
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.5
    with pytest.raises(ValueError, match="vocabulary"):
        pretrain_mlm(BertForPreTraining(TINY), data, steps=1, special=special_token_ids(tokenizer))


# --- statistics --------------------------------------------------------------------------------

def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert low < 0.5 < high and math.isclose(0.5 - low, high - 0.5)
    # the same interval written another way: (k + z^2/2) / (n + z^2) +- z sqrt(n) / (n + z^2) sqrt(p(1-p) + z^2/4n)
    for k, n, z in ((81, 263, 1.96), (3, 7, 1.0), (600, 872, 2.576)):
        p = k / n
        center = (k + z * z / 2) / (n + z * z)
        half = z * math.sqrt(n) / (n + z * z) * math.sqrt(p * (1 - p) + z * z / (4 * n))
        low, high = wilson_interval(k, n, z)
        assert math.isclose(low, center - half, rel_tol=1e-12) and math.isclose(high, center + half, rel_tol=1e-12)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson_interval(0, 10)[1] > 0.2
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(10, 10)[0] < 0.8
    # close to the normal approximation for large n
    low, high = wilson_interval(7000, 10000)
    assert abs((high - low) / 2 - 1.96 * math.sqrt(0.21 / 10000)) < 1e-4
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="positive int"):
        wilson_interval(0, 0)


def test_mcnemar_test_by_hand():
    # 10 examples: both right on 0-3, both wrong on 4, A alone right on 5-8, B alone on 9
    a = torch.tensor([1, 1, 1, 1, 0, 1, 1, 1, 1, 0], dtype=torch.bool)
    b = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=torch.bool)
    result = mcnemar_test(a, b)
    assert (result.only_a, result.only_b) == (4, 1)
    assert result.z == pytest.approx((4 - 1) / math.sqrt(5), rel=1e-12)  # 1.3416...
    only_a, only_b, z = mcnemar_test(b, a)  # swapping the models flips the sign
    assert (only_a, only_b) == (1, 4) and z == pytest.approx(-result.z)
    # the examples both get right (or both wrong) do not count: append 100 of each
    agree = torch.tensor([True] * 100 + [False] * 100)
    wider = mcnemar_test(torch.cat([a, agree]), torch.cat([b, agree]))
    assert wider == result
    # z^2 is McNemar's chi-square statistic without continuity correction: (b - c)^2 / (b + c)
    assert result.z**2 == pytest.approx((4 - 1) ** 2 / 5)
    # models that never disagree: z = 0, not a division by zero
    assert mcnemar_test(a, a.clone()) == (0, 0, 0.0)


def test_mcnemar_test_matches_a_large_random_case():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(872, generator=g) < 0.7, torch.rand(872, generator=g) < 0.6
    only_a = sum(1 for x, y in zip(a.tolist(), b.tolist()) if x and not y)
    only_b = sum(1 for x, y in zip(a.tolist(), b.tolist()) if y and not x)
    result = mcnemar_test(a, b)
    assert (result.only_a, result.only_b) == (only_a, only_b)
    assert result.z == pytest.approx((only_a - only_b) / math.sqrt(only_a + only_b))
    assert result.z > 1.96  # 70% against 60% right on 872 examples: clearly different


def test_confusion_matrix():
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    true = torch.tensor([0, 0, 1, 2, 1, 0])
    expected = torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    assert torch.equal(confusion_matrix(pred, true, 3), expected)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(pred[:3], true, 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(pred, true, 2)


# --- the faster paths of the chapter: same results as the plain ones --------------------------

def test_batch_is_pad_batch(toy_data):
    from minillm.bert import pad_batch

    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts + ["a truly wonderful and moving film"], labels + [1], tokenizer)
    for indices in ([0], [3, 10, 1], list(range(11))):
        examples = [(data.ids[i], [0] * len(data.ids[i])) for i in indices]
        expected = pad_batch(examples, pad_token_id=data.pad_token_id)
        batch = data.batch(indices)
        assert torch.equal(batch["input_ids"], expected["input_ids"])
        assert torch.equal(batch["attention_mask"], expected["attention_mask"])
        assert torch.equal(batch["labels"], data.labels[indices])
    sub = data.subset([10, 2])
    assert torch.equal(sub.batch([0, 1])["input_ids"], data.batch([10, 2])["input_ids"])


def test_masked_lm_computes_the_loss_and_gradients_of_the_full_head(toy_data):
    from minillm.bert import mask_tokens
    from minillm.finetune import _MaskedLM

    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts, labels, tokenizer)
    special = special_token_ids(tokenizer)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), d_model=16, n_layers=2, n_heads=2, d_ff=32,
                        block_size=16, sentence_task=None, masking="dynamic", dropout=0.0)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    _perturb(model)
    batch = data.batch(range(len(data)))
    inputs, mlm_labels = mask_tokens(batch["input_ids"], mask_token_id=special.mask, vocab_size=config.vocab_size,
                                     special_token_ids=special.all(), generator=torch.Generator().manual_seed(0))
    _, full = model(inputs, attention_mask=batch["attention_mask"], labels=mlm_labels)
    full.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    logits, loss = _MaskedLM(model)(inputs, batch["attention_mask"], mlm_labels)
    loss.backward()
    assert logits.shape == (int((mlm_labels != IGNORE_INDEX).sum()), config.vocab_size)
    torch.testing.assert_close(loss, full)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5)


def test_train_probe_trains_the_head_on_eval_mode_vectors(toy_data):
    from minillm.finetune import dataset_vectors, train_probe

    tokenizer, texts, labels = toy_data
    data = ClassificationDataset(texts, labels, tokenizer)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), d_model=16, n_layers=1, n_heads=2, d_ff=32,
                        block_size=16)
    torch.manual_seed(0)
    for pooling in ("cls", "mean"):
        model = BertForSequenceClassification(config, pooling=pooling).train()
        vectors = dataset_vectors(model, data, batch_size=3)
        assert model.training and vectors.shape == (len(data), 16)
        model.eval()
        with torch.no_grad():
            for i in (0, 7):
                one = data.batch([i])
                expected = model.sentence_vectors(one["input_ids"], attention_mask=one["attention_mask"])
                torch.testing.assert_close(vectors[i], expected[0], atol=1e-5, rtol=1e-5)
        before = copy.deepcopy(model.state_dict())
        history = train_probe(model, data, epochs=40, lr=0.1, batch_size=4,
                              generator=torch.Generator().manual_seed(0))
        assert len(history.train_loss) == 40 * 3
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier."))
        assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
        assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.weight",
                                                                               "classifier.bias"]
    assert evaluate_classifier(model, data).accuracy >= 0.9  # the mean probe on toy data
    with pytest.raises(TypeError, match="BertForSequenceClassification"):
        train_probe(BagOfWordsClassifier(tokenizer.get_vocab_size()), data)


def test_adamw_is_fused_where_torch_has_the_kernel():
    from minillm.finetune import _adamw

    params = [nn.Parameter(torch.randn(3))]
    optimizer = _adamw(params, 1e-3, 0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["weight_decay"] == 0.01
    assert optimizer.defaults["fused"]  # torch 2.13 has the CPU kernel
