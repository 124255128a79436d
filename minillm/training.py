"""Training utilities shared by every chapter: seeding, device choice, batching,
a training loop for any model whose forward returns ``(logits, loss)``, and a
loss-curve plot.

This is support code: the book explains the loop in chapter 1 and uses this
polished version afterwards (see the appendix "Support code").
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

__all__ = [
    "set_seed",
    "pick_device",
    "lm_batch",
    "History",
    "evaluate",
    "train",
    "plot_history",
]


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a ``torch.Generator`` seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(allow_mps: bool = False) -> torch.device:
    """Choose where to compute: ``$MINILLM_DEVICE`` if set, else CUDA if present, else CPU.

    Apple's MPS backend is used only with ``allow_mps=True`` (or ``MINILLM_DEVICE=mps``):
    some operations the book uses are missing or slower there, and CPU results are
    the reference the book's numbers were measured on.
    """
    forced = os.environ.get("MINILLM_DEVICE")
    if forced:
        device = torch.device(forced)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("MINILLM_DEVICE asks for CUDA, but torch.cuda.is_available() is False")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if allow_mps and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lm_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a language-modelling batch from a 1-D tensor of token ids.

    Returns ``(x, y)``, both of shape ``(batch_size, block_size)``, where ``y`` is
    ``x`` shifted one position to the left: ``y[b, t] == data[start_b + t + 1]``.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"batch_size and block_size must be >= 1, got {batch_size} and {block_size}")
    if len(data) < block_size + 1:
        raise ValueError(
            f"data has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = data[starts[:, None] + offsets]  # (B, block_size + 1)
    x, y = windows[:, :-1], windows[:, 1:]
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


@dataclass
class History:
    """What :func:`train` measured.

    Attributes:
        steps: optimizer step numbers (1-based) at which ``train_loss`` was recorded.
        train_loss: the training loss of each step.
        eval_steps: step numbers at which the model was evaluated.
        val_loss: the mean evaluation loss at each of ``eval_steps``.
        seconds: wall-clock time of the whole run.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_val_loss(self) -> float:
        if not self.val_loss:
            raise ValueError("this run was never evaluated (no eval_batches were given)")
        return self.val_loss[-1]


Batch = Any


