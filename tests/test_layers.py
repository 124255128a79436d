"""minillm.layers against PyTorch's own modules: nn.LayerNorm, nn.RMSNorm, F.gelu and
nn.TransformerEncoderLayer, always with every parameter perturbed away from its default
(gains of 1 and biases of 0 would hide a missing or misplaced gain or bias)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import minillm
from minillm.attention import causal_mask, padding_mask
from minillm.layers import FeedForward, LayerNorm, RMSNorm, TransformerBlock


def _perturb(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def _tokens(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    offset = torch.randn(*shape[:-1], 1, generator=g) * 3
    scale = torch.rand(*shape[:-1], 1, generator=g) * 4 + 0.1
    return (torch.randn(*shape, generator=g) * scale + offset).to(dtype)


def test_layers_is_a_lazy_submodule():
    assert "layers" in dir(minillm)
    assert minillm.layers.TransformerBlock is TransformerBlock


# --- LayerNorm ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (3, 16), (2, 5, 32), (2, 3, 4, 8)])
@pytest.mark.parametrize("eps", [1e-5, 1e-12, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layernorm_matches_torch(shape, eps, dtype):
    C = shape[-1]
    ref = _perturb(nn.LayerNorm(C, eps=eps, dtype=dtype))
    ours = LayerNorm(C, eps=eps).to(dtype)
    ours.load_state_dict(ref.state_dict())
    x = _tokens(*shape, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours(x), ref(x), atol=tol, rtol=tol)


def test_layernorm_gradients_match_torch():
    ref = _perturb(nn.LayerNorm(24, dtype=torch.float64))
    ours = LayerNorm(24).double()
    ours.load_state_dict(ref.state_dict())
    x1 = _tokens(3, 4, 24, dtype=torch.float64).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(3, 4, 24, dtype=torch.float64)
    (ours(x1) * w).sum().backward()
    (ref(x2) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


def test_layernorm_state_dict_is_interchangeable_with_torch():
    ours = _perturb(LayerNorm(10, eps=1e-12))
    ref = nn.LayerNorm(10, eps=1e-12)
    ref.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"]
    x = _tokens(4, 10)
    torch.testing.assert_close(ours(x), ref(x))


def test_layernorm_half_precision_is_computed_in_float32():
    ref = _perturb(nn.LayerNorm(256))
    ours = LayerNorm(256)
    ours.load_state_dict(ref.state_dict())
    x = _tokens(4, 256) + 50  # a large mean: float16 statistics would lose it
    for dtype in (torch.bfloat16, torch.float16):
        out = ours.to(dtype)(x.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref(x.to(dtype).float()), atol=0.05, rtol=0.02)


def test_layernorm_of_a_constant_token_is_its_bias():
    ln = _perturb(LayerNorm(8))
    out = ln(torch.full((2, 8), 3.0))
    torch.testing.assert_close(out, ln.bias.detach().expand(2, 8))


# --- RMSNorm --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (3, 16), (2, 5, 32)])
@pytest.mark.parametrize("eps", [1e-6, 1e-5, 0.1, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rmsnorm_matches_torch(shape, eps, dtype):
    C = shape[-1]
    ref = _perturb(nn.RMSNorm(C, eps=eps, dtype=dtype))
    ours = RMSNorm(C, eps=eps).to(dtype)
    ours.load_state_dict(ref.state_dict())
    x = _tokens(*shape, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours(x), ref(x), atol=tol, rtol=tol)
    torch.testing.assert_close(ours(x), F.rms_norm(x, (C,), ref.weight, eps), atol=tol, rtol=tol)


def test_rmsnorm_is_not_layernorm_and_not_l2_normalization():
    x = _tokens(4, 64)
    rms = RMSNorm(64)(x)
    assert not torch.allclose(rms, LayerNorm(64)(x), atol=1e-2)  # tokens have nonzero means
    torch.testing.assert_close(rms, F.normalize(x, dim=-1) * 64**0.5, atol=1e-4, rtol=1e-4)
    assert list(RMSNorm(64).state_dict()) == ["weight"]


def test_rmsnorm_gradients_match_torch():
    ref = _perturb(nn.RMSNorm(12, eps=1e-6, dtype=torch.float64))
    ours = RMSNorm(12, eps=1e-6).double()
    ours.load_state_dict(ref.state_dict())
    x1 = _tokens(5, 12, dtype=torch.float64).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1).pow(3).sum().backward()
    ref(x2).pow(3).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)


@pytest.mark.parametrize("cls", [LayerNorm, RMSNorm])
def test_norms_reject_bad_input(cls):
    norm = cls(8)
    with pytest.raises(ValueError, match="d_model=8"):
        norm(torch.randn(2, 7))
    with pytest.raises(ValueError, match="d_model=8"):
        norm(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        norm(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        norm([[0.0] * 8])
    with pytest.raises(ValueError, match="d_model"):
        cls(0)
    with pytest.raises(ValueError, match="eps"):
        cls(8, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        cls(8, eps=-1e-5)


# --- FeedForward ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "activation, phi",
    [
        ("gelu", lambda u: F.gelu(u)),
        ("gelu_tanh", lambda u: F.gelu(u, approximate="tanh")),
        ("relu", F.relu),
    ],
)
def test_feedforward_computes_the_formula(activation, phi):
    ffn = _perturb(FeedForward(16, 48, activation=activation))
    x = _tokens(2, 5, 16)
    expected = F.linear(phi(F.linear(x, ffn.fc1.weight, ffn.fc1.bias)), ffn.fc2.weight, ffn.fc2.bias)
    torch.testing.assert_close(ffn(x), expected)
    assert ffn.fc1.weight.shape == (48, 16) and ffn.fc2.weight.shape == (16, 48)


def test_the_two_gelus_differ():
    x = _tokens(2, 5, 16)
    a, b = FeedForward(16, 48, activation="gelu"), FeedForward(16, 48, activation="gelu_tanh")
    b.load_state_dict(a.state_dict())
    assert not torch.equal(a(x), b(x))


def test_feedforward_is_position_wise():
    ffn = _perturb(FeedForward(8, 32))
    x = _tokens(3, 9, 8)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ffn(x[:, perm]), ffn(x)[:, perm])
    torch.testing.assert_close(ffn(x)[:, 4], ffn(x[:, 4]))


def test_feedforward_dropout_acts_in_training_only():
    ffn = FeedForward(8, 32, dropout=0.5)
    x = _tokens(4, 50, 8)
    ffn.train()
    assert (ffn(x) == 0).float().mean() > 0.3
    ffn.eval()
    torch.testing.assert_close(ffn(x), ffn(x))
    assert (ffn(x) == 0).float().mean() < 0.01


def test_feedforward_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gelu_tanh"):
        FeedForward(8, 32, activation="swish")
    with pytest.raises(ValueError, match="d_ff"):
        FeedForward(8, 0)
    with pytest.raises(ValueError, match="dropout"):
        FeedForward(8, 32, dropout=1.5)
    with pytest.raises(ValueError, match="d_model=8"):
        FeedForward(8, 32)(torch.randn(2, 3, 9))


# --- TransformerBlock -----------------------------------------------------------------

def _copy_from_torch(block: TransformerBlock, layer: nn.TransformerEncoderLayer) -> None:
    """Written out name by name, independently of the notebook's copy."""
    sa = layer.self_attn
    q_w, k_w, v_w = sa.in_proj_weight.chunk(3)
    q_b, k_b, v_b = sa.in_proj_bias.chunk(3)
    with torch.no_grad():
        block.attn.qkv_proj.weight.copy_(torch.cat([q_w, k_w, v_w]))
        block.attn.qkv_proj.bias.copy_(torch.cat([q_b, k_b, v_b]))
        block.attn.out_proj.weight.copy_(sa.out_proj.weight)
        block.attn.out_proj.bias.copy_(sa.out_proj.bias)
        block.ffn.fc1.weight.copy_(layer.linear1.weight)
        block.ffn.fc1.bias.copy_(layer.linear1.bias)
        block.ffn.fc2.weight.copy_(layer.linear2.weight)
        block.ffn.fc2.bias.copy_(layer.linear2.bias)
        block.attn_norm.weight.copy_(layer.norm1.weight)
        block.attn_norm.bias.copy_(layer.norm1.bias)
        block.ffn_norm.weight.copy_(layer.norm2.weight)
        block.ffn_norm.bias.copy_(layer.norm2.bias)


