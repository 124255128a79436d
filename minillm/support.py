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
    "add_to_class",
    "check_int",
    "check_number",
    "check_dropout",
    "check_choice",
    "check_type",
    "check_divisible",
    "check_features",
    "check_sequence",
    "check_token_ids",
    "check_same_shape",
    "check_qkv",
    "check_mask",
    "check_positions",
    "check_attention_call",
    "check_cache_update",
    "check_sampling",
    "check_attention_inputs",
    "check_base",
    "check_positioned",
    "check_rotary",
    "check_logits",
    "check_generation",
    "check_config",
    "copy_checked",
    "check_pad_examples",
    "check_mask_token",
    "check_passages",
    "check_encoder_inputs",
    "check_mlm_labels",
    "check_sentence_labels",
    "check_pairs",
    "check_fill_mask",
    "check_hf_encoder_config",
    "check_hf_model",
    "HF_ACTIVATIONS",
    "check_hf_gpt2",
    "check_tied_head",
    "import_transformers", "hub_reachable", "load_hf_pretrained",


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


def check_number(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` is a real number in the interval given (``low_open``: ``value > low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number, got {type(value).__name__} {value!r}"
        )
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        if high is None:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise ValueError(f"{name} must be {bound}, got {value!r}")
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        raise ValueError(
            f"{name} must be in {left}{lo}, {high:g}{right}, got {value!r}"
        )


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
        names = " or ".join(
            t.__name__
            for t in (expected if isinstance(expected, tuple) else (expected,))
        )
        raise TypeError(f"{name} must be a {names}, got {type(value).__name__}")


def check_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if value % by:
        raise ValueError(
            f"{name} must be divisible by {by_name}, got {name}={value} and "
            f"{by_name}={by} ({name} % {by_name} = {value % by})"
        )


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
        raise ValueError(
            f"{name} must have shape (..., {width_name}={width}), got {_shape(x)}"
        )


def check_sequence(name: str, x, width: int, width_name: str = "d_model") -> None:
    """``x`` is a floating-point (B, T, width) batch of sequences."""
    import torch

    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if x.dim() != 3 or x.shape[-1] != width:
        raise ValueError(
            f"{name} must have shape (B, T, {width_name}={width}), got {_shape(x)}"
        )


def check_token_ids(
    name: str,
    ids,
    vocab_size: int,
    *,
    dims: int = 2,
    max_len: int | None = None,
    past: int = 0,
) -> None:
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
            f"the model's context length; crop the input to its last {max_len - past} tokens"
        )
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(
            f"{name} holds token id {int(bad)}, outside the vocabulary [0, {vocab_size}): "
            "was it made by a tokenizer with a larger vocabulary than the model's?"
        )


def check_same_shape(name: str, x, ref_name: str, ref) -> None:
    import torch

    if not isinstance(x, torch.Tensor) or x.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name}, {_shape(ref)}, got {_shape(x)}"
        )


def check_qkv(q, k, v):
    """Queries (..., T_q, d_k), keys (..., T_k, d_k), values (..., T_k, d_v) that fit together;
    returns the shape of the scores, (..., T_q, T_k)."""
    import torch

    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {got}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have shape (..., T, d) with at least 2 dims, "
                f"got {_shape(t)}"
            )
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(
            f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype} "
            f"and {v.dtype}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k, got q {_shape(q)} "
            f"and k {_shape(k)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions T_k (dim -2), "
            f"got k {_shape(k)} and v {_shape(v)}"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch) dims of q, k and v must broadcast, got q "
            f"{_shape(q)}, k {_shape(k)} and v {_shape(v)}"
        ) from None
    return torch.Size((*batch, q.shape[-2], k.shape[-2]))


def check_mask(mask, scores_shape, where: str, hint: str = "") -> None:
    """A mask is bool (True = may attend), has >= 2 dims, and broadcasts to the scores
    (..., T_q, T_k) without enlarging them."""
    import torch

    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{where}: mask must be a torch.bool tensor (True = may attend), "
            f"got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{where}: mask must have dtype torch.bool (True = may attend), got {mask.dtype}. "
            "Convert a 0/1 mask with `mask.bool()`, an additive mask (0 = keep, -inf = drop) "
            "with `mask == 0`."
        )
    if mask.dim() < 2:
        raise ValueError(
            f"{where}: mask must have at least 2 dims (..., T_q, T_k), got {_shape(mask)}; a "
            "mask over keys only is written (1, T_k), or (B, 1, 1, T_k) for a batch "
            "(see padding_mask)"
        )
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{where}: mask of shape {_shape(mask)} does not broadcast to the "
            f"attention scores, of shape (..., T_q, T_k) = "
            f"{tuple(scores_shape)}{hint}"
        )


def check_positions(seq_len: int, offset: int, max_positions: int) -> None:
    """Positions offset .. offset + seq_len - 1 lie in a table of ``max_positions`` rows."""
    check_int("offset", offset, minimum=0)
    if offset + seq_len > max_positions:
        raise ValueError(
            f"positions {offset} .. {offset + seq_len - 1} were requested (T = {seq_len}, "
            f"offset = {offset}), but this module only has max_positions = {max_positions} "
            f"(positions 0 .. {max_positions - 1})"
        )


def check_attention_call(attn, x, context=None, mask=None, cache=None):
    """The inputs of ``MultiHeadAttention.forward``; returns the mask with a head axis
    added when it was given as (B, T, S), so it applies to every head."""
    import torch

    check_sequence("x", x, attn.d_model)
    S = x.shape[1]
    if context is not None:
        check_sequence("context", context, attn.d_model)
        if context.shape[0] != x.shape[0]:
            raise ValueError(
                f"context must have the batch size of x, {x.shape[0]}, "
                f"got {_shape(context)}"
            )
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
        hint = (
            f". A 2-D mask is read as (T, S) = ({x.shape[1]}, {S}); for a (B, S) padding "
            "marker, pass padding_mask(marker)"
        )
    scores = torch.Size((x.shape[0], attn.n_heads, x.shape[1], S))
    check_mask(mask, scores, "MultiHeadAttention", hint)
    return mask


def check_cache_update(cache, k) -> None:
    """New keys (B, n_kv_heads, T, d_head) fit in a layer's KV cache."""
    end = cache.length + k.shape[-2]
    if end > cache.max_len:
        raise ValueError(
            f"the cache holds at most {cache.max_len} positions; "
            f"{cache.length} cached + {k.shape[-2]} new is too many"
        )
    old = cache.k
    if cache.length and (
        old.shape[:2] != k.shape[:2]
        or old.shape[-1] != k.shape[-1]
        or old.dtype != k.dtype
        or old.device != k.device
    ):
        raise ValueError(
            f"the cache holds {cache.length} positions of another shape, dtype or device than "
            f"the new keys {_shape(k)} ({k.dtype}, {k.device}); call reset() before reusing it "
            "for another batch"
        )


def check_sampling(temperature, top_k, top_p) -> None:
    """Arguments of the sampling functions of chapter 7."""
    import math

    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}; for "
            "greedy decoding (the limit temperature -> 0) pass greedy=True"
        )
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
        raise ValueError(
            f"base must be a number > 1 (the paper uses 10000), got {base!r}"
        )


def check_frequencies(frequencies, d_head: int) -> None:
    """Rotary frequencies: a (d_head/2,) tensor of positive finite numbers."""
    import torch

    check_type("frequencies", frequencies, torch.Tensor)
    if frequencies.shape != (d_head // 2,):
        raise ValueError(
            f"frequencies must have shape ({d_head // 2},), one per pair of the "
            f"d_head={d_head} coordinates, got {tuple(frequencies.shape)}"
        )
    if frequencies.is_meta:  # a shape without values (a model built on "meta")
        return
    if not (torch.isfinite(frequencies).all() and (frequencies > 0).all()):
        raise ValueError(f"frequencies must be positive and finite, got {frequencies}")


def check_rope_scaling(scaling) -> None:
    """Llama 3's RoPE scaling: a ``RopeScaling`` with factor >= 1,
    0 < low_freq_factor < high_freq_factor and a positive int original_block_size."""
    names = ("factor", "low_freq_factor", "high_freq_factor", "original_block_size")
    if getattr(scaling, "_fields", None) != names:
        raise TypeError(
            f"rope_scaling must be a minillm.llama.RopeScaling{names}, got {scaling!r}"
        )
    if isinstance(scaling.factor, bool) or not scaling.factor >= 1:
        raise ValueError(f"rope_scaling.factor must be >= 1, got {scaling.factor!r}")
    if not 0 < scaling.low_freq_factor < scaling.high_freq_factor:
        raise ValueError(
            "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got "
            f"{scaling.low_freq_factor!r} and {scaling.high_freq_factor!r}"
        )
    check_int("original_block_size", scaling.original_block_size)


def check_scorable_text(tokenizer, text, ids) -> None:
    """``text`` a string of at least two tokens (``ids``, its encoding) that the
    tokenizer decodes back to itself, so that bytes and tokens describe the same text."""
    check_type("text", text, str)
    if len(ids) < 2:
        raise ValueError(
            f"text must encode to at least 2 tokens (the first is context only), got "
            f"{len(ids)} from {text!r:.60}"
        )
    if tokenizer.decode(list(ids)) != text:
        raise ValueError(
            "the tokenizer does not decode the text's tokens back to the text (it adds "
            "or drops something, e.g. a beginning-of-sequence token): bits per byte "
            f"would count other bytes than it scores. Text: {text!r:.60}"
        )


def check_positioned(
    x, width: int, width_name: str, max_positions: int, offset: int
) -> int:
    """x (..., T, width) and positions offset .. offset + T - 1 in a table of
    ``max_positions`` rows; returns T."""
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(
            f"x must be a tensor of shape (..., T, {width_name}), got {_shape(x)}"
        )
    if x.shape[-1] != width:
        raise ValueError(
            f"x must have {width_name} = {width} as its last dimension, "
            f"got shape {_shape(x)}"
        )
    check_positions(x.shape[-2], offset, max_positions)
    return x.shape[-2]


def check_rotary(x, cos, sin) -> None:
    """Arguments of ``apply_rotary`` (chapter 4)."""
    if x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"x must have shape (..., T, d_head) with d_head even, got {_shape(x)}"
        )
    if cos.shape != sin.shape:
        raise ValueError(
            f"cos and sin must have the same shape, got {_shape(cos)} and {_shape(sin)}"
        )
    if cos.dim() < 2 or cos.shape[-1] != x.shape[-1] or cos.shape[-2] != x.shape[-2]:
        raise ValueError(
            f"cos and sin must be (T, d_head) = ({x.shape[-2]}, {x.shape[-1]}) "
            f"to match x of shape {_shape(x)}, got {_shape(cos)}"
        )


def check_logits(logits) -> None:
    """Next-token logits: a floating-point tensor (..., vocab_size)."""
    import torch

    if (
        not isinstance(logits, torch.Tensor)
        or not logits.is_floating_point()
        or logits.dim() < 1
    ):
        got = (
            logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        )
        raise TypeError(
            f"logits must be a floating-point tensor (..., vocab_size), got {got}"
        )


def check_generation(
    idx, max_new_tokens: int, vocab_size: int, block_size: int, crop: bool
) -> None:
    """Arguments of ``generate`` (chapter 7): the prompt and how far to extend it."""
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    check_token_ids("idx", idx, vocab_size)
    if not crop and idx.shape[1] + max_new_tokens > block_size:
        raise ValueError(
            f"the prompt ({idx.shape[1]} tokens) plus max_new_tokens ({max_new_tokens}) exceeds "
            f"block_size = {block_size}, the longest context this model reads. Shorten the "
            f"prompt or the generation, or pass crop=True to condition on the last {block_size} "
            "tokens (a sliding window)"
        )


def check_config(
    config,
    *,
    ints=(),
    choices: dict | None = None,
    optional_ints=(),
    token_ids=(),
    probabilities=(),
    requires: dict | None = None,
) -> None:
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
            raise ValueError(
                f"{name}={getattr(config, name)} is outside the vocabulary "
                f"[0, {config.vocab_size})"
            )
    for name in probabilities:
        check_number(
            name, getattr(config, name), low=0, high=1, low_open=True, high_open=True
        )
    for name, allowed in (choices or {}).items():
        check_choice(name, getattr(config, name), allowed)
    for name, needed in (requires or {}).items():
        value = getattr(config, name)
        if value not in (None, False) and not getattr(config, needed):
            raise ValueError(
                f"{name}={value!r} needs {needed}=True, got "
                f"{needed}={getattr(config, needed)!r}"
            )


# Chapter 6 (BERT): the inputs of the encoder, its data pipeline and its losses.


def check_pad_examples(examples, length: int | None) -> None:
    """``examples`` of ``pad_batch``: at least one (input_ids, token_type_ids) pair, each of
    two equally long lists, none longer than ``length`` (if given)."""
    if len(examples) == 0:
        raise ValueError("pad_batch needs at least one example")
    for i, (ids, types) in enumerate(examples):
        if len(ids) != len(types):
            raise ValueError(
                f"example {i}: {len(ids)} input ids but {len(types)} token type ids"
            )
    longest = max(len(ids) for ids, _ in examples)
    if length is not None and length < longest:
        raise ValueError(
            f"length={length} is shorter than the longest example ({longest} tokens)"
        )


def check_mask_token(mask_token_id: int, vocab_size: int, special_token_ids) -> None:
    """The [MASK] id lies in the vocabulary and is one of the special ids (never a target)."""
    check_int("mask_token_id", mask_token_id, minimum=0)
    if mask_token_id >= vocab_size:
        raise ValueError(
            f"mask_token_id={mask_token_id} is outside the vocabulary [0, {vocab_size})"
        )
    if mask_token_id not in list(special_token_ids):
        raise ValueError(
            f"special_token_ids must include mask_token_id={mask_token_id} "
            "(a [MASK] is never a target)"
        )


def check_passages(passages, task: str) -> None:
    """Passages (lists of sentences) that can make sentence pairs for ``task``."""
    check_choice("task", task, ("nsp", "sop"))
    if not any(len(passage) > 1 for passage in passages):
        raise ValueError(
            "no passage has two sentences: sentence pairs need consecutive sentences"
        )
    if task == "nsp" and sum(len(passage) > 0 for passage in passages) < 2:
        raise ValueError(
            "next-sentence prediction needs at least two non-empty passages "
            "(NotNext takes B from another one)"
        )


def check_encoder_inputs(
    config, input_ids, token_type_ids=None, attention_mask=None
) -> None:
    """A batch for a BERT-style encoder: (B, T) token ids that fit ``config.max_seq_len``,
    segment ids in [0, type_vocab_size) and a (B, T) attention mask, both optional."""
    import torch

    check_token_ids("input_ids", input_ids, config.vocab_size)
    B, T = input_ids.shape
    if T > config.max_seq_len:
        raise ValueError(
            f"input_ids has {T} positions but this model has only "
            f"{config.max_seq_len} (block_size={config.block_size}): truncate "
            "the sequence"
        )
    if token_type_ids is not None:
        if not isinstance(token_type_ids, torch.Tensor) or token_type_ids.shape != (
            B,
            T,
        ):
            raise ValueError(
                f"token_type_ids must have the shape of input_ids, {(B, T)}, "
                f"got {_shape(token_type_ids)}"
            )
        if token_type_ids.dtype != torch.long:
            raise TypeError(
                f"token_type_ids must be a torch.long tensor, got "
                f"{token_type_ids.dtype}"
            )
        low, high = int(token_type_ids.min()), int(token_type_ids.max())
        if low < 0 or high >= config.type_vocab_size:
            raise ValueError(
                f"token_type_ids must lie in [0, {config.type_vocab_size}), got "
                f"values from {low} to {high}"
            )
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != (B, T)
    ):
        raise ValueError(
            f"attention_mask must have the shape of input_ids, {(B, T)} "
            f"(1 = real token, 0 = padding), got {_shape(attention_mask)}"
        )


def check_mlm_labels(labels, input_ids) -> None:
    """MLM labels: the shape of ``input_ids``, with at least one chosen (not -100) position."""
    check_same_shape("labels", labels, "input_ids", input_ids)
    if not (labels != -100).any():
        raise ValueError(
            "labels has no chosen position (all are IGNORE_INDEX = -100): "
            "there is nothing to predict"
        )


def check_sentence_labels(labels, head, batch_size: int) -> None:
    """NSP/SOP labels (B,) for a model that has a sentence-level head."""
    if head is None:
        raise ValueError(
            "this model has no sentence-level head (config.sentence_task is "
            "None): pass next_sentence_label=None"
        )
    if not hasattr(labels, "shape") or tuple(labels.shape) != (batch_size,):
        raise ValueError(
            f"next_sentence_label must have shape (B,) = ({batch_size},), got "
            f"{_shape(labels)}"
        )


def check_pairs(pairs, max_len: int, max_seq_len: int) -> None:
    """Sentence pairs for pretraining, and a length the model's positions allow."""
    if len(pairs) == 0:
        raise ValueError("PretrainingBatches needs at least one pair")
    check_int("max_len", max_len, minimum=3)
    if max_len > max_seq_len:
        raise ValueError(
            f"max_len={max_len} is longer than the model's {max_seq_len} positions"
        )


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
        raise ValueError(
            f"only absolute position embeddings are supported, got {position!r}"
        )
    groups = (
        getattr(hf_config, "num_hidden_groups", 1),
        getattr(hf_config, "inner_group_num", 1),
    )
    if kind == "albert" and groups != (1, 1):
        raise ValueError(
            "only ALBERT with one shared block (num_hidden_groups = "
            "inner_group_num = 1) is supported"
        )
    if hf_config.hidden_dropout_prob != hf_config.attention_probs_dropout_prob:
        raise ValueError(
            "BertConfig has one dropout rate; the Hugging Face config has two "
            "different ones"
        )
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
            f"expected a transformers GPT2LMHeadModel, got {type(hf_model).__name__}"
        )
    for attr, expected, what in _GPT2_FIXED:
        if getattr(config, attr, expected) != expected:
            raise ValueError(
                f"cannot convert a GPT-2 with {attr}={getattr(config, attr)!r} ({what}); "
                f"minillm's GPT needs {attr}={expected!r}"
            )
    check_choice("activation_function", config.activation_function, HF_ACTIVATIONS)


def check_tied_head(hf_model, token_embedding) -> None:
    """The model's output layer (if any) is its token embedding matrix, as in GPT-2."""
    import torch

    lm_head = getattr(hf_model, "lm_head", None)
    if lm_head is not None and not torch.equal(
        lm_head.weight.detach(), token_embedding
    ):
        raise ValueError(
            "the model's lm_head is not tied to its token embeddings (wte); "
            "GPT ties them"
        )


# Loading Hugging Face checkpoints: the chapters that convert a released model (6, 7,
# 10) load it with one call, and a reader offline gets an error that says what to do.


def import_transformers():
    """The ``transformers`` package, or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "converting Hugging Face models needs the `transformers` package: "
            "pip install transformers"
        ) from None
    return transformers


def hf_endpoint() -> str:
    import os

    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False when
    HF_HUB_OFFLINE is set)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(hf_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_hf_pretrained(class_name: str, name: str, *, local_files_only: bool = False,
                       cache_dir: str | None = None):
    """``transformers.<class_name>.from_pretrained(name)``: a hub name or a folder
    written by ``save_pretrained``, from the cache if it is there. A checkpoint that
    is not cached and cannot be downloaded (offline, or ``local_files_only=True``) is
    an ``OSError`` that says so and what to do, instead of a long network retry."""
    check_type("name", name, str)
    auto = getattr(import_transformers(), class_name)
    where = cache_dir or "the default cache folder"
    try:
        return auto.from_pretrained(name, local_files_only=True, cache_dir=cache_dir)
    except OSError:
        if local_files_only:
            raise OSError(
                f"{name!r} is not in the Hugging Face cache ({where}) and "
                "local_files_only=True forbids downloading it. Pass "
                "local_files_only=False on a machine with internet access, or give "
                "the path of a folder saved with save_pretrained."
            ) from None
        if not hub_reachable():
            raise OSError(
                f"cannot load {name!r}: it is not in the Hugging Face cache ({where}) "
                f"and the hub ({hf_endpoint()}) cannot be reached from this machine "
                "(offline?). Connect to the internet once (the download is then "
                "cached), or copy a folder saved with save_pretrained to this "
                "machine and pass its path."
            ) from None
    return auto.from_pretrained(name, cache_dir=cache_dir)


def check_hf_model(hf_model, expected) -> str:
    """A Hugging Face model of one of the classes named in ``expected``; returns its
    ``model_type``."""
    name = type(hf_model).__name__
    if name not in expected:
        raise TypeError(
            f"expected a transformers {', '.join(expected[:-1])} or "
            f"{expected[-1]}, got {name}"
        )
    return hf_model.config.model_type


def copy_checked(dst, src, name: str) -> None:
    """Copy a checkpoint tensor into a parameter, refusing a shape mismatch (a converter's
    one guard against loading a tensor into the wrong place)."""
    if dst.shape != src.shape:
        raise ValueError(
            f"shape mismatch for {name}: the model expects {_shape(dst)}, the "
            f"checkpoint has {_shape(src)}"
        )
    dst.copy_(src)


# Chapter 8: fine-tuning: task heads, classification data, LoRA and the statistics.

__all__ += [
    "check_head",
    "check_class_labels",
    "check_token_labels",
    "check_word_labels",
    "check_attention_mask",
    "check_dataset",
    "check_indices",
    "check_model_data",
    "check_proportion",
    "check_predictions",
    "check_lora",
    "check_lora_targets",
    "check_lora_layers",
]


def check_head(
    config, config_type: type, num_labels, pooling: str | None = None, poolings=()
) -> None:
    """The arguments of a task head: a ``config_type`` config, ``num_labels`` >= 2
    classes and, for a sentence head that pools, one of ``poolings`` that the config
    supports (``"cls"`` reads the pooler, so it needs ``add_pooler=True``)."""
    check_type("config", config, config_type)
    check_int("num_labels", num_labels, minimum=2)
    if pooling is None:
        return
    check_choice("pooling", pooling, poolings)
    if pooling == "cls" and not config.add_pooler:
        raise ValueError(
            "pooling='cls' reads the pooled [CLS] vector: the config "
            "needs add_pooler=True (or use pooling='mean')"
        )


def check_class_labels(
    labels,
    num_labels: int,
    *,
    batch_size: int | None = None,
    ignore_index: int | None = None,
    name: str = "label",
) -> None:
    """Class ids: a torch.long tensor (of shape (batch_size,), if given) of values in
    [0, num_labels), or ``ignore_index``; not floats, nor one-hot rows."""
    import torch

    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        got = getattr(labels, "dtype", type(labels).__name__)
        raise TypeError(f"{name}s must be a torch.long tensor of class ids, got {got}")
    if batch_size is not None and tuple(labels.shape) != (batch_size,):
        raise ValueError(
            f"{name}s must have shape (B,) = ({batch_size},), got {_shape(labels)}"
        )
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() and (valid.min() < 0 or valid.max() >= num_labels):
        bad = valid[(valid < 0) | (valid >= num_labels)][0]
        raise ValueError(
            f"{name} {int(bad)} is outside the {num_labels} classes "
            f"[0, {num_labels}): is num_labels right, and are the {name}s "
            "numbered from 0?"
        )


def check_token_labels(
    labels, input_ids, num_labels: int, ignore_index: int = -100
) -> None:
    """Token-classification labels: the shape of ``input_ids``, class ids or
    ``ignore_index``, and at least one position that is labelled."""
    check_same_shape("labels", labels, "input_ids", input_ids)
    check_class_labels(labels, num_labels, ignore_index=ignore_index)
    if not (labels != ignore_index).any():
        raise ValueError(
            f"every label is IGNORE_INDEX ({ignore_index}): there is no "
            "token to learn from"
        )


def check_word_labels(word_ids, word_labels) -> None:
    """One label for each word that ``word_ids`` (one word index or None per token)
    names."""
    n_words = 1 + max((w for w in word_ids if w is not None), default=-1)
    if len(word_labels) != n_words:
        raise ValueError(
            f"got {len(word_labels)} word labels for a text of {n_words} words"
        )


def check_attention_mask(mask, shape, *, right_padded: bool = False) -> None:
    """A (B, T) = ``shape`` mask of 1 (real token) and 0 (padding) with a real token in
    every row; with ``right_padded``, each row is 1s followed by 0s."""
    import torch

    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"attention_mask must have shape (B, T) = {tuple(shape)}, got "
            f"{_shape(mask)}"
        )
    mask = mask.long()
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("attention_mask must hold only 1 (real token) and 0 (padding)")
    lengths = mask.sum(dim=1)
    if (lengths == 0).any():
        row = int((lengths == 0).nonzero()[0])
        raise ValueError(f"row {row} of attention_mask has no real token")
    positions = torch.arange(mask.shape[1], device=mask.device)
    if right_padded and not torch.equal(mask, (positions < lengths[:, None]).long()):
        raise ValueError(
            "the GPT classifier needs padding on the right (1s, then "
            "0s, in every row of attention_mask): with left padding, "
            "positions and the last token would be wrong"
        )


def check_dataset(texts, labels, tokenizer, num_labels, max_len, pad_token_id) -> None:
    """The arguments of ``ClassificationDataset``: N > 0 strings, N int class ids in
    [0, num_labels), ``max_len`` >= 2 and a padding id (given, or the tokenizer's
    ``[PAD]``)."""
    import torch

    check_int("num_labels", num_labels, minimum=2)
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got one str")
    if len(texts) == 0:
        raise ValueError("the dataset is empty: no texts were given")
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    for y in labels:
        if not isinstance(y, int) or isinstance(y, bool):
            raise TypeError(
                f"labels must be ints (class ids), got {y!r}; map label "
                "names to 0..num_labels-1 first"
            )
    check_class_labels(torch.tensor(list(labels)), num_labels)
    check_int("max_len", max_len, minimum=2)
    if pad_token_id is None and tokenizer.token_to_id("[PAD]") is None:
        raise ValueError("the tokenizer has no [PAD] token: pass pad_token_id")


def check_indices(indices, n: int) -> None:
    """A non-empty (N,) tensor of indices into a dataset of ``n`` examples."""
    if indices.numel() == 0:
        raise ValueError("the subset is empty: no indices were given")
    if indices.dim() != 1 or indices.min() < 0 or indices.max() >= n:
        raise ValueError(
            f"indices must be a list of positions in [0, {n}), got "
            f"{indices.tolist()[:10]}"
        )


def check_model_data(
    model, data, dataset_type: type, *, trainable: bool = False
) -> None:
    """A model and a ``dataset_type`` dataset that agree on the vocabulary (the model's
    ``config.vocab_size`` or ``vocab_size``) and the number of classes; with
    ``trainable``, some parameter of the model requires a gradient."""
    check_type("data", data, dataset_type)
    config = getattr(model, "config", None)
    vocab_size = getattr(config, "vocab_size", getattr(model, "vocab_size", None))
    if vocab_size is not None and vocab_size != data.vocab_size:
        raise ValueError(
            f"the tokenizer of the data has {data.vocab_size:,} tokens but the model's "
            f"vocabulary has {vocab_size:,}: they must be the same tokenizer the model "
            "was built (or pretrained) for"
        )
    num_labels = getattr(model, "num_labels", None)
    if num_labels is not None and num_labels != data.num_labels:
        raise ValueError(
            f"the model has {num_labels} classes but the data has {data.num_labels}"
        )
    if trainable and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "no parameter of the model requires a gradient: there is nothing to train"
        )


def check_proportion(k, n) -> None:
    """``k`` successes out of ``n`` >= 1 trials."""
    check_int("n", n)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k must be an int between 0 and n = {n}, got {k!r}")


def check_predictions(predictions, labels, num_labels) -> None:
    """Predicted and true class ids, two (N,) tensors of values in [0, num_labels)."""
    check_int("num_labels", num_labels, minimum=2)
    if (
        not hasattr(predictions, "shape")
        or not hasattr(labels, "shape")
        or predictions.shape != labels.shape
        or len(labels.shape) != 1
    ):
        raise ValueError(
            f"predictions and labels must be (N,) tensors of the same "
            f"shape, got {_shape(predictions)} and {_shape(labels)}"
        )
    check_class_labels(labels, num_labels)
    check_class_labels(predictions, num_labels, name="prediction")


def check_lora(r, alpha, dropout, base=None) -> None:
    """LoRA's rank ``r`` >= 1, ``alpha`` > 0 and ``dropout`` in [0, 1); ``base``, if
    given, is the ``nn.Linear`` that a ``LoRALinear`` wraps."""
    from torch import nn

    if base is not None and not isinstance(base, nn.Linear):
        raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"the rank r must be a positive int, got {r!r}")
    check_number("alpha", alpha, low=0, low_open=True)
    check_dropout(dropout)


def check_lora_targets(model, target_modules, trainable, matches: Callable) -> None:
    """The names given to ``apply_lora``: lists of names, ``target_modules`` matching at
    least one ``nn.Linear`` and each name of ``trainable`` a module, by the rule
    ``matches(module_name, names)``; and a model without LoRA layers yet."""
    from torch import nn

    for name, value in (("target_modules", target_modules), ("trainable", trainable)):
        if isinstance(value, str):
            raise TypeError(
                f"{name} must be a list or tuple of names, got the str "
                f"{value!r}: write ({value!r},)"
            )
    if not target_modules:
        raise ValueError(
            "target_modules is empty: name at least one Linear layer, "
            "e.g. ('qkv_proj',)"
        )
    if any(name.endswith("lora_A") for name, _ in model.named_parameters()):
        raise ValueError("the model already has LoRA layers: merge_lora() it first")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not any(matches(name, target_modules) for name in linears):
        names = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise ValueError(
            f"no nn.Linear of the model matches target_modules="
            f"{list(target_modules)}; the Linear layers are named {names}"
        )
    modules = [name for name, _ in model.named_modules() if name]
    for t in trainable:
        if not any(matches(name, (t,)) for name in modules):
            raise ValueError(f"trainable names {t!r}, which is no module of the model")


def check_lora_layers(n_layers: int) -> None:
    """``merge_lora`` found LoRA layers to merge."""
    if n_layers == 0:
        raise ValueError(
            "the model has no LoRALinear layer to merge (was apply_lora called?)"
        )


# Chapters 1 and 5. Chapter 1: the bigram models' sequences, count tables and start tokens
# (chapter 5's norms, FFN and block use the checks above).

__all__ += ["check_bigram_counts", "check_bigram_ids", "check_token_id"]


def check_bigram_ids(name: str, ids, vocab_size: int) -> None:
    """``ids`` is one sequence, a (N,) torch.long tensor of token ids in [0, vocab_size),
    with N >= 2 so that it holds at least one bigram."""
    check_token_ids(name, ids, vocab_size, dims=1)
    if len(ids) < 2:
        raise ValueError(
            f"{name} needs at least 2 tokens to contain a bigram, got {len(ids)}"
        )


def check_bigram_counts(counts, alpha) -> None:
    """A square (V, V) table of bigram counts and a smoothing ``alpha >= 0`` that give every
    row a distribution (with ``alpha = 0``, every row needs a nonzero count)."""
    if (
        not hasattr(counts, "dim")
        or counts.dim() != 2
        or counts.shape[0] != counts.shape[1]
    ):
        raise ValueError(
            f"counts must be a square (V, V) matrix, got shape {_shape(counts)}"
        )
    check_number("alpha", alpha, low=0)
    if ((counts.double() + alpha).sum(dim=1) == 0).any():
        raise ValueError(
            "a row of counts is all zero and alpha = 0: its probabilities are undefined"
        )


def check_token_id(name: str, value, vocab_size: int) -> None:
    """``value`` is one token id, an int in [0, vocab_size)."""
    check_int(name, value, minimum=None)
    if not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}), got {value}")


# Chapters 3-4: attention and positions

__all__ += ["check_heads", "check_padding_marker"]


def check_heads(d_model, n_heads, n_kv_heads=None, d_head=None, dropout=0.0) -> None:
    """The sizes of ``MultiHeadAttention`` (chapter 3): ``d_model`` and ``n_heads`` are
    positive ints, ``d_model`` is divisible by ``n_heads`` unless ``d_head`` is given,
    ``n_heads`` is divisible by ``n_kv_heads`` (default: ``n_heads``), and ``dropout``
    lies in [0, 1)."""
    check_int("d_model", d_model)
    check_int("n_heads", n_heads)
    check_dropout(dropout)
    if d_head is None:
        check_divisible("d_model", d_model, "n_heads", n_heads)
    check_divisible("n_heads", n_heads, "n_kv_heads", n_kv_heads or n_heads)


def check_padding_marker(valid) -> None:
    """A (B, T_k) marker of real tokens for ``padding_mask`` (chapter 3): bool, or
    integers that are 1 (real token) or 0 (padding), like Hugging Face's
    ``attention_mask``."""
    import torch

    if not isinstance(valid, torch.Tensor) or valid.dim() != 2:
        got = getattr(valid, "shape", type(valid).__name__)
        raise ValueError(f"valid must be a (B, T_k) tensor, got {got}")
    if valid.dtype == torch.bool:
        return
    if valid.is_floating_point():
        raise ValueError(
            "valid must be bool or hold only the integers 0 and 1 "
            f"(1 = real token), got dtype {valid.dtype}"
        )
    bad = valid[(valid != 0) & (valid != 1)]
    if bad.numel():
        raise ValueError(
            "valid must be bool or hold only 0 and 1 (1 = real token), "
            f"got the value {int(bad[0])}"
        )


# Chapter 2: tokenization. The checks of the tokenizers' text, ids, vocabularies, merges
# and special tokens.

__all__ += [
    "check_text",
    "check_id_list",
    "check_char_vocab",
    "check_known_chars",
    "check_merge",
    "check_vocab_token",
    "check_special_tokens",
    "check_special_ids",
    "check_contiguous_ids",
    "check_learn_args",
    "check_vocab_size",
    "check_corpus",
    "check_method",
    "check_chunks_found",
    "check_library_tokenizer",
    "check_wordpiece_alphabet",
    "check_no_unknown",
    "check_distinct_tokens",
    "check_stand_ins",
    "check_merge_names",
    "check_vocab_json",
    "check_byte_level_bpe",
    "check_pretrained",
    "check_pretrained_files",
    "check_pretrained_size",
    "check_stream",
]


def _describe_char(ch: str) -> str:
    """How error messages name a character: 'é' (U+00E9 LATIN SMALL LETTER E WITH
    ACUTE)."""
    import unicodedata

    name = unicodedata.name(ch, "")
    return f"{ch!r} (U+{ord(ch):04X}{' ' + name if name else ''})"


def check_text(name: str, text, *, empty: str | None = None) -> None:
    """``text`` is a str that UTF-8 can encode (no lone surrogates): the input every
    tokenizer accepts. With ``empty``, what cannot be done from an empty text (such as
    "build a vocabulary"), an empty text is an error too."""
    if not isinstance(text, str):
        hint = (
            " (decode bytes first, e.g. data.decode('utf-8'))"
            if isinstance(text, (bytes, bytearray))
            else ""
        )
        raise TypeError(f"{name} must be a str, got {type(text).__name__}{hint}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{name} cannot be encoded as UTF-8: it contains the lone surrogate "
            f"{_describe_char(text[err.start])} at index {err.start}, which is not a "
            "character (was it decoded with errors='surrogateescape'?)"
        ) from None
    if empty is not None and not text:
        raise ValueError(f"cannot {empty} from an empty {name}")


def check_id_list(ids, vocab_size: int) -> list[int]:
    """Token ids (a list, a 1-D tensor or array) as a list of ints in
    ``[0, vocab_size)``, or a clear error."""
    import operator
    from collections.abc import Iterable

    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(
            f"ids must be a sequence of integer token ids, got {type(ids).__name__}"
        )
    out = []
    for position, i in enumerate(ids):
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(
                f"ids must be integers, got {type(i).__name__} at position {position}"
            ) from None
        if not 0 <= i < vocab_size:
            raise ValueError(
                f"id {i} at position {position} is outside the vocabulary: "
                f"ids lie in [0, {vocab_size})"
            )
        out.append(i)
    return out


def check_char_vocab(chars: list) -> None:
    """A character vocabulary: at least one entry, each a single character, none twice."""
    from collections import Counter

    if not chars:
        raise ValueError(
            "a CharTokenizer needs at least one character in its vocabulary"
        )
    for c in chars:
        if not isinstance(c, str) or len(c) != 1:
            raise ValueError(f"the vocabulary must hold single characters, got {c!r}")
    repeated = sorted(c for c, n in Counter(chars).items() if n > 1)
    if repeated:
        raise ValueError(
            f"the vocabulary lists these characters more than once: {repeated}"
        )


def check_known_chars(text: str, stoi: dict) -> None:
    """Every character of ``text`` is in the vocabulary ``stoi``; the error names the
    first five that are not, and where each first occurs."""
    if set(text) <= stoi.keys():
        return
    first_seen = {}
    for i, c in enumerate(text):
        if c not in stoi:
            first_seen.setdefault(c, i)
    shown = ", ".join(
        f"{_describe_char(c)} at index {i}" for c, i in list(first_seen.items())[:5]
    )
    more = f" and {len(first_seen) - 5} more" if len(first_seen) > 5 else ""
    raise ValueError(
        f"cannot encode {len(first_seen)} character(s) that are not in the vocabulary: "
        f"{shown}{more}. This tokenizer knows {len(stoi)} characters; build it from a "
        "text that contains these characters, or remove them from the input."
    )


def check_merge(k: int, pair, table: dict, ranks: dict) -> tuple[int, int]:
    """Merge ``k`` of a BPE: a pair of ids of tokens that exist before it (in ``table``)
    and not merged before (in ``ranks``); returned as a tuple of two ints."""
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(t, int) and t in table for t in pair)
    ):
        raise ValueError(
            f"merge {k} must be a pair of ids of tokens made before it (for "
            f"a trained tokenizer, ids in [0, {256 + k})), got {pair!r}"
        )
    pair = (int(pair[0]), int(pair[1]))
    if pair in ranks:
        raise ValueError(
            f"merge {k} repeats the pair {pair}, which is already merge {ranks[pair]}"
        )
    return pair


def check_vocab_token(ids_of: dict, token: bytes, what: str) -> int:
    """The id of ``token`` in a byte-level vocabulary ``{bytes: id}``, which must have it."""
    if token not in ids_of:
        raise ValueError(
            f"the vocabulary has no token for {what} {token!r}: a byte-level "
            "BPE needs all 256 bytes and the token each merge makes"
        )
    return ids_of[token]


def check_special_tokens(
    tokens, name: str = "special_tokens", *, distinct: bool = True
):
    """Special tokens: a list (or any iterable) of non-empty strs, or a mapping
    ``{token: id}``, never one str; with ``distinct``, a list names no token twice.
    Returns the mapping, or the tokens as a list."""
    from collections.abc import Mapping

    if isinstance(tokens, (str, bytes)):
        one = "string" if isinstance(tokens, str) else type(tokens).__name__
        raise TypeError(
            f"{name} must be a list of strings such as [{tokens!r}], not one {one}"
        )
    if not isinstance(tokens, Mapping):
        tokens = list(tokens)
        if distinct and len(set(tokens)) < len(tokens):
            raise ValueError(
                f"{name} must be distinct non-empty strings, but it lists a "
                f"token twice: {tokens!r}"
            )
    for token in tokens:
        check_text("a special token", token)
        if not token:
            raise ValueError("a special token must hold at least one character, got ''")
    return tokens


def check_special_ids(specials: dict, table: dict) -> None:
    """Each special token of ``{token: id}`` has an int id >= 0 that no token of
    ``table`` (``{id: bytes}``) has."""
    for token, i in specials.items():
        if not isinstance(i, int) or i < 0 or i in table:
            raise ValueError(
                f"special token {token!r} needs an id of its own, got {i!r}"
            )


def check_contiguous_ids(by_id: dict, n: int) -> None:
    """The ids of ``n`` tokens, ``by_id`` (``{id: token}``), are 0 to n - 1, one each."""
    if len(by_id) < n or set(by_id) != set(range(n)):
        gaps = sorted(set(range(n)) - set(by_id))
        problem = f"no token has id {gaps[0]}" if gaps else "two tokens share an id"
        raise ValueError(
            f"token ids must run from 0 to {n - 1}, one token each: {problem}"
        )


def check_learn_args(chunk_counts, n_merges) -> None:
    """The arguments of the BPE trainers: a table ``{chunk: count}`` and a number of
    merges >= 0."""
    from collections.abc import Mapping

    if not isinstance(chunk_counts, Mapping):
        raise TypeError(
            "chunk_counts must map each chunk (a str) to how often it occurs, "
            f"as count_chunks(text) does, got {type(chunk_counts).__name__}"
        )
    check_int("n_merges", n_merges, minimum=0)


def check_vocab_size(vocab_size, minimum: int, what: str) -> None:
    """``vocab_size`` is an int of at least ``minimum``, the alphabet (``what`` says
    what it holds)."""
    check_int("vocab_size", vocab_size, minimum=None)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the alphabet: it must "
            f"be at least {minimum} ({what})"
        )


def check_corpus(texts) -> list[str]:
    """Training texts (one str, or an iterable of str) as a list of str, holding at
    least one character."""
    from collections.abc import Iterable

    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(
            f"texts must be a str or an iterable of str, got {type(texts).__name__}"
        )
    texts = list(texts)
    for i, t in enumerate(texts):
        check_text(f"texts[{i}]", t)
    if not any(texts):
        raise ValueError(
            f"the corpus is empty: got {len(texts)} text(s) and not one character"
        )
    return texts


def check_method(method, methods) -> None:
    """``method`` names one of ``methods``: "method must be 'fast' or 'naive', got ..."."""
    if method not in methods:
        allowed = " or ".join(map(repr, methods))
        raise ValueError(f"method must be {allowed}, got {method!r}")


def check_chunks_found(chunk_counts, text: str) -> None:
    """A text to train a tokenizer on has at least one chunk outside special tokens."""
    if not chunk_counts:
        raise ValueError(
            "cannot learn merges from an empty text"
            + " (it holds only special tokens)" * bool(text)
        )


def check_library_tokenizer(tokenizer) -> None:
    """``tokenizer`` is a ``tokenizers.Tokenizer`` (the Hugging Face library's)."""
    from tokenizers import Tokenizer

    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}"
        )


def check_wordpiece_alphabet(
    trained_size: int, vocab_size: int, n_special: int
) -> None:
    """A WordPiece vocabulary trained with the library: it kept the whole alphabet, so
    it must fit in ``vocab_size``, and it must hold more than the special tokens."""
    if trained_size > vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the alphabet of this corpus: it "
            f"needs at least {trained_size} (the {n_special} special tokens, every "
            "character, and every character that continues a word as a ## piece)"
        )
    if trained_size == n_special:
        raise ValueError(
            "the corpus is empty after normalization: it holds only "
            "whitespace and control characters"
        )


def check_no_unknown(encoding, unk_id, unk_token, inputs: dict) -> None:
    """No token of a library ``Encoding`` is the unknown token; the error names the
    first five pieces of the input that became it. ``inputs`` maps each sequence id
    to ``(name, text)``: ``{0: ("text", text), 1: ("pair", pair)}``."""
    if unk_id is None:
        return
    unknown = [k for k, i in enumerate(encoding.ids) if i == unk_id]
    if not unknown:
        return
    pieces = []
    for k in unknown[:5]:
        name, source = inputs[encoding.sequence_ids[k]]
        start, end = encoding.offsets[k]
        pieces.append(f"{source[start:end]!r} at index {start} of {name}")
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    raise ValueError(
        f"cannot encode {len(unknown)} piece(s) that the vocabulary cannot spell (they "
        f"would become {unk_token}): {', '.join(pieces)}{more}. Train the tokenizer on "
        "text that contains these characters, or use a byte-level BPE, which can encode "
        "any text."
    )


def check_distinct_tokens(vocab: dict, vocab_size: int) -> None:
    """A ``{token string: id}`` table holds all ``vocab_size`` tokens: no two of them
    have the same bytes."""
    if len(vocab) < vocab_size:
        raise ValueError(
            "two tokens have the same bytes, which a tokenizers.BPE "
            "vocabulary cannot hold"
        )


def check_stand_ins(token: str, stand_ins) -> None:
    """A vocabulary entry is written with GPT-2's byte stand-ins only."""
    if not token or any(c not in stand_ins for c in token):
        raise ValueError(
            f"the vocabulary entry {token!r} is not written with GPT-2's "
            "byte stand-ins; if it is a special token, list it in "
            "special_tokens"
        )


def check_merge_names(k: int, merge, parts, ids) -> None:
    """Merge ``k`` of a merges file, split into ``parts``: two tokens of the vocabulary
    ``ids``, whose concatenation is a token too."""
    if not (
        isinstance(parts, (list, tuple))
        and len(parts) == 2
        and all(isinstance(p, str) and p for p in parts)
    ):
        raise ValueError(
            f"merge {k} must be two tokens, 'Ġ t' or ['Ġ', 't'], got {merge!r}"
        )
    for token in (*parts, parts[0] + parts[1]):
        if token not in ids:
            raise ValueError(
                f"merge {k} ({parts[0]!r} + {parts[1]!r}) needs the token "
                f"{token!r}, which is not in the vocabulary"
            )


def check_vocab_json(vocab) -> None:
    """A GPT-2-style vocabulary: a mapping from token strings to integer ids."""
    from collections.abc import Mapping

    if not isinstance(vocab, Mapping) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()
    ):
        raise TypeError(
            "vocab must map token strings to integer ids, as vocab.json does"
        )


def check_byte_level_bpe(saved: dict, path) -> None:
    """A tokenizer the ``tokenizers`` library saved (its JSON, as a dict) is a
    byte-level BPE whose ids ``BPETokenizer`` reproduces; the error lists everything
    that is not."""
    model, pre = saved.get("model") or {}, saved.get("pre_tokenizer") or {}
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"its model is {model.get('type')!r}, not 'BPE'")
    if saved.get("normalizer"):
        problems.append(f"it normalizes text first ({saved['normalizer'].get('type')})")
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        problems.append(f"its pre-tokenizer is not GPT-2's ByteLevel: {pre}")
    elif pre.get("add_prefix_space"):
        problems.append("its pre-tokenizer adds a space in front of the text")
    post = saved.get("post_processor") or {"type": "ByteLevel"}
    if post.get("type") != "ByteLevel":
        problems.append(f"its post-processor ({post.get('type')}) adds tokens")
    for option in (
        "dropout",
        "continuing_subword_prefix",
        "end_of_word_suffix",
        "byte_fallback",
        "ignore_merges",
    ):
        if model.get(option):
            problems.append(f"its model sets {option}={model[option]!r}")
    for token in saved.get("added_tokens") or []:
        if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            problems.append(
                f"its added token {token['content']!r} strips or matches whole words"
            )
    if problems:
        raise ValueError(
            f"{path} is not a byte-level BPE that BPETokenizer can load: "
            + "; ".join(problems)
        )


def check_pretrained(name, known) -> None:
    """``name`` is one of the published tokenizers ``known``."""
    if name not in known:
        raise ValueError(f"unknown tokenizer {name!r}; known: {', '.join(known)}")


def check_pretrained_files(folder, missing, rule, fix: str) -> None:
    """Where nothing may be downloaded (``rule`` says why; None: downloads are allowed),
    no file of a published tokenizer is ``missing`` from ``folder``."""
    from minillm.data import DataUnavailableError

    if missing and rule:
        raise DataUnavailableError(
            f"{folder} has no {' and no '.join(missing)}, and "
            f"nothing is downloaded when {rule}: {fix}"
        )


def check_pretrained_size(tokenizer, expected: int, name: str, folder) -> None:
    """The files of a published tokenizer gave the number of tokens it has."""
    if tokenizer.vocab_size != expected:
        raise ValueError(
            f"the files in {folder} give {tokenizer.vocab_size:,} tokens, "
            f"but {name} has {expected:,}: delete them and try again"
        )


def check_stream(texts, batch_chars) -> None:
    """The arguments of ``encode_iterable``: an iterable of str (not one str) and a
    batch size >= 1."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "texts must be an iterable of str, such as an open file or a "
            f"list of lines, not one {type(texts).__name__}: encode a str "
            "with encode()"
        )
    if not isinstance(batch_chars, int) or batch_chars < 1:
        raise ValueError(f"batch_chars must be an int >= 1, got {batch_chars!r}")


# Chapter 9: scaling

__all__ += [
    "check_counted_config",
    "check_seq_len",
    "check_power_law_data",
    "check_batch_split",
]


def check_counted_config(config, pretraining_heads: bool = False) -> None:
    """A configuration whose parameters chapter 9 counts: a ``GPTConfig`` or a
    ``BertConfig``; ``pretraining_heads`` (the MLM and sentence heads) only for BERT."""
    from minillm.bert import BertConfig
    from minillm.gpt import GPTConfig

    if not isinstance(config, (GPTConfig, BertConfig)):
        raise TypeError(
            f"config must be a GPTConfig or a BertConfig, got {type(config).__name__}"
        )
    if isinstance(config, GPTConfig) and pretraining_heads:
        raise ValueError(
            "pretraining_heads=True applies to a BertConfig; a GPT has one "
            "(tied) output layer"
        )


def check_seq_len(seq_len, block_size: int) -> None:
    """A context length in [1, block_size]."""
    if not isinstance(seq_len, int) or not 1 <= seq_len <= block_size:
        raise ValueError(
            f"seq_len must be an int in [1, block_size = {block_size}], got {seq_len!r}"
        )


def check_power_law_data(n, loss) -> None:
    """NumPy arrays ``n`` and ``loss`` that a power law can be fitted to with an error bar:
    1-D, equally long, at least 3 points, finite and > 0, not all ``n`` equal."""
    import numpy as np

    if n.ndim != 1 or n.shape != loss.shape:
        raise ValueError(
            f"n and loss must be 1-D and equally long, got shapes {n.shape} "
            f"and {loss.shape}"
        )
    if len(n) < 3:
        raise ValueError(
            f"fitting a power law with an uncertainty needs at least 3 points, "
            f"got {len(n)}"
        )
    if not (
        np.all(np.isfinite(n))
        and np.all(np.isfinite(loss))
        and np.all(n > 0)
        and np.all(loss > 0)
    ):
        raise ValueError(
            "n and loss must be finite and > 0 (their logarithms are fitted)"
        )
    if np.ptp(n) == 0:
        raise ValueError("all n are equal: the exponent cannot be fitted")


def check_batch_split(batch_size: int, world_size: int) -> None:
    """A global batch that splits evenly over the data-parallel processes."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size={batch_size} must be divisible by the number of "
            f"processes, {world_size}"
        )


# Chapter 10 (Llama, Qwen2, Qwen3): the configurations and checkpoints the converter accepts.

def check_hf_llama_config(c: dict) -> str:
    """A Hugging Face Llama, Qwen2 or Qwen3 configuration (a dict, as in ``config.json``)
    whose every option minillm's Llama reproduces; returns its ``model_type``."""
    kind = c.get("model_type")
    check_choice("model_type", kind, ("llama", "qwen2", "qwen3"))
    check_choice("hidden_act", c.get("hidden_act", "silu"), ("silu",))
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "llama3"):
        raise ValueError(f"only plain RoPE and Llama 3's scaling are supported, got "
                         f"rope_type={rope_type!r} (another scaling for long contexts)")
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


# Chapter 11 (post-training): conversations, reply masks, preference pairs and rewards.

__all__ += [
    "check_messages", "check_reply_mask", "check_logps", "check_rewards",
    "check_grpo_inputs", "check_choices",
]


def check_messages(messages, roles=("user", "assistant")) -> None:
    """``messages`` is a non-empty list of ``{"role": ..., "content": str}`` dicts whose
    roles are in ``roles`` and whose contents hold no chat marker (which would forge a
    turn)."""
    from minillm.tokenization import CHAT_TOKENS

    if isinstance(messages, (str, dict)) or not messages:
        raise ValueError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
            f"got {messages!r:.80}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(
                f"messages[{i}] must be a dict with keys 'role' and 'content', got {m!r:.80}"
            )
        check_choice(f"messages[{i}]['role']", m["role"], roles)
        check_type(f"messages[{i}]['content']", m["content"], str)
        marker = next((t for t in CHAT_TOKENS if t in m["content"]), None)
        if marker:
            raise ValueError(
                f"messages[{i}]['content'] contains the chat marker {marker!r}: a "
                "message cannot open or close a turn itself"
            )


def check_reply_mask(ids, is_reply) -> None:
    """Token ids and a same-length list of bools with at least one reply token after
    the first position (else the loss would be over zero tokens)."""
    if len(ids) != len(is_reply):
        raise ValueError(
            f"ids and is_reply must have the same length, got {len(ids)} and "
            f"{len(is_reply)}"
        )
    if len(ids) < 2 or not any(is_reply[1:]):
        raise ValueError(
            "the conversation has no assistant reply to train on: is_reply is False "
            "after the first token"
        )


def check_logps(**logps) -> None:
    """1-D float tensors of per-sequence log-probabilities, all of the same shape."""
    import torch

    shape = None
    for name, x in logps.items():
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 1:
            raise ValueError(
                f"{name} must be a 1-D float tensor of per-sequence log-probabilities "
                f"(B,), got {_shape(x)}"
            )
        if shape is not None and x.shape != shape:
            first = next(iter(logps))
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}, {first} has {tuple(shape)}: one "
                "value per preference pair in each"
            )
        shape = x.shape
        if x.numel() and (x > 1e-6).any():
            raise ValueError(
                f"{name} holds a positive value ({x.max().item():.3g}): log-probabilities "
                "are <= 0; were logits passed?"
            )


def check_rewards(rewards) -> None:
    """A float tensor (n_groups, G) of rewards, G >= 2 answers per prompt."""
    import torch

    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2:
        raise ValueError(
            f"rewards must be a tensor (n_groups, G), one row per prompt, got "
            f"{_shape(rewards)}"
        )
    if rewards.shape[1] < 2:
        raise ValueError(
            f"each group needs at least 2 answers to compare, got G = {rewards.shape[1]}"
        )


def check_grpo_inputs(logps, old_logps, ref_logps, advantages, mask) -> None:
    """Per-token log-probabilities (N, T), advantages (N,), a bool mask (N, T) with
    at least one token in every row."""
    import torch

    for name, x in (("old_logps", old_logps), ("ref_logps", ref_logps), ("mask", mask)):
        check_same_shape(name, x, "logps", logps)
    if logps.dim() != 2:
        raise ValueError(f"logps must have shape (N, T), got {_shape(logps)}")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(
            f"advantages must have shape ({logps.shape[0]},), one per sampled answer, "
            f"got {_shape(advantages)}"
        )
    if mask.dtype != torch.bool or not mask.any(dim=1).all():
        raise ValueError(
            "mask must be a bool tensor with at least one answer token in every row"
        )


def check_choices(options) -> None:
    """A list of at least two non-empty strings."""
    if isinstance(options, str) or len(options) < 2 or not all(
        isinstance(o, str) and o for o in options
    ):
        raise ValueError(
            f"options must be a list of at least two non-empty strings, got {options!r:.80}"
        )


def check_paired_outcomes(correct_a, correct_b) -> None:
    """Two bool tensors of the same shape (N,), N >= 1: whether each of two models got
    each of the same N examples right (McNemar's test)."""
    import torch

    for name, x in (("correct_a", correct_a), ("correct_b", correct_b)):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.bool or x.dim() != 1:
            raise TypeError(
                f"{name} must be a bool tensor (N,), True where the model is right "
                f"(e.g. predictions == labels), got {_shape(x)} "
                f"{getattr(x, 'dtype', '')}".rstrip()
            )
    if correct_a.shape != correct_b.shape or len(correct_a) == 0:
        raise ValueError(
            "correct_a and correct_b must hold the same N >= 1 examples, one entry "
            f"each, got {_shape(correct_a)} and {_shape(correct_b)}"
        )


def check_packable(examples, block_size: int) -> None:
    """(inputs, targets) pairs of equal lengths, each at most ``block_size`` long."""
    check_int("block_size", block_size)
    if len(examples) == 0:
        raise ValueError("examples is empty: there is nothing to pack")
    for i, (x, y) in enumerate(examples):
        if len(x) != len(y):
            raise ValueError(f"example {i}: {len(x)} inputs but {len(y)} targets")
        if len(x) > block_size:
            raise ValueError(
                f"example {i} has {len(x)} positions, more than block_size={block_size}: "
                "it cannot be packed without cutting it (raise block_size)"
            )
