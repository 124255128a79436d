"""minillm.scaling: closed-form parameter and FLOP counts against real models and PyTorch's FLOP
counter, the power-law fit, memory accounting, and data-parallel training under torchrun."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minillm.bert import BertConfig, BertForPreTraining, BertModel
from minillm.gpt import GPT, GPTConfig
from minillm.scaling import (
    DataParallelSettings,
    compute_optimal_allocation,
    count_parameters,
    data_parallel_train,
    fit_power_law,
    flops_per_token,
    launch_data_parallel,
    parameter_breakdown,
    rule_of_thumb_parameters,
    saved_activation_bytes,
    serialized_bytes,
    tensor_bytes,
    training_flops,
    training_memory_estimate,
)


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors are yielded once


def _random_gpt_configs(n: int, seed: int = 0) -> list[GPTConfig]:
    rng = random.Random(seed)
    configs = []
    for _ in range(n):
        n_heads = rng.randint(1, 4)
        configs.append(GPTConfig(vocab_size=rng.randint(2, 300), block_size=rng.randint(1, 70), n_layers=rng.randint(1, 4),
                                 n_heads=n_heads, d_model=n_heads * rng.randint(1, 12), d_ff=rng.choice([None, rng.randint(1, 90)]),
                                 bias=rng.random() < 0.7))
    return configs


def _random_bert_configs(n: int, seed: int = 1) -> list[BertConfig]:
    rng = random.Random(seed)
    configs = []
    for i in range(n):
        n_heads = rng.randint(1, 4)
        d_model = n_heads * rng.randint(1, 10)
        kind = i % 3
        common = dict(vocab_size=rng.randint(5, 300), d_model=d_model, n_layers=rng.randint(1, 4), n_heads=n_heads,
                      d_ff=rng.randint(1, 80), block_size=rng.randint(8, 80))
        if kind == 0:  # BERT, with or without a pooler and sentence head
            pooler = rng.random() < 0.7
            configs.append(BertConfig(**common, type_vocab_size=rng.randint(1, 3), add_pooler=pooler,
                                      sentence_task="nsp" if pooler else None))
        elif kind == 1:  # RoBERTa-like
            configs.append(BertConfig(**common, type_vocab_size=1, pad_token_id=1, position_offset=2, sentence_task=None))
        else:  # ALBERT-like: factorized embeddings, shared layers
            configs.append(BertConfig(**common, d_embed=rng.randint(1, 12), share_layers=True, sentence_task="sop"))
    return configs


@pytest.mark.parametrize("config", _random_gpt_configs(25), ids=lambda c: f"L{c.n_layers}d{c.d_model}f{c.d_ff}b{int(c.bias)}")
def test_gpt_count_equals_the_model(config):
    assert count_parameters(config) == _numel(GPT(config)) == config.num_parameters()
    assert count_parameters(config, include_embeddings=False) == _numel(GPT(config)) - (config.vocab_size + config.block_size) * config.d_model
    assert set(parameter_breakdown(config)) == {"embeddings", "attention", "ffn", "norms", "head"}


@pytest.mark.parametrize("config", _random_bert_configs(24), ids=lambda c: f"L{c.n_layers}d{c.d_model}E{c.embed_dim}s{int(c.share_layers)}")
def test_bert_count_equals_the_model(config):
    assert count_parameters(config) == _numel(BertModel(config))
    assert count_parameters(config, pretraining_heads=True) == _numel(BertForPreTraining(config))


def test_breakdown_parts_match_the_modules():
    config = GPTConfig(vocab_size=50, block_size=16, n_layers=3, n_heads=2, d_model=8, d_ff=20)
    model = GPT(config)
    parts = parameter_breakdown(config)
    assert parts["embeddings"] == model.wte.weight.numel() + model.wpe.embedding.weight.numel()
    assert parts["attention"] == sum(_numel(b.attn) for b in model.blocks)
    assert parts["ffn"] == sum(_numel(b.ffn) for b in model.blocks)
    assert parts["norms"] == sum(_numel(m) for name, m in model.named_modules() if "norm" in name or name == "ln_f")


@pytest.mark.parametrize("seed", range(6))
def test_gpt_count_equals_hugging_face(seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = _random_gpt_configs(1, seed=100 + seed)[0]
    config = GPTConfig(**{**config.__dict__, "bias": True})  # GPT-2 always has biases
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.d_model,
                                    n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff))
    assert count_parameters(config) == hf.num_parameters() == _numel(hf)


@pytest.mark.parametrize("seed", range(6))
def test_bert_count_equals_hugging_face(seed):
    from transformers import BertConfig as HFConfig, BertForPreTraining as HFPreTraining, BertModel as HFModel

    config = _random_bert_configs(1, seed=200 + seed)[0]
    hf_config = HFConfig(vocab_size=config.vocab_size, hidden_size=config.d_model, num_hidden_layers=config.n_layers,
                         num_attention_heads=config.n_heads, intermediate_size=config.d_ff,
                         max_position_embeddings=config.block_size, type_vocab_size=config.type_vocab_size)
    assert count_parameters(config) == _numel(HFModel(hf_config, add_pooling_layer=config.add_pooler))
    if config.add_pooler:
        assert count_parameters(config, pretraining_heads=True) == _numel(HFPreTraining(hf_config))


def test_published_sizes_on_the_meta_device():
    from transformers import BertConfig as HFConfig, BertModel as HFModel, GPT2Config, GPT2LMHeadModel

    assert count_parameters(GPTConfig.gpt2("gpt2")) == 124_439_808
    assert count_parameters(GPTConfig.gpt2("gpt2-xl")) == 1_557_611_200
    assert count_parameters(BertConfig.bert_base()) == 109_482_240
    assert count_parameters(BertConfig.bert_base(), pretraining_heads=True) == 110_106_428
    with torch.device("meta"):  # 1.5 billion parameters, no memory
        assert _numel(GPT(GPTConfig.gpt2("gpt2-xl"))) == 1_557_611_200
        assert GPT2LMHeadModel(GPT2Config(n_layer=48, n_embd=1600, n_head=25)).num_parameters() == 1_557_611_200
        assert HFModel(HFConfig()).num_parameters() == 109_482_240
        assert _numel(BertModel(BertConfig.albert_base())) == count_parameters(BertConfig.albert_base())


def test_gpt3_is_175_billion_and_the_rule_of_thumb():
    gpt3 = GPTConfig(vocab_size=50257, block_size=2048, n_layers=96, n_heads=96, d_model=12288)
    n = count_parameters(gpt3)
    assert 174.5e9 < n < 175.5e9
    rule = rule_of_thumb_parameters(96, 12288)
    assert abs(rule / n - 1) < 0.005
    assert abs(rule / count_parameters(gpt3, include_embeddings=False) - 1) < 1e-3
    small = GPTConfig.gpt2("gpt2")
    assert 0.3 < 1 - rule_of_thumb_parameters(12, 768) / count_parameters(small) < 0.33


def test_bad_configs():
    with pytest.raises(TypeError, match="GPTConfig or a BertConfig"):
        count_parameters({"d_model": 8})
    with pytest.raises(ValueError, match="pretraining_heads"):
        parameter_breakdown(GPTConfig(), pretraining_heads=True)
    with pytest.raises(TypeError, match="GPTConfig"):
        flops_per_token(BertConfig())
    with pytest.raises(ValueError, match="seq_len"):
        flops_per_token(GPTConfig(block_size=8), seq_len=9)


def _math_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    """Attention with explicit matrix products, which FlopCounterMode counts (it does not count the
    fused CPU kernel)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("config,seq_len", [
    (GPTConfig(vocab_size=65, block_size=64, n_layers=4, n_heads=4, d_model=128), 64),
    (GPTConfig(vocab_size=17, block_size=32, n_layers=2, n_heads=3, d_model=24, d_ff=40, bias=False), 20),
    (GPTConfig(vocab_size=300, block_size=16, n_layers=1, n_heads=1, d_model=8), 1),
])
def test_flops_match_pytorchs_counter(config, seq_len, monkeypatch):
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(F, "scaled_dot_product_attention", _math_sdpa)
    model = GPT(config)
    x = torch.randint(config.vocab_size, (3, seq_len))
    with FlopCounterMode(display=False) as counter:
        logits, loss = model(x, x)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    backward = counter.get_total_flops()
    assert forward == flops_per_token(config, seq_len, training=False) * x.numel()
    assert forward + backward == flops_per_token(config, seq_len) * x.numel()


