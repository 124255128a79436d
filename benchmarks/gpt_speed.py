#!/usr/bin/env python3
"""Training throughput of minillm's GPT, Hugging Face's GPT2LMHeadModel and a nanoGPT-style model.

    python benchmarks/gpt_speed.py                     # sizes a and b, 2 threads
    python benchmarks/gpt_speed.py --sizes a --steps-a 100 --chunk-a 10
    python benchmarks/gpt_speed.py --nanogpt /tmp/nanoGPT/model.py   # also time the real nanoGPT
    python benchmarks/gpt_speed.py --profile           # where each model spends a training step
    python benchmarks/gpt_speed.py --sizes a --breakdown 20   # forward, backward, update

Sizes (GPT-2 architecture, tiny-Shakespeare characters, vocabulary 65):
    a: 4 layers, d_model 128, 4 heads, block 64, batch 12 (chapter 7's model)
    b: 6 layers, d_model 384, 6 heads, block 256, batch 8 (nanoGPT's Shakespeare-char model)

The three models are built with the same weights: a ``GPT2LMHeadModel`` with random weights (each one
perturbed, so that a misplaced bias or norm would show) is converted into minillm's ``GPT`` with
``GPT.from_hf`` and into the reference below. Before timing, the script checks that they give the same
loss on one batch: the comparison is between three implementations of one function. Each model then
trains with its own AdamW (same settings) on the same sequence of batches. Training alternates
between the models in chunks of steps, in a rotating order, so that all of them see the same machine
load; only the training steps are timed (forward, backward, gradient clipping, optimizer step). The
script prints each model's throughput in tokens per second, from the total time and from the median
step time (robust to the bursts of load of a shared machine), and the ratios of minillm's throughput
to the others' (from the medians, from the totals, and the range of the per-round ratios). On a
machine that other jobs keep busy, ``--threads 1 --clock cpu`` times the steps in CPU time of the
one thread that computes them, which the other jobs disturb much less (a step that waits for a core
does not count) than wall time, and far less than two threads fighting over a busy core.

The reference, ``NanoStyleGPT``, is the way nanoGPT writes GPT-2 (one fused ``c_attn`` projection for
queries, keys and values, ``F.scaled_dot_product_attention(is_causal=True)``, ``F.layer_norm``,
tanh-GELU, pre-LN, tied output layer), written for this benchmark: it is the speed a plain PyTorch
GPT-2 reaches, without dropout modules or input checks. ``--nanogpt PATH`` adds Karpathy's own
``model.py`` (not part of this repository: fetch it yourself), to show that the reference is
representative; its exact (erf) GELU is swapped for GPT-2's tanh form, so that it computes the same
function as the others (on CPU the tanh form takes about twice as long).

This is a benchmark, not a test: its numbers depend on the machine and on what else runs on it.
Needs ``transformers`` and the tiny Shakespeare data (downloaded on first use, or MINILLM_DATA_DIR).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import time

import torch
from timing import add_timing_options, apply_timing_options
import torch.nn as nn
import torch.nn.functional as F

from minillm.data import load_tiny_shakespeare
from minillm.gpt import GPT
from minillm.training import lm_batch as _lm_batch

SIZES = {  # n_layers, d_model, n_heads, block_size, batch_size
    "a": (4, 128, 4, 64, 12),
    "b": (6, 384, 6, 256, 8),
}


def lm_batch(*args, **kwargs):
    """minillm's batches, made contiguous (nanoGPT's forward calls ``.view`` on the targets)."""
    return tuple(t.contiguous() for t in _lm_batch(*args, **kwargs))


# --- the reference: GPT-2 as nanoGPT writes it ----------------------------------------------------


class NanoStyleAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.c_attn = nn.Linear(
            d_model, 3 * d_model
        )  # queries, keys and values in one matmul
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.n_heads, C // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, n_heads, T, d_head)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class NanoStyleMLP(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class NanoStyleBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=1e-5)
        self.attn = NanoStyleAttention(d_model, n_heads)
        self.ln_2 = nn.LayerNorm(d_model, eps=1e-5)
        self.mlp = NanoStyleMLP(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoStyleGPT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layers: int,
        d_model: int,
        n_heads: int,
    ):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(block_size, d_model)
        self.h = nn.ModuleList(
            [NanoStyleBlock(d_model, n_heads) for _ in range(n_layers)]
        )
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        )


@torch.no_grad()
def nano_style_from_hf(hf) -> NanoStyleGPT:
    """The reference with the weights of a GPT2LMHeadModel (its names are GPT-2's, less the
    ``transformer.`` prefix)."""
    c = hf.config
    model = NanoStyleGPT(c.vocab_size, c.n_positions, c.n_layer, c.n_embd, c.n_head)
    sd = hf.state_dict()
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to wte
        w = sd["transformer." + name]
        if w.dim() == 2 and name.split(".")[-2] in ("c_attn", "c_proj", "c_fc"):
            w = w.t()  # GPT-2's Conv1D stores (in, out); nn.Linear (out, in)
        p.copy_(w)
    return model.train(hf.training)


def load_nanogpt(path: str, ref: NanoStyleGPT, block_size: int):
    """Karpathy's nanoGPT ``GPT`` from its ``model.py``, with the reference's weights and
    GPT-2's tanh GELU (nanoGPT uses the exact, erf one, which is about twice as fast on CPU
    and would make the comparison unfair)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vocab, d = ref.wte.weight.shape
    n_heads = ref.h[0].attn.n_heads
    config = module.GPTConfig(
        block_size=block_size,
        vocab_size=vocab,
        n_layer=len(ref.h),
        n_head=n_heads,
        n_embd=d,
        dropout=0.0,
        bias=True,
    )
    model = module.GPT(config)
    sd = {
        name if name == "lm_head.weight" else "transformer." + name: tensor
        for name, tensor in ref.state_dict().items()
    }
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"transformer.wte.weight"}, (
        missing,
        unexpected,
    )
    for block in model.transformer.h:  # nanoGPT's exact (erf) GELU -> GPT-2's tanh form
        block.mlp.gelu = nn.GELU(approximate="tanh")
    return model.train()


