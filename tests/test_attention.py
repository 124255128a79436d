"""minillm.attention against implementations nobody here wrote: torch.nn.functional's
scaled_dot_product_attention and nn.MultiheadAttention (with copied, perturbed weights)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minillm.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from minillm.attention import stack_qkv

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _qkv(batch: tuple, t_q: int, t_k: int, d_k: int, d_v: int, seed: int = 0, dtype=torch.float64):
    g = _g(seed)
    q = torch.randn(*batch, t_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*batch, t_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*batch, t_k, d_v, generator=g, dtype=dtype)
    return q, k, v


def _random_mask(shape: tuple, seed: int = 0) -> torch.Tensor:
    """A random bool mask in which every row keeps at least one key."""
    m = torch.rand(shape, generator=_g(seed)) < 0.6
    m[..., 0] = True
    return m


# --- scaled_dot_product_attention ------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (2, 1, 3)])
@pytest.mark.parametrize("t_q, t_k, d_k, d_v", [(1, 1, 1, 1), (5, 5, 4, 4), (3, 7, 8, 2)])
def test_matches_torch_without_mask(batch, t_q, t_k, d_k, d_v):
    q, k, v = _qkv(batch, t_q, t_k, d_k, d_v)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert out.shape == (*batch, t_q, d_v) and weights.shape == (*batch, t_q, t_k)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, t_q, dtype=torch.float64))


@pytest.mark.parametrize(
    "batch, mask_shape",
    [((), (4, 6)), ((2,), (4, 6)), ((2,), (2, 4, 6)), ((2,), (1, 6)), ((2, 3), (2, 1, 4, 6)), ((2, 3), (2, 1, 1, 6)), ((2, 3), (3, 4, 6))],
)
def test_matches_torch_with_mask(batch, mask_shape):
    q, k, v = _qkv(batch, 4, 6, 5, 3, seed=1)
    mask = _random_mask(mask_shape, seed=2)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert (weights.masked_select(~mask.expand_as(weights)) == 0).all(), "masked keys get exactly zero weight"
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, 4, dtype=torch.float64))


def test_gradients_match_torch():
    q, k, v = _qkv((2, 3), 5, 5, 4, 4, seed=3)
    mask = causal_mask(5)
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    theirs = [t.clone().requires_grad_() for t in (q, k, v)]
    gy = torch.randn(2, 3, 5, 4, generator=_g(4), dtype=torch.float64)
    (scaled_dot_product_attention(*ours, mask)[0] * gy).sum().backward()
    (F.scaled_dot_product_attention(*theirs, attn_mask=mask) * gy).sum().backward()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad)


def test_scores_are_scaled_by_sqrt_dk():
    # two keys, one query: the softmax of [q.k0, q.k1] / sqrt(d_k), computed here by hand
    d_k = 16
    q = torch.full((1, d_k), 0.5, dtype=torch.float64)
    k = torch.stack([torch.full((d_k,), 1.0), torch.zeros(d_k)]).double()
    _, weights = scaled_dot_product_attention(q, k, torch.eye(2, dtype=torch.float64))
    z = torch.tensor([0.5 * d_k, 0.0], dtype=torch.float64) / d_k**0.5
    torch.testing.assert_close(weights[0], torch.softmax(z, -1))


def test_fully_masked_row_gives_zeros_and_no_nan_gradient():
    q, k, v = _qkv((2,), 3, 4, 4, 5, seed=5)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch 0 may attend to nothing
    q.requires_grad_()
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert not out.isnan().any() and not weights.isnan().any()
    assert (out[0, 1] == 0).all() and (weights[0, 1] == 0).all()
    # the other rows are those of unmasked attention
    ref = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out[1], ref[1])
    torch.testing.assert_close(out[0, [0, 2]], ref[0, [0, 2]])
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[0, 1] == 0).all()


def test_dropout_zeroes_and_rescales_weights():
    q, k, v = _qkv((4,), 6, 6, 8, 8, seed=6)
    _, clean = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.25)
    kept = dropped != 0
    assert 0.6 < kept.double().mean() < 0.9
    torch.testing.assert_close(dropped[kept], clean[kept] / 0.75)
    torch.testing.assert_close(out, dropped @ v)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    assert (out == 0).all()


def test_sdpa_errors():
    q, k, v = _qkv((2,), 3, 4, 5, 6)
    with pytest.raises(ValueError, match="same last dimension d_k"):
        scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="same number of positions"):
        scaled_dot_product_attention(q, k, v[:, :3])
    with pytest.raises(ValueError, match="must broadcast"):
        scaled_dot_product_attention(q, torch.cat([k, k, k]), torch.cat([v, v, v]))
    with pytest.raises(TypeError, match="same dtype"):
        scaled_dot_product_attention(q.float(), k, v)
    with pytest.raises(TypeError, match="floating-point"):
        scaled_dot_product_attention(q.long(), k.long(), v.long())
    with pytest.raises(ValueError, match="at least 2 dims"):
        scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0])
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\]"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.5)


@pytest.mark.parametrize(
    "mask, error, message",
    [
        (torch.ones(3, 4), TypeError, "dtype torch.bool"),
        (torch.ones(3, 4, dtype=torch.long), TypeError, "mask.bool()"),
        ([[True] * 4] * 3, TypeError, "torch.bool tensor"),
        (torch.ones(4, 3, dtype=torch.bool), ValueError, "does not broadcast"),  # transposed
        (torch.ones(4, dtype=torch.bool), ValueError, "at least 2 dims"),
        (torch.ones(3, 3, 4, dtype=torch.bool), ValueError, "does not broadcast"),  # batch 3 vs 2
        (torch.ones(5, 2, 3, 4, dtype=torch.bool), ValueError, "does not broadcast"),  # would enlarge the output
    ],
)
def test_bad_masks_are_clear_errors(mask, error, message):
    q, k, v = _qkv((2,), 3, 4, 5, 6)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        scaled_dot_product_attention(q, k, v, mask)


# --- masks -------------------------------------------------------------------------------

def test_causal_mask_square_matches_torch_is_causal():
    assert causal_mask(1).tolist() == [[True]]
    assert torch.equal(causal_mask(5), torch.ones(5, 5).tril().bool())
    q, k, v = _qkv((2,), 5, 5, 4, 4, seed=7)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, causal_mask(5))[0], F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )


def test_causal_mask_is_aligned_to_the_end_for_a_kv_cache():
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    # the last t_q queries against all t_k keys give the last t_q rows of full causal attention
    q, k, v = _qkv((3,), 9, 9, 4, 4, seed=8)
    full, _ = scaled_dot_product_attention(q, k, v, causal_mask(9))
    last, _ = scaled_dot_product_attention(q[:, -3:], k, v, causal_mask(3, 9))
    torch.testing.assert_close(last, full[:, -3:])
    assert causal_mask(3, 3, device="cpu").device.type == "cpu"


@pytest.mark.parametrize("args", [(0,), (3, 2), (3, 0)])
def test_causal_mask_errors(args):
    with pytest.raises(ValueError, match="must be"):
        causal_mask(*args)


@pytest.mark.parametrize("args", [(2.0,), (True,)])
def test_causal_mask_type_errors(args):
    with pytest.raises(TypeError, match="t_q must be an int"):
        causal_mask(*args)


def test_padding_mask():
    hf_style = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # 1 = real token, like attention_mask
    m = padding_mask(hf_style)
    assert m.dtype == torch.bool and m.shape == (2, 1, 1, 4)
    assert torch.equal(m, padding_mask(hf_style.bool()))
    assert m[1, 0, 0].tolist() == [True, True, False, False]
    combined = m & causal_mask(4)
    assert combined.shape == (2, 1, 4, 4) and combined[1, 0, 3].tolist() == [True, True, False, False]
    for bad, words in [
        (torch.tensor([[1, 2]]), "got the value 2"),
        (torch.tensor([[1.0, 0.0]]), "got dtype torch.float32"),
        (torch.ones(2, 1, 4, dtype=torch.bool), "(B, T_k) tensor, got torch.Size([2, 1, 4])"),
        ([[1, 0]], "(B, T_k) tensor, got list"),
    ]:
        with pytest.raises(ValueError) as info:
            padding_mask(bad)
        assert "valid must be" in str(info.value) and words in str(info.value), str(info.value)


# --- MultiHeadAttention vs nn.MultiheadAttention -------------------------------------------

def _pair(d_model: int, n_heads: int, bias: bool = True, seed: int = 0):
    """Our module and nn.MultiheadAttention with the same, perturbed, weights (float64)."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True).double()
    with torch.no_grad():
        for p in ref.parameters():  # default init zeroes the biases: perturb everything
            p.copy_(torch.randn_like(p) * 0.3)
    ours = MultiHeadAttention(d_model, n_heads, bias=bias).double()
    with torch.no_grad():
        ours.qkv_proj.weight.copy_(ref.in_proj_weight)  # W_q, W_k, W_v stacked in both
        ours.out_proj.weight.copy_(ref.out_proj.weight)
        if bias:
            ours.qkv_proj.bias.copy_(ref.in_proj_bias)
            ours.out_proj.bias.copy_(ref.out_proj.bias)
    return ours, ref


