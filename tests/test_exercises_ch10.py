"""Chapter 10's exercise checkers: the reference solutions pass, and each typical wrong answer gets
the hint written for it (not just "wrong")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minillm.exercises import ch10
from exercise_helpers import _hint


def swiglu_ok(x, w_gate, w_up, w_down):
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def repeat_kv_ok(k, n_rep):
    b, kv, t, d = k.shape
    return k[:, :, None].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


def max_context_ok(memory_bytes, n_layers, n_kv_heads, d_head, bytes_per_value, batch_size):
    return memory_bytes // (2 * n_layers * n_kv_heads * d_head * bytes_per_value * batch_size)


def rope_at_ok(x, offset, base):
    d, t = x.shape[-1], x.shape[-2]
    inv = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(offset, offset + t, dtype=torch.float64)[:, None] * inv
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    rotated_half = torch.cat([-x[..., d // 2 :], x[..., : d // 2]], dim=-1)
    return x * cos + rotated_half * sin


def test_correct_answers_pass(capsys):
    ch10.check_swiglu(swiglu_ok)
    ch10.check_repeat_kv(repeat_kv_ok)
    ch10.check_max_context(max_context_ok)
    ch10.check_rope_at(rope_at_ok)
    assert capsys.readouterr().out.count("Correct:") == 4


def test_library_code_passes_as_answers():
    """The package's own implementations agree with the checkers' references."""
    from minillm.llama import LlamaConfig, kv_cache_bytes
    from minillm.positional import RotaryEmbedding

    ch10.check_rope_at(
        lambda x, o, b: RotaryEmbedding(x.shape[-1], o + x.shape[-2], b, interleaved=False)(x, o)
    )

    # kv_cache_bytes for one token, in float32, is the per-token cost when bytes_per_value = 4
    def via_library(m, l, kv, d, b, bs):
        config = LlamaConfig(vocab_size=2, block_size=2, n_layers=l, n_heads=kv, n_kv_heads=kv,
                             d_model=kv * d, d_head=d, d_ff=2)
        return m // (kv_cache_bytes(config, 1, bs, torch.float32) * b // 4)

    ch10.check_max_context(via_library)


def test_wrong_swiglu_gets_its_hint():
    assert "gate" in _hint(ch10.check_swiglu, lambda x, g, u, d: swiglu_ok(x, u, g, d))
    assert "GLU" in _hint(ch10.check_swiglu, lambda x, g, u, d: (torch.sigmoid(x @ g.T) * (x @ u.T)) @ d.T)
    assert "multiplied" in _hint(ch10.check_swiglu, lambda x, g, u, d: (F.silu(x @ g.T) + x @ u.T) @ d.T)


def test_wrong_repeat_kv_gets_its_hint():
    assert "h // n_rep" in _hint(ch10.check_repeat_kv, lambda k, r: k.repeat(1, r, 1, 1))
    assert "dimension 1" in _hint(ch10.check_repeat_kv, lambda k, r: k.repeat_interleave(r, dim=2))


def test_wrong_max_context_gets_its_hint():
    assert "*and* values" in _hint(ch10.check_max_context, lambda m, l, kv, d, b, bs: m // (l * kv * d * b * bs))
    assert "batch_size" in _hint(ch10.check_max_context, lambda m, l, kv, d, b, bs: m // (2 * l * kv * d * b))


def test_wrong_rope_at_gets_its_hint():
    def no_offset(x, offset, base):
        return rope_at_ok(x, 0, base)

    def interleaved(x, offset, base):
        from minillm.positional import RotaryEmbedding

        return RotaryEmbedding(x.shape[-1], offset + x.shape[-2], base, interleaved=True)(x, offset)

    assert "number of tokens already cached" in _hint(ch10.check_rope_at, no_offset)
    assert "RoFormer pairing" in _hint(ch10.check_rope_at, interleaved)
