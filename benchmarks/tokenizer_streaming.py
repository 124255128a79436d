#!/usr/bin/env python3
"""Streaming encoding: memory that does not grow with the file.

    python benchmarks/tokenizer_streaming.py                 # files of 5 and 50 MB
    python benchmarks/tokenizer_streaming.py --sizes 5 50 200 --tracemalloc

Writes text files of the given sizes (in MB, at least one of 50 MB or more by default) to a
temporary folder: tiny Shakespeare over and over, with ``<|endoftext|>`` between the copies and a
line of Chinese, emoji and accents in each. A tokenizer trained on 200,000 characters of
Shakespeare (512 tokens, ``<|endoftext|>`` special) then encodes each file with
``encode_iterable`` over its lines, counting the ids without keeping them, and, for the smaller
files only, with ``encode`` on the whole text read at once.

Each measurement runs in a fresh process, which loads the tokenizer (trained once, beforehand) and
reports its peak resident memory (``ru_maxrss``) above what it held before reading the file, and,
with ``--tracemalloc``, the peak of the memory Python allocated (slower). Also printed: the time and the throughput. This is a benchmark, not a
test: its numbers depend on the machine and on what else runs on it. Needs tiny Shakespeare
(downloaded on first use, or read from MINILLM_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minillm.data import load_tiny_shakespeare
from minillm.tokenization import END_OF_TEXT, BPETokenizer

EXTRA = "语言模型只看到整数。 🙂👍🏽 naïve café e\u0301 \n"


def write_corpus(path: Path, megabytes: float) -> int:
    """Shakespeare again and again, documents separated by <|endoftext|>; returns bytes."""
    document = (EXTRA + load_tiny_shakespeare() + END_OF_TEXT).encode("utf-8")
    target, written = int(megabytes * 1e6), 0
    with open(path, "wb") as f:
        while written < target:
            piece = (
                document[: target - written]
                if target - written < len(document)
                else document
            )
            piece = piece.decode("utf-8", errors="ignore").encode("utf-8")
            f.write(piece)
            written += len(piece)
    return written


def save_tokenizer(path: Path) -> None:
    tok = BPETokenizer.train(
        load_tiny_shakespeare()[:200_000], 513, special_tokens=[END_OF_TEXT]
    )
    path.write_text(
        json.dumps({"merges": tok.merges, "special_tokens": tok.special_tokens})
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def rss_mb() -> float:
    """The resident memory of this process now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def measure(mode: str, path: str, tokenizer_path: str, use_tracemalloc: bool) -> dict:
    """Runs in a child process: encode the file one way, report memory and time."""
    saved = json.loads(Path(tokenizer_path).read_text())
    tok = BPETokenizer([tuple(m) for m in saved["merges"]], saved["special_tokens"])
    tok.encode("warm up the imports")
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
    before, start = rss_mb(), time.perf_counter()
    if mode == "stream":
        with open(path, encoding="utf-8") as f:
            n_ids = sum(1 for _ in tok.encode_iterable(f))
    else:
        n_ids = len(tok.encode(Path(path).read_text(encoding="utf-8")))
    seconds = time.perf_counter() - start
    result = {"ids": n_ids, "seconds": seconds, "rss_mb": peak_rss_mb() - before}
    if use_tracemalloc:
        result["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[5, 50], help="file sizes, MB"
    )
    parser.add_argument(
        "--whole-up-to",
        type=float,
        default=10,
        help="also encode files up to this size (MB) whole, for comparison",
    )
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.tracemalloc)))
        return

    print(
        f"{'file MB':>8}{'mode':>8}{'ids':>13}{'seconds':>9}{'MB/s':>7}{'peak RSS MB':>13}"
        + (f"{'Python peak MB':>16}" if args.tracemalloc else "")
    )
    with tempfile.TemporaryDirectory() as folder:
        tokenizer_path = Path(folder) / "tokenizer.json"
        save_tokenizer(tokenizer_path)
        for megabytes in args.sizes:
            path = Path(folder) / f"corpus_{megabytes:g}MB.txt"
            size = write_corpus(path, megabytes) / 1e6
            modes = ["stream"] + (["whole"] if megabytes <= args.whole_up_to else [])
            for mode in modes:
                command = [
                    sys.executable,
                    __file__,
                    "--measure",
                    mode,
                    str(path),
                    str(tokenizer_path),
                ]
                command += ["--tracemalloc"] * args.tracemalloc
                out = subprocess.run(
                    command, capture_output=True, text=True, check=True
                ).stdout
                r = json.loads(out)
                line = (
                    f"{size:>8.1f}{mode:>8}{r['ids']:>13,}{r['seconds']:>9.1f}"
                    f"{size / r['seconds']:>7.2f}{r['rss_mb']:>13.1f}"
                )
                if args.tracemalloc:
                    line += f"{r['python_peak_mb']:>16.1f}"
                print(line, flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
