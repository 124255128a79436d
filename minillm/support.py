"""Support code for the chapters' own code: helpers the book uses but does not teach.

The argument checks: a chapter's code validates its input with one call to a ``check_*``
function of this module, so that the idea stays in view while bad input still fails early,
with a ``ValueError`` or ``TypeError`` that names the value and what was expected.

``add_to_class`` lets a chapter define a class over several cells, each method next to
the prose that explains it (the device of *Dive into Deep Learning*). In a notebook it
attaches the function to the class at once; the exporter (``tools/export_notebooks.py``)
writes such methods into the class body of the generated module, so ``minillm`` itself
holds ordinary classes.
"""

from __future__ import annotations

from typing import Callable

__all__ = [
    "add_to_class", "check_int", "check_number", "check_dropout", "check_choice", "check_type",
    "check_divisible", "check_features", "check_sequence", "check_token_ids", "check_same_shape",
    "check_qkv", "check_mask", "check_positions", "check_attention_call", "check_cache_update",
    "check_sampling", "check_attention_inputs", "check_base", "check_positioned", "check_rotary",
    "check_logits", "check_generation", "check_config", "copy_checked", "check_pad_examples",
    "check_mask_token", "check_passages", "check_encoder_inputs", "check_mlm_labels",
    "check_sentence_labels", "check_pairs", "check_fill_mask", "check_hf_encoder_config",
    "check_hf_model", "HF_ACTIVATIONS", "check_hf_gpt2", "check_tied_head",
    "check_hf_llama_config", "check_checkpoint_names",
]


def add_to_class(cls: type) -> Callable:
    """Decorator: add the decorated function to ``cls`` under the function's own name.

    Works for plain functions and for ``staticmethod``, ``classmethod`` and ``property``
    objects (decorate those first, then ``add_to_class``)::

        @add_to_class(GPT)
        def generate(self, idx, max_new_tokens): ...
    """
    if not isinstance(cls, type):
        raise TypeError(f"add_to_class needs a class, got {cls!r}")

    def attach(obj):
        func = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
        name = getattr(func, "__name__", None)
        if not name:
            raise TypeError(f"add_to_class cannot tell the name of {obj!r}")
        setattr(cls, name, obj)
        return obj

    return attach


# Argument checks. A chapter's code calls one of these in one line, so the idea stays in view
# while bad input still fails early with a message naming the value and what was expected.

def check_int(name: str, value, minimum: int | None = 1, *, even: bool = False) -> None:
    """``value`` is an int (not a bool) >= ``minimum`` (no bound: None), even if asked."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value}")
    if even and value % 2:
        raise ValueError(f"{name} must be even, got {value}")


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    """``value`` is a real number in the interval given (``low_open``: ``value > low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        if high is None:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise ValueError(f"{name} must be {bound}, got {value!r}")
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        raise ValueError(f"{name} must be in {left}{lo}, {high:g}{right}, got {value!r}")


def check_dropout(value) -> None:
    check_number("dropout", value, low=0.0, high=1.0, high_open=True)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        try:
            allowed = sorted(choices)
        except TypeError:  # e.g. strings and None: keep the order given
            allowed = list(choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_type(name: str, value, expected: type | tuple) -> None:
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple)
                                                 else (expected,)))
        raise TypeError(f"{name} must be a {names}, got {type(value).__name__}")


def check_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if value % by:
        raise ValueError(f"{name} must be divisible by {by_name}, got {name}={value} and "
                         f"{by_name}={by} ({name} % {by_name} = {value % by})")


def _shape(x) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