def test_six_n_d():
    assert training_flops(175e9, 300e9) == pytest.approx(3.15e23)
    with pytest.raises(ValueError):
        training_flops(0, 1)


def test_power_law_fit_recovers_a_known_law():
    n = np.geomspace(1e3, 1e7, 7)
    fit = fit_power_law(n, 5.0 * n**-0.076)
    assert fit.alpha == pytest.approx(0.076, abs=1e-10) and fit.a == pytest.approx(5.0, rel=1e-9)
    assert fit.alpha_stderr < 1e-10 and fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit(n), 5.0 * n**-0.076)


def test_power_law_uncertainty_matches_numpy_polyfit():
    """The standard error of the slope: sigma^2 (X^T X)^-1 with sigma^2 = SSR / (k - 2), as NumPy computes it."""
    rng = np.random.default_rng(0)
    n = np.geomspace(1e3, 1e6, 6)
    loss = 3.0 * n**-0.03 * np.exp(rng.normal(0, 0.01, size=6))
    fit = fit_power_law(n, loss)
    (slope, intercept), unscaled = np.polyfit(np.log(n), np.log(loss), 1, cov="unscaled")
    residuals = np.log(loss) - (slope * np.log(n) + intercept)
    sigma2 = residuals @ residuals / (len(n) - 2)
    assert fit.alpha == pytest.approx(-slope) and fit.a == pytest.approx(np.exp(intercept))
    assert fit.alpha_stderr == pytest.approx(np.sqrt(sigma2 * unscaled[0, 0]))
    assert fit.r2 == pytest.approx(np.corrcoef(np.log(n), np.log(loss))[0, 1] ** 2)


