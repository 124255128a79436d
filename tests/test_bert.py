"""minillm.bert against oracles nobody here wrote: the `tokenizers` library's BERT template,
Hugging Face `transformers` BERT, RoBERTa and ALBERT models built from config objects with every
parameter perturbed, and the published parameter counts. Plus statistical tests of the masking."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import minillm.bert as bert
import minillm.support as support
from minillm.bert import (
    IGNORE_INDEX,
    BertConfig,
    BertForPreTraining,
    BertModel,
    PretrainingBatches,
    PretrainingLogits,
    build_pair_inputs,
    evaluate_pretraining,
    fill_mask,
    mask_tokens,
    pad_batch,
    sentence_pairs,
    truncate_pair,
)

try:
    import transformers
    from transformers.utils import logging as _hf_logging

    _hf_logging.set_verbosity_error()
except ImportError:  # requirements.txt installs it; without it only the oracle tests are skipped
    transformers = None

needs_hf = pytest.mark.skipif(transformers is None, reason="needs transformers (pip install -r requirements.txt)")

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """Add noise to every parameter: HF's init (zero biases, unit LayerNorm gains) hides misplaced ones."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def padded_pair_batch(vocab_size: int, lengths=((5, 4), (3, 2), (6, 0), (2, 3)), first=5, seed=0, cls=CLS, sep=SEP, pad=PAD):
    """A batch of [CLS] A [SEP] B [SEP] inputs of different lengths, padded: both token types and padding."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for la, lb in lengths:
        a = torch.randint(first, vocab_size, (la,), generator=g).tolist()
        b = torch.randint(first, vocab_size, (lb,), generator=g).tolist() if lb else None
        examples.append(build_pair_inputs(a, b, cls_token_id=cls, sep_token_id=sep))
    return pad_batch(examples, pad_token_id=pad)


# --- input representation ---------------------------------------------------------------------


def _library_tokenizer():
    """A WordPiece tokenizer with the `tokenizers` library's own BERT post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "to", "be", "or", "not", "that", "is", "the", "question", "##s", ",", "."]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", SEP), ("[CLS]", CLS))
    return tok


def test_build_pair_inputs_matches_the_tokenizers_bert_template():
    tok = _library_tokenizer()
    for a, b in [("to be or not to be", "that is the question"), ("questions", "the"), ("to be , or not .", None)]:
        ids_a = tok.encode(a, add_special_tokens=False).ids
        ids_b = tok.encode(b, add_special_tokens=False).ids if b else None
        expected = tok.encode(a, b) if b else tok.encode(a)
        assert build_pair_inputs(ids_a, ids_b, cls_token_id=CLS, sep_token_id=SEP) == (expected.ids, expected.type_ids)


def test_truncation_matches_the_tokenizers_longest_first_strategy():
    tok = _library_tokenizer()
    a, b = "to be or not to be , that is the question .", "the questions is not that"
    for max_len in range(5, 20):
        tok.enable_truncation(max_length=max_len, strategy="longest_first")
        expected = tok.encode(a, b)
        tok.no_truncation()
        ids_a = tok.encode(a, add_special_tokens=False).ids
        ids_b = tok.encode(b, add_special_tokens=False).ids
        got = build_pair_inputs(ids_a, ids_b, cls_token_id=CLS, sep_token_id=SEP, max_len=max_len)
        assert got == (expected.ids, expected.type_ids), max_len


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(5, 99), max_size=30), st.lists(st.integers(5, 99), max_size=30), st.integers(0, 70))
def test_truncate_pair_keeps_prefixes_and_cuts_the_longer_first(a, b, max_tokens):
    ta, tb = truncate_pair(a, b, max_tokens)
    assert ta == a[: len(ta)] and tb == b[: len(tb)]
    assert len(ta) + len(tb) == min(len(a) + len(b), max_tokens)
    if len(ta) < len(a) and len(tb) < len(b):  # both were cut: they end within one token of each other
        assert abs(len(ta) - len(tb)) <= 1
    if len(tb) < len(b):
        assert len(tb) >= len(ta) - 1  # b is cut while it is at least as long as a (BERT cuts b on ties)
    if len(ta) < len(a):
        assert len(ta) >= len(tb)  # a is cut only while it is strictly longer


