"""minillm.training: seeding, devices, batches, the training loop, the learning-rate
schedule, checkpoints, the plot helper."""

from __future__ import annotations

import json
import math
import pickle
import random
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from minillm.bigram import NeuralBigram
from minillm.gpt import GPT, GPTConfig
from minillm.training import (
    History,
    evaluate,
    latest_checkpoint,
    lm_batch,
    load_checkpoint,
    pick_device,
    plot_history,
    save_checkpoint,
    set_seed,
    train,
    warmup_cosine,
)


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


# --- the learning-rate schedule -------------------------------------------------------


def test_warmup_cosine_by_hand():
    f = warmup_cosine(10, 111, min_factor=0.1)  # cosine over steps 10..110 (100 intervals)
    assert f(0) == pytest.approx(0.1)  # first warm-up step: 1/10 of the peak
    assert f(4) == pytest.approx(0.5)
    assert f(9) == 1.0  # last warm-up step: the peak
    assert f(10) == 1.0  # the cosine starts at the peak
    assert f(35) == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(0.5)))  # a quarter: cos(pi/4)
    assert f(60) == pytest.approx(0.55)  # the midpoint: halfway between 1 and 0.1
    assert f(110) == 0.1  # step decay_steps - 1: the end
    assert f(111) == f(5000) == 0.1  # flat afterwards
    after = [f(s) for s in range(9, 200)]
    assert all(a >= b for a, b in zip(after, after[1:]))  # never rises after the warm-up
    # no warm-up: the first step is at the peak; min_factor 0 decays to zero
    g = warmup_cosine(0, 5, min_factor=0.0)
    assert [g(s) for s in range(7)] == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 0, 0, 0])
    # a decay of one step: the step after the warm-up is already the end
    assert [warmup_cosine(2, 3)(s) for s in range(4)] == [0.5, 1.0, 0.1, 0.1]


def test_warmup_cosine_matches_chapter_7s_schedule():
    warmup, steps = 100, 1500

    def chapter_7(step):  # the notebook's lr_factor
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - 1 - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    f = warmup_cosine(warmup, steps)
    assert all(f(s) == pytest.approx(chapter_7(s), abs=1e-12) for s in range(steps))


