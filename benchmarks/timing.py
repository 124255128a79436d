"""The timing options the benchmarks share: how many threads, and which clock.

Wall time is what a user waits for; on a machine that other jobs keep busy it also counts
the time a step waits for a core. ``--clock cpu`` counts only the CPU time of the thread
that computes (``time.thread_time``), which such a machine disturbs far less; it needs
``--threads 1``, since the other threads' work would not be counted.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads`` and ``--clock`` to a benchmark's command line."""
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: CPU time of the computing thread, which a busy machine "
        "disturbs far less than wall time (needs --threads 1)",
    )


def apply_timing_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Callable[[], float]:
    """Set torch's thread count and return the clock the options ask for."""
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1: it measures the main thread only")
    torch.set_num_threads(args.threads)
    return time.thread_time if args.clock == "cpu" else time.perf_counter