def test_pad_batch_shapes_mask_and_errors():
    batch = pad_batch([([2, 7, 3], [0, 0, 0]), ([2, 7, 3, 8, 3], [0, 0, 0, 1, 1])], pad_token_id=PAD)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 7, 3, 8, 3]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert pad_batch([([2, 3], [0, 0])], pad_token_id=PAD, length=4)["input_ids"].shape == (1, 4)
    with pytest.raises(ValueError, match="shorter than the longest"):
        pad_batch([([2, 7, 3], [0, 0, 0])], pad_token_id=PAD, length=2)
    with pytest.raises(ValueError, match="3 input ids but 2 token type ids"):
        pad_batch([([2, 7, 3], [0, 0])], pad_token_id=PAD)
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([], pad_token_id=PAD)


# --- masked language modelling ------------------------------------------------------------------


def _random_batch(B, T, vocab_size, seed, n_pad=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (B, T), generator=g)
    ids[:, 0] = CLS
    ids[:, T // 2] = SEP
    lengths = torch.randint(T // 2 + 2, T + 1, (B,), generator=g) if n_pad is None else torch.full((B,), T - n_pad)
    for b, length in enumerate(lengths.tolist()):
        ids[b, length - 1] = SEP
        ids[b, length:] = PAD
    return ids


def _z(successes: int, n: int, p: float) -> float:
    return (successes - n * p) / math.sqrt(n * p * (1 - p))


def test_mask_tokens_labels_and_untouched_positions():
    V = 300
    ids = _random_batch(64, 40, V, seed=1)
    before = ids.clone()
    inputs, labels = mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_token_ids=SPECIAL,
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, before), "mask_tokens must not modify its input"
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert not torch.isin(ids[chosen], torch.tensor(SPECIAL)).any(), "a special or padding token was chosen"
    # exactly round(0.15 n) per row (at least 1), n = non-special tokens of the row
    n = (~torch.isin(ids, torch.tensor(SPECIAL))).sum(1)
    expected = torch.maximum((n.double() * 0.15).round().long(), torch.ones_like(n))
    assert torch.equal(chosen.sum(1), expected)


def test_mask_tokens_80_10_10_proportions_are_right_statistically():
    V = 1000
    ids = _random_batch(4000, 64, V, seed=2)
    inputs, labels = mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_token_ids=SPECIAL,
                                 generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    n = int(chosen.sum())
    masked = int((inputs[chosen] == MASK).sum())
    unchanged = int((inputs[chosen] == ids[chosen]).sum())
    replaced = n - masked - unchanged
    # A random replacement draws the original token with probability 1/995: it then looks unchanged.
    p_same = 0.1 / (V - len(SPECIAL))
    for count, p in [(masked, 0.8), (replaced, 0.1 - p_same), (unchanged, 0.1 + p_same)]:
        assert abs(_z(count, n, p)) < 5, (count, n, p)
    # and the overall share of chosen tokens is 15% of the candidates (up to per-row rounding)
    candidates = int((~torch.isin(ids, torch.tensor(SPECIAL))).sum())
    assert abs(n / candidates - 0.15) < 0.01


def test_mask_tokens_chooses_every_position_equally_often():
    V, B, T = 100, 20000, 12
    ids = torch.randint(5, V, (B, T), generator=torch.Generator().manual_seed(3))
    ids[:, 0], ids[:, -1] = CLS, SEP  # 10 candidates per row, 15% -> 2 chosen (round(1.5) = 2)
    _, labels = mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_token_ids=SPECIAL,
                            generator=torch.Generator().manual_seed(4))
    counts = (labels != IGNORE_INDEX).sum(0).double()
    assert counts[0] == 0 and counts[-1] == 0
    inner = counts[1:-1]
    expected = inner.sum() / len(inner)
    chi2 = float(((inner - expected) ** 2 / expected).sum())
    df = len(inner) - 1
    assert (chi2 - df) / math.sqrt(2 * df) < 5, f"positions are not chosen uniformly: chi2 = {chi2:.1f}, df = {df}"