# --- building the models --------------------------------------------------------------------------


def build(size: str, vocab_size: int, nanogpt: str | None):
    from transformers import GPT2Config, GPT2LMHeadModel

    n_layers, d_model, n_heads, block_size, _ = SIZES[size]
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=block_size,
        n_embd=d_model,
        n_layer=n_layers,
        n_head=n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    hf = GPT2LMHeadModel(config)
    with torch.no_grad():  # perturb: the default init hides misplaced biases and norms
        for p in hf.parameters():
            p.add_(0.02 * torch.randn_like(p))
    hf.train()

    def hf_forward(x, y):
        logits = hf(input_ids=x).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    ours = GPT.from_hf(hf).train()
    ref = nano_style_from_hf(hf).train()
    models = {
        "minillm GPT": (ours, lambda x, y: ours(x, y)[1]),
        "nanoGPT-style reference": (ref, lambda x, y: ref(x, y)[1]),
        "HF GPT2LMHeadModel": (hf, hf_forward),
    }
    if nanogpt:
        real = load_nanogpt(nanogpt, ref, block_size)
        models["nanoGPT model.py"] = (real, lambda x, y: real(x, y)[1])
    return models


def check_same_loss(models, x, y) -> None:
    with torch.no_grad():
        losses = {name: loss_fn(x, y).item() for name, (_, loss_fn) in models.items()}
    first = losses["minillm GPT"]
    print("loss on one batch: " + ", ".join(f"{k} {v:.6f}" for k, v in losses.items()))
    for name, value in losses.items():
        if abs(value - first) > 1e-4:
            raise SystemExit(
                f"{name} gives loss {value}, minillm {first}: not the same function"
            )


# --- timing ---------------------------------------------------------------------------------------

CLOCK = time.perf_counter  # --clock cpu: time.thread_time


