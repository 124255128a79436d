"""minillm.llama (chapter 10) against oracles nobody here wrote: Hugging Face's LlamaForCausalLM,
Qwen2ForCausalLM and Qwen3ForCausalLM built from config objects with every parameter perturbed (logits,
greedy continuations with and without the KV cache), their parameter counts on the meta device for
the real shapes of SmolLM2-135M, Qwen3-0.6B and Llama-3.2-1B, safetensors checkpoints written by
transformers' save_pretrained, and torch.nn.functional for SwiGLU; plus the error messages."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from minillm.attention import MultiHeadAttention
from minillm.gpt import GPT, KVCache, generate
from minillm.layers import RMSNorm
from minillm.llama import (
    Llama,
    LlamaConfig,
    SwiGLU,
    hf_names,
    kv_cache_bytes,
    RopeScaling,
    llama_from_state_dict,
    rope_frequencies,
    swiglu_width,
)

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

HF = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
}
# odd sizes: 5 query heads sharing 1 key/value head, heads 6 wide (not a power of two), d_ff not a
# multiple of anything, an odd vocabulary, untied head
SMALL = dict(vocab_size=97, hidden_size=40, intermediate_size=73, head_dim=6, num_hidden_layers=2,
             num_attention_heads=5, num_key_value_heads=1, max_position_embeddings=48,
             rms_norm_eps=1e-6, tie_word_embeddings=False,
             rope_parameters={"rope_type": "default", "rope_theta": 500.0})
LLAMA3 = {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
CASES = [
    ("llama", {}),
    ("qwen2", {}),
    ("qwen3", {}),
    # tied head, biases on q, k, v and o, plain multi-head attention, another eps and theta
    ("llama", dict(tie_word_embeddings=True, attention_bias=True, num_key_value_heads=5,
                   rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
    # GQA with 2 groups of 2 heads, heads 10 wide, tied head
    ("qwen3", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=10, tie_word_embeddings=True)),
    ("qwen2", dict(num_attention_heads=4, num_key_value_heads=2, hidden_size=24, head_dim=None)),
    # Llama 3's RoPE scaling, with pairs in all three regimes (see test_llama3_frequencies)
    ("llama", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=10, rope_parameters=LLAMA3)),
]


def perturbed_hf(kind: str, seed: int = 0, **overrides):
    """A random Hugging Face model of family ``kind`` whose every parameter is perturbed: no norm
    gain stays 1, no bias 0."""
    config_class, model_class = HF[kind]
    config = {**SMALL, **overrides}
    if config.get("head_dim") is None:
        config.pop("head_dim")
    torch.manual_seed(seed)
    hf = model_class(config_class(**config)).eval()
    before = {n: p.detach().clone() for n, p in hf.named_parameters()}
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for n, p in hf.named_parameters():
        assert (p != before[n]).all(), f"{n} was not perturbed everywhere"
    return hf


@torch.no_grad()
def hf_greedy(hf, idx: torch.Tensor, n_new: int) -> torch.Tensor:
    for _ in range(n_new):  # Hugging Face's model, rereading the whole sequence each step
        idx = torch.cat([idx, hf(idx).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("kind, overrides", CASES)
def test_logits_and_greedy_match_hugging_face(kind, overrides):
    hf = perturbed_hf(kind, **overrides)
    ours = Llama.from_hf(hf)
    assert not ours.training
    # every one of HF's tensors went somewhere: the parameter counts agree
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    x = torch.randint(97, (3, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(x).logits
        got, _ = ours(x)
    assert (got - ref).abs().max() < 1e-4
    assert ref.std() > 0.1  # the comparison is not between near-zero logits
    prompt = x[:, :6]
    expected = hf_greedy(hf, prompt, 30)
    for use_cache in (True, False):
        assert torch.equal(ours.generate(prompt, 30, greedy=True, use_cache=use_cache), expected)


def test_the_qwen2_biases_are_on_q_k_v_only():
    ours = Llama.from_hf(perturbed_hf("qwen2"))
    attn = ours.blocks[0].attn
    assert ours.config.qkv_bias and not ours.config.out_bias
    assert attn.qkv_proj.bias is not None and attn.qkv_proj.bias.shape == (sum(attn.qkv_sizes),)
    assert attn.out_proj.bias is None
    assert all(block.attn.q_norm is None for block in ours.blocks)
    qwen3 = Llama.from_hf(perturbed_hf("qwen3"))
    assert isinstance(qwen3.blocks[1].attn.k_norm, RMSNorm) and qwen3.blocks[1].attn.qkv_proj.bias is None


def test_the_cache_is_needed_at_the_right_positions():
    """A cached forward pass, fed one token at a time, gives HF's logits at every position; with
    the RoPE offset broken, it does not (so the test can fail)."""
    hf = perturbed_hf("qwen3")
    ours = Llama.from_hf(hf)
    x = torch.randint(97, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = hf(x).logits
        cache = ours.new_cache()
        steps = torch.cat([ours(x[:, t : t + 1], cache=cache)[0] for t in range(12)], dim=1)
        assert (steps - ref).abs().max() < 1e-4
        rotary = ours.blocks[0].attn.rotary
        forward = rotary.forward
        rotary.forward = lambda q, offset=0: forward(q, 0)  # forget the offset
        cache = ours.new_cache()
        broken = torch.cat([ours(x[:, t : t + 1], cache=cache)[0] for t in range(12)], dim=1)
    assert (broken - ref)[:, 1:].abs().max() > 1e-2


def test_a_wrong_rope_layout_is_caught():
    from minillm.positional import RotaryEmbedding

    hf = perturbed_hf("llama")
    ours = Llama.from_hf(hf)
    pairs = RotaryEmbedding(6, 48, 500.0, interleaved=True)
    for block in ours.blocks:
        block.attn.rotary = pairs
    x = torch.randint(97, (2, 20))
    with torch.no_grad():
        assert (ours(x)[0] - hf(x).logits).abs().max() > 1e-2


# The real shapes, from the models' config.json files on the Hugging Face Hub, and the counts that
# transformers reports for them.
REAL = {
    "SmolLM2-135M": ("llama", 134_515_008, dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192)),
    "Qwen3-0.6B": ("qwen3", 596_049_920, dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960)),
    "Llama-3.2-1B": ("llama", 1_235_814_400, dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072)),
}


@pytest.mark.parametrize("name", list(REAL))
def test_parameter_counts_of_released_models(name):
    kind, expected, shape = REAL[name]
    config_class, model_class = HF[kind]
    with torch.device("meta"):
        hf = model_class(config_class(**shape, tie_word_embeddings=True))
        ours = Llama(LlamaConfig.released(name))
    n_hf = sum(p.numel() for p in hf.parameters())
    assert n_hf == expected
    assert ours.num_parameters() == ours.config.num_parameters() == expected
    # and the same shapes, tensor by tensor, under Hugging Face's names
    hf_shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    for n, p in ours.named_parameters():
        theirs = [hf_shapes[name] for name in hf_names(n)]  # q, k, v stacked in one of ours
        assert (sum(t[0] for t in theirs),) + theirs[0][1:] == tuple(p.shape), n


def test_closed_form_count_for_every_option():
    for fields in (dict(qkv_bias=True), dict(out_bias=True), dict(qk_norm=True),
                   dict(tie_embeddings=False), dict(n_kv_heads=1, d_head=10)):
        fields = {"n_kv_heads": 2, **fields}
        config = LlamaConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=4, d_model=32, **fields)
        assert Llama(config).num_parameters() == config.num_parameters(), fields


def test_from_pretrained_reads_safetensors_written_by_transformers(tmp_path):
    for kind, overrides in (("qwen3", dict(tie_word_embeddings=True)), ("qwen2", {}), ("llama", {})):
        hf = perturbed_hf(kind, seed=5, **overrides)
        folder = tmp_path / kind
        hf.save_pretrained(folder)
        assert (folder / "model.safetensors").is_file()
        ours = Llama.from_pretrained(folder)
        assert not ours.training and ours.config.tie_embeddings == hf.config.tie_word_embeddings
        x = torch.randint(97, (2, 16))
        with torch.no_grad():
            assert (ours(x)[0] - hf(x).logits).abs().max() < 1e-4
        assert Llama.from_pretrained(str(folder), block_size=20).config.block_size == 20


def test_from_pretrained_reads_bfloat16_and_sharded_checkpoints(tmp_path):
    hf = perturbed_hf("llama", seed=6)
    hf.to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    ours = Llama.from_pretrained(tmp_path)
    assert ours.wte.weight.dtype == torch.float32
    assert torch.equal(ours.wte.weight, hf.model.embed_tokens.weight.float())


def test_checkpoint_errors_name_the_problem(tmp_path):
    hf = perturbed_hf("qwen2", seed=7)
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    state = {k: v.detach() for k, v in hf.state_dict().items()}
    from minillm.llama import _hf_config_to_llama

    ours_config = _hf_config_to_llama(config)
    missing = {k: v for k, v in state.items() if k != "model.layers.1.self_attn.k_proj.bias"}
    with pytest.raises(ValueError, match="missing.*layers.1.self_attn.k_proj.bias"):
        llama_from_state_dict(ours_config, missing)
    extra = {**state, "model.layers.0.self_attn.o_proj.bias": torch.zeros(40)}
    with pytest.raises(ValueError, match="unexpected.*o_proj.bias"):
        llama_from_state_dict(ours_config, extra)
    wrong = {**state, "model.norm.weight": torch.ones(41)}
    with pytest.raises(ValueError, match="shape mismatch for model.norm.weight"):
        llama_from_state_dict(ours_config, wrong)
    from dataclasses import replace

    with pytest.raises(ValueError, match="lm_head.weight differs"):  # tied, but they differ
        llama_from_state_dict(replace(ours_config, tie_embeddings=True), state)


def test_offline_from_pretrained_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="offline.*huggingface.co/HuggingFaceTB/SmolLM2-135M"):
        Llama.from_pretrained("HuggingFaceTB/SmolLM2-135M", cache_dir=tmp_path, local_files_only=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="no \\*.safetensors"):
        Llama.from_pretrained(tmp_path / "empty")
    with pytest.raises(TypeError, match="name"):
        Llama.from_pretrained(123)


@pytest.mark.parametrize("change, message", [
    (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5e5, "factor": 4.0,
                           "original_max_position_embeddings": 32}), "yarn"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(hidden_act="gelu"), "hidden_act"),
])
def test_unsupported_options_are_refused(change, message):
    config_class, model_class = HF["llama"]
    hf = model_class(config_class(**{**SMALL, **change}))
    with pytest.raises(ValueError, match=message):
        Llama.from_hf(hf)


def test_sliding_window_is_refused_and_other_models_too():
    config_class, model_class = HF["qwen2"]
    hf = model_class(config_class(**SMALL, use_sliding_window=True, sliding_window=8))
    with pytest.raises(ValueError, match="use_sliding_window"):
        Llama.from_hf(hf)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        Llama.from_hf(gpt2)


def test_config_checks():
    with pytest.raises(ValueError, match="n_kv_heads"):
        LlamaConfig(n_heads=6, n_kv_heads=4, d_model=48)
    with pytest.raises(ValueError, match="d_model"):
        LlamaConfig(d_model=0)
    with pytest.raises(TypeError, match="config"):
        Llama(dict(d_model=32))
    with pytest.raises(ValueError, match="name"):
        LlamaConfig.released("Llama-2-7B")
    c = LlamaConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=4, n_kv_heads=None, d_model=24, d_ff=None)
    assert (c.n_kv_heads, c.d_head, c.d_ff) == (4, 6, 64)


def test_llama_reuses_gpts_trunk_cache_and_generate():
    assert issubclass(Llama, GPT)
    for name in ("hidden_states", "forward", "attention_maps", "new_cache", "generate"):
        assert getattr(Llama, name) is getattr(GPT, name), name
    assert Llama.generate is generate
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=30, block_size=16, n_layers=2, n_heads=4, n_kv_heads=2,
                              d_model=32, qk_norm=True)).eval()
    assert isinstance(model.new_cache(), KVCache)
    maps = model.attention_maps(torch.randint(30, (2, 9)))
    assert maps.shape == (2, 2, 4, 9, 9) and torch.allclose(maps.sum(-1), torch.ones(2, 2, 4, 9))
    # the cache holds the key/value heads, not the repeated ones
    cache = model.new_cache()
    model(torch.randint(30, (1, 5)), cache=cache)
    assert cache.layers[0].k.shape == (1, 2, 16, 8)


def test_training_reduces_the_loss():
    from minillm.training import train

    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=8, block_size=16, n_layers=1, n_heads=2, n_kv_heads=1,
                              d_model=16, tie_embeddings=True))
    data = torch.arange(8).repeat(40)  # 0 1 2 ... 7 0 1 2 ...
    batches = [(data[i : i + 16][None], data[i + 1 : i + 17][None]) for i in range(8)]
    history = train(model, lambda: batches[torch.randint(8, ()).item()], steps=60, lr=1e-2)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]


def test_swiglu_matches_the_formula_and_counts():
    torch.manual_seed(0)
    glu = SwiGLU(12, 20)
    x = torch.randn(2, 3, 12)
    expected = F.linear(F.silu(F.linear(x, glu.gate.weight)) * F.linear(x, glu.fc1.weight), glu.fc2.weight)
    assert torch.allclose(glu(x), expected, atol=1e-6)
    assert sum(p.numel() for p in glu.parameters()) == 3 * 12 * 20
    assert swiglu_width(4096, 256) == 11008 and swiglu_width(576) == 1536
    geglu = SwiGLU(12, 20, activation="gelu")
    assert torch.allclose(geglu(x), geglu.fc2(F.gelu(geglu.gate(x)) * geglu.fc1(x)))
    with pytest.raises(ValueError, match="activation"):
        SwiGLU(12, 20, activation="swish")


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_kv_cache_bytes_is_what_the_cache_holds(n_kv):
    config = LlamaConfig(vocab_size=10, block_size=32, n_layers=3, n_heads=4, n_kv_heads=n_kv,
                         d_model=32)
    model = Llama(config).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(10, (2, 32)), cache=cache)
    measured = sum(layer.k.nbytes + layer.v.nbytes for layer in cache.layers)
    assert measured == kv_cache_bytes(config, 32, batch_size=2, dtype=torch.float32)
    assert kv_cache_bytes(config, 32, 2) == measured // 2  # bfloat16, the default
    assert kv_cache_bytes(LlamaConfig.released("Llama-3.2-1B"), 131072) == 4 * 2**30


def test_gqa_equals_mha_with_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = MultiHeadAttention(24, 6, n_kv_heads=3, bias=False, causal=True)
    mha = MultiHeadAttention(24, 6, bias=False, causal=True)
    with torch.no_grad():
        ours, theirs = mha.qkv_proj.weight.split(24), gqa.qkv_proj.weight.split(gqa.qkv_sizes)
        ours[0].copy_(theirs[0]), mha.out_proj.weight.copy_(gqa.out_proj.weight)
        for j in (1, 2):  # keys, values
            ours[j].copy_(theirs[j].view(3, 4, 24).repeat_interleave(2, 0).reshape(24, 24))
        x = torch.randn(2, 5, 24)
        assert torch.allclose(gqa(x), mha(x), atol=1e-6)


def test_out_bias_keyword_of_multi_head_attention():
    attn = MultiHeadAttention(16, 2, bias=True, out_bias=False)
    assert attn.qkv_proj.bias is not None and attn.out_proj.bias is None
    attn = MultiHeadAttention(16, 2, bias=False, out_bias=True)
    assert attn.qkv_proj.bias is None and attn.out_proj.bias is not None
    assert MultiHeadAttention(16, 2).out_proj.bias is not None  # default: follows bias


def test_llama3_frequencies():
    """Llama 3's scaling keeps the fast pairs, slows the slow ones by ``factor`` and blends those
    in between (the test case above has pairs of each kind); without it, HF's logits differ."""
    scaling = RopeScaling(8.0, 1.0, 4.0, 64)
    plain, scaled = rope_frequencies(10, 500.0), rope_frequencies(10, 500.0, scaling)
    turns = 64 * plain / (2 * torch.pi)
    assert (turns > 4).any() and ((turns > 1) & (turns < 4)).any() and (turns < 1).any()
    assert torch.equal(scaled[turns >= 4], plain[turns >= 4])
    assert torch.allclose(scaled[turns <= 1], plain[turns <= 1] / 8)
    mid = (turns > 1) & (turns < 4)
    assert ((scaled[mid] < plain[mid]) & (scaled[mid] > plain[mid] / 8)).all()
    hf = perturbed_hf("llama", num_attention_heads=4, num_key_value_heads=2, head_dim=10,
                      rope_parameters=LLAMA3)
    ours = Llama.from_hf(hf)
    assert ours.config.rope_scaling == scaling
    unscaled = llama_from_state_dict(replace(ours.config, rope_scaling=None), hf.state_dict())
    x = torch.randint(97, (2, 48), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (unscaled(x)[0] - hf(x).logits).abs().max() > 1e-2  # so the oracle can fail
    with pytest.raises(TypeError, match="RopeScaling"):
        LlamaConfig(rope_scaling=(8.0, 1.0, 4.0, 64))
    with pytest.raises(ValueError, match="low_freq_factor < high_freq_factor"):
        LlamaConfig(rope_scaling=RopeScaling(8.0, 4.0, 1.0, 64))
