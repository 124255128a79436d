"""minillm.gpt (chapter 7) against oracles nobody here wrote: Hugging Face's GPT2LMHeadModel built
from config objects with every parameter perturbed, its logits warpers and generate(), and
torch.nn.MultiheadAttention; plus the KV cache, sampling and the error messages."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minillm.attention import MultiHeadAttention, causal_mask
from minillm.gpt import (
    GPT,
    GPTConfig,
    KVCache,
    LayerCache,
    generate,
    sample_next,
    top_k_filter,
    top_p_filter,
)

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper  # noqa: E402

transformers.logging.set_verbosity_error()

TINY = GPTConfig(vocab_size=37, block_size=24, n_layers=2, n_heads=4, d_model=32)

# Hugging Face configurations: different widths, depths, heads, an explicit d_ff, other activations.
HF_CONFIGS = [
    dict(vocab_size=100, n_positions=32, n_embd=48, n_layer=3, n_head=4),
    dict(vocab_size=77, n_positions=40, n_embd=64, n_layer=2, n_head=8, n_inner=100, layer_norm_epsilon=1e-5),
    dict(vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=2, activation_function="gelu_pytorch_tanh"),
    dict(vocab_size=60, n_positions=20, n_embd=32, n_layer=2, n_head=4, activation_function="relu"),
]


def perturbed_hf(seed: int = 0, **config) -> GPT2LMHeadModel:
    """A random GPT-2 whose every parameter is perturbed: no bias stays 0, no LayerNorm weight 1."""
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(bos_token_id=None, eos_token_id=None, **config)).eval()
    before = {n: p.detach().clone() for n, p in hf.named_parameters()}
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for n, p in hf.named_parameters():
        assert not torch.isclose(p, before[n]).any(), f"{n} was not perturbed everywhere"
    return hf


def model(config: GPTConfig = TINY, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).eval()


# --- configuration and parameter counts --------------------------------------------------

def test_gpt2_small_has_124_439_808_parameters():
    config = GPTConfig.gpt2("gpt2")
    assert config.num_parameters() == 124_439_808
    with torch.device("meta"):  # shapes only, no memory
        ours = GPT(config)
        theirs = GPT2LMHeadModel(GPT2Config())
    assert ours.num_parameters() == theirs.num_parameters() == 124_439_808


@pytest.mark.parametrize("name, hf_kwargs", [("gpt2-medium", dict(n_layer=24, n_embd=1024, n_head=16)),
                                             ("gpt2-large", dict(n_layer=36, n_embd=1280, n_head=20)),
                                             ("gpt2-xl", dict(n_layer=48, n_embd=1600, n_head=25))])
def test_gpt2_sizes_match_hugging_face(name, hf_kwargs):
    with torch.device("meta"):
        ours = GPT(GPTConfig.gpt2(name))
        theirs = GPT2LMHeadModel(GPT2Config(**hf_kwargs))
    assert ours.num_parameters() == theirs.num_parameters() == GPTConfig.gpt2(name).num_parameters()


@pytest.mark.parametrize("kwargs", [dict(), dict(bias=False), dict(d_ff=50), dict(n_layers=3, activation="relu")])
def test_closed_form_count_matches_the_module(kwargs):
    config = GPTConfig(vocab_size=31, block_size=12, n_layers=kwargs.pop("n_layers", 2), n_heads=2, d_model=16, **kwargs)
    m = GPT(config)
    assert m.num_parameters() == config.num_parameters()
    assert m.num_parameters(include_positions=False) == config.num_parameters(include_positions=False) == config.num_parameters() - 12 * 16


def test_embeddings_are_tied():
    m = model()
    assert m.lm_head.weight is m.wte.weight
    with torch.no_grad():
        m.wte.weight[3, 0] += 1.0
    assert m.lm_head.weight[3, 0] == m.wte.weight[3, 0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(d_model=30, n_heads=4), "divisible by n_heads"),
    (dict(dropout=1.0), "dropout"),
    (dict(activation="gelu_new"), "activation"),
    (dict(n_layers=0), "n_layers"),
    (dict(eps=0.0), "eps"),
    (dict(positional="alibi"), "positional must be one of"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**dict(vocab_size=10, block_size=8, n_layers=1, n_heads=2, d_model=8), **kwargs})
    with pytest.raises(TypeError, match="vocab_size must be an int, got float"):
        GPTConfig(vocab_size=10.0)
    with pytest.raises(Exception, match="cannot assign"):
        GPTConfig().vocab_size = 3  # frozen


def test_unknown_gpt2_size():
    with pytest.raises(ValueError, match="gpt2-xl"):
        GPTConfig.gpt2("gpt2-huge")


def test_init_scales_the_residual_projections():
    config = GPTConfig(vocab_size=50, block_size=16, n_layers=8, n_heads=4, d_model=256)
    m = model(config)
    residual = {id(p.weight) for p in m.residual_projections()}
    assert len(residual) == 2 * config.n_layers
    for name, p in m.named_parameters():
        if p.dim() == 2 and id(p) not in residual:
            assert abs(p.std().item() - 0.02) < 0.002, name
    for proj in m.residual_projections():
        assert abs(proj.weight.std().item() - 0.02 / math.sqrt(16)) < 0.0005
    for block in m.blocks:
        assert torch.all(block.attn_norm.weight == 1) and torch.all(block.attn.qkv_proj.bias == 0)


# --- forward ------------------------------------------------------------------------------

def test_forward_shapes_and_loss():
    m = model()
    idx = torch.randint(TINY.vocab_size, (3, 10))
    targets = torch.randint(TINY.vocab_size, (3, 10))
    logits, loss = m(idx)
    assert logits.shape == (3, 10, TINY.vocab_size) and loss is None
    logits, loss = m(idx, targets)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(30, -1), targets.reshape(30)))
    targets[:, :5] = -100  # ignored positions
    _, partial = m(idx, targets)
    assert torch.allclose(partial, F.cross_entropy(logits[:, 5:].reshape(15, -1), targets[:, 5:].reshape(15)))


def test_untrained_loss_is_near_uniform():
    m = model(GPTConfig(vocab_size=65, block_size=32, n_layers=2, n_heads=2, d_model=32))
    idx = torch.randint(65, (8, 32))
    assert abs(m(idx, torch.randint(65, (8, 32)))[1].item() - math.log(65)) < 0.05


@pytest.mark.parametrize("position", [0, 7, 15])
def test_future_tokens_do_not_change_the_past(position):
    m = model()
    idx = torch.randint(TINY.vocab_size, (2, 16))
    changed = idx.clone()
    changed[:, position] = (changed[:, position] + 1) % TINY.vocab_size
    with torch.no_grad():
        a, b = m(idx)[0], m(changed)[0]
    assert torch.equal(a[:, :position], b[:, :position])
    assert not torch.allclose(a[:, position], b[:, position])


def test_forward_type_error():
    with pytest.raises(TypeError, match="torch.long"):
        model()(torch.zeros(2, 5))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(5, dtype=torch.long), r"\(B, T\)"),
    (torch.zeros(1, 0, dtype=torch.long), "at least one token"),
    (torch.zeros(1, 25, dtype=torch.long), "block_size = 24"),
    (torch.full((1, 3), 37), r"\[0, 37\)"),
])
def test_forward_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        model()(bad)


def test_forward_target_shape_error():
    with pytest.raises(ValueError, match="targets must have the shape"):
        model()(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))


def test_dropout_is_active_only_in_training():
    m = model(GPTConfig(vocab_size=20, block_size=8, n_layers=1, n_heads=2, d_model=16, dropout=0.3))
    idx = torch.randint(20, (2, 8))
    m.train()
    assert not torch.equal(m(idx)[0], m(idx)[0])
    m.eval()
    assert torch.equal(m(idx)[0], m(idx)[0])


# --- causal self-attention against torch.nn.MultiheadAttention ----------------------------

@pytest.mark.parametrize("T", [1, 5, 12])
def test_causal_self_attention_matches_nn_multiheadattention(T):
    torch.manual_seed(T)
    d_model, n_heads = 24, 3
    ours = MultiHeadAttention(d_model, n_heads, causal=True).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = nn.MultiheadAttention(d_model, n_heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv_proj.weight)  # both stack W_q, W_k, W_v
        ref.in_proj_bias.copy_(ours.qkv_proj.bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, T, d_model)
    expected, expected_w = ref(x, x, x, attn_mask=~causal_mask(T), average_attn_weights=False)  # nn: True = blocked
    fast = ours(x)
    slow, weights = ours(x, need_weights=True)
    assert torch.allclose(fast, expected, atol=1e-5) and torch.allclose(slow, expected, atol=1e-5)
    assert torch.allclose(weights, expected_w, atol=1e-6)


def test_attention_maps_are_causal_distributions():
    m = model()
    maps = m.attention_maps(torch.randint(TINY.vocab_size, (2, 9)))
    assert maps.shape == (TINY.n_layers, 2, TINY.n_heads, 9, 9)
    assert torch.allclose(maps.sum(-1), torch.ones(()))
    assert torch.all(maps.masked_select(~causal_mask(9)) == 0)


# --- matching Hugging Face GPT-2 ----------------------------------------------------------

@pytest.mark.parametrize("hf_config", HF_CONFIGS)
def test_from_hf_matches_logits(hf_config):
    hf = perturbed_hf(**hf_config)
    ours = GPT.from_hf(hf)
    assert not ours.training
    idx = torch.randint(hf_config["vocab_size"], (3, hf_config["n_positions"]))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine, loss = ours(idx[:, :-1], idx[:, 1:])
        hf_loss = hf(idx, labels=idx).loss  # Hugging Face shifts the labels itself
    assert (ours(idx)[0] - theirs).abs().max().item() < 1e-4
    assert abs(loss.item() - hf_loss.item()) < 1e-4


@pytest.mark.parametrize("hf_config", HF_CONFIGS[:2])
def test_from_hf_gives_identical_greedy_continuations(hf_config):
    hf = perturbed_hf(seed=1, **hf_config)
    ours = GPT.from_hf(hf)
    prompt = torch.randint(hf_config["vocab_size"], (2, 4))
    n_new = hf_config["n_positions"] - 4
    theirs = hf.generate(prompt, max_new_tokens=n_new, do_sample=False, attention_mask=torch.ones_like(prompt), pad_token_id=0)
    for use_cache in (True, False):
        assert torch.equal(ours.generate(prompt, n_new, greedy=True, use_cache=use_cache), theirs)


def test_from_hf_needs_every_transpose():
    """The square attn.c_proj loads without a shape error if not transposed: the logits must catch it."""
    hf = perturbed_hf(**HF_CONFIGS[0])
    ours = GPT.from_hf(hf)
    idx = torch.randint(100, (2, 16))
    with torch.no_grad():
        ours.blocks[0].attn.out_proj.weight.copy_(hf.transformer.h[0].attn.c_proj.weight)
        assert (ours(idx)[0] - hf(idx).logits).abs().max().item() > 1e-2


def test_from_hf_rejects_what_it_cannot_represent():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        GPT.from_hf(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10, scale_attn_by_inverse_layer_idx=True)))
    with pytest.raises(ValueError, match="activation_function"):
        GPT.from_hf(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10, activation_function="silu")))
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf(nn.Linear(2, 2))


def test_from_pretrained_offline_error(tmp_path):
    with pytest.raises(OSError, match=r"'gpt2' is not in the Hugging Face cache.*local_files_only=True"):
        GPT.from_pretrained("gpt2", cache_dir=str(tmp_path), local_files_only=True)


def test_from_pretrained_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match="pip install transformers"):
        GPT.from_pretrained("gpt2")


def test_minillm_gpt_does_not_import_transformers():
    code = "import sys, minillm.gpt; assert 'transformers' not in sys.modules, 'imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- sampling -----------------------------------------------------------------------------

def _random_logits(seed: int, shape=(6, 50)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * 3


@pytest.mark.parametrize("k", [1, 2, 7, 50, 80])
def test_top_k_filter_matches_hugging_face(k):
    logits = _random_logits(k)
    assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(top_k=k)(None, logits))


@pytest.mark.parametrize("p", [1e-6, 0.1, 0.5, 0.9, 0.99, 1.0])
def test_top_p_filter_matches_hugging_face(p):
    logits = _random_logits(int(p * 1000))
    assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(top_p=p)(None, logits))


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])  # probabilities 0.563, 0.207, 0.126, 0.076, 0.028
    kept = torch.isfinite(top_p_filter(logits, 0.8))[0].tolist()
    assert kept == [True, True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_temperature_scales_the_distribution():
    logits = torch.tensor([[1.0, 0.0, -1.0]]).repeat(40_000, 1)
    g = torch.Generator().manual_seed(0)
    for temperature in (0.5, 2.0):
        drawn = sample_next(logits, temperature=temperature, generator=g)[:, 0]
        freq = torch.bincount(drawn, minlength=3).double() / len(drawn)
        expected = torch.softmax(logits[0].double() / temperature, -1)
        assert torch.allclose(freq, expected, atol=0.01), (temperature, freq, expected)


def _lm(seed=0):
    return model(GPTConfig(vocab_size=29, block_size=40, n_layers=2, n_heads=2, d_model=16), seed)


def test_top_k_1_and_tiny_top_p_equal_greedy():
    m = _lm()
    prompt = torch.randint(29, (3, 5))
    greedy = m.generate(prompt, 30, greedy=True)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(m.generate(prompt, 30, top_k=1, temperature=1.3, generator=g), greedy)
    assert torch.equal(m.generate(prompt, 30, top_p=1e-9, generator=g), greedy)
    assert not torch.equal(m.generate(prompt, 30, generator=g), greedy)  # plain sampling differs


def test_fixed_seed_reproduces():
    m = _lm()
    prompt = torch.randint(29, (2, 3))

    def run(seed, **kw):
        return m.generate(prompt, 25, top_k=10, top_p=0.95, generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(run(1), run(1))
    assert torch.equal(run(1), run(1, use_cache=False))
    assert not torch.equal(run(1), run(2))
    torch.manual_seed(5)
    a = m.generate(prompt, 25)
    torch.manual_seed(5)
    assert torch.equal(a, m.generate(prompt, 25))


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(temperature=-1.0), "greedy=True"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"\(0, 1\]"),
    (dict(top_p=-0.2), "top_p"),
    (dict(top_k=0), "top_k must be a positive int"),
])
def test_sampling_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _lm().generate(torch.zeros(1, 3, dtype=torch.long), 5, **kwargs)
    with pytest.raises(TypeError, match="top_k must be an int"):
        _lm().generate(torch.zeros(1, 3, dtype=torch.long), 5, top_k=2.5)


def test_prompt_longer_than_block_size_needs_a_cropping_policy():
    m = _lm()  # block_size 40
    long_prompt = torch.randint(29, (1, 45))
    with pytest.raises(ValueError, match="crop=True"):
        m.generate(long_prompt, 5)
    with pytest.raises(ValueError, match=r"plus max_new_tokens \(20\) exceeds block_size = 40"):
        m.generate(long_prompt[:, :30], 20)
    out = m.generate(long_prompt, 5, greedy=True, crop=True)
    assert out.shape == (1, 50) and torch.equal(out[:, :45], long_prompt)
    # the sliding window: each new token is the greedy choice given the last 40 tokens
    with torch.no_grad():
        for t in range(45, 50):
            assert out[0, t] == m(out[:, t - 40 : t])[0][0, -1].argmax()


def test_generate_restores_training_mode_and_checks_arguments():
    m = _lm().train()
    m.generate(torch.zeros(1, 2, dtype=torch.long), 3)
    assert m.training
    with pytest.raises(ValueError, match="max_new_tokens"):
        m.generate(torch.zeros(1, 2, dtype=torch.long), -1)
    assert m.generate(torch.zeros(1, 2, dtype=torch.long), 0).shape == (1, 2)
    with pytest.raises(TypeError, match="model must be a GPT"):
        generate(nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long), 3)


def test_generated_tokens_and_logits_can_be_trained_on():
    """Generation runs the model under inference_mode; what it returns must still be
    ordinary tensors, usable in a training step (chapter 11 trains on samples)."""
    m = _lm().train()
    for use_cache in (True, False):
        out, logits = m.generate(
            torch.zeros(2, 2, dtype=torch.long), 4, use_cache=use_cache, return_logits=True
        )
        assert not out.is_inference() and not logits.is_inference()
        out[:, :1] += 0  # an inference tensor refuses an in-place update
        loss = m(out[:, :-1], out[:, 1:])[1] + 0 * logits.sum()
        loss.backward()
        assert m.wte.weight.grad is not None


# --- KV cache -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_cache_gives_identical_tokens_and_logits(seed):
    m = model(GPTConfig(vocab_size=41, block_size=64, n_layers=3, n_heads=4, d_model=32), seed)
    prompt = torch.randint(41, (3, 7))
    cached, cached_logits = m.generate(prompt, 50, greedy=True, return_logits=True)
    plain, plain_logits = m.generate(prompt, 50, greedy=True, use_cache=False, return_logits=True)
    assert torch.equal(cached, plain)
    assert (cached_logits - plain_logits).abs().max().item() < 1e-5
    assert cached_logits.shape == (3, 50, 41)


def test_cache_in_chunks_equals_one_forward_pass():
    """Prefill, then several tokens at once (the mask aligned to the end), then one at a time."""
    m = model(GPTConfig(vocab_size=41, block_size=32, n_layers=2, n_heads=4, d_model=32))
    idx = torch.randint(41, (2, 20))
    with torch.no_grad():
        full = m(idx)[0]
        cache = m.new_cache()
        parts = [m(idx[:, a:b], cache=cache)[0] for a, b in [(0, 6), (6, 13), (13, 14), (14, 20)]]
    assert cache.length == 20
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_cache_weights_path_matches_fast_path():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, causal=True).eval()
    x = torch.randn(1, 9, 16)
    c1, c2 = LayerCache(16), LayerCache(16)
    with torch.no_grad():
        for c in (c1, c2):
            attn(x[:, :5], cache=c)
            assert c.length == 5
        fast = attn(x[:, 5:], cache=c1)
        slow, weights = attn(x[:, 5:], cache=c2, need_weights=True)
    assert weights.shape == (1, 2, 4, 9)
    assert torch.allclose(fast, slow, atol=1e-6)
    assert torch.allclose(fast, attn(x)[:, 5:], atol=1e-6)


def test_cache_errors():
    m = _lm()
    cache = m.new_cache()
    with torch.no_grad():
        m(torch.zeros(2, 38, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="after 38 cached positions exceed block_size = 40"):
            m(torch.zeros(2, 3, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="reset"):
            m(torch.zeros(1, 1, dtype=torch.long), cache=cache)  # another batch size
        cache.reset()
        m(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    assert cache.length == 1
    with pytest.raises(ValueError, match="max_len"):
        KVCache(2, 0)
    with pytest.raises(ValueError, match="reset"):
        keys = torch.zeros(1, 2, 3, 4)
        layer = LayerCache(8)
        layer.update(keys, keys)
        layer.update(keys.double(), keys.double())  # another dtype without a reset


# --- training -----------------------------------------------------------------------------

def test_a_tiny_gpt_learns_a_pattern_that_needs_context():
    """A periodic pattern is learned and continued exactly."""
    torch.manual_seed(0)
    pattern = torch.randint(10, (7,))
    data = pattern.repeat(40)
    m = GPT(GPTConfig(vocab_size=10, block_size=16, n_layers=2, n_heads=2, d_model=32))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(150):
        starts = torch.randint(len(data) - 17, (16,))
        windows = torch.stack([data[s : s + 17] for s in starts])
        loss = m(windows[:, :-1], windows[:, 1:])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    prompt = data[None, :8]
    out = m.generate(prompt, 8, greedy=True)
    assert torch.equal(out[0], data[:16])


# --- the benchmark script runs (its numbers are not tested: they depend on the machine) -------

@pytest.mark.slow
def test_benchmark_script_runs(root, data_dir):
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpt_vs_transformers.py"), "--steps", "4", "--chunk", "2",
         "--eval-every", "2", "--n-layers", "1", "--d-model", "32", "--threads", "1"],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout
    assert "throughput ratio minillm / transformers" in out and out.count("tokens/s") == 2


# --- the model is composed of the core's parts ---------------------------------------------

def test_gpt_is_composed_of_the_core_parts_without_replacement():
    from minillm.layers import FeedForward, LayerNorm, TransformerBlock
    from minillm.positional import LearnedPositionalEmbedding, RotaryEmbedding

    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=8, bias=False))
    block = m.blocks[0]
    assert type(block) is TransformerBlock and block.norm_first
    assert type(block.attn) is MultiHeadAttention and block.attn.causal
    assert type(block.ffn) is FeedForward and block.ffn.fc1.bias is None and block.ffn.fc2.bias is None
    assert type(block.attn_norm) is LayerNorm and block.attn.qkv_proj.bias is None
    assert isinstance(m.wpe, LearnedPositionalEmbedding) and block.attn.rotary is None
    rope = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=8,
                         positional="rotary"))
    assert rope.wpe is None and isinstance(rope.blocks[0].attn.rotary, RotaryEmbedding)
    assert rope.blocks[0].attn.rotary is rope.blocks[1].attn.rotary  # one shared table
    biases = 2 * (4 * 8 + 32 + 8)  # per block: q, k, v, out and fc1 (d_ff = 32), fc2
    assert rope.num_parameters() == rope.config.num_parameters() == m.num_parameters() - 8 * 8 + biases


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "none"])
def test_every_positional_scheme_trains_generates_and_caches(positional):
    """One line switches the scheme; the KV cache gives the same tokens and logits as a full
    recomputation for each scheme (for RoPE: queries and keys rotated at the right offset)."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=23, block_size=32, n_layers=2, n_heads=2, d_model=16,
                       positional=positional)
    m = GPT(config)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    idx = torch.randint(23, (2, 12))
    logits, loss = m(idx, idx)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in m.parameters())
    prompt = idx[:, :5]
    cached, cached_logits = m.generate(prompt, 20, greedy=True, use_cache=True, return_logits=True)
    plain, plain_logits = m.generate(prompt, 20, greedy=True, use_cache=False, return_logits=True)
    assert torch.equal(cached, plain)
    torch.testing.assert_close(cached_logits, plain_logits, atol=1e-5, rtol=1e-4)
    # chunked prefill with the cache equals one full pass
    with torch.no_grad():
        m.eval()
        cache = m.new_cache()
        parts = [m(idx[:, a:b], cache=cache)[0] for a, b in [(0, 4), (4, 9), (9, 12)]]
        torch.testing.assert_close(torch.cat(parts, dim=1), m(idx)[0], atol=1e-5, rtol=1e-4)


def test_rotary_gpt_scores_depend_on_offsets_only():
    """The rotary table of a GPT rotates queries and keys so that shifting every position by
    the same amount (as a KV cache's offset does) leaves the attention scores unchanged."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=13, block_size=32, n_layers=2, n_heads=2, d_model=16,
                      positional="rotary"))
    rope = m.blocks[0].attn.rotary
    q, k = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    s0 = rope(q) @ rope(k).transpose(-1, -2)
    s5 = rope(q, offset=5) @ rope(k, offset=5).transpose(-1, -2)
    torch.testing.assert_close(s0, s5, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(rope(q), rope(q, offset=5))


def test_hidden_states_is_the_one_trunk():
    torch.manual_seed(0)
    m = model()
    idx = torch.randint(TINY.vocab_size, (2, 7))
    with torch.no_grad():
        h = m.hidden_states(idx)
        torch.testing.assert_close(m(idx)[0], m.lm_head(h))
        h2, maps = m.hidden_states(idx, need_weights=True)
    torch.testing.assert_close(h, h2, atol=1e-6, rtol=1e-5)
    assert maps.shape == (TINY.n_layers, 2, TINY.n_heads, 7, 7)
    torch.testing.assert_close(m.attention_maps(idx), maps)
