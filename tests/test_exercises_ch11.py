"""Chapter 11's exercise checkers: the reference solutions and the package's own functions pass,
and each typical wrong answer gets the hint written for it (not just "wrong")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from minillm.exercises import ch11
from exercise_helpers import _hint


def reply_targets_ok(ids, is_reply):
    return [i if keep else -100 for i, keep in zip(ids[1:], is_reply[1:])]


def dpo_ok(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


def advantages_ok(rewards):
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)


def bpb_ok(loss, n_tokens, n_bytes):
    return loss * n_tokens / n_bytes / math.log(2)


def test_correct_answers_pass(capsys):
    ch11.check_reply_targets(reply_targets_ok)
    ch11.check_dpo(dpo_ok)
    ch11.check_advantages(advantages_ok)
    ch11.check_bpb(bpb_ok)
    assert capsys.readouterr().out.count("Correct:") == 4


def test_library_code_passes_as_answers():
    from minillm.posttrain import dpo_loss, group_advantages, sft_example

    ch11.check_reply_targets(lambda ids, r: sft_example(ids, r)[1].tolist())
    ch11.check_dpo(lambda pc, pr, rc, rr, b: dpo_loss(pc, pr, rc, rr, b))
    ch11.check_advantages(group_advantages)


def test_wrong_reply_targets_get_their_hints():
    assert "is_reply[t + 1]" in _hint(
        ch11.check_reply_targets,
        lambda ids, r: [i if k else -100 for i, k in zip(ids[1:], r[:-1])])
    assert "shifted left" in _hint(
        ch11.check_reply_targets, lambda ids, r: [i if k else -100 for i, k in zip(ids, r)])
    assert "not the reverse" in _hint(
        ch11.check_reply_targets,
        lambda ids, r: [i if not k else -100 for i, k in zip(ids[1:], r[1:])])
    assert "not 0" in _hint(
        ch11.check_reply_targets, lambda ids, r: [i if k else 0 for i, k in zip(ids[1:], r[1:])])


def test_wrong_dpo_gets_its_hints():
    margin = lambda pc, pr, rc, rr: (pc - rc) - (pr - rr)  # noqa: E731
    assert "mean" in _hint(ch11.check_dpo,
                           lambda pc, pr, rc, rr, b: -F.logsigmoid(b * margin(pc, pr, rc, rr)).sum())
    assert "chosen answer's log-ratio comes first" in _hint(
        ch11.check_dpo, lambda pc, pr, rc, rr, b: -F.logsigmoid(-b * margin(pc, pr, rc, rr)).mean())
    assert "reference" in _hint(ch11.check_dpo,
                                lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean())
    assert "beta" in _hint(ch11.check_dpo,
                           lambda pc, pr, rc, rr, b: -F.logsigmoid(margin(pc, pr, rc, rr)).mean())
    assert "logsigmoid" in _hint(
        ch11.check_dpo,
        lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * margin(pc, pr, rc, rr))).mean())


def test_wrong_advantages_get_their_hints():
    assert "each row" in _hint(ch11.check_advantages, lambda r: (r - r.mean()) / (r.std() + 1e-4))
    assert "unbiased" in _hint(
        ch11.check_advantages,
        lambda r: (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=False) + 1e-4))
    assert "standard deviation" in _hint(ch11.check_advantages,
                                         lambda r: r - r.mean(1, keepdim=True))


def test_wrong_bpb_gets_its_hints():
    assert "ln 2" in _hint(ch11.check_bpb, lambda l, t, b: l * t / b)
    assert "per byte" in _hint(ch11.check_bpb, lambda l, t, b: l / math.log(2))
    assert "do not multiply" in _hint(ch11.check_bpb, lambda l, t, b: l * t / b * math.log(2))