def test_mask_tokens_random_replacements_are_uniform_non_special_tokens():
    V = 40
    ids = torch.full((20000, 30), 7)
    ids[:, 0], ids[:, -1] = CLS, SEP
    inputs, labels = mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_token_ids=SPECIAL,
                                 generator=torch.Generator().manual_seed(5))
    replaced = inputs[(labels != IGNORE_INDEX) & (inputs != MASK) & (inputs != 7)]
    assert not torch.isin(replaced, torch.tensor(SPECIAL)).any(), "a random replacement was a special token"
    counts = torch.bincount(replaced, minlength=V)[5:].double()
    counts = torch.cat([counts[:2], counts[3:]])  # token 7 is hidden among the unchanged ones
    expected = counts.sum() / len(counts)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = len(counts) - 1
    assert (chi2 - df) / math.sqrt(2 * df) < 5


def test_mask_tokens_is_reproducible_and_dynamic():
    ids = _random_batch(8, 30, 200, seed=6)
    kw = dict(mask_token_id=MASK, vocab_size=200, special_token_ids=SPECIAL)
    a = mask_tokens(ids, generator=torch.Generator().manual_seed(0), **kw)
    b = mask_tokens(ids, generator=torch.Generator().manual_seed(0), **kw)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    g = torch.Generator().manual_seed(0)
    first, second = mask_tokens(ids, generator=g, **kw), mask_tokens(ids, generator=g, **kw)
    assert not torch.equal(first[1], second[1])


def test_mask_tokens_clear_errors():
    ids = torch.tensor([[CLS, 7, 8, SEP]])
    kw = dict(mask_token_id=MASK, special_token_ids=SPECIAL)
    with pytest.raises(ValueError, match=r"token id 50, outside the vocabulary \[0, 20\)"):
        mask_tokens(torch.tensor([[CLS, 50, SEP]]), vocab_size=20, **kw)
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, vocab_size=20, mlm_probability=1.5, **kw)
    with pytest.raises(ValueError, match="must include mask_token_id"):
        mask_tokens(ids, vocab_size=20, mask_token_id=MASK, special_token_ids=[PAD, CLS, SEP])
    with pytest.raises(TypeError, match="torch.long"):
        mask_tokens(ids.float(), vocab_size=20, **kw)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        mask_tokens(ids[0], vocab_size=20, **kw)


# --- sentence pairs ---------------------------------------------------------------------------


def _passages():
    return [[f"p{p}s{i}" for i in range(n)] for p, n in enumerate([5, 1, 7, 3, 0, 4, 6])]


def test_nsp_pairs_are_half_is_next_from_the_same_passage_half_not_next_from_another():
    passages = _passages()
    where = {s: (p, i) for p, passage in enumerate(passages) for i, s in enumerate(passage)}
    pairs = sentence_pairs(passages, task="nsp", generator=torch.Generator().manual_seed(0))
    assert len(pairs) == sum(max(len(p) - 1, 0) for p in passages)
    assert sum(label for *_, label in pairs) == len(pairs) // 2
    for a, b, label in pairs:
        (pa, ia), (pb, ib) = where[a], where[b]
        if label == bert.IS_NEXT:
            assert pa == pb and ib == ia + 1
        else:
            assert label == bert.NOT_NEXT and pa != pb


def test_sop_pairs_are_consecutive_in_order_or_swapped():
    passages = _passages()
    where = {s: (p, i) for p, passage in enumerate(passages) for i, s in enumerate(passage)}
    pairs = sentence_pairs(passages, task="sop", generator=torch.Generator().manual_seed(0))
    assert sum(label for *_, label in pairs) == len(pairs) // 2
    for a, b, label in pairs:
        (pa, ia), (pb, ib) = where[a], where[b]
        assert pa == pb and ib - ia == (1 if label == bert.IN_ORDER else -1)


def test_sentence_pairs_errors():
    with pytest.raises(ValueError, match="'nsp'.*'sop'"):
        sentence_pairs(_passages(), task="mlm")
    with pytest.raises(ValueError, match="no passage has two sentences"):
        sentence_pairs([["a"], ["b"]])
    with pytest.raises(ValueError, match="at least two non-empty passages"):
        sentence_pairs([["a", "b", "c"]], task="nsp")
    assert len(sentence_pairs([["a", "b", "c"]], task="sop")) == 2


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(d_model=100, n_heads=12), "divisible"),
        (dict(activation="swish"), "activation"),
        (dict(sentence_task="mlm"), "sentence_task"),
        (dict(masking="random"), "masking"),
        (dict(position_offset=5), "position_offset"),
        (dict(add_pooler=False), "needs add_pooler"),
        (dict(dropout=1.0), "dropout"),
        (dict(pad_token_id=40000), "pad_token_id"),
        (dict(n_layers=0), "n_layers"),
        (dict(tokenizer="chars"), "tokenizer"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**changes)


