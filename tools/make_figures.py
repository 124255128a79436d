#!/usr/bin/env python3
"""Draw the book's static diagrams (not computed results) into book/figures/.

    python tools/make_figures.py

Only diagrams live here; every figure that shows a measurement is drawn by a
notebook cell when the book is built.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parent.parent / "book" / "figures"

CHAPTERS = [
    (1, "Background", "bigram, loss, training loop", "minillm.bigram"),
    (2, "Tokenization", "BPE, WordPiece", "minillm.tokenization"),
    (3, "Attention", "softmax(QKᵀ/√d)V, masks, heads", "minillm.attention"),
    (4, "Positions", "sinusoidal, learned, RoPE", "minillm.positional"),
    (5, "LayerNorm & blocks", "residuals, FFN, pre/post-LN", "minillm.layers"),
    (6, "BERT", "encoder, MLM + NSP", "minillm.bert"),
    (7, "GPT", "decoder, causal LM, sampling", "minillm.gpt"),
    (8, "Fine-tuning", "SST-2, probes, LoRA", "minillm.finetune"),
    (9, "Scaling", "FLOPs, scaling law, DDP", "minillm.scaling"),
    (10, "Modern LLMs", "Llama, Qwen: RoPE, GQA", "minillm.llama"),
    (11, "Post-training", "SFT, DPO, RL with rewards", "minillm.posttrain"),
]
# (from, to): which chapter each chapter builds on
EDGES = [(1, 2), (1, 3), (3, 4), (3, 5), (4, 5), (2, 6), (5, 6), (2, 7), (5, 7), (6, 8), (7, 8), (7, 9), (9, 10), (8, 11), (10, 11)]
POS = {1: (0, 2), 2: (1.15, 3.2), 3: (1.15, 0.8), 4: (2.3, 0.0), 5: (2.3, 1.6), 6: (3.6, 2.8), 7: (3.6, 0.9), 8: (4.9, 2.8), 9: (4.9, 0.9), 10: (6.2, 0.9), 11: (6.2, 2.8)}
COLORS = {1: "#e8eef7", 2: "#e8eef7", 3: "#fdf0d5", 4: "#fdf0d5", 5: "#fdf0d5", 6: "#e3f2e1", 7: "#e3f2e1", 8: "#f5e1ee", 9: "#f5e1ee", 10: "#e3f2e1", 11: "#f5e1ee"}


def chapter_map() -> None:
    fig, ax = plt.subplots(figsize=(12.5, 5.2))
    w, h = 1.0, 0.62
    for n, title, topics, module in CHAPTERS:
        x, y = POS[n]
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                    fc=COLORS[n], ec="#555", lw=1))
        ax.text(x, y + 0.16, f"{n}. {title}", ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.02, topics, ha="center", va="center", fontsize=7.5)
        ax.text(x, y - 0.19, module, ha="center", va="center", fontsize=7.5, family="monospace", color="#1a4f8b")
    for a, b in EDGES:
        (xa, ya), (xb, yb) = POS[a], POS[b]
        if xa == xb:  # same column: from the top edge of one box to the bottom edge of the other
            start, end = (xa, ya + h / 2), (xb, yb - h / 2)
        else:
            start, end = (xa + w / 2, ya), (xb - w / 2, yb)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                     color="#777", lw=1, connectionstyle="arc3,rad=0.05", shrinkA=4, shrinkB=4))
    ax.set_xlim(-0.6, 6.8)
    ax.set_ylim(-0.45, 3.65)
    ax.axis("off")
    ax.set_title("The chapters, what each builds on, and the module of minillm each one writes", fontsize=11)
    fig.tight_layout()
    fig.savefig(OUT / "chapter_map.png", dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    chapter_map()
    print(f"wrote {OUT / 'chapter_map.png'}")