def _x(B: int, T: int, d_model: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, d_model, generator=_g(seed), dtype=torch.float64)


@pytest.mark.parametrize("d_model, n_heads, bias", [(8, 1, True), (12, 3, True), (16, 4, False)])
def test_mha_matches_torch_without_mask(d_model, n_heads, bias):
    ours, ref = _pair(d_model, n_heads, bias)
    x = _x(2, 5, d_model)
    expected, expected_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(ours(x), expected)
    out, weights = ours(x, need_weights=True)
    assert weights.shape == (2, n_heads, 5, 5)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_w)


def test_mha_causal_mask_matches_torch():
    ours, ref = _pair(12, 3)
    x = _x(2, 6, 12)
    expected, expected_w = ref(x, x, x, attn_mask=~causal_mask(6), need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(ours(x, mask=causal_mask(6)), expected)
    out, weights = ours(x, mask=causal_mask(6), need_weights=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_w)
    assert (weights.triu(1) == 0).all()


def test_mha_padding_mask_matches_torch_key_padding_mask():
    ours, ref = _pair(12, 4)
    x = _x(3, 5, 12)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    expected = ref(x, x, x, key_padding_mask=valid == 0, need_weights=False)[0]
    torch.testing.assert_close(ours(x, mask=padding_mask(valid)), expected)
    torch.testing.assert_close(ours(x, mask=padding_mask(valid), need_weights=True)[0], expected)


def test_mha_per_example_mask_matches_torch():
    ours, ref = _pair(8, 2)
    x = _x(2, 4, 8)
    mask = _random_mask((2, 4, 4), seed=9)  # (B, T, S), the same for every head
    # nn.MultiheadAttention wants a 3-D mask as (B * n_heads, T, S), with True = NOT allowed
    expected = ref(x, x, x, attn_mask=~mask.repeat_interleave(2, dim=0), need_weights=False)[0]
    torch.testing.assert_close(ours(x, mask=mask), expected)
    torch.testing.assert_close(ours(x, mask=mask, need_weights=True)[0], expected)
    per_head = _random_mask((2, 2, 4, 4), seed=10)  # (B, n_heads, T, S)
    expected = ref(x, x, x, attn_mask=~per_head.reshape(4, 4, 4), need_weights=False)[0]
    torch.testing.assert_close(ours(x, mask=per_head), expected)


def test_mha_cross_attention_matches_torch():
    ours, ref = _pair(12, 3)
    x, context = _x(2, 4, 12, seed=11), _x(2, 7, 12, seed=12)
    expected, expected_w = ref(x, context, context, need_weights=True, average_attn_weights=False)
    out, weights = ours(x, need_weights=True, context=context)
    assert weights.shape == (2, 3, 4, 7)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_w)
    torch.testing.assert_close(ours(x, context=context), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_agrees_with_weights_path(device, dtype):
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).to(device=device, dtype=dtype)
    x = torch.randn(3, 10, 32, device=device, dtype=dtype)
    masks = [None, causal_mask(10, device=device), padding_mask(torch.tensor([[1] * 10, [1] * 6 + [0] * 4, [1] * 2 + [0] * 8], device=device))]
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {}
    for mask in masks:
        torch.testing.assert_close(mha(x, mask=mask), mha(x, mask=mask, need_weights=True)[0], **tol)


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_fully_masked_query_is_documented_behaviour(need_weights):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double()
    x = _x(2, 3, 8).requires_grad_()
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[1, 2] = False  # query 2 of example 1 sees no key
    result = mha(x, mask=mask, need_weights=need_weights)
    out = result[0] if need_weights else result
    assert not out.isnan().any()
    torch.testing.assert_close(out[1, 2], mha.out_proj.bias)  # zero attention, then out_proj
    if need_weights:
        assert (result[1][1, :, 2] == 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


def test_mha_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5).double()
    x = _x(2, 6, 16)
    mha.eval()
    a, b = mha(x), mha(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, mha(x, need_weights=True)[0])
    mha.train()
    assert not torch.allclose(mha(x), a)
    _, weights = mha(x, need_weights=True)
    assert (weights == 0).any()