@needs_hf
def test_config_from_hf_configs():
    assert BertConfig.from_hf(transformers.BertConfig()) == BertConfig.bert_base()
    roberta = transformers.RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)
    assert BertConfig.from_hf(roberta) == BertConfig.roberta_base()
    albert = transformers.AlbertConfig(embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    assert BertConfig.from_hf(albert) == BertConfig.albert_base()
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig.from_hf(transformers.BertConfig(hidden_act="silu"))
    with pytest.raises(ValueError, match="model_type"):
        BertConfig.from_hf(transformers.GPT2Config())


# --- parameter counts ---------------------------------------------------------------------------


@needs_hf
def test_parameter_counts_equal_the_published_sizes_and_hugging_face():
    with torch.device("meta"):
        ours = {
            "bert": n_params(BertModel(BertConfig.bert_base())),
            "bert_pretraining": n_params(BertForPreTraining(BertConfig.bert_base())),
            "roberta": n_params(BertModel(BertConfig.roberta_base())),
            "albert": n_params(BertModel(BertConfig.albert_base())),
        }
        theirs = {
            "bert": n_params(transformers.BertModel(transformers.BertConfig())),
            "bert_pretraining": n_params(transformers.BertForPreTraining(transformers.BertConfig())),
            "roberta": n_params(transformers.RobertaModel(transformers.RobertaConfig(
                vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5))),
            "albert": n_params(transformers.AlbertModel(transformers.AlbertConfig(
                vocab_size=30000, embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072))),
        }
    published = {"bert": 109_482_240, "bert_pretraining": 110_106_428, "roberta": 124_645_632, "albert": 11_683_584}
    assert ours == theirs == published


# --- matching Hugging Face ----------------------------------------------------------------------

BERT_CONFIGS = [
    dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=24),
    dict(vocab_size=57, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=80,
         max_position_embeddings=16, type_vocab_size=3, layer_norm_eps=1e-7),
    dict(vocab_size=40, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
         max_position_embeddings=12, hidden_act="gelu_new"),
]


@needs_hf
@pytest.mark.parametrize("hf_kwargs", BERT_CONFIGS)
def test_bert_for_pretraining_matches_hugging_face_on_perturbed_weights(hf_kwargs):
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**hf_kwargs)).eval()
    perturb(hf)
    ours = BertForPreTraining.from_hf(hf).eval()
    batch = padded_pair_batch(hf_kwargs["vocab_size"])
    assert (batch["attention_mask"] == 0).any() and (batch["token_type_ids"] == 1).any()
    if hf_kwargs.get("type_vocab_size", 2) > 2:
        batch["token_type_ids"][0, 1] = 2
    with torch.no_grad():
        out = hf(**batch)
        (mlm, nsp), _ = ours(**batch)
    assert mlm.shape == (4, batch["input_ids"].shape[1], hf_kwargs["vocab_size"]) and nsp.shape == (4, 2)
    assert (mlm - out.prediction_logits).abs().max() < 1e-4
    assert (nsp - out.seq_relationship_logits).abs().max() < 1e-4


@needs_hf
def test_bert_model_matches_hugging_face_hidden_states_pooled_output_and_attentions():
    cfg = transformers.BertConfig(**BERT_CONFIGS[0], attn_implementation="eager")
    torch.manual_seed(1)
    hf = transformers.BertModel(cfg).eval()
    perturb(hf, seed=1)
    ours = BertModel.from_hf(hf).eval()
    batch = padded_pair_batch(cfg.vocab_size, seed=1)
    with torch.no_grad():
        out = hf(**batch, output_attentions=True)
        hidden, pooled = ours(**batch)
        maps = ours.attention_maps(**batch)
    assert (hidden - out.last_hidden_state).abs().max() < 1e-4
    assert (pooled - out.pooler_output).abs().max() < 1e-4
    assert len(maps) == len(out.attentions)
    for mine, theirs in zip(maps, out.attentions):
        assert (mine - theirs).abs().max() < 1e-5
        assert torch.allclose(mine.sum(-1), torch.ones(()), atol=1e-5)
        assert (mine * (batch["attention_mask"] == 0)[:, None, None, :]).abs().max() == 0  # no weight on padding