@pytest.mark.parametrize("n,loss,match", [
    ([1, 2], [1, 2], "at least 3"),
    ([1, 2, 3], [1, 2], "equally long"),
    ([1, 0, 3], [1, 2, 3], "> 0"),
    ([2, 2, 2], [1, 2, 3], "all n are equal"),
])
def test_power_law_bad_input(n, loss, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(n, loss)


def test_compute_optimal_allocation():
    n, d = compute_optimal_allocation(5.76e23)  # Gopher's and Chinchilla's budget
    assert 6 * n * d == pytest.approx(5.76e23) and d == pytest.approx(20 * n)
    assert 60e9 < n < 80e9  # Chinchilla has 70B parameters
    with pytest.raises(ValueError):
        compute_optimal_allocation(-1.0)


def test_memory_estimate_matches_an_adam_step():
    config = GPTConfig(vocab_size=30, block_size=8, n_layers=2, n_heads=2, d_model=16)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(30, (2, 8))
    model(x, x)[1].backward()
    optimizer.step()
    estimate = training_memory_estimate(count_parameters(config))
    assert estimate["parameters"] == tensor_bytes(model.parameters())
    assert estimate["gradients"] == tensor_bytes(p.grad for p in model.parameters())
    states = [t for s in optimizer.state.values() for t in s.values()]
    step_counters = 4 * len(optimizer.state)  # one float32 scalar per parameter tensor
    assert estimate["optimizer states"] + step_counters == tensor_bytes(states)
    with pytest.raises(ValueError):
        training_memory_estimate(10, bytes_per_value=0)


def test_saved_activations_grow_with_the_batch_and_shrink_with_bfloat16():
    config = GPTConfig(vocab_size=30, block_size=16, n_layers=2, n_heads=2, d_model=32)
    model = GPT(config)
    x = torch.randint(30, (8, 16))
    full, half = saved_activation_bytes(model, x, x), saved_activation_bytes(model, x[:4], x[:4])
    assert full > 0 and 1.8 < full / half < 2.2
    # the logits (B, T, V) in float32 are saved for the loss: a lower bound
    assert full > 8 * 16 * 30 * 4
    assert saved_activation_bytes(model, x, x, autocast_dtype=torch.bfloat16) < full
    assert all(p.grad is None for p in model.parameters())  # measuring does not train


def test_serialized_bytes_counts_the_weights():
    model = torch.nn.Linear(100, 100)
    assert 40_400 < serialized_bytes(model) < 40_400 + 2_000


def _ddp_settings(tmp_path, **changes) -> DataParallelSettings:
    torch.save(torch.randint(0, 23, (5_000,), generator=torch.Generator().manual_seed(3)), tmp_path / "ids.pt")
    settings = dict(data_path=str(tmp_path / "ids.pt"), steps=1, batch_size=8, grad_clip=None,
                    config=dict(vocab_size=23, block_size=16, n_layers=2, n_heads=2, d_model=16))
    return DataParallelSettings(**{**settings, **changes})


def test_single_process_run_is_plain_training(tmp_path):
    result = data_parallel_train(_ddp_settings(tmp_path, grads_path=str(tmp_path / "g.pt")))
    assert result["world_size"] == 1 and len(result["train_loss"]) == 1
    assert 2.5 < result["train_loss"][0] < 3.8  # about ln(23) = 3.14 at initialisation
    assert (tmp_path / "g.pt").exists()


@pytest.mark.slow
def test_ddp_gradients_equal_single_process_full_batch(tmp_path):
    """Two processes under torchrun (gloo), half the batch each: after one step, the averaged
    gradients equal the single-process gradients of the whole batch."""
    single = data_parallel_train(_ddp_settings(tmp_path, grads_path=str(tmp_path / "single.pt")))
    two = launch_data_parallel(_ddp_settings(tmp_path, grads_path=str(tmp_path / "ddp.pt")), nproc=2, timeout=120)
    assert two["world_size"] == 2 and two["backend"] in ("gloo", "nccl")
    assert two["train_loss"][0] == pytest.approx(single["train_loss"][0], rel=1e-6)
    g1, g2 = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "ddp.pt")
    assert g1.keys() == g2.keys()
    everything = lambda g: torch.cat([t.flatten() for t in g.values()])
    scale = everything(g1).abs().max()
    for name in g1:  # (relative to the largest gradient: k_proj's bias has a zero gradient, up to rounding)
        assert (g1[name] - g2[name]).abs().max() / scale < 1e-6, name
    assert (everything(g1) - everything(g2)).norm() / everything(g1).norm() < 1e-6


