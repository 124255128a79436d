#!/usr/bin/env python3
"""Generation with and without the KV cache: minillm's GPT, chapter 7's shape and GPT-2 small's.

    python benchmarks/kv_cache.py                       # both shapes, 2 threads
    python benchmarks/kv_cache.py --shapes ch7 --repeats 5

Shapes (random weights, vocabulary and sizes as stated; nothing is downloaded):
    ch7:  GPTConfig(vocab_size=65, block_size=256, n_layers=4, n_heads=4, d_model=128)
    gpt2: GPTConfig.gpt2(), 124M parameters, block 1024

For each shape the script generates ``--new-tokens`` tokens (256, or as many as fit after the
prompt in the context: 240 after a 16-token prompt for ch7) after a prompt of ``--prompt`` tokens,
with ``GPT.generate(idx, max_new_tokens, use_cache=True)`` and ``use_cache=False``, alternately,
``--repeats`` times each, from the same seed. It prints the best and median time of each, the
speed-up of the cache and the time per generated token, and whether both produced the same
tokens (they should, up to float rounding flipping a sampled token in a rare close call).

Without the cache, step i runs the whole model on all prompt + i tokens (and computes the
logits at every position); with it, on the one new token, against the cached keys and values.
This is a benchmark, not a test: its numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timing import add_timing_options, apply_timing_options

from minillm.gpt import GPT, GPTConfig


def shapes() -> dict[str, GPTConfig]:
    return {
        "ch7": GPTConfig(
            vocab_size=65, block_size=256, n_layers=4, n_heads=4, d_model=128
        ),
        "gpt2": GPTConfig.gpt2(),
    }


CLOCK = time.perf_counter  # --clock cpu: time.thread_time


def time_generate(model: GPT, prompt: torch.Tensor, new_tokens: int, use_cache: bool):
    torch.manual_seed(0)  # the same sampled tokens with and without the cache
    start = CLOCK()
    out = model.generate(prompt, new_tokens, use_cache=use_cache)
    return CLOCK() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", default="ch7,gpt2", help="comma-separated: ch7, gpt2"
    )
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument(
        "--prompt", type=int, default=16, help="prompt length in tokens"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    add_timing_options(parser)
    args = parser.parse_args()
    global CLOCK
    CLOCK = apply_timing_options(parser, args)
    configs = shapes()
    for name in args.shapes.split(","):
        if name not in configs:
            parser.error(f"unknown shape {name!r}; expected some of {sorted(configs)}")
        config = configs[name]
        torch.manual_seed(0)
        model = GPT(config).eval()
        n_params = sum(p.numel() for p in model.parameters())
        new_tokens = min(args.new_tokens, config.block_size - args.prompt)
        prompt = torch.randint(
            config.vocab_size,
            (1, args.prompt),
            generator=torch.Generator().manual_seed(1),
        )
        print(
            f"\n{name}: {config.n_layers} layers, d_model {config.d_model}, {config.n_heads} heads, "
            f"vocabulary {config.vocab_size}, block {config.block_size}, {n_params:,} parameters; "
            f"prompt {args.prompt} tokens, {new_tokens} new tokens, batch 1, "
            f"{torch.get_num_threads()} threads, {args.repeats} runs each, "
            f"{'CPU time' if args.clock == 'cpu' else 'wall time'}"
        )
        time_generate(model, prompt, 4, True)  # warm-up
        time_generate(model, prompt, 4, False)
        times = {True: [], False: []}
        outputs = {}
        for r in range(args.repeats):
            for use_cache in (
                (True, False) if r % 2 == 0 else (False, True)
            ):  # alternate
                seconds, outputs[use_cache] = time_generate(
                    model, prompt, new_tokens, use_cache
                )
                times[use_cache].append(seconds)
        for use_cache, label in ((False, "without cache"), (True, "with cache")):
            t = times[use_cache]
            print(
                f"  {label:<14} best {min(t):8.3f} s  median {statistics.median(t):8.3f} s  "
                f"{1000 * min(t) / new_tokens:7.2f} ms/token (best)"
            )
        speedup = min(times[False]) / min(times[True])
        median_speedup = statistics.median(times[False]) / statistics.median(
            times[True]
        )
        same = torch.equal(outputs[True], outputs[False])
        print(
            f"  speed-up of the cache: {speedup:.1f}x (best times), {median_speedup:.1f}x (medians); "
            f"same tokens: {same}"
        )


if __name__ == "__main__":
    main()