def check_features(name: str, x, width: int, width_name: str = "d_model") -> None:
    """``x`` is a floating-point tensor of shape (..., width)."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != width:
        raise ValueError(f"{name} must have shape (..., {width_name}={width}), got {_shape(x)}")


def check_sequence(name: str, x, width: int, width_name: str = "d_model") -> None:
    """``x`` is a floating-point (B, T, width) batch of sequences."""
    import torch

    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if x.dim() != 3 or x.shape[-1] != width:
        raise ValueError(f"{name} must have shape (B, T, {width_name}={width}), got {_shape(x)}")


def check_token_ids(name: str, ids, vocab_size: int, *, dims: int = 2,
                    max_len: int | None = None, past: int = 0) -> None:
    """``ids`` is a torch.long tensor with ``dims`` dims of ids in [0, vocab_size); with
    ``max_len``, its last dim plus ``past`` cached positions fits the model's context."""
    import torch

    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
        got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be a torch.long tensor of token ids, got {got}")
    if ids.dim() != dims:
        layout = "(B, T)" if dims == 2 else "(T,)" if dims == 1 else f"{dims} dims"
        raise ValueError(f"{name} must have shape {layout}, got {_shape(ids)}")
    if dims >= 1 and ids.shape[-1] == 0:
        raise ValueError(f"{name} must hold at least one token per sequence, got T = 0")
    if max_len is not None and past + ids.shape[-1] > max_len:
        where = f" after {past} cached positions" if past else ""
        raise ValueError(
            f"sequence too long: {ids.shape[-1]} tokens{where} exceed block_size = {max_len}, "
            f"the model's context length; crop the input to its last {max_len - past} tokens")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(
            f"{name} holds token id {int(bad)}, outside the vocabulary [0, {vocab_size}): "
            "was it made by a tokenizer with a larger vocabulary than the model's?")


def check_same_shape(name: str, x, ref_name: str, ref) -> None:
    import torch

    if not isinstance(x, torch.Tensor) or x.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name}, {_shape(ref)}, got {_shape(x)}")


def check_qkv(q, k, v):
    """Queries (..., T_q, d_k), keys (..., T_k, d_k), values (..., T_k, d_v) that fit together;
    returns the shape of the scores, (..., T_q, T_k)."""
    import torch

    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {got}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., T, d) with at least 2 dims, "
                             f"got {_shape(t)}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype} "
                        f"and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension d_k, got q {_shape(q)} "
                         f"and k {_shape(k)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions T_k (dim -2), "
                         f"got k {_shape(k)} and v {_shape(v)}")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the leading (batch) dims of q, k and v must broadcast, got q "
                         f"{_shape(q)}, k {_shape(k)} and v {_shape(v)}") from None
    return torch.Size((*batch, q.shape[-2], k.shape[-2]))


def check_mask(mask, scores_shape, where: str, hint: str = "") -> None:
    """A mask is bool (True = may attend), has >= 2 dims, and broadcasts to the scores
    (..., T_q, T_k) without enlarging them."""
    import torch

    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{where}: mask must be a torch.bool tensor (True = may attend), "
                        f"got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{where}: mask must have dtype torch.bool (True = may attend), got {mask.dtype}. "
            "Convert a 0/1 mask with `mask.bool()`, an additive mask (0 = keep, -inf = drop) "
            "with `mask == 0`.")
    if mask.dim() < 2:
        raise ValueError(
            f"{where}: mask must have at least 2 dims (..., T_q, T_k), got {_shape(mask)}; a "
            "mask over keys only is written (1, T_k), or (B, 1, 1, T_k) for a batch "
            "(see padding_mask)")
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{where}: mask of shape {_shape(mask)} does not broadcast to the "
                         f"attention scores, of shape (..., T_q, T_k) = "
                         f"{tuple(scores_shape)}{hint}")


def check_positions(seq_len: int, offset: int, max_positions: int) -> None:
    """Positions offset .. offset + seq_len - 1 lie in a table of ``max_positions`` rows."""
    check_int("offset", offset, minimum=0)
    if offset + seq_len > max_positions:
        raise ValueError(
            f"positions {offset} .. {offset + seq_len - 1} were requested (T = {seq_len}, "
            f"offset = {offset}), but this module only has max_positions = {max_positions} "
            f"(positions 0 .. {max_positions - 1})")