def test_mha_parameters_and_repr():
    mha = MultiHeadAttention(12, 3)
    assert (mha.d_model, mha.n_heads, mha.d_head) == (12, 3, 4)
    assert sum(p.numel() for p in mha.parameters()) == 4 * (12 * 12 + 12)
    assert sum(p.numel() for p in MultiHeadAttention(12, 3, bias=False).parameters()) == 4 * 12 * 12
    assert "n_heads=3" in repr(mha) and "d_head=4" in repr(mha)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_model": 10, "n_heads": 3}, "divisible by n_heads"),
        ({"d_model": 0, "n_heads": 1}, "positive int"),
        ({"d_model": 8, "n_heads": 2, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"d_model": 8, "n_heads": 4, "n_kv_heads": 3}, "n_heads must be divisible by n_kv_heads"),
        ({"d_model": 10, "n_heads": 3, "d_head": 4, "n_kv_heads": 2}, r"n_heads=3 and n_kv_heads=2"),
    ],
)
def test_mha_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)
    with pytest.raises(TypeError, match="n_heads must be an int, got float"):
        MultiHeadAttention(8, 2.0)


def test_mha_with_its_own_d_head_needs_no_divisible_d_model():
    mha = MultiHeadAttention(10, 3, d_head=4)
    assert (mha.d_head, mha.qkv_sizes, mha.out_proj.in_features) == (4, (12, 12, 12), 12)
    assert mha(torch.randn(2, 5, 10)).shape == (2, 5, 10)


