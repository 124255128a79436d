#!/usr/bin/env python3
"""Training a byte-level BPE: chapter 2's naive trainer, its fast trainer, and the library.

    python benchmarks/tokenizer_training.py                  # tiny Shakespeare twice (2.2 MB), 500 tokens
    python benchmarks/tokenizer_training.py --repeats 5 --skip-naive
    python benchmarks/tokenizer_training.py --corpus sst2    # the first 2 MB of SST-2's sentences

Three trainers learn a 500-token vocabulary (the 256 bytes and 244 merges) from the same text:

* ``BPETokenizer.train(text, 500, method="naive")``: recounts every pair at every merge;
* ``BPETokenizer.train(text, 500)``: counts each distinct line's chunks once, counts pairs
  once and updates them merge by merge;
* ``train_bpe(text, 500, special_tokens=())``: the ``tokenizers`` library (Rust, multi-threaded).

The script checks that all three learn the same merges, in the same order, then prints for each
the best of ``--repeats`` runs (one run for the naive trainer): wall time and CPU time of this
process (the library's CPU time is summed over its threads), and for the fast trainer how that
time splits between counting chunks (the regular expression over the text) and learning merges,
and the minimum and median of its runs, which the goal (at most 0.5 s wall) is judged on.

Tiny Shakespeare twice repeats every line, so the two copies have the same distinct chunks and
lines (the fast trainer cuts each distinct line once, so the second copy costs it little); the
SST-2 corpus (its sentences, one per line, about 2 MB) repeats much less. This is a benchmark, not
a test: its numbers depend on the machine and on what else runs on it. Needs the data files
(downloaded on first use, or read from MINILLM_DATA_DIR).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from minillm.data import load_sst2, load_tiny_shakespeare
from minillm.tokenization import (
    BPETokenizer,
    count_chunks,
    learn_merges_fast,
    train_bpe,
)


def corpus(name: str) -> str:
    if name == "shakespeare2":
        return load_tiny_shakespeare() * 2
    sentences = "\n".join(sentence for sentence, _ in load_sst2("train"))
    return sentences[:2_000_000]


def cpu_seconds() -> float:
    """CPU time of this process, all threads (the library trains in several)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(work, repeats: int, runs: list | None = None):
    """(result, best wall seconds, CPU seconds of that run); every run's (wall, CPU)
    seconds are appended to ``runs`` if given."""
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = work()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        if runs is not None:
            runs.append((wall, cpu))
        if best is None or wall < best[1]:
            best = (result, wall, cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", choices=["shakespeare2", "sst2"], default="shakespeare2"
    )
    parser.add_argument("--vocab-size", type=int, default=500)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of the fast trainer and library"
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="skip the naive trainer (slow)"
    )
    parser.add_argument(
        "--max-chars", type=int, default=None, help="use only the corpus' start"
    )
    args = parser.parse_args()

    text = corpus(args.corpus)[: args.max_chars]
    n_bytes = len(text.encode("utf-8"))
    print(
        f"corpus: {args.corpus}, {len(text):,} characters, {n_bytes / 1e6:.2f} MB; "
        f"vocabulary {args.vocab_size} (256 bytes + {args.vocab_size - 256} merges)"
    )

    fast_runs = []
    fast, fast_wall, fast_cpu = timed(
        lambda: BPETokenizer.train(text, args.vocab_size), args.repeats, fast_runs
    )
    chunks, count_wall, _ = timed(lambda: count_chunks(text), args.repeats)
    _, learn_wall, _ = timed(
        lambda: learn_merges_fast(chunks, args.vocab_size - 256), args.repeats
    )
    library, lib_wall, lib_cpu = timed(
        lambda: train_bpe(text, args.vocab_size, special_tokens=()), args.repeats
    )
    library_tokens = sorted(library.get_vocab(), key=library.token_to_id)[256:]
    assert library_tokens == [
        fast.id_to_token(i) for i in range(256, fast.vocab_size)
    ], "the fast trainer and the library learned different merges"
    print(
        f"{len(chunks):,} distinct chunks; the fast trainer and the library learned the same "
        f"{len(fast.merges)} merges"
    )

    rows = []
    if not args.skip_naive:
        naive, naive_wall, naive_cpu = timed(
            lambda: BPETokenizer.train(text, args.vocab_size, method="naive"), 1
        )
        assert naive.merges == fast.merges, (
            "the naive and fast trainers learned different merges"
        )
        rows.append(("ours, naive (recounts every merge)", naive_wall, naive_cpu))
    rows += [
        ("ours, fast (incremental counts)", fast_wall, fast_cpu),
        ("library (tokenizers, Rust)", lib_wall, lib_cpu),
    ]
    print(f"\n{'trainer':<38}{'wall s':>9}{'CPU s':>9}")
    for name, wall, cpu in rows:
        print(f"{name:<38}{wall:>9.3f}{cpu:>9.3f}")
    print(
        f"\nfast trainer: counting chunks {count_wall:.3f} s + learning merges {learn_wall:.3f} s "
        f"(best runs, measured apart)"
    )
    if not args.skip_naive:
        print(f"fast / naive: {rows[0][1] / fast_wall:.0f} times faster (wall)")
    print(
        f"fast / library: {fast_wall / lib_wall:.2f} times the library's wall time, "
        f"{fast_cpu / lib_cpu:.2f} times its CPU time"
    )
    walls, cpus = [w for w, _ in fast_runs], [c for _, c in fast_runs]
    print(
        f"fast trainer, {len(fast_runs)} runs: wall min {min(walls):.3f} s, median "
        f"{statistics.median(walls):.3f} s; CPU min {min(cpus):.3f} s, median "
        f"{statistics.median(cpus):.3f} s"
    )
    goal, median = 0.5, statistics.median(walls)
    verdict = "meets" if median <= goal else "misses"
    print(
        f"goal: fast trainer <= {goal} s wall on this corpus: the median run {verdict} it "
        f"({median:.3f} s)"
    )


if __name__ == "__main__":
    main()