def test_warmup_cosine_errors_repr_and_pickle():
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 0, got -1"):
        warmup_cosine(-1, 10)
    with pytest.raises(ValueError, match="decay_steps must be an int >= 0"):
        warmup_cosine(0, -3)
    with pytest.raises(ValueError, match="decay_steps must be greater than warmup_steps"):
        warmup_cosine(10, 10)
    with pytest.raises(ValueError, match="min_factor must be a number in \\[0, 1\\], got 1.5"):
        warmup_cosine(1, 10, min_factor=1.5)
    with pytest.raises(ValueError, match="min_factor"):
        warmup_cosine(1, 10, min_factor=-0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(2.0, 10)
    f = warmup_cosine(100, 2000)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        f(-1)
    assert repr(f) == "warmup_cosine(warmup_steps=100, decay_steps=2000, min_factor=0.1)"
    g = pickle.loads(pickle.dumps(f))
    assert g == f and repr(g) == repr(f) and g(700) == f(700)


def test_schedule_base_rate_survives_a_second_call():
    model = NeuralBigram(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = torch.tensor([0, 1, 2] * 10)
    for _ in range(2):  # the second call starts again from the base rate, not from 0.05
        train(model, lambda: lm_batch(data, 2, 4), steps=3, optimizer=opt,
              lr_schedule=warmup_cosine(1, 3), progress=False, log=False)
        assert opt.param_groups[0]["initial_lr"] == 0.5
        assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


# --- checkpoints ----------------------------------------------------------------------

_TINY = GPTConfig(vocab_size=65, block_size=16, n_layers=2, n_heads=2, d_model=32, dropout=0.1)
_DATA = torch.randint(65, (3000,), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def one_thread():
    """One intra-op thread: a tiny model gains nothing from two, and loses much on a busy
    machine. (Bit-for-bit equality holds at any fixed thread count.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(seed):
    """A tiny GPT (dropout on, so the global RNG matters), AdamW and a batch generator."""
    torch.manual_seed(seed)
    model = GPT(_TINY)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed + 1)
    return model, opt, gen


def _run(model, opt, gen, **kwargs):
    kwargs = {"progress": False, "log": False, **kwargs}
    return train(model, lambda: lm_batch(_DATA, 4, 16, generator=gen), optimizer=opt,
                 lr_schedule=warmup_cosine(5, 20), **kwargs)


def _tied(model):
    """{name: first name} for parameters registered under several names."""
    first, tied = {}, {}
    for name, p in model.named_parameters(remove_duplicate=False):
        tied.update({name: first[id(p)]} if id(p) in first else {})
        first.setdefault(id(p), name)
    return tied


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_resumes_bit_for_bit(tmp_path, one_thread):
    model, opt, gen = _setup(0)
    full = _run(model, opt, gen, steps=20)

    first, opt1, gen1 = _setup(0)
    half = _run(first, opt1, gen1, steps=10)
    assert half.train_loss == full.train_loss[:10]
    save_checkpoint(tmp_path / "ckpt", first, opt1, step=10, generator=gen1, extra={"note": "hi"})
    random.random(), np.random.rand(), torch.rand(3)  # whatever happens in between...

    second, opt2, gen2 = _setup(123)  # ...and brand-new objects, seeded otherwise
    info = load_checkpoint(tmp_path / "ckpt", second, opt2, generator=gen2)
    assert info["step"] == 10 and info["extra"] == {"note": "hi"}
    rest = _run(second, opt2, gen2, steps=20, start_step=info["step"])
    assert rest.steps == list(range(11, 21))
    assert rest.train_loss == full.train_loss[10:]  # bit for bit, not approximately
    _assert_same_state(second, model)
    assert _tied(second) == _tied(model) != {}  # still tied after loading
    for group in opt2.state_dict()["state"].values():
        assert group["step"] == 20


def test_checkpoint_restores_the_global_random_states(tmp_path):
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c", model, step=0)
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    load_checkpoint(tmp_path / "c", model)
    got = (random.random(), float(np.random.rand()), torch.rand(2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_train_resumes_from_the_latest_checkpoint(tmp_path, capsys, one_thread):
    model, opt, gen = _setup(0)
    full = _run(model, opt, gen, steps=20)

    # an interrupted run: checkpoints at steps 5 and 10, then a crash during step 13
    first, opt1, gen1 = _setup(0)
    calls = 0

    def crashing():
        nonlocal calls
        calls += 1
        if calls == 13:
            raise KeyboardInterrupt
        return lm_batch(_DATA, 4, 16, generator=gen1)

    with pytest.raises(KeyboardInterrupt):
        train(first, crashing, optimizer=opt1, steps=20, lr_schedule=warmup_cosine(5, 20),
              checkpoint_dir=tmp_path, checkpoint_every=5, generator=gen1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000005", "step-000010"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000010"

    # the same call again, in a fresh process (new objects): it finishes the run
    second, opt2, gen2 = _setup(7)
    history = _run(second, opt2, gen2, steps=20, checkpoint_dir=tmp_path, checkpoint_every=5,
                   generator=gen2, resume=True, log=True)
    assert "resumed from" in capsys.readouterr().out
    assert history.steps == list(range(1, 21))  # the whole run's history
    assert history.train_loss == full.train_loss
    _assert_same_state(second, model)
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000020"
    meta = json.loads((tmp_path / "step-000020" / "meta.json").read_text())
    assert meta["step"] == 20 and meta["model"] == "GPT"

    # once more: nothing left to do; the history is the finished run's
    third, opt3, gen3 = _setup(8)
    again = _run(third, opt3, gen3, steps=20, checkpoint_dir=tmp_path, generator=gen3,
                 resume=True)
    assert again.train_loss == full.train_loss
    _assert_same_state(third, model)

    # resume with an empty folder starts from scratch
    fresh, opt4, gen4 = _setup(0)
    h = _run(fresh, opt4, gen4, steps=3, checkpoint_dir=tmp_path / "new", resume=True,
             generator=gen4)
    assert h.train_loss == full.train_loss[:3] and latest_checkpoint(tmp_path / "new")


def test_train_checkpoint_arguments_are_checked(tmp_path):
    model = NeuralBigram(3)
    data = torch.tensor([0, 1, 2] * 10)
    batches = lambda: lm_batch(data, 2, 4)  # noqa: E731
    with pytest.raises(ValueError, match="need a checkpoint_dir"):
        train(model, batches, steps=2, resume=True)
    with pytest.raises(ValueError, match="need a checkpoint_dir"):
        train(model, batches, steps=2, checkpoint_every=1)
    with pytest.raises(ValueError, match="checkpoint_every must be an int >= 1"):
        train(model, batches, steps=2, checkpoint_dir=tmp_path, checkpoint_every=0)
    with pytest.raises(ValueError, match="start_step \\(5\\) must be less than steps \\(5\\)"):
        train(model, batches, steps=5, start_step=5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        train(model, batches, steps=2, generator=3)


def test_tied_weights_are_stored_once(tmp_path):
    from safetensors import safe_open

    torch.manual_seed(0)
    model = GPT(_TINY)
    save_checkpoint(tmp_path / "c", model, step=3)
    tied = _tied(model)  # GPT ties its output layer to the token embeddings
    assert len(tied) == 1
    with safe_open(str(tmp_path / "c" / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert names == set(model.state_dict()) - set(tied)  # the tied matrix is stored once
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta["tied"] == tied
    assert meta["parameters"] == {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "meta.json", "model.safetensors", "training_state.pt"]


def test_a_model_without_tied_weights(tmp_path):
    class Untied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 4)
            self.head = nn.Linear(4, 7, bias=False)
            self.register_buffer("scale", torch.tensor(2.0))

        def forward(self, x, y):
            logits = self.head(self.emb(x)) * self.scale
            return logits, nn.functional.cross_entropy(logits.view(-1, 7), y.view(-1))

    torch.manual_seed(0)
    a = Untied()
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    train(a, [(torch.tensor([[1, 2]]), torch.tensor([[2, 3]]))], steps=2, optimizer=opt,
          progress=False, log=False)
    save_checkpoint(tmp_path / "u", a, opt, step=2,
                    extra={"config": {"vocab": 7, "dims": (4,)}, "t": torch.arange(3)})
    torch.manual_seed(1)
    b = Untied()
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    info = load_checkpoint(tmp_path / "u", b, opt_b)
    _assert_same_state(a, b)
    assert info["extra"]["config"] == {"vocab": 7, "dims": (4,)}
    assert torch.equal(info["extra"]["t"], torch.arange(3))
    assert torch.equal(opt_b.state_dict()["state"][0]["momentum_buffer"],
                       opt.state_dict()["state"][0]["momentum_buffer"])
    assert json.loads((tmp_path / "u" / "meta.json").read_text())["tied"] == {}


def test_loading_into_another_model_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c", GPT(_TINY), step=1)
    wider = GPT(GPTConfig(vocab_size=65, block_size=16, n_layers=2, n_heads=2, d_model=48))
    name, shape = next((k, tuple(v.shape)) for k, v in wider.state_dict().items() if 48 in v.shape)
    theirs = tuple(32 if n == 48 else n for n in shape)
    with pytest.raises(ValueError, match=re.escape(f"{name!r} has shape {theirs} in the checkpoint "
                                                   f"but {shape} in the model")):
        load_checkpoint(tmp_path / "c", wider)
    deeper = GPT(GPTConfig(vocab_size=65, block_size=16, n_layers=3, n_heads=2, d_model=32))
    new = [k for k in deeper.state_dict() if k not in GPT(_TINY).state_dict()]
    with pytest.raises(ValueError, match=re.escape(f"missing from the checkpoint: {new[0]!r}, ")):
        load_checkpoint(tmp_path / "c", deeper)
    bigram = NeuralBigram(65)
    before = bigram.logits_table.weight.detach().clone()
    with pytest.raises(ValueError, match=r"does not fit this NeuralBigram.*missing from the "
                                         r"checkpoint: 'logits_table.weight'; in the checkpoint "
                                         r"but not in the model: '.* and \d+ more"):
        load_checkpoint(tmp_path / "c", bigram)
    assert torch.equal(bigram.logits_table.weight, before)  # nothing was changed


def test_optimizer_and_generator_checks(tmp_path):
    torch.manual_seed(0)
    model = GPT(_TINY)
    save_checkpoint(tmp_path / "c", model, step=1)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "c", model, torch.optim.AdamW(model.parameters()))
    with pytest.raises(ValueError, match="holds no generator state"):
        load_checkpoint(tmp_path / "c", model, generator=torch.Generator())
    two_groups = torch.optim.AdamW([{"params": [model.wte.weight]},
                                    {"params": list(model.blocks.parameters())}])
    save_checkpoint(tmp_path / "d", model, two_groups, step=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="the optimizer does not fit"):
        load_checkpoint(tmp_path / "d", model, torch.optim.AdamW(model.parameters()),
                        generator=torch.Generator())
    with pytest.warns(UserWarning, match="no generator was given"):
        load_checkpoint(tmp_path / "d", model)
    with pytest.raises(TypeError, match=r"extra\['f'\] is a function"):
        save_checkpoint(tmp_path / "e", model, step=1, extra={"f": lambda: 0})
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        save_checkpoint(tmp_path / "e", model, step=-1)
    assert not (tmp_path / "e").exists()


def test_missing_checkpoint_files(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nowhere.*model.safetensors"):
        load_checkpoint(tmp_path / "nowhere", model)
    save_checkpoint(tmp_path / "c", model, step=0)
    (tmp_path / "c" / "training_state.pt").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete: training_state.pt is missing"):
        load_checkpoint(tmp_path / "c", model)
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_an_interrupted_save_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(3, 3)
    save_checkpoint(tmp_path / "c", model, step=1)  # an earlier checkpoint at the same path

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # fails after model.safetensors is written
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "c", model, step=2)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "new", model, step=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary folder left
    assert load_checkpoint(tmp_path / "c", model)["step"] == 1  # the old one is intact
    save_checkpoint(tmp_path / "c", model, step=2)  # a good save replaces it
    assert load_checkpoint(tmp_path / "c", model)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    (tmp_path / "file").write_text("not a checkpoint")
    with pytest.raises(FileExistsError, match="not a checkpoint"):
        save_checkpoint(tmp_path / "file", model, step=0)
