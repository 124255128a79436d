"""minillm.positional: sinusoidal, learned and rotary positions.

Oracles nobody here wrote: Hugging Face's XLM `create_sinusoidal_embeddings` (the paper's interleaved
sinusoids), Hugging Face's LLaMA rotary embedding (the "rotate half" layout), `nn.MultiheadAttention`
and `F.scaled_dot_product_attention`, and the closed forms sin/cos of `math` and complex
multiplication."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import minillm
from minillm.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    inverse_frequencies,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)


def test_module_is_reachable_from_the_package():
    assert minillm.positional.sinusoidal_encoding is sinusoidal_encoding
    assert "positional" in dir(minillm)


def test_inverse_frequencies_are_the_papers_and_drive_rotary_embedding():
    omega = inverse_frequencies(8, 10000.0)
    assert omega.dtype == torch.float64
    assert omega.tolist() == pytest.approx([10000.0 ** (-i / 8) for i in (0, 2, 4, 6)])
    default = RotaryEmbedding(8, max_positions=16)
    given = RotaryEmbedding(8, max_positions=16, frequencies=omega)
    x = torch.randn(1, 1, 16, 8)
    assert torch.equal(default(x), given(x))


# --- attention without positions ----------------------------------------------------------

def test_multihead_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(3, 7, 16)
    perm = torch.randperm(7)
    with torch.no_grad():
        out, _ = mha(x, x, x)
        out_perm, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], atol=1e-6, rtol=1e-5)


def _self_attention(x, proj, rope=None, is_causal=False):
    B, T, _ = x.shape
    q, k, v = proj(x).view(B, T, 3, 2, -1).permute(2, 0, 3, 1, 4)  # (B, n_heads=2, T, d_head)
    if rope is not None:
        q, k = rope(q), rope(k)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal).transpose(1, 2).reshape(B, T, -1)


@pytest.mark.parametrize("scheme", ["sinusoidal", "learned", "rope", "causal"])
def test_each_position_scheme_breaks_the_symmetry(scheme):
    torch.manual_seed(1)
    proj = nn.Linear(16, 48)
    x = torch.randn(2, 6, 16)
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    add = {"sinusoidal": SinusoidalPositionalEncoding(8, 16), "learned": LearnedPositionalEmbedding(8, 16)}.get(scheme, nn.Identity())
    rope = RotaryEmbedding(8, max_positions=8) if scheme == "rope" else None
    causal = scheme == "causal"
    with torch.no_grad():
        plain = _self_attention(x, proj)[:, perm] - _self_attention(x[:, perm], proj)
        assert plain.abs().max() < 1e-5  # the same layer without positions is equivariant
        changed = _self_attention(add(x), proj, rope, causal)[:, perm] - _self_attention(add(x[:, perm]), proj, rope, causal)
    assert changed.abs().max() > 1e-2


# --- sinusoidal encoding -------------------------------------------------------------------

def test_sinusoidal_matches_the_paper_formula_elementwise():
    n, d = 13, 10
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-14)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-14)


@pytest.mark.parametrize("n, d", [(1, 2), (50, 16), (512, 128), (7, 6)])
def test_sinusoidal_matches_hugging_face_xlm(n, d):
    from transformers.models.xlm.modeling_xlm import create_sinusoidal_embeddings

    theirs = create_sinusoidal_embeddings(n, d, torch.empty(n, d))
    ours = sinusoidal_encoding(n, d)
    assert ours.dtype == torch.float32 and ours.shape == (n, d)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_sinusoidal_other_base_and_large_positions_stay_exact():
    pe = sinusoidal_encoding(100_001, 8, base=500.0, dtype=torch.float64)
    angle = 100_000 / 500 ** (2 / 8)
    assert pe[100_000, 2].item() == pytest.approx(math.sin(angle), abs=1e-9)
    assert pe[100_000, 3].item() == pytest.approx(math.cos(angle), abs=1e-9)
    # float32 output is rounded from float64 angles, not computed with float32 angles
    pe32 = sinusoidal_encoding(100_001, 8, base=500.0)
    assert (pe32[100_000].double() - pe[100_000]).abs().max() < 1e-7


@pytest.mark.parametrize(
    "args, error, words",
    [
        ((10, 7), ValueError, ["d_model", "even", "7"]),
        ((0, 8), ValueError, ["n_positions", "positive", "0"]),
        ((-3, 8), ValueError, ["n_positions", "-3"]),
        ((5, 0), ValueError, ["d_model", "positive"]),
        ((5.0, 8), TypeError, ["n_positions", "int"]),
        ((5, 8, 1.0), ValueError, ["base", "> 1"]),
    ],
)
def test_sinusoidal_errors_name_the_problem(args, error, words):
    with pytest.raises(error) as info:
        sinusoidal_encoding(*args)
    assert all(w in str(info.value) for w in words), str(info.value)


# --- the shift matrix ------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 2, 9, 100, -4, -37])
def test_shift_matrix_moves_every_position_by_k(k):
    d = 24
    pe = sinusoidal_encoding(400, d, dtype=torch.float64)
    M = sinusoidal_shift_matrix(k, d)
    lo, hi = max(0, -k), 400 - max(0, k)  # positions pos with pos and pos + k in range
    torch.testing.assert_close(pe[lo:hi] @ M.T, pe[lo + k : hi + k], atol=1e-12, rtol=0)


def test_shift_matrix_is_a_block_diagonal_rotation():
    d = 12
    M = sinusoidal_shift_matrix(5, d)
    assert M.dtype == torch.float64
    mask = torch.block_diag(*[torch.ones(2, 2)] * (d // 2)).bool()
    assert (M[~mask] == 0).all()
    torch.testing.assert_close(M @ M.T, torch.eye(d, dtype=torch.float64))
    assert torch.linalg.det(M).item() == pytest.approx(1.0)
    torch.testing.assert_close(sinusoidal_shift_matrix(0, d), torch.eye(d, dtype=torch.float64))
    torch.testing.assert_close(sinusoidal_shift_matrix(2, d) @ sinusoidal_shift_matrix(3, d), M)
    with pytest.raises(TypeError, match="offset must be an int"):
        sinusoidal_shift_matrix(1.5, d)


# --- adding absolute positions ---------------------------------------------------------------

def test_sinusoidal_module_adds_the_right_rows_and_has_no_parameters():
    module = SinusoidalPositionalEncoding(20, 8)
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(5, 8))
    torch.testing.assert_close(module(x, offset=15), x + sinusoidal_encoding(20, 8)[15:])
    assert list(module.parameters()) == [] and module.state_dict() == {}
    x64 = x.double()
    assert module(x64).dtype == torch.float64


def test_learned_module_adds_its_table_and_trains_only_the_rows_used():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(10, 6)
    assert list(module.state_dict()) == ["embedding.weight"]
    assert sum(p.numel() for p in module.parameters()) == 60
    x = torch.randn(2, 4, 6)
    out = module(x, offset=3)
    torch.testing.assert_close(out, x + module.embedding.weight[3:7])
    out.sum().backward()
    grad = module.embedding.weight.grad
    assert (grad[3:7] == 2).all() and (grad[:3] == 0).all() and (grad[7:] == 0).all()


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_absolute_modules_reject_bad_input(cls):
    module = cls(16, 8)
    with pytest.raises(ValueError, match=r"max_positions = 16") as info:
        module(torch.zeros(1, 17, 8))
    assert "0 .. 16" in str(info.value)
    with pytest.raises(ValueError, match=r"max_positions = 16"):
        module(torch.zeros(1, 4, 8), offset=13)
    with pytest.raises(ValueError, match="d_model = 8"):
        module(torch.zeros(1, 4, 6))
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        module(torch.zeros(1, 4, 8), offset=-1)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, d_model\)"):
        module(torch.zeros(8))
    with pytest.raises(ValueError, match="max_positions must be a positive int"):
        cls(0, 8)


# --- rotary embeddings -------------------------------------------------------------------------

def _rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Independent RoPE: pair (2i, 2i+1) as a complex number times exp(i * pos * base**(-2i/d))."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    turn = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions.double()[:, None] * theta)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * turn).reshape(x.shape)


@pytest.mark.parametrize("d_head, base, offset", [(2, 10000.0, 0), (8, 10000.0, 5), (32, 500.0, 100), (64, 10000.0, 1000)])
def test_rope_matches_complex_multiplication(d_head, base, offset):
    torch.manual_seed(d_head)
    rope = RotaryEmbedding(d_head, max_positions=1100, base=base)
    x = torch.randn(2, 3, 9, d_head)
    expected = _rope_complex(x, torch.arange(offset, offset + 9), base)
    torch.testing.assert_close(rope(x, offset=offset).double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("d_head, base, offset", [(8, 10000.0, 0), (32, 10000.0, 7), (16, 500000.0, 300)])
def test_rope_halves_matches_hugging_face_llama(d_head, base, offset):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=4 * d_head, num_attention_heads=4, head_dim=d_head, rope_theta=base)
    theirs = LlamaRotaryEmbedding(config=config)
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, d_head), torch.randn(2, 4, 6, d_head)
    cos, sin = theirs(q, torch.arange(offset, offset + 6)[None])
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    ours = RotaryEmbedding(d_head, max_positions=512, base=base, interleaved=False)
    torch.testing.assert_close(ours(q, offset=offset), q_hf, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(k, offset=offset), k_hf, atol=1e-5, rtol=1e-5)


def test_rope_score_depends_only_on_the_relative_offset():
    torch.manual_seed(3)
    d = 16
    rope = RotaryEmbedding(d, max_positions=200)
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    rq = rope(q.expand(200, d))  # row m: q at position m
    rk = rope(k.expand(200, d))
    scores = rq @ rk.T  # (200, 200): scores[m, n]
    for delta in [-150, -7, -1, 0, 1, 3, 64, 199]:
        diag = torch.diagonal(scores, offset=delta)
        assert (diag - diag[0]).abs().max() < 1e-4, delta
    # and it really depends on the offset (not a constant)
    assert torch.diagonal(scores, 0)[0] != pytest.approx(torch.diagonal(scores, 5)[0].item(), abs=1e-3)
    # the score equals q . R_(n-m) k, the key turned by the offset
    m, n = 40, 47
    torch.testing.assert_close(scores[m, n], q @ rope(k.expand(8, d))[7], atol=1e-5, rtol=1e-5)


def test_rope_attention_is_invariant_to_shifting_all_positions():
    torch.manual_seed(4)
    rope = RotaryEmbedding(8, max_positions=64)
    q, k, v = torch.randn(3, 2, 2, 10, 8).unbind(0)
    ref = F.scaled_dot_product_attention(rope(q), rope(k), v)
    for offset in [1, 17, 54]:
        out = F.scaled_dot_product_attention(rope(q, offset=offset), rope(k, offset=offset), v)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_rope_offset_gives_the_rows_of_the_full_sequence():
    rope = RotaryEmbedding(8, max_positions=32)
    x = torch.randn(2, 3, 12, 8)
    full = rope(x)
    assert torch.equal(rope(x[:, :, 5:], offset=5), full[:, :, 5:])
    assert torch.equal(rope(x[:, :, -1:], offset=11), full[:, :, -1:])


def test_rope_preserves_norms_position_zero_is_identity_and_dtype_is_kept():
    rope = RotaryEmbedding(10, max_positions=50)
    x = torch.randn(4, 50, 10, dtype=torch.float64)
    out = rope(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(out[:, 0], x[:, 0])
    assert list(rope.parameters()) == [] and rope.state_dict() == {}


def test_rope_layouts_differ_by_a_permutation():
    d = 12
    x = torch.randn(5, d)
    to_halves = torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2)))
    inter, halves = RotaryEmbedding(d, 8), RotaryEmbedding(d, 8, interleaved=False)
    torch.testing.assert_close(halves(x[:, to_halves]), inter(x)[:, to_halves], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(halves(x), inter(x), atol=1e-3)


def test_apply_rotary_with_the_tables_equals_the_module():
    rope = RotaryEmbedding(6, max_positions=20)
    cos, sin = rope.cos_sin(7, offset=4)
    assert cos.shape == sin.shape == (7, 6)
    x = torch.randn(3, 7, 6)
    assert torch.equal(apply_rotary(x, cos, sin), rope(x, offset=4))


def test_rope_errors_name_the_problem():
    with pytest.raises(ValueError, match="d_head must be even"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="base must be a number > 1"):
        RotaryEmbedding(8, base=0.5)
    rope = RotaryEmbedding(8, max_positions=16)
    with pytest.raises(ValueError, match="d_head = 8"):
        rope(torch.zeros(1, 2, 4, 6))
    with pytest.raises(ValueError, match=r"positions 10 \.\. 19.*max_positions = 16"):
        rope(torch.zeros(1, 2, 10, 8), offset=10)
    with pytest.raises(ValueError, match="max_positions = 16"):
        rope.cos_sin(17)
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        rope(torch.zeros(4, 8), offset=-2)
    cos, sin = rope.cos_sin(4)
    with pytest.raises(ValueError, match=r"cos and sin must be \(T, d_head\) = \(5, 8\)"):
        apply_rotary(torch.zeros(2, 5, 8), cos, sin)
    with pytest.raises(ValueError, match="same shape"):
        apply_rotary(torch.zeros(4, 8), cos, sin[:, :4])
    with pytest.raises(ValueError, match="d_head even"):
        apply_rotary(torch.zeros(4, 7), cos[:, :7], sin[:, :7])