@needs_hf
def test_roberta_matches_hugging_face_masked_lm():
    cfg = transformers.RobertaConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=22, type_vocab_size=1,
                                     pad_token_id=1, layer_norm_eps=1e-5)
    torch.manual_seed(2)
    hf = transformers.RobertaForMaskedLM(cfg).eval()
    perturb(hf, seed=2)
    ours = BertForPreTraining.from_hf(hf).eval()
    assert ours.config.position_offset == 2 and ours.sentence_head is None and ours.bert.pooler is None
    batch = padded_pair_batch(61, seed=2, cls=0, sep=2, pad=1)
    batch["token_type_ids"].zero_()
    with torch.no_grad():
        logits = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        (mlm, nsp), _ = ours(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert nsp is None
    assert (mlm - logits).abs().max() < 1e-4
    with pytest.raises(ValueError, match="has only 20"):  # 22 rows, numbered from 2
        ours(torch.full((1, 21), 5))


@needs_hf
def test_albert_matches_hugging_face_pretraining_with_sop():
    cfg = transformers.AlbertConfig(vocab_size=71, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=24)
    torch.manual_seed(3)
    hf = transformers.AlbertForPreTraining(cfg).eval()
    perturb(hf, seed=3)
    ours = BertForPreTraining.from_hf(hf).eval()
    assert len(ours.bert.blocks) == 1 and ours.config.n_layers == 3 and ours.config.activation == "gelu_tanh"
    batch = padded_pair_batch(71, seed=3)
    with torch.no_grad():
        out = hf(**batch)
        (mlm, sop), _ = ours(**batch)
    assert (mlm - out.prediction_logits).abs().max() < 1e-4
    assert (sop - out.sop_logits).abs().max() < 1e-4
    assert n_params(ours.bert) == n_params(hf.albert)


@needs_hf
def test_every_parameter_matters_and_wrong_choices_break_the_match():
    """The equivalence test can fail: nudging any single parameter, or changing the activation,
    the LayerNorm epsilon or the weight tying, moves the logits away from Hugging Face's."""
    torch.manual_seed(4)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**BERT_CONFIGS[0])).eval()
    perturb(hf, seed=4)
    batch = padded_pair_batch(99, seed=4)
    with torch.no_grad():
        ref = hf(**batch)

    def gap(model):
        with torch.no_grad():
            (mlm, nsp), _ = model.eval()(**batch)
        real = batch["attention_mask"].bool()
        return max(float((mlm - ref.prediction_logits)[real].abs().max()), float((nsp - ref.seq_relationship_logits).abs().max()))

    ours = BertForPreTraining.from_hf(hf)
    assert gap(ours) < 1e-4
    parts = []  # every parameter, with qkv_proj's weight and bias cut into q, k and v
    for name, p in ours.named_parameters():
        if "qkv_proj" in name:
            parts += [(f"{name}[{part}]", t) for part, t in zip("qkv", p.split(ours.config.d_model))]
        else:
            parts.append((name, p))
    assert len(parts) == len(list(ours.named_parameters())) + 4 * ours.config.n_layers
    for name, p in parts:
        if name.endswith("qkv_proj.bias[k]"):
            # q . b_k adds the same number to all of a query's scores, and softmax ignores it:
            # the key bias has no effect in any BERT (its gradient is zero).
            continue
        with torch.no_grad():
            saved = p.clone()
            p.add_(0.05 * torch.randn_like(p))
            assert gap(ours) > 1e-3, f"parameter {name} does not affect the output"
            p.copy_(saved)
    for changes in [dict(activation="gelu_tanh"), dict(eps=1e-1)]:
        other = BertForPreTraining(replace(ours.config, **changes))
        other.load_state_dict(ours.state_dict())
        assert gap(other) > 2e-4, changes  # twice the tolerance of the equivalence tests: they would fail
    untied = BertForPreTraining.from_hf(hf)
    untied.mlm_head.decoder.weight = torch.nn.Parameter(untied.mlm_head.decoder.weight.detach() + 0.05)
    assert gap(untied) > 1e-3


