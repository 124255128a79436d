"""minillm.training: seeding, devices, batches, the training loop, the plot helper."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from minillm.bigram import NeuralBigram
from minillm.training import History, evaluate, lm_batch, pick_device, plot_history, set_seed, train


def test_set_seed_makes_runs_repeatable():
    set_seed(5)
    a = torch.randn(3)
    g1 = set_seed(5)
    b = torch.randn(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.randint(100, (4,), generator=g1), torch.randint(100, (4,), generator=set_seed(5)))
    with pytest.raises(TypeError, match="seed must be an int"):
        set_seed(1.5)


def test_pick_device(monkeypatch):
    monkeypatch.delenv("MINILLM_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    monkeypatch.setenv("MINILLM_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("MINILLM_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="MINILLM_DEVICE asks for CUDA"):
            pick_device()


def test_lm_batch_targets_are_inputs_shifted_by_one():
    data = torch.arange(100)
    x, y = lm_batch(data, batch_size=4, block_size=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    assert int(y.max()) <= 99
    # every window can be drawn, including the last one
    starts = set()
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        xs, _ = lm_batch(torch.arange(11), 8, 10, generator=g)
        starts.update(xs[:, 0].tolist())
    assert starts == {0}
    with pytest.raises(ValueError, match="fewer than block_size \\+ 1"):
        lm_batch(torch.arange(5), 2, 5)
    with pytest.raises(ValueError, match="1-D"):
        lm_batch(torch.zeros(3, 3, dtype=torch.long), 1, 2)


def test_train_lowers_the_loss_and_records_history(capsys):
    set_seed(0)
    # a deterministic sequence 0,1,2,...,9,0,1,...: a bigram model can learn it perfectly
    data = torch.arange(1000) % 10
    model = NeuralBigram(10)
    g = torch.Generator().manual_seed(0)
    val = [lm_batch(data, 4, 16, generator=torch.Generator().manual_seed(9))]
    before = evaluate(model, val)
    history = train(model, lambda: lm_batch(data, 8, 16, generator=g), steps=120, lr=0.2,
                    eval_batches=lambda: val, eval_every=50, progress=False)
    assert history.steps == list(range(1, 121)) and len(history.train_loss) == 120
    assert history.eval_steps == [50, 100, 120]  # and always after the last step
    assert history.final_val_loss < 0.1 < before
    assert history.seconds > 0
    printed = capsys.readouterr().out
    assert printed.count("val loss") == 3


def test_train_accepts_iterables_and_dict_batches():
    class KwModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(3.0))

        def forward(self, inputs, targets):
            loss = ((self.w * inputs - targets) ** 2).mean()
            return None, loss

    model = KwModel()
    batches = [{"inputs": torch.ones(4), "targets": torch.full((4,), 2.0)}]
    history = train(model, batches, steps=200, lr=0.05, progress=False, log=False)
    assert abs(model.w.item() - 2.0) < 0.05
    with pytest.raises(ValueError, match="train_batches is empty"):
        train(model, [], steps=1, progress=False)


def test_grad_clip_bounds_each_step():
    model = nn.Linear(4, 1, bias=False)
    nn.init.zeros_(model.weight)

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return None, 1000.0 * self.inner(x).sum()  # a huge gradient

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    train(Wrapped(), [(torch.ones(2, 4),)], steps=1, optimizer=opt, grad_clip=0.5, progress=False)
    assert model.weight.norm().item() == pytest.approx(0.5, rel=1e-5)


def test_lr_schedule_and_errors():
    model = NeuralBigram(3)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.0  # learning rate 0: nothing moves

    before = model.logits_table.weight.clone()
    data = torch.tensor([0, 1, 2] * 10)
    train(model, lambda: lm_batch(data, 2, 4), steps=3, optimizer=opt, lr_schedule=schedule, progress=False)
    assert seen == [0, 1, 2] and torch.equal(before, model.logits_table.weight)
    with pytest.raises(ValueError, match="loss=None"):
        train(model, [(torch.zeros(1, 2, dtype=torch.long),)], steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train(model, [], steps=0)
    with pytest.raises(TypeError, match=r"\(logits, loss\)"):
        train(nn.Linear(1, 1), [(torch.zeros(1),)], steps=1, progress=False)


def test_nan_loss_stops_training():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return None, self.p.sum() * float("nan")

    with pytest.raises(FloatingPointError, match="at step 1"):
        train(Bad(), [(torch.zeros(1),)], steps=2, progress=False)


def test_evaluate_restores_mode():
    model = NeuralBigram(3)
    model.train()
    evaluate(model, [(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))])
    assert model.training
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, [])


def test_plot_history():
    h = History(steps=[1, 2, 3, 4], train_loss=[4.0, 3.0, 2.5, 2.4], eval_steps=[2, 4], val_loss=[3.1, 2.6])
    ax = plot_history(h, baselines={"bigram": 2.45}, smooth=2)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train (mean of 2 steps)", "validation", "bigram: 2.450"]
    assert ax.get_xlabel() == "optimizer step" and "nats" in ax.get_ylabel()
    with pytest.raises(ValueError, match="never evaluated"):
        History().final_val_loss


def test_progress_bar_follows_the_environment(monkeypatch, capsys):
    data = torch.arange(100) % 5
    monkeypatch.setenv("MINILLM_PROGRESS", "0")
    train(NeuralBigram(5), lambda: lm_batch(data, 2, 4), steps=3, log=False)
    assert "training" not in capsys.readouterr().err
    monkeypatch.setenv("MINILLM_PROGRESS", "1")
    train(NeuralBigram(5), lambda: lm_batch(data, 2, 4), steps=3, log=False)
    assert "training" in capsys.readouterr().err


def test_grad_accumulation_equals_one_big_batch():
    """Two micro-batches of 4 with grad_accum=2 take the same SGD step as one batch of 8."""
    data = torch.randint(7, (500,), generator=torch.Generator().manual_seed(0))
    x, y = lm_batch(data, 8, 5, generator=torch.Generator().manual_seed(1))
    halves = iter([(x[:4], y[:4]), (x[4:], y[4:])])

    torch.manual_seed(0)
    big = NeuralBigram(7)
    torch.manual_seed(0)
    small = NeuralBigram(7)
    h_big = train(big, [(x, y)], steps=1, optimizer=torch.optim.SGD(big.parameters(), lr=0.5), grad_clip=None, progress=False)
    h_small = train(small, lambda: next(halves), steps=1, grad_accum=2,
                    optimizer=torch.optim.SGD(small.parameters(), lr=0.5), grad_clip=None, progress=False)
    assert torch.allclose(big.logits_table.weight, small.logits_table.weight, atol=1e-6)
    assert h_big.train_loss[0] == pytest.approx(h_small.train_loss[0], rel=1e-5)
    with pytest.raises(ValueError, match="grad_accum"):
        train(big, [(x, y)], steps=1, grad_accum=0)


def test_bfloat16_autocast_on_cpu():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.seen = None

        def forward(self, x):
            out = self.lin(x)
            self.seen = out.dtype
            return out, out.float().pow(2).mean()

    model = Tiny()
    train(model, [(torch.randn(4, 8),)], steps=2, autocast_dtype=torch.bfloat16, progress=False)
    assert model.seen == torch.bfloat16 and model.lin.weight.dtype == torch.float32