def new_adamw(model: nn.Module, foreach: bool = False) -> torch.optim.AdamW:
    """The AdamW every model gets, whichever mode of the benchmark runs."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=1e-3,
        betas=(0.9, 0.99),
        weight_decay=0.1,
        foreach=foreach or None,
    )


def train_steps(model, loss_fn, opt, batches) -> list[float]:
    """Train on ``batches``; return the seconds each training step took."""
    seconds = []
    for x, y in batches:
        start = CLOCK()
        loss = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds.append(CLOCK() - start)
    return seconds


def benchmark(
    size: str,
    data: torch.Tensor,
    vocab_size: int,
    steps: int,
    chunk: int,
    warmup: int,
    nanogpt: str | None,
    foreach: bool = False,
) -> dict:
    n_layers, d_model, n_heads, block_size, batch_size = SIZES[size]
    models = build(size, vocab_size, nanogpt)
    n_params = sum(p.numel() for p in models["minillm GPT"][0].parameters())
    clock = "CPU time of the thread" if CLOCK is time.thread_time else "wall time"
    print(
        f"\nsize {size}: {n_layers} layers, d_model {d_model}, {n_heads} heads, block {block_size}, "
        f"batch {batch_size}, {n_params:,} parameters; {torch.get_num_threads()} threads; "
        f"{steps} timed steps per model in chunks of {chunk}; {clock}; AdamW "
        f"{'foreach' if foreach else 'default (a loop over the tensors on CPU)'}"
    )
    check_same_loss(
        models,
        *lm_batch(
            data, batch_size, block_size, generator=torch.Generator().manual_seed(123)
        ),
    )
    runs = {}
    for name, (model, loss_fn) in models.items():
        opt = new_adamw(model, foreach)
        runs[name] = dict(
            model=model,
            loss=loss_fn,
            opt=opt,
            gen=torch.Generator().manual_seed(1),
            chunks=[],
        )
    names = list(runs)

    def next_batches(run, n):
        return [
            lm_batch(data, batch_size, block_size, generator=run["gen"])
            for _ in range(n)
        ]

    for name in names:  # untimed warm-up: first calls allocate and pick kernels
        run = runs[name]
        train_steps(run["model"], run["loss"], run["opt"], next_batches(run, warmup))
    rounds = math.ceil(steps / chunk)
    for r in range(rounds):
        n = min(chunk, steps - r * chunk)
        for name in (
            names[r % len(names) :] + names[: r % len(names)]
        ):  # rotate the order
            run = runs[name]
            run["chunks"].append(
                train_steps(run["model"], run["loss"], run["opt"], next_batches(run, n))
            )
    tokens_per_step = batch_size * block_size
    result = {}
    print(
        f"{'model':<26}{'tokens/s':>10}{'ms/step':>9}{'median tokens/s':>17}{'ms/step':>9}"
        f"{'best ms/step':>14}"
    )
    for name, run in runs.items():
        times = [t for chunk_times in run["chunks"] for t in chunk_times]
        rate = len(times) * tokens_per_step / sum(times)
        median = statistics.median(times)
        result[name] = dict(
            tokens_per_s=rate,
            median_tokens_per_s=tokens_per_step / median,
            step_seconds=times,
        )
        print(
            f"{name:<26}{rate:>10,.0f}{1000 * sum(times) / len(times):>9.1f}"
            f"{tokens_per_step / median:>17,.0f}{1000 * median:>9.1f}{1000 * min(times):>14.1f}"
        )
    ours = result["minillm GPT"]
    for other in names[1:]:
        # per round: the ratio of the median step times of the two models' chunks
        ratios = [
            statistics.median(b) / statistics.median(a)
            for a, b in zip(runs["minillm GPT"]["chunks"], runs[other]["chunks"])
        ]
        print(
            f"throughput minillm / {other}: "
            f"{ours['median_tokens_per_s'] / result[other]['median_tokens_per_s']:.2f} "
            f"(medians), {ours['tokens_per_s'] / result[other]['tokens_per_s']:.2f} (totals); "
            f"per round {min(ratios):.2f}-{max(ratios):.2f}"
        )
    return result


# --- where a step's time goes ---------------------------------------------------------------------


def breakdown(
    size: str,
    data: torch.Tensor,
    vocab_size: int,
    rounds: int,
    nanogpt: str | None,
    foreach: bool,
) -> None:
    """Each model's training step cut in three: forward, backward, and gradient clipping
    with the AdamW update (the part that loops over the parameter tensors, whose number
    differs between the models). The models take turns, ``rounds`` times, 5 steps each;
    the table gives the median over rounds of each part's mean time."""
    _, _, _, block_size, batch_size = SIZES[size]
    models = build(size, vocab_size, nanogpt)
    gen = torch.Generator().manual_seed(1)
    x, y = lm_batch(data, batch_size, block_size, generator=gen)
    parts = {}
    for name, (model, loss_fn) in models.items():
        times = {"forward": [], "backward": [], "update": []}
        parts[name] = (model, loss_fn, new_adamw(model, foreach), times)

    def step(model, loss_fn, opt, times=None):
        t0 = CLOCK()
        loss = loss_fn(x, y)
        t1 = CLOCK()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = CLOCK()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = CLOCK()
        if times is not None:
            for key, t in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[key].append(t)

    for model, loss_fn, opt, _ in parts.values():
        for _ in range(3):
            step(model, loss_fn, opt)
    names = list(parts)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            model, loss_fn, opt, times = parts[name]
            one_round = {key: [] for key in times}
            for _ in range(5):
                step(model, loss_fn, opt, one_round)
            for key, values in one_round.items():
                times[key].append(statistics.mean(values))
    print(
        f"\nsize {size}, where a step's time goes ({torch.get_num_threads()} threads, "
        f"median of {rounds} rounds, ms)"
    )
    print(f"{'model':<26}{'tensors':>8}{'forward':>9}{'backward':>10}{'update':>8}{'step':>8}")
    for name, (model, _, _, times) in parts.items():
        med = {key: 1000 * statistics.median(v) for key, v in times.items()}
        n_tensors = len(list(model.parameters()))
        print(
            f"{name:<26}{n_tensors:>8}{med['forward']:>9.2f}{med['backward']:>10.2f}"
            f"{med['update']:>8.2f}{sum(med.values()):>8.2f}"
        )


