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
    "check_logits", "check_generation", "check_config", "copy_checked",
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
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


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


def check_config(config, *, ints=(), choices: dict | None = None) -> None:
    """A model configuration: the fields named in ``ints`` are positive ints, ``d_model`` is
    divisible by ``n_heads``, ``dropout`` lies in [0, 1), ``eps`` is > 0, and each field
    named in ``choices`` takes one of its allowed values."""
    for name in ints:
        check_int(name, getattr(config, name))
    if hasattr(config, "d_model") and hasattr(config, "n_heads"):
        check_divisible("d_model", config.d_model, "n_heads", config.n_heads)
    if hasattr(config, "dropout"):
        check_dropout(config.dropout)
    if hasattr(config, "eps"):
        check_number("eps", config.eps, low=0, low_open=True)
    for name, allowed in (choices or {}).items():
        check_choice(name, getattr(config, name), allowed)


def copy_checked(dst, src, name: str) -> None:
    """Copy a checkpoint tensor into a parameter, refusing a shape mismatch (a converter's
    one guard against loading a tensor into the wrong place)."""
    if dst.shape != src.shape:
        raise ValueError(f"shape mismatch for {name}: the model expects {_shape(dst)}, the "
                         f"checkpoint has {_shape(src)}")
    dst.copy_(src)