@pytest.mark.slow
def test_ddp_failure_shows_the_childs_error(tmp_path):
    with pytest.raises(RuntimeError, match="divisible by the number of processes"):
        launch_data_parallel(_ddp_settings(tmp_path, batch_size=3), nproc=2, timeout=120)


def test_throughput_measurements_are_positive_rates():
    from minillm.scaling import matmul_flops_per_second, training_tokens_per_second

    peak = matmul_flops_per_second(128, repeats=2)
    assert math.isfinite(peak) and peak > 1e6  # any CPU multiplies faster than a megaflop per second
    config = GPTConfig(vocab_size=20, block_size=8, n_layers=1, n_heads=1, d_model=8)
    rate = training_tokens_per_second(GPT(config), lambda: (torch.randint(20, (2, 8)),) * 2, steps=2, warmup=1)
    assert math.isfinite(rate) and rate > 0
    with pytest.raises(ValueError):
        matmul_flops_per_second(0)
    with pytest.raises(ValueError):
        training_tokens_per_second(GPT(config), lambda: None, steps=0)


def test_launch_rejects_bad_nproc(tmp_path):
    with pytest.raises(ValueError, match="nproc"):
        launch_data_parallel(_ddp_settings(tmp_path), nproc=0)


def test_bad_arguments_are_named_with_what_was_expected():
    """The argument checks (one call each to minillm.support) name the value and the rule."""
    from minillm.scaling import matmul_flops_per_second
    from minillm.support import check_batch_split

    with pytest.raises(ValueError, match="n_tokens must be > 0, got -1"):
        training_flops(1, -1)
    with pytest.raises(ValueError, match="tokens_per_parameter must be > 0, got 0"):
        compute_optimal_allocation(1.0, 0)
    with pytest.raises(ValueError, match="bytes_per_value must be >= 1, got 0"):
        training_memory_estimate(10, bytes_per_value=0)
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        matmul_flops_per_second(8, repeats=0)
    with pytest.raises(ValueError, match=r"seq_len must be an int in \[1, block_size = 8\], got 0"):
        flops_per_token(GPTConfig(block_size=8), seq_len=0)
    with pytest.raises(ValueError, match="batch_size=3 must be divisible by the number of processes, 2"):
        check_batch_split(3, 2)