def check_attention_call(attn, x, context=None, mask=None, cache=None):
    """The inputs of ``MultiHeadAttention.forward``; returns the mask with a head axis
    added when it was given as (B, T, S), so it applies to every head."""
    import torch

    check_sequence("x", x, attn.d_model)
    S = x.shape[1]
    if context is not None:
        check_sequence("context", context, attn.d_model)
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"context must have the batch size of x, {x.shape[0]}, "
                             f"got {_shape(context)}")
        S = context.shape[1]
    if cache is not None:
        S += cache.length
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.dim() == 3:
        mask = mask.unsqueeze(1)  # (B, T, S) -> (B, 1, T, S): the same for every head
    if isinstance(mask, torch.Tensor) and mask.dim() > 4:
        raise ValueError(f"mask must have 2 to 4 dims, got shape {_shape(mask)}")
    hint = ""
    if isinstance(mask, torch.Tensor) and mask.dim() == 2:
        hint = (f". A 2-D mask is read as (T, S) = ({x.shape[1]}, {S}); for a (B, S) padding "
                "marker, pass padding_mask(marker)")
    scores = torch.Size((x.shape[0], attn.n_heads, x.shape[1], S))
    check_mask(mask, scores, "MultiHeadAttention", hint)
    return mask


def check_cache_update(cache, k) -> None:
    """New keys (B, n_kv_heads, T, d_head) fit in a layer's KV cache."""
    end = cache.length + k.shape[-2]
    if end > cache.max_len:
        raise ValueError(f"the cache holds at most {cache.max_len} positions; "
                         f"{cache.length} cached + {k.shape[-2]} new is too many")
    old = cache.k
    if cache.length and (old.shape[:2] != k.shape[:2] or old.shape[-1] != k.shape[-1]
                         or old.dtype != k.dtype or old.device != k.device):
        raise ValueError(
            f"the cache holds {cache.length} positions of another shape, dtype or device than "
            f"the new keys {_shape(k)} ({k.dtype}, {k.device}); call reset() before reusing it "
            "for another batch")


def check_sampling(temperature, top_k, top_p) -> None:
    """Arguments of the sampling functions of chapter 7."""
    import math

    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}; for "
                         "greedy decoding (the limit temperature -> 0) pass greedy=True")
    if top_k is not None:
        check_int("top_k", top_k)
    if top_p is not None:
        check_number("top_p", top_p, low=0, high=1, low_open=True)


def check_attention_inputs(q, k, v, mask=None, dropout_p: float = 0.0) -> None:
    """The arguments of ``scaled_dot_product_attention`` (chapter 3)."""
    scores_shape = check_qkv(q, k, v)
    check_number("dropout_p", dropout_p, low=0.0, high=1.0)
    if mask is not None:
        check_mask(mask, scores_shape, "scaled_dot_product_attention")


def check_base(base) -> None:
    """The base of sinusoidal and rotary frequencies: a number > 1."""
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
        raise ValueError(f"base must be a number > 1 (the paper uses 10000), got {base!r}")


def check_positioned(x, width: int, width_name: str, max_positions: int, offset: int) -> int:
    """x (..., T, width) and positions offset .. offset + T - 1 in a table of
    ``max_positions`` rows; returns T."""
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a tensor of shape (..., T, {width_name}), got {_shape(x)}")
    if x.shape[-1] != width:
        raise ValueError(f"x must have {width_name} = {width} as its last dimension, "
                         f"got shape {_shape(x)}")
    check_positions(x.shape[-2], offset, max_positions)
    return x.shape[-2]


def check_rotary(x, cos, sin) -> None:
    """Arguments of ``apply_rotary`` (chapter 4)."""
    if x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(f"x must have shape (..., T, d_head) with d_head even, got {_shape(x)}")
    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin must have the same shape, got {_shape(cos)} and "
                         f"{_shape(sin)}")
    if cos.dim() < 2 or cos.shape[-1] != x.shape[-1] or cos.shape[-2] != x.shape[-2]:
        raise ValueError(f"cos and sin must be (T, d_head) = ({x.shape[-2]}, {x.shape[-1]}) "
                         f"to match x of shape {_shape(x)}, got {_shape(cos)}")


def check_logits(logits) -> None:
    """Next-token logits: a floating-point tensor (..., vocab_size)."""
    import torch

    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor (..., vocab_size), got {got}")


def check_generation(idx, max_new_tokens: int, vocab_size: int, block_size: int,
                     crop: bool) -> None:
    """Arguments of ``generate`` (chapter 7): the prompt and how far to extend it."""
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    check_token_ids("idx", idx, vocab_size)
    if not crop and idx.shape[1] + max_new_tokens > block_size:
        raise ValueError(
            f"the prompt ({idx.shape[1]} tokens) plus max_new_tokens ({max_new_tokens}) exceeds "
            f"block_size = {block_size}, the longest context this model reads. Shorten the "
            f"prompt or the generation, or pass crop=True to condition on the last {block_size} "
            "tokens (a sliding window)")