# --- profiling ------------------------------------------------------------------------------------


def profile(
    size: str, data: torch.Tensor, vocab_size: int, steps: int, rows: int
) -> None:
    """torch.profiler's table of each model's training step: the operators that take the time."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    _, _, _, block_size, batch_size = SIZES[size]
    models = build(size, vocab_size, None)
    for name, (model, loss_fn) in models.items():
        opt = new_adamw(model)
        gen = torch.Generator().manual_seed(1)
        batches = [
            lm_batch(data, batch_size, block_size, generator=gen)
            for _ in range(steps + 3)
        ]
        train_steps(model, loss_fn, opt, batches[:3])
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            seconds = sum(train_steps(model, loss_fn, opt, batches[3:]))
        print(
            f"\n=== size {size}, {name}: {1000 * seconds / steps:.1f} ms/step "
            f"(under the profiler), {steps} steps ==="
        )
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="ab", help="which sizes to run: a, b or ab")
    parser.add_argument(
        "--steps-a", type=int, default=300, help="timed steps per model, size a"
    )
    parser.add_argument("--chunk-a", type=int, default=25)
    parser.add_argument(
        "--steps-b", type=int, default=30, help="timed steps per model, size b"
    )
    parser.add_argument("--chunk-b", type=int, default=5)
    parser.add_argument(
        "--batch-b", type=int, default=8, help="batch size of size b (8 or 12)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps per model first"
    )
    add_timing_options(parser)
    parser.add_argument(
        "--nanogpt", default=None, help="path of nanoGPT's model.py, to time it too"
    )
    parser.add_argument(
        "--foreach",
        action="store_true",
        help="AdamW(foreach=True) for every model: one multi-tensor update instead of "
        "PyTorch's CPU default, a loop over the parameter tensors",
    )
    parser.add_argument(
        "--breakdown",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead of timing throughput, split each model's step into forward, "
        "backward and update, over ROUNDS rounds",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print profiles instead of timing"
    )
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument(
        "--rows", type=int, default=30, help="rows of each profile table"
    )
    args = parser.parse_args()
    if not set(args.sizes) <= set(SIZES):
        parser.error(f"--sizes takes letters from {''.join(SIZES)}, got {args.sizes!r}")
    SIZES["b"] = (*SIZES["b"][:4], args.batch_b)
    global CLOCK
    CLOCK = apply_timing_options(parser, args)
    text = load_tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text])
    for size in args.sizes:
        if args.profile:
            profile(size, data, len(chars), args.profile_steps, args.rows)
        elif args.breakdown:
            breakdown(
                size, data, len(chars), args.breakdown, args.nanogpt, args.foreach
            )
        else:
            steps, chunk = (
                (args.steps_a, args.chunk_a)
                if size == "a"
                else (args.steps_b, args.chunk_b)
            )
            benchmark(
                size,
                data,
                len(chars),
                steps,
                chunk,
                args.warmup,
                args.nanogpt,
                args.foreach,
            )


if __name__ == "__main__":
    main()