@needs_hf
def test_weights_are_tied_after_conversion_and_training():
    hf = transformers.BertForPreTraining(transformers.BertConfig(**BERT_CONFIGS[2]))
    ours = BertForPreTraining.from_hf(hf)
    assert ours.mlm_head.decoder.weight is ours.bert.embeddings.token.weight
    assert ours.mlm_head.decoder.weight.data_ptr() != hf.cls.predictions.decoder.weight.data_ptr()  # copied, not shared
    names = [n for n, _ in ours.named_parameters()]
    assert "mlm_head.decoder.weight" not in names and "mlm_head.decoder.bias" in names


# --- clear errors --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return BertForPreTraining(BertConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, block_size=10)).eval()


@needs_hf
def test_clear_errors_on_bad_input(tiny):
    ids = torch.tensor([[CLS, 7, 8, SEP]])
    with pytest.raises(ValueError, match=r"token id 50, outside the vocabulary \[0, 50\)"):
        tiny(torch.tensor([[CLS, 50, SEP]]))
    with pytest.raises(ValueError, match=r"token id -1"):
        tiny(torch.tensor([[CLS, -1, SEP]]))
    with pytest.raises(ValueError, match="11 positions but this model has only 10"):
        tiny(torch.full((1, 11), 7))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids, \(1, 4\)"):
        tiny(ids, attention_mask=torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids must have the shape of input_ids"):
        tiny(ids, token_type_ids=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids must lie in \[0, 2\)"):
        tiny(ids, token_type_ids=torch.tensor([[0, 0, 2, 0]]))
    with pytest.raises(TypeError, match="torch.long"):
        tiny(ids.float())
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        tiny(ids[0])
    with pytest.raises(TypeError, match="BertForPreTraining, RobertaForMaskedLM or AlbertForPreTraining"):
        BertForPreTraining.from_hf(transformers.BertModel(transformers.BertConfig(**BERT_CONFIGS[2])))


def test_attention_mask_hides_padding(tiny):
    """Padding tokens change nothing at the real positions, whatever their ids."""
    ids = torch.tensor([[CLS, 7, 8, SEP, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        (a, na), _ = tiny(ids, attention_mask=mask)
        (b, nb), _ = tiny(torch.tensor([[CLS, 7, 8, SEP, 30, 41]]), attention_mask=mask)
        (c, nc), _ = tiny(ids[:, :4])
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and torch.allclose(a[:, :4], c, atol=1e-5)
    assert torch.allclose(na, nb, atol=1e-6) and torch.allclose(na, nc, atol=1e-5)


def test_bert_is_bidirectional(tiny):
    """An encoder without a causal mask: changing the last token changes the first position's output."""
    with torch.no_grad():
        (a, _), _ = tiny(torch.tensor([[CLS, 7, 8, 9, SEP]]))
        (b, _), _ = tiny(torch.tensor([[CLS, 7, 8, 10, SEP]]))
    assert (a[0, 1] - b[0, 1]).abs().max() > 1e-4


# --- losses, data, training helpers ------------------------------------------------------------


def _masked_pair_batch(seed=5):
    batch = padded_pair_batch(50, lengths=((3, 2), (2, 2), (4, 0), (1, 3)), seed=seed)
    inputs, labels = mask_tokens(batch["input_ids"], mask_token_id=MASK, vocab_size=50, special_token_ids=SPECIAL,
                                 generator=torch.Generator().manual_seed(0))
    return {**batch, "input_ids": inputs}, labels


def test_pretraining_forward_returns_logits_and_loss(tiny):
    """forward -> (logits, loss): logits a (mlm, nsp) pair; loss None without labels, the MLM
    cross-entropy with labels, plus the NSP cross-entropy with next_sentence_label."""
    batch, labels = _masked_pair_batch()
    nsp_labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        logits, loss = tiny(**batch)
        assert loss is None and isinstance(logits, PretrainingLogits)
        assert logits.mlm.shape == (4, batch["input_ids"].shape[1], 50) and logits.nsp.shape == (4, 2)
        _, mlm_only = tiny(**batch, labels=labels)
        both_logits, both = tiny(**batch, labels=labels, next_sentence_label=nsp_labels)
    chosen = labels != IGNORE_INDEX
    by_hand_mlm = -logits.mlm[chosen].log_softmax(-1).gather(1, labels[chosen][:, None]).mean()
    by_hand_nsp = -logits.nsp.log_softmax(-1).gather(1, nsp_labels[:, None]).mean()
    torch.testing.assert_close(mlm_only, by_hand_mlm)
    torch.testing.assert_close(both, by_hand_mlm + by_hand_nsp)
    torch.testing.assert_close(both_logits.mlm, logits.mlm)
    with pytest.raises(ValueError, match="no chosen position"):
        tiny(**batch, labels=torch.full_like(labels, IGNORE_INDEX))
    with pytest.raises(ValueError, match="labels must have the shape of input_ids"):
        tiny(**batch, labels=labels[:, :2])
    with pytest.raises(ValueError, match=r"next_sentence_label must have shape \(B,\)"):
        tiny(**batch, labels=labels, next_sentence_label=nsp_labels[:2])
    roberta_like = BertForPreTraining(BertConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                                 block_size=10, sentence_task=None))
    with pytest.raises(ValueError, match="no sentence-level head"):
        roberta_like(**batch, labels=labels, next_sentence_label=nsp_labels)
    (mlm, nsp), loss = roberta_like(**batch, labels=labels)
    assert nsp is None and loss.shape == ()


def test_one_trunk_serves_forward_heads_and_attention_maps(tiny):
    batch, _ = _masked_pair_batch(seed=6)
    with torch.no_grad():
        hidden = tiny.bert.hidden_states(**batch)
        (mlm, nsp), _ = tiny(**batch)
        enc_hidden, pooled = tiny.bert(**batch)
        hidden2, maps = tiny.bert.hidden_states(**batch, need_weights=True)
    torch.testing.assert_close(mlm, tiny.mlm_head(hidden))
    torch.testing.assert_close(nsp, tiny.sentence_head(torch.tanh(tiny.bert.pooler(hidden[:, 0]))))
    torch.testing.assert_close(enc_hidden, hidden)
    torch.testing.assert_close(hidden2, hidden)
    B, T = batch["input_ids"].shape
    attention = tiny.attention_maps(**batch)
    assert isinstance(attention, torch.Tensor) and attention.shape == (2, B, 2, T, T)
    torch.testing.assert_close(attention, maps)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, B, 2, T))


def test_config_is_frozen_and_uses_the_book_vocabulary():
    import dataclasses

    config = BertConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32, block_size=10, eps=1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 32
    assert config.block_size == 10 and config.eps == 1e-6 and config.max_seq_len == 10
    assert not hasattr(config, "max_position") and not hasattr(config, "layer_norm_eps")
    assert BertModel(config).embeddings.position.weight.shape == (10, 16)
    assert BertModel(config).blocks[0].attn_norm.eps == 1e-6
    assert replace(config, block_size=12).block_size == 12
    assert BertConfig.roberta_base().block_size == 514 and BertConfig.roberta_base().max_seq_len == 512
    with pytest.raises(TypeError, match="block_size must be an int"):
        BertConfig(block_size="512")


def test_pretraining_trains_with_the_book_training_loop():
    from minillm.training import train, warmup_cosine

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    config = BertConfig(vocab_size=30, d_model=32, n_layers=1, n_heads=2, d_ff=64, block_size=16, dropout=0.0)
    model = BertForPreTraining(config)
    ids = torch.randint(5, 30, (16, 6), generator=g)
    batch = pad_batch([build_pair_inputs(r[:3].tolist(), r[3:].tolist(), cls_token_id=CLS, sep_token_id=SEP)
                       for r in ids], pad_token_id=PAD)
    inputs, labels = mask_tokens(batch["input_ids"], mask_token_id=MASK, vocab_size=30, special_token_ids=SPECIAL,
                                 generator=g)
    batch = {**batch, "input_ids": inputs, "labels": labels, "next_sentence_label": torch.randint(2, (16,), generator=g)}
    history = train(model, [batch], steps=30, lr=3e-3, lr_schedule=warmup_cosine(3, 30), log=False, progress=False)
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]  # MLM + NSP, from about 4.1
    assert model.mlm_head.decoder.weight is model.bert.embeddings.token.weight  # still tied after training


def test_pretraining_batches_static_and_dynamic_masking():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randint(5, 50, (n,), generator=g).tolist(), torch.randint(5, 50, (n + 2,), generator=g).tolist(), n % 2)
             for n in range(3, 15)]

    class Ids:
        pad, cls, sep, mask = PAD, CLS, SEP, MASK

        @staticmethod
        def all():
            return SPECIAL

    config = BertConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32, block_size=40)
    static = PretrainingBatches(pairs, config=config, special=Ids, max_len=20, generator=torch.Generator().manual_seed(1))
    dynamic = PretrainingBatches(pairs, config=replace(config, masking="dynamic"), special=Ids, max_len=20,
                                 generator=torch.Generator().manual_seed(1))
    s1, s2 = list(static.batches(5)), list(static.batches(5))
    d1, d2 = list(dynamic.batches(5)), list(dynamic.batches(5))
    assert [len(b["next_sentence_label"]) for b in s1] == [5, 5, 2]
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(s1, s2))
    assert not all(torch.equal(a["labels"], b["labels"]) for a, b in zip(d1, d2))
    first = s1[0]
    assert first["input_ids"].shape[1] == int(first["attention_mask"].sum(1).max()) <= 20
    assert first["next_sentence_label"].tolist() == [p[2] for p in pairs[:5]]
    sample = static.sample(7)
    assert sample["input_ids"].shape[0] == 7 and set(sample) == set(first)
    model = BertForPreTraining(config)
    metrics = evaluate_pretraining(model, s1)
    assert set(metrics) == {"mlm_loss", "mlm_accuracy", "sentence_loss", "sentence_accuracy"}
    assert 0 <= metrics["mlm_accuracy"] <= 1 and metrics["mlm_loss"] > 0 and model.training
    with pytest.raises(ValueError, match="longer than the model's 40 positions"):
        PretrainingBatches(pairs, config=config, special=Ids, max_len=41)