def check_config(config, *, ints=(), choices: dict | None = None, optional_ints=(),
                 token_ids=(), probabilities=(), requires: dict | None = None) -> None:
    """A model configuration: the fields named in ``ints`` are positive ints (those in
    ``optional_ints`` too, or None), ``d_model`` is divisible by ``n_heads``, ``dropout``
    lies in [0, 1), ``eps`` is > 0, each field named in ``choices`` takes one of its
    allowed values, each field in ``token_ids`` is an id in [0, vocab_size), each in
    ``probabilities`` lies in (0, 1), and each field ``a`` of ``requires = {a: b}`` that
    is set (not None or False) needs the field ``b`` to be true."""
    for name in ints:
        check_int(name, getattr(config, name))
    for name in optional_ints:
        if getattr(config, name) is not None:
            check_int(name, getattr(config, name))
    if hasattr(config, "d_model") and hasattr(config, "n_heads"):
        check_divisible("d_model", config.d_model, "n_heads", config.n_heads)
    if hasattr(config, "dropout"):
        check_dropout(config.dropout)
    if hasattr(config, "eps"):
        check_number("eps", config.eps, low=0, low_open=True)
    for name in token_ids:
        check_int(name, getattr(config, name), minimum=0)
        if getattr(config, name) >= config.vocab_size:
            raise ValueError(f"{name}={getattr(config, name)} is outside the vocabulary "
                             f"[0, {config.vocab_size})")
    for name in probabilities:
        check_number(name, getattr(config, name), low=0, high=1, low_open=True, high_open=True)
    for name, allowed in (choices or {}).items():
        check_choice(name, getattr(config, name), allowed)
    for name, needed in (requires or {}).items():
        value = getattr(config, name)
        if value not in (None, False) and not getattr(config, needed):
            raise ValueError(f"{name}={value!r} needs {needed}=True, got "
                             f"{needed}={getattr(config, needed)!r}")


# Chapter 6 (BERT): the inputs of the encoder, its data pipeline and its losses.

def check_pad_examples(examples, length: int | None) -> None:
    """``examples`` of ``pad_batch``: at least one (input_ids, token_type_ids) pair, each of
    two equally long lists, none longer than ``length`` (if given)."""
    if len(examples) == 0:
        raise ValueError("pad_batch needs at least one example")
    for i, (ids, types) in enumerate(examples):
        if len(ids) != len(types):
            raise ValueError(f"example {i}: {len(ids)} input ids but {len(types)} token type ids")
    longest = max(len(ids) for ids, _ in examples)
    if length is not None and length < longest:
        raise ValueError(f"length={length} is shorter than the longest example ({longest} tokens)")


def check_mask_token(mask_token_id: int, vocab_size: int, special_token_ids) -> None:
    """The [MASK] id lies in the vocabulary and is one of the special ids (never a target)."""
    check_int("mask_token_id", mask_token_id, minimum=0)
    if mask_token_id >= vocab_size:
        raise ValueError(f"mask_token_id={mask_token_id} is outside the vocabulary "
                         f"[0, {vocab_size})")
    if mask_token_id not in list(special_token_ids):
        raise ValueError(f"special_token_ids must include mask_token_id={mask_token_id} "
                         "(a [MASK] is never a target)")


def check_passages(passages, task: str) -> None:
    """Passages (lists of sentences) that can make sentence pairs for ``task``."""
    check_choice("task", task, ("nsp", "sop"))
    if not any(len(passage) > 1 for passage in passages):
        raise ValueError("no passage has two sentences: sentence pairs need consecutive "
                         "sentences")
    if task == "nsp" and sum(len(passage) > 0 for passage in passages) < 2:
        raise ValueError("next-sentence prediction needs at least two non-empty passages "
                         "(NotNext takes B from another one)")