def test_mask_and_cache_are_keyword_only():
    """`attn(x, mask)` would read as a mask or as a cache: both must be named."""
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(TypeError, match="positional argument"):
        mha(torch.randn(1, 3, 8), causal_mask(3))


def test_mha_input_and_mask_errors():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"\(B, T, d_model=8\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"\(B, T, d_model=8\)"):
        mha(torch.randn(5, 8))
    with pytest.raises(TypeError, match="floating-point"):
        mha(torch.ones(2, 5, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.bool"):
        mha(x, mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match="padding_mask"):
        mha(x, mask=torch.ones(2, 5, dtype=torch.bool))  # a (B, S) padding marker passed as a mask
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, mask=torch.ones(2, 3, 5, 5, dtype=torch.bool))  # 3 heads, but the module has 2
    with pytest.raises(ValueError, match="2 to 4 dims"):
        mha(x, mask=torch.ones(1, 2, 2, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch size"):
        mha(x, context=torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, mask=causal_mask(5), context=torch.randn(2, 4, 8))  # mask must be (T, S) = (5, 4)


@pytest.mark.parametrize("need_weights", [False, True])
def test_causal_option_equals_an_explicit_causal_mask(need_weights):
    torch.manual_seed(0)
    causal = MultiHeadAttention(12, 3, causal=True).double()
    plain = MultiHeadAttention(12, 3).double()
    plain.load_state_dict(causal.state_dict())
    x = _x(2, 7, 12)
    got = causal(x, need_weights=need_weights)
    expected = plain(x, mask=causal_mask(7), need_weights=need_weights)
    for a, b in zip(got if need_weights else [got], expected if need_weights else [expected]):
        torch.testing.assert_close(a, b)
    # with a padding mask as well, the two masks combine
    valid = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    torch.testing.assert_close(causal(x, mask=padding_mask(valid)),
                               plain(x, mask=padding_mask(valid) & causal_mask(7)))


def test_grouped_key_value_heads_equal_repeated_full_heads():
    """n_kv_heads = 2 for 6 query heads: each key/value head serves 3 consecutive query heads,
    which is full multi-head attention with every key/value head's weights repeated."""
    torch.manual_seed(0)
    gqa = MultiHeadAttention(12, 6, n_kv_heads=2, causal=True).double()
    with torch.no_grad():
        for p in gqa.parameters():
            p.copy_(torch.randn_like(p))
    full = MultiHeadAttention(12, 6, causal=True).double()
    d_head = 2
    with torch.no_grad():
        full.out_proj.load_state_dict(gqa.out_proj.state_dict())
        ours_w, ours_b = full.qkv_proj.weight.split(12), full.qkv_proj.bias.split(12)
        theirs_w = gqa.qkv_proj.weight.split(gqa.qkv_sizes)
        theirs_b = gqa.qkv_proj.bias.split(gqa.qkv_sizes)
        ours_w[0].copy_(theirs_w[0]), ours_b[0].copy_(theirs_b[0])  # queries: 6 heads
        for j in (1, 2):  # keys and values: 2 heads, each repeated for 3 query heads
            w = theirs_w[j].view(2, d_head, 12).repeat_interleave(3, dim=0).reshape(12, 12)
            ours_w[j].copy_(w)
            ours_b[j].copy_(theirs_b[j].view(2, d_head).repeat_interleave(3, dim=0).flatten())
    assert gqa.qkv_sizes == (12, 4, 4) and gqa.qkv_proj.weight.shape == (20, 12)
    x = _x(2, 5, 12)
    torch.testing.assert_close(gqa(x), full(x))
    torch.testing.assert_close(gqa(x, need_weights=True)[1], full(x, need_weights=True)[1])


def test_rotary_and_qk_norm_hooks_act_on_queries_and_keys():
    class Scale(torch.nn.Module):  # a stand-in "norm" that records what it saw
        def __init__(self, d):
            super().__init__()
            self.d, self.seen = d, []

        def forward(self, t):
            self.seen.append(tuple(t.shape))
            return 2 * t

    class Shift(torch.nn.Module):  # a stand-in rotary module: records the offsets
        offsets: list = []

        def forward(self, t, offset=0):
            self.offsets.append(offset)
            return t

    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, qk_norm=Scale, rotary=Shift()).double()
    plain = MultiHeadAttention(8, 2).double()
    plain.load_state_dict(mha.state_dict(), strict=False)
    x = _x(1, 4, 8)
    # doubling q and k multiplies every score by 4: the same as dividing sqrt(d_head) by 4
    q, k, v = plain.project(x)
    out, _ = scaled_dot_product_attention(4 * q, k, v)
    expected = plain.out_proj(out.transpose(1, 2).reshape(1, 4, 8))
    torch.testing.assert_close(mha(x), expected)
    assert mha.q_norm.seen[-1] == (1, 2, 4, 4) and mha.k_norm.seen[-1] == (1, 2, 4, 4)
    assert Shift.offsets[-2:] == [0, 0]


@pytest.mark.parametrize("bias", [True, False])
def test_fused_self_attention_projection_equals_three_projections(bias):
    """Self-attention stacks q, k and v into one matrix product; passing the input as the
    context takes the unfused path (three products). Both must give the same q, k, v."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(24, 6, n_kv_heads=2, bias=bias)
    x = torch.randn(2, 5, 24)
    fused, separate = attn.project(x), attn.project(x, context=x)
    for a, b in zip(fused, separate):
        torch.testing.assert_close(a, b)
    assert fused[0].shape == (2, 6, 5, 4) and fused[1].shape == (2, 2, 5, 4)


def test_qkv_proj_computes_the_three_projections_stacked():
    """Row blocks of qkv_proj are W_q, W_k, W_v (with GQA's smaller k and v): the outputs split at
    qkv_sizes are the three separate products."""
    torch.manual_seed(3)
    mha = MultiHeadAttention(12, 6, n_kv_heads=2).double()
    x = _x(2, 5, 12)
    w_q, w_k, w_v = mha.qkv_proj.weight.split(mha.qkv_sizes)
    b_q, b_k, b_v = mha.qkv_proj.bias.split(mha.qkv_sizes)
    q, k, v = mha.project(x)
    heads = lambda t, n: t.view(2, 5, n, 2).transpose(1, 2)  # noqa: E731
    torch.testing.assert_close(q, heads(F.linear(x, w_q, b_q), 6))
    torch.testing.assert_close(k, heads(F.linear(x, w_k, b_k), 2))
    torch.testing.assert_close(v, heads(F.linear(x, w_v, b_v), 2))
    context = _x(2, 3, 12, seed=4)  # cross-attention: keys and values from context only
    q2, k2, v2 = mha.project(x, context)
    torch.testing.assert_close(q2, q)
    torch.testing.assert_close(k2, F.linear(context, w_k, b_k).view(2, 3, 2, 2).transpose(1, 2))
    torch.testing.assert_close(v2, F.linear(context, w_v, b_v).view(2, 3, 2, 2).transpose(1, 2))


def test_stack_qkv_stacks_each_triple_in_order_and_keeps_the_rest():
    torch.manual_seed(5)
    t = {name: torch.randn(4, 3) for name in ("q", "k", "v", "o")}
    b = {name: torch.randn(4) for name in ("q", "k", "v")}
    state = {"blocks.0.attn.q_proj.weight": t["q"], "blocks.0.attn.k_proj.weight": t["k"],
             "blocks.0.attn.v_proj.weight": t["v"], "blocks.0.attn.out_proj.weight": t["o"],
             "q_proj.bias": b["q"], "k_proj.bias": b["k"], "v_proj.bias": b["v"],
             "blocks.0.attn.xq_proj.weight": t["o"]}  # not a q_proj: kept
    stacked = stack_qkv(state)
    assert sorted(stacked) == ["blocks.0.attn.out_proj.weight", "blocks.0.attn.qkv_proj.weight",
                               "blocks.0.attn.xq_proj.weight", "qkv_proj.bias"]
    assert torch.equal(stacked["blocks.0.attn.qkv_proj.weight"], torch.cat([t["q"], t["k"], t["v"]]))
    assert torch.equal(stacked["qkv_proj.bias"], torch.cat([b["q"], b["k"], b["v"]]))
    assert stacked["blocks.0.attn.out_proj.weight"] is t["o"]
    del state["blocks.0.attn.v_proj.weight"]
    with pytest.raises(KeyError, match="blocks.0.attn.v_proj.weight"):
        stack_qkv(state)