def _pair(norm_first, activation="gelu", eps=1e-5, d_model=32, n_heads=4, d_ff=64, seed=0):
    torch_activation = {"gelu": "gelu", "relu": "relu",
                        "gelu_tanh": lambda u: F.gelu(u, approximate="tanh")}[activation]
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=torch_activation,
                                       layer_norm_eps=eps, batch_first=True, norm_first=norm_first)
    _perturb(layer, seed=seed)
    block = TransformerBlock.standard(d_model, n_heads, d_ff, norm_first=norm_first, activation=activation, eps=eps)
    _copy_from_torch(block, layer)
    return block, layer


B, T = 3, 7
VALID = torch.tensor([[1] * 7, [1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)

# (our mask, PyTorch's keyword arguments): PyTorch's masks use True = NOT allowed
MASKS = {
    "none": (None, {}),
    "causal": (causal_mask(T), {"src_mask": ~causal_mask(T)}),
    "padding": (padding_mask(VALID), {"src_key_padding_mask": ~VALID}),
    "causal+padding": (causal_mask(T) & padding_mask(VALID), {"src_mask": ~causal_mask(T), "src_key_padding_mask": ~VALID}),
    "per-example (B, T, T)": (
        (torch.rand(B, T, T, generator=torch.Generator().manual_seed(3)) > 0.3) | torch.eye(T, dtype=torch.bool),
        None,
    ),
}


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_block_matches_torch_encoder_layer(norm_first, activation, mask_name):
    block, layer = _pair(norm_first, activation)
    x = _tokens(B, T, 32)
    ours_mask, torch_kwargs = MASKS[mask_name]
    if torch_kwargs is None:  # a (B, T, T) mask is (B * n_heads, T, T) for PyTorch
        torch_kwargs = {"src_mask": (~ours_mask).repeat_interleave(4, dim=0)}
    torch.testing.assert_close(block(x, mask=ours_mask), layer(x, **torch_kwargs), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first, eps", [(False, 1e-12), (True, 1e-5)], ids=["BERT-like", "GPT-2-like"])
def test_block_eps_reaches_both_norms(norm_first, eps):
    block, layer = _pair(norm_first, "gelu", eps=eps)
    assert block.attn_norm.eps == block.ffn_norm.eps == eps
    x = _tokens(B, T, 32)
    torch.testing.assert_close(block(x), layer(x), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
def test_block_gradients_match_torch(norm_first):
    block, layer = _pair(norm_first)
    block.double(), layer.double()  # float64, so that only a real difference can fail the comparison
    x1 = _tokens(B, T, 32, dtype=torch.float64).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(B, T, 32, dtype=torch.float64)
    (block(x1, mask=causal_mask(T)) * w).sum().backward()
    (layer(x2, src_mask=~causal_mask(T)) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    pairs = [
        (block.attn_norm.weight, layer.norm1.weight), (block.ffn_norm.bias, layer.norm2.bias),
        (block.ffn.fc1.weight, layer.linear1.weight), (block.ffn.fc2.bias, layer.linear2.bias),
        (block.attn.out_proj.weight, layer.self_attn.out_proj.weight),
    ]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours.grad, theirs.grad)
    torch.testing.assert_close(block.attn.qkv_proj.weight.grad, layer.self_attn.in_proj_weight.grad)
    torch.testing.assert_close(block.attn.qkv_proj.bias.grad, layer.self_attn.in_proj_bias.grad)


def test_block_matches_torch_fast_path_in_inference():
    block, layer = _pair(True, "relu")
    block.eval(), layer.eval()
    x = _tokens(B, T, 32)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), layer(x), atol=2e-5, rtol=1e-4)


def test_block_parts_have_stable_names():
    """Chapters 6 and 7 load BERT and GPT-2 weights by these names."""
    names = list(TransformerBlock.standard(16, 2, 32).state_dict())
    assert names == [
        "attn.qkv_proj.weight", "attn.qkv_proj.bias", "attn.out_proj.weight", "attn.out_proj.bias",
        "attn_norm.weight", "attn_norm.bias",
        "ffn.fc1.weight", "ffn.fc1.bias", "ffn.fc2.weight", "ffn.fc2.bias",
        "ffn_norm.weight", "ffn_norm.bias",
    ]


def test_block_parameter_count_matches_torch_and_gpt2_block():
    block = TransformerBlock.standard(768, 12, 3072)
    torch_layer = nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True)
    n = sum(p.numel() for p in block.parameters())
    assert n == sum(p.numel() for p in torch_layer.parameters()) == 7_087_872


def test_block_need_weights():
    block, _ = _pair(True)
    x = _tokens(B, T, 32)
    mask = causal_mask(T) & padding_mask(VALID)
    out, weights = block(x, mask=mask, need_weights=True)
    assert weights.shape == (B, 4, T, T)
    torch.testing.assert_close(out, block(x, mask=mask), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 4, T))
    assert (weights.masked_select(~mask.expand(B, 4, T, T)) == 0).all()


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_ignores_the_future(norm_first):
    block = _perturb(TransformerBlock.standard(16, 2, 32, norm_first=norm_first))
    x = _tokens(2, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(2, 3, 16)
    torch.testing.assert_close(block(x, mask=causal_mask(8))[:, :5], block(y, mask=causal_mask(8))[:, :5])
    assert not torch.allclose(block(x)[:, :5], block(y)[:, :5])


def test_block_dropout_acts_in_training_only():
    block = _perturb(TransformerBlock.standard(16, 2, 32, dropout=0.3))
    x = _tokens(2, 8, 16)
    block.train()
    assert not torch.equal(block(x), block(x))
    block.eval()
    reference = TransformerBlock.standard(16, 2, 32, dropout=0.0).eval()
    reference.load_state_dict(block.state_dict())
    torch.testing.assert_close(block(x), reference(x))


def test_block_orders_differ():
    pre = _perturb(TransformerBlock.standard(16, 2, 32, norm_first=True))
    post = TransformerBlock.standard(16, 2, 32, norm_first=False)
    post.load_state_dict(pre.state_dict())
    x = _tokens(2, 8, 16)
    assert not torch.allclose(pre(x), post(x), atol=1e-3)
    # post-LN output is the ffn_norm's output: per-token statistics fixed by its gain and bias
    plain = TransformerBlock.standard(16, 2, 32, norm_first=False)
    out = plain(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 8), atol=1e-5, rtol=0)


def test_block_rejects_bad_arguments():
    with pytest.raises(TypeError, match="norm_first"):
        TransformerBlock.standard(16, 2, 32, norm_first="pre")
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock.standard(16, 3, 32)
    with pytest.raises(ValueError, match="activation"):
        TransformerBlock.standard(16, 2, 32, activation="tanh")
    with pytest.raises(ValueError, match="eps"):
        TransformerBlock.standard(16, 2, 32, eps=0)
    block = TransformerBlock.standard(16, 2, 32)
    with pytest.raises(ValueError, match="d_model=16"):
        block(torch.randn(2, 5, 12))
    with pytest.raises(TypeError, match="bool"):
        block(torch.randn(2, 5, 16), mask=torch.ones(5, 5))
