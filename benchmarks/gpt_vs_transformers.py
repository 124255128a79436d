#!/usr/bin/env python3
"""Training throughput of minillm's GPT against Hugging Face's GPT2LMHeadModel of the same size.

    python benchmarks/gpt_vs_transformers.py                    # chapter 7's tiny GPT, 600 steps each
    python benchmarks/gpt_vs_transformers.py --steps 200 --threads 1

Both models start from the same weights (ours is converted from theirs with ``GPT.from_hf``), train
with the same optimizer on the same batches of tiny Shakespeare, and compute the loss the same way
(cross-entropy of the logits against the next characters). Training alternates between the two in
chunks of ``--chunk`` steps, so that both see the same machine load; only the training steps are
timed. The script prints, at every evaluation, the wall time spent training each model so far and its
validation loss, then the throughput of each (tokens per second) and their ratio.

This is a benchmark, not a test: its numbers depend on the machine and on what else runs on it.
Needs ``transformers`` (pip install transformers) and the tiny Shakespeare data (downloaded on
first use, or read from MINILLM_DATA_DIR).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from minillm.data import load_tiny_shakespeare, train_val_split
from minillm.gpt import GPT
from minillm.training import lm_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=600, help="training steps per model"
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=50,
        help="steps per model before switching to the other",
    )
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's choice)",
    )
    parser.add_argument(
        "--attn",
        default="sdpa",
        choices=["sdpa", "eager"],
        help="Hugging Face attention implementation",
    )
    args = parser.parse_args()
    if args.eval_every % args.chunk:
        parser.error("--eval-every must be a multiple of --chunk")

    from transformers import GPT2Config, GPT2LMHeadModel

    if args.threads:
        torch.set_num_threads(args.threads)
    text = load_tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    train_ids, val_ids = train_val_split(
        torch.tensor([stoi[c] for c in text]), val_fraction=0.1
    )

    torch.manual_seed(0)
    hf_config = GPT2Config(
        vocab_size=len(chars),
        n_positions=args.block_size,
        n_embd=args.d_model,
        n_layer=args.n_layers,
        n_head=args.n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation=args.attn,
    )
    hf = GPT2LMHeadModel(hf_config).train()
    ours = GPT.from_hf(hf).train()  # identical starting weights

    def hf_loss(x, y):
        logits = hf(input_ids=x).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def ours_loss(x, y):
        return ours(x, y)[1]

    runs = {
        "minillm GPT": dict(model=ours, loss=ours_loss),
        "transformers GPT2LMHeadModel": dict(model=hf, loss=hf_loss),
    }
    for run in runs.values():
        run.update(
            opt=torch.optim.AdamW(
                run["model"].parameters(),
                lr=args.lr,
                betas=(0.9, 0.99),
                weight_decay=0.1,
            ),
            gen=torch.Generator().manual_seed(1),
            seconds=0.0,
            steps=0,
            log=[],
        )

    eval_gen = torch.Generator().manual_seed(0)
    val_batches = [
        lm_batch(val_ids, 32, args.block_size, generator=eval_gen) for _ in range(20)
    ]

    @torch.no_grad()
    def evaluate(run) -> float:
        run["model"].eval()
        value = sum(run["loss"](x, y).item() for x, y in val_batches) / len(val_batches)
        run["model"].train()
        return value

    n_params = ours.num_parameters()
    print(
        f"model: {args.n_layers} layers, {args.n_heads} heads, d_model {args.d_model}, block {args.block_size}, "
        f"{n_params:,} parameters (HF: {hf.num_parameters():,}); batch {args.batch_size}; "
        f"{torch.get_num_threads()} threads; HF attention: {args.attn}"
    )
    print(f"{'model':<30}{'step':>6}{'train s':>9}{'val loss':>10}")
    while any(run["steps"] < args.steps for run in runs.values()):
        for name, run in runs.items():
            for _ in range(args.chunk):
                x, y = lm_batch(
                    train_ids, args.batch_size, args.block_size, generator=run["gen"]
                )
                start = time.perf_counter()
                loss = run["loss"](x, y)
                run["opt"].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(run["model"].parameters(), 1.0)
                run["opt"].step()
                run["seconds"] += time.perf_counter() - start
                run["steps"] += 1
            if run["steps"] % args.eval_every == 0 or run["steps"] == args.steps:
                val = evaluate(run)
                run["log"].append((run["steps"], run["seconds"], val))
                print(
                    f"{name:<30}{run['steps']:>6}{run['seconds']:>9.1f}{val:>10.4f}",
                    flush=True,
                )

    tokens = args.steps * args.batch_size * args.block_size
    print()
    throughput = {}
    for name, run in runs.items():
        throughput[name] = tokens / run["seconds"]
        print(
            f"{name:<30} {throughput[name]:>9,.0f} tokens/s  final val loss {run['log'][-1][2]:.4f}"
        )
    ratio = throughput["minillm GPT"] / throughput["transformers GPT2LMHeadModel"]
    print(f"throughput ratio minillm / transformers: {ratio:.2f}")


if __name__ == "__main__":
    main()