def check_encoder_inputs(config, input_ids, token_type_ids=None, attention_mask=None) -> None:
    """A batch for a BERT-style encoder: (B, T) token ids that fit ``config.max_seq_len``,
    segment ids in [0, type_vocab_size) and a (B, T) attention mask, both optional."""
    import torch

    check_token_ids("input_ids", input_ids, config.vocab_size)
    B, T = input_ids.shape
    if T > config.max_seq_len:
        raise ValueError(f"input_ids has {T} positions but this model has only "
                         f"{config.max_seq_len} (block_size={config.block_size}): truncate "
                         "the sequence")
    if token_type_ids is not None:
        if not isinstance(token_type_ids, torch.Tensor) or token_type_ids.shape != (B, T):
            raise ValueError(f"token_type_ids must have the shape of input_ids, {(B, T)}, "
                             f"got {_shape(token_type_ids)}")
        if token_type_ids.dtype != torch.long:
            raise TypeError(f"token_type_ids must be a torch.long tensor, got "
                            f"{token_type_ids.dtype}")
        low, high = int(token_type_ids.min()), int(token_type_ids.max())
        if low < 0 or high >= config.type_vocab_size:
            raise ValueError(f"token_type_ids must lie in [0, {config.type_vocab_size}), got "
                             f"values from {low} to {high}")
    if attention_mask is not None and (not isinstance(attention_mask, torch.Tensor)
                                       or attention_mask.shape != (B, T)):
        raise ValueError(f"attention_mask must have the shape of input_ids, {(B, T)} "
                         f"(1 = real token, 0 = padding), got {_shape(attention_mask)}")


def check_mlm_labels(labels, input_ids) -> None:
    """MLM labels: the shape of ``input_ids``, with at least one chosen (not -100) position."""
    check_same_shape("labels", labels, "input_ids", input_ids)
    if not (labels != -100).any():
        raise ValueError("labels has no chosen position (all are IGNORE_INDEX = -100): "
                         "there is nothing to predict")


def check_sentence_labels(labels, head, batch_size: int) -> None:
    """NSP/SOP labels (B,) for a model that has a sentence-level head."""
    if head is None:
        raise ValueError("this model has no sentence-level head (config.sentence_task is "
                         "None): pass next_sentence_label=None")
    if not hasattr(labels, "shape") or tuple(labels.shape) != (batch_size,):
        raise ValueError(f"next_sentence_label must have shape (B,) = ({batch_size},), got "
                         f"{_shape(labels)}")


def check_pairs(pairs, max_len: int, max_seq_len: int) -> None:
    """Sentence pairs for pretraining, and a length the model's positions allow."""
    if len(pairs) == 0:
        raise ValueError("PretrainingBatches needs at least one pair")
    check_int("max_len", max_len, minimum=3)
    if max_len > max_seq_len:
        raise ValueError(f"max_len={max_len} is longer than the model's {max_seq_len} "
                         "positions")


def check_fill_mask(mask_id, ids, text: str) -> None:
    """A tokenizer with a [MASK] token, and a text that holds one."""
    if mask_id is None:
        raise ValueError("the tokenizer has no [MASK] token")
    if mask_id not in ids:
        raise ValueError(f"the text has no [MASK] token to fill: {text!r}")


def check_hf_encoder_config(hf_config, activations) -> str:
    """A Hugging Face BERT, RoBERTa or ALBERT config that our encoder can copy; returns its
    ``model_type``. ``activations`` maps the activation names we support to ours."""
    kind = getattr(hf_config, "model_type", None)
    check_choice("model_type", kind, ("bert", "roberta", "albert"))
    check_choice("hidden_act", hf_config.hidden_act, activations)
    position = getattr(hf_config, "position_embedding_type", "absolute")
    if position != "absolute":
        raise ValueError(f"only absolute position embeddings are supported, got {position!r}")
    groups = getattr(hf_config, "num_hidden_groups", 1), getattr(hf_config, "inner_group_num", 1)
    if kind == "albert" and groups != (1, 1):
        raise ValueError("only ALBERT with one shared block (num_hidden_groups = "
                         "inner_group_num = 1) is supported")
    if hf_config.hidden_dropout_prob != hf_config.attention_probs_dropout_prob:
        raise ValueError("BertConfig has one dropout rate; the Hugging Face config has two "
                         "different ones")
    return kind


HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
"""Hugging Face's names for the activations that the GPT-2 and BERT converters accept,
mapped to the keys of ``minillm.layers.ACTIVATIONS``."""

