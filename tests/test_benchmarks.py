"""The speed benchmarks run and print their figures (the figures themselves are not tested:
they depend on the machine and on its load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _run(root, *args: str) -> str:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True,
                          cwd=root).stdout


def test_gpt_speed_runs(root, data_dir):
    out = _run(root, "benchmarks/gpt_speed.py", "--sizes", "a", "--steps-a", "2", "--chunk-a", "1",
               "--warmup", "1", "--threads", "1")
    assert "loss on one batch" in out  # the three models were checked to compute one function
    for name in ("minillm GPT", "nanoGPT-style reference", "HF GPT2LMHeadModel"):
        assert name in out
    assert "throughput minillm / nanoGPT-style reference" in out
    assert "throughput minillm / HF GPT2LMHeadModel" in out


def test_gpt_speed_breakdown_counts_the_parameter_tensors(root, data_dir):
    out = _run(root, "benchmarks/gpt_speed.py", "--sizes", "a", "--breakdown", "1",
               "--threads", "1", "--foreach")
    assert "where a step's time goes" in out
    rows = {line.split()[1]: line.split() for line in out.splitlines()
            if line.startswith(("minillm GPT", "nanoGPT-style"))}
    # the same parameter tensors, q, k and v stacked in one layer in both: per block 2 norms, qkv,
    # out, fc1 and fc2, a weight and a bias each; then the token and position tables, the final norm
    assert int(rows["GPT"][2]) == int(rows["reference"][2]) == 4 * 12 + 4
    for row in rows.values():
        forward, backward, update, step = map(float, row[-4:])
        assert min(forward, backward, update) > 0
        assert step == pytest.approx(forward + backward + update, abs=0.02)


def test_kv_cache_benchmark_runs(root):
    out = _run(root, "benchmarks/kv_cache.py", "--shapes", "ch7", "--new-tokens", "4",
               "--repeats", "1", "--threads", "1")
    assert "with cache" in out and "without cache" in out and "speed-up of the cache" in out
    assert "ms/token" in out
