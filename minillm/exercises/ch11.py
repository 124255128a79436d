"""Checkers for the exercises of chapter 11 (notebooks/11_post_training.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import Mistake, compare, passed

__all__ = ["check_reply_targets", "check_dpo", "check_advantages", "check_bpb"]


# --- Exercise 11.1: targets for the reply only -------------------------------------------

def _reply_targets(ids, is_reply):
    return [i if keep else -100 for i, keep in zip(ids[1:], is_reply[1:])]


def check_reply_targets(reply_targets: Callable, n_cases: int = 12) -> None:
    """Check ``reply_targets(ids, is_reply) -> list`` of length ``len(ids) - 1``."""
    g = torch.Generator().manual_seed(1101)
    cases = [([256, 51, 258, 257, 56, 258], [False, False, False, False, True, True])]
    for i in range(n_cases - 1):
        n = 3 + i
        ids = torch.randint(0, 259, (n,), generator=g).tolist()
        split = 1 + i % (n - 1)
        is_reply = [False] * split + [True] * (n - split)
        if i % 3 == 2:  # a second user turn after the reply
            is_reply = is_reply[: n // 2] + [False] * (n - n // 2 - 1) + [True]
        cases.append((ids, is_reply))

    mistakes = [
        Mistake(lambda ids, r: [i if k else -100 for i, k in zip(ids[1:], r[:-1])],
                "the target of position t is token t + 1, so use is_reply[t + 1], "
                "the mark of the token being predicted, not is_reply[t]."),
        Mistake(lambda ids, r: [i if k else -100 for i, k in zip(ids, r)],
                "the targets are the ids shifted left by one: position t predicts ids[t + 1], "
                "and there are len(ids) - 1 of them."),
        Mistake(lambda ids, r: [i if not k else -100 for i, k in zip(ids[1:], r[1:])],
                "keep the reply tokens and ignore (-100) the others, not the reverse."),
        Mistake(lambda ids, r: [i if k else 0 for i, k in zip(ids[1:], r[1:])],
                "an ignored target is -100 (F.cross_entropy's ignore_index), not 0, which is a "
                "real token id."),
    ]
    n = compare("reply_targets", reply_targets, _reply_targets, cases, mistakes, atol=0, rtol=0)
    passed("reply_targets", n)


# --- Exercise 11.2: the DPO loss ---------------------------------------------------------

def _dpo(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


def check_dpo(dpo: Callable, n_cases: int = 12) -> None:
    """Check ``dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)``."""
    g = torch.Generator().manual_seed(1102)
    z = torch.zeros(3, dtype=torch.float64)
    cases = [(z - 1, z - 2, z - 1, z - 2, 0.1)]  # policy = reference: ln 2
    for i in range(n_cases - 2):
        b = 1 + i % 4
        logps = [-torch.rand(b, generator=g, dtype=torch.float64) * 20 for _ in range(4)]
        cases.append((*logps, (0.05, 0.1, 0.5, 2.0)[i % 4]))
    far = -torch.tensor([1.0, 1000.0], dtype=torch.float64)  # a large margin: needs stability
    cases.append((far, far.flip(0), z[:2] - 5, z[:2] - 5, 1.0))

    mistakes = [
        Mistake(lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum(),
                "average the loss over the batch (mean), do not sum it."),
        Mistake(lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pr - rr) - (pc - rc))).mean(),
                "the chosen answer's log-ratio comes first: the loss falls as the chosen "
                "answer gains probability relative to the rejected one."),
        Mistake(lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(),
                "subtract the reference's log-probabilities: the implicit reward is "
                "log(pi / pi_ref), not log pi."),
        Mistake(lambda pc, pr, rc, rr, b: -F.logsigmoid((pc - rc) - (pr - rr)).mean(),
                "multiply the margin by beta before the sigmoid."),
        Mistake(lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean(),
                "log(sigmoid(x)) overflows to -inf for very negative x; use F.logsigmoid, which "
                "computes the same value stably."),
    ]
    n = compare("dpo", dpo, _dpo, cases, mistakes, atol=1e-9)
    passed("dpo", n)


# --- Exercise 11.3: group advantages -----------------------------------------------------

def _advantages(rewards, eps=1e-4):
    mean = rewards.mean(dim=1, keepdim=True)
    return (rewards - mean) / (rewards.std(dim=1, keepdim=True) + eps)


def check_advantages(advantages: Callable, n_cases: int = 10) -> None:
    """Check ``advantages(rewards (n_groups, G)) -> (n_groups, G)``."""
    g = torch.Generator().manual_seed(1103)
    cases = [(torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64),),
             (torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64),)]
    for i in range(n_cases - 2):
        rows, G = 1 + i % 3, 2 + i % 5
        r = (torch.rand(rows, G, generator=g) < 0.5).double() if i % 2 else \
            torch.randn(rows, G, generator=g, dtype=torch.float64)
        cases.append((r,))

    mistakes = [
        Mistake(lambda r: (r - r.mean()) / (r.std() + 1e-4),
                "normalise within each group (each row, dim=1), not over the whole batch."),
        Mistake(lambda r: (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=False) + 1e-4),
                "use the unbiased standard deviation (torch.std's default, dividing by G - 1)."),
        Mistake(lambda r: r - r.mean(1, keepdim=True),
                "divide by the group's standard deviation (plus 1e-4) after subtracting its mean."),
        Mistake(lambda r: (r - r.mean(0, keepdim=True)) / (r.std(0, keepdim=True) + 1e-4),
                "a group is a row (one prompt's G answers): reduce over dim=1, not dim=0."),
    ]
    n = compare("advantages", advantages, _advantages, cases, mistakes, atol=1e-9)
    passed("advantages", n)


# --- Exercise 11.4: bits per byte from a loss --------------------------------------------

def _bpb(loss, n_tokens, n_bytes):
    return loss * n_tokens / n_bytes / math.log(2)


def check_bpb(bits_per_byte_from: Callable, n_cases: int = 10) -> None:
    """Check ``bits_per_byte_from(loss, n_tokens, n_bytes) -> float``."""
    cases = [(math.log(2), 100, 100), (3.3, 1000, 4000)]
    for i in range(n_cases - 2):
        cases.append((0.5 + 0.7 * i, 50 + 37 * i, 60 + 91 * i))
    mistakes = [
        Mistake(lambda l, t, b: l * t / b, "the loss is in nats: divide by ln 2 to get bits."),
        Mistake(lambda l, t, b: l / math.log(2), "convert per token to per byte: multiply by the "
                "number of tokens and divide by the number of bytes."),
        Mistake(lambda l, t, b: l * b / t / math.log(2), "per byte means the total bits divided by "
                "the bytes: loss * n_tokens / n_bytes, not n_bytes / n_tokens."),
        Mistake(lambda l, t, b: l * t / b * math.log(2), "to turn nats into bits, divide by ln 2 "
                "(one bit is ln 2 nats), do not multiply."),
    ]
    n = compare("bits_per_byte_from", bits_per_byte_from, _bpb, cases, mistakes, atol=1e-9)
    passed("bits_per_byte_from", n)