# Options of a Hugging Face GPT2Config that minillm's GPT does not have: the option, the
# value GPT-2 uses, and what another value would mean.
_GPT2_FIXED = (
    ("add_cross_attention", False, "cross-attention layers"),
    ("scale_attn_by_inverse_layer_idx", False, "attention scores scaled by 1/layer"),
    ("scale_attn_weights", True, "unscaled attention scores"),
    ("tie_word_embeddings", True, "an output layer not tied to the token embeddings"),
)


def check_hf_gpt2(hf_model) -> None:
    """A ``transformers`` GPT-2 whose every option minillm's GPT can reproduce."""
    config = getattr(hf_model, "config", None)
    if getattr(config, "model_type", None) != "gpt2":
        raise TypeError(
            f"expected a transformers GPT2LMHeadModel, got {type(hf_model).__name__}")
    for attr, expected, what in _GPT2_FIXED:
        if getattr(config, attr, expected) != expected:
            raise ValueError(
                f"cannot convert a GPT-2 with {attr}={getattr(config, attr)!r} ({what}); "
                f"minillm's GPT needs {attr}={expected!r}")
    check_choice("activation_function", config.activation_function, HF_ACTIVATIONS)


def check_tied_head(hf_model, token_embedding) -> None:
    """The model's output layer (if any) is its token embedding matrix, as in GPT-2."""
    import torch

    lm_head = getattr(hf_model, "lm_head", None)
    if lm_head is not None and not torch.equal(lm_head.weight.detach(), token_embedding):
        raise ValueError("the model's lm_head is not tied to its token embeddings (wte); "
                         "GPT ties them")


def check_hf_model(hf_model, expected) -> str:
    """A Hugging Face model of one of the classes named in ``expected``; returns its
    ``model_type``."""
    name = type(hf_model).__name__
    if name not in expected:
        raise TypeError(f"expected a transformers {', '.join(expected[:-1])} or "
                        f"{expected[-1]}, got {name}")
    return hf_model.config.model_type


def copy_checked(dst, src, name: str) -> None:
    """Copy a checkpoint tensor into a parameter, refusing a shape mismatch (a converter's
    one guard against loading a tensor into the wrong place)."""
    if dst.shape != src.shape:
        raise ValueError(f"shape mismatch for {name}: the model expects {_shape(dst)}, the "
                         f"checkpoint has {_shape(src)}")
    dst.copy_(src)


# Chapter 10 (Llama, Qwen2, Qwen3): the configurations and checkpoints the converter accepts.

def check_hf_llama_config(c: dict) -> str:
    """A Hugging Face Llama, Qwen2 or Qwen3 configuration (a dict, as in ``config.json``)
    whose every option minillm's Llama reproduces; returns its ``model_type``."""
    kind = c.get("model_type")
    check_choice("model_type", kind, ("llama", "qwen2", "qwen3"))
    check_choice("hidden_act", c.get("hidden_act", "silu"), ("silu",))
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"only plain RoPE is supported, got rope_type={rope_type!r} (a "
                         "frequency scaling for long contexts, e.g. Llama 3.1's and 3.2's)")
    unsupported = {"use_sliding_window": False, "mlp_bias": False, "attention_dropout": 0.0}
    for name, expected in unsupported.items():
        if c.get(name, expected) not in (expected, None):
            raise ValueError(f"cannot convert a model with {name}={c[name]!r}; minillm's "
                             f"Llama needs {name}={expected!r}")
    return kind


def check_checkpoint_names(state_dict: dict, needed, tied: tuple | None = None) -> None:
    """``state_dict`` holds every name in ``needed`` and nothing else, except, when
    ``tied = (a, b)``, a tensor ``a`` equal to ``b`` (a tied weight stored twice)."""
    import torch

    extra = set(state_dict) - set(needed)
    if tied and tied[0] in extra:
        extra.discard(tied[0])
        if not torch.equal(state_dict[tied[0]], state_dict[tied[1]]):
            raise ValueError(f"the checkpoint's {tied[0]} differs from {tied[1]}, but the "
                             f"configuration ties them (tie_word_embeddings)")
    missing = [name for name in needed if name not in state_dict]
    if missing or extra:
        raise ValueError(f"the checkpoint does not fit the model: missing {missing[:5]}, "
                         f"unexpected {sorted(extra)[:5]}")