def _call(model: nn.Module, batch: Batch, device: torch.device | None):
    if device is not None:
        batch = _to_device(batch, device)
    if isinstance(batch, Mapping):
        out = model(**batch)
    elif isinstance(batch, (tuple, list)):
        out = model(*batch)
    else:
        raise TypeError(
            f"a batch must be a tuple/list of positional inputs or a dict of keyword inputs, "
            f"got {type(batch).__name__}"
        )
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError("the model's forward must return a pair (logits, loss)")
    loss = out[1]
    if loss is None:
        raise ValueError("the model returned loss=None: pass targets in the batch")
    return loss


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], device: torch.device | None = None) -> float:
    """Mean loss of ``model`` over ``batches`` in eval mode (the training mode is restored)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in batches:
            total += float(_call(model, batch, device))
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got no batches")
    return total / count


def train(
    model: nn.Module,
    train_batches: Callable[[], Batch] | Iterable[Batch],
    *,
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    eval_batches: Callable[[], Iterable[Batch]] | None = None,
    eval_every: int = 100,
    grad_clip: float | None = 1.0,
    lr_schedule: Callable[[int], float] | None = None,
    device: torch.device | str | None = None,
    grad_accum: int = 1,
    autocast_dtype: torch.dtype | None = None,
    progress: bool | None = None,
    log: bool = True,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return its :class:`History`.

    Args:
        model: any module whose ``forward(*inputs)`` returns ``(logits, loss)``.
        train_batches: a function returning a fresh batch on each call, or an iterable
            of batches (cycled if it runs out). A batch is a tuple of positional
            inputs, e.g. ``(x, y)``, or a dict of keyword inputs.
        steps: number of optimizer steps.
        optimizer: defaults to ``AdamW(model.parameters(), lr=lr)``.
        eval_batches: a function returning an iterable of evaluation batches; the
            mean loss over them is recorded every ``eval_every`` steps and after the
            last step.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        lr_schedule: a function ``step -> factor`` multiplying each group's base
            learning rate (``step`` counts from 0).
        device: move the model and every batch here (default: leave them where they are).
        grad_accum: micro-batches per optimizer step. Their gradients are averaged, so with
            ``grad_accum=k`` a step sees k batches, as one batch k times larger would (at the
            memory cost of one). ``train_loss`` records the mean over the micro-batches.
        autocast_dtype: run the forward passes under ``torch.autocast`` with this dtype
            (``torch.bfloat16`` on CPU or CUDA, ``torch.float16`` on CUDA): mixed precision.
            Parameters, gradients and the optimizer stay in float32.
        progress: show a ``tqdm`` progress bar (it disappears when done). The default, None,
            shows it unless the environment variable ``MINILLM_PROGRESS`` is ``0`` (the book
            build sets it: a progress bar is useless in a static page).
        log: print one line per evaluation, which stays visible in the rendered book.

    Under ``torch.distributed`` (e.g. launched by ``torchrun`` with the model wrapped in
    ``DistributedDataParallel``) the loop runs unchanged on every process; only rank 0
    prints and shows a progress bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if device is not None:
        device = torch.device(device)
        model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    next_batch = _batch_source(train_batches)

    from tqdm.auto import tqdm

    history = History()
    start = time.perf_counter()
    model.train()
    if progress is None:
        progress = os.environ.get("MINILLM_PROGRESS", "1") != "0"
    if not _is_main_process():
        progress = log = False
    bar = tqdm(range(steps), disable=not progress, leave=False, desc="training")
    for step in bar:
        if lr_schedule is not None:
            factor = lr_schedule(step)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(grad_accum):
            with _autocast(autocast_dtype, device, model):
                loss = _call(model, next_batch(), device)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {step + 1}")
            (loss / grad_accum).backward()
            step_loss += loss.item() / grad_accum
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        history.steps.append(step + 1)
        history.train_loss.append(step_loss)
        last = step + 1 == steps
        if eval_batches is not None and ((step + 1) % eval_every == 0 or last):
            val = evaluate(model, eval_batches(), device)
            history.eval_steps.append(step + 1)
            history.val_loss.append(val)
            bar.set_postfix(val_loss=f"{val:.4f}")
            if log:
                recent = history.train_loss[-eval_every:]
                print(
                    f"step {step + 1:>6}  train loss {sum(recent) / len(recent):.4f}  "
                    f"val loss {val:.4f}  ({time.perf_counter() - start:.1f} s)"
                )
    bar.close()
    history.seconds = time.perf_counter() - start
    return history


def _is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _autocast(dtype: torch.dtype | None, device: torch.device | None, model: nn.Module):
    import contextlib

    if dtype is None:
        return contextlib.nullcontext()
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _batch_source(train_batches) -> Callable[[], Batch]:
    if callable(train_batches):
        return train_batches
    iterable = train_batches
    iterator: Iterator[Batch] = iter(iterable)

    def next_batch() -> Batch:
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(iterable)
            try:
                return next(iterator)
            except StopIteration:
                raise ValueError("train_batches is empty") from None

    return next_batch


def plot_history(
    history: History,
    *,
    baselines: Mapping[str, float] | None = None,
    smooth: int = 20,
    title: str = "Loss during training",
    ax=None,
):
    """Plot training loss (smoothed with a running mean of ``smooth`` steps), validation loss,
    and optional horizontal baselines (e.g. ``{"bigram (counts)": 2.45}``). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    if history.train_loss:
        losses = np.asarray(history.train_loss)
        k = max(1, min(smooth, len(losses)))
        running = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(history.steps[k - 1 :], running, label=f"train (mean of {k} steps)", lw=1.5)
    if history.val_loss:
        ax.plot(history.eval_steps, history.val_loss, "o-", label="validation", ms=4)
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{i + 2}", label=f"{name}: {value:.3f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