def test_fill_mask_returns_top_k_per_mask():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "to", "be", "or", "not"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.post_processor = processors.BertProcessing(("[SEP]", SEP), ("[CLS]", CLS))
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=len(words), d_model=16, n_layers=1, n_heads=2, d_ff=32, block_size=16))
    out = fill_mask(model, tok, "to [MASK] or not to [MASK]", top_k=3)
    assert len(out) == 2 and all(len(c) == 3 for c in out)
    probs = [p for p in (p for c in out for _, p in c)]
    assert all(0 <= p <= 1 for p in probs) and out[0][0][1] >= out[0][1][1] >= out[0][2][1]
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_mask(model, tok, "to be or not")


# --- loading real checkpoints ------------------------------------------------------------------


@needs_hf
def test_from_pretrained_offline_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(support, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(OSError, match=r"cannot load 'bert-base-uncased'.*cannot be reached"):
        BertForPreTraining.from_pretrained("bert-base-uncased", cache_dir=str(tmp_path))
    with pytest.raises(OSError, match=r"'bert-base-uncased' is not in the Hugging Face cache.*local_files_only=True"):
        BertForPreTraining.from_pretrained("bert-base-uncased", local_files_only=True, cache_dir=str(tmp_path))


def test_hub_reachable_respects_offline_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert support.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens there
    assert support.hub_reachable(timeout=1.0) is False


@needs_hf
def test_from_pretrained_loads_a_saved_folder(tmp_path):
    torch.manual_seed(5)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**BERT_CONFIGS[0])).eval()
    perturb(hf, seed=5)
    hf.save_pretrained(tmp_path / "tiny-bert")
    ours = BertForPreTraining.from_pretrained(str(tmp_path / "tiny-bert"))
    assert not ours.training
    batch = padded_pair_batch(99, seed=6)
    with torch.no_grad():
        assert (ours(**batch)[0].mlm - hf(**batch).prediction_logits).abs().max() < 1e-4


def test_minillm_bert_imports_transformers_lazily():
    code = "import sys, minillm.bert; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "False"
