"""Training utilities shared by every chapter: seeding, device choice, batching,
a training loop for any model whose forward returns ``(logits, loss)``, the
learning-rate schedule, checkpoints that resume a run bit for bit, and a
loss-curve plot.

This is support code: the book explains the loop in chapter 1 and uses this
polished version afterwards (see the appendix "Support code").
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    "warmup_cosine",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
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
            raise RuntimeError(
                "MINILLM_DEVICE asks for CUDA, but torch.cuda.is_available() is False"
            )
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
        raise ValueError(
            f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}"
        )
    if block_size < 1 or batch_size < 1:
        raise ValueError(
            f"batch_size and block_size must be >= 1, got {batch_size} and {block_size}"
        )
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
            raise ValueError(
                "this run was never evaluated (no eval_batches were given)"
            )
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
def evaluate(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | None = None
) -> float:
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


class _WarmupCosine:
    """The schedule :func:`warmup_cosine` returns: a picklable ``step -> factor``."""

    __slots__ = ("warmup_steps", "decay_steps", "min_factor")

    def __init__(self, warmup_steps: int, decay_steps: int, min_factor: float):
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.min_factor = min_factor

    def __repr__(self) -> str:
        return (
            f"warmup_cosine(warmup_steps={self.warmup_steps}, "
            f"decay_steps={self.decay_steps}, min_factor={self.min_factor})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _WarmupCosine) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __getstate__(self):
        return (self.warmup_steps, self.decay_steps, self.min_factor)

    def __setstate__(self, state) -> None:
        self.warmup_steps, self.decay_steps, self.min_factor = state

    def __call__(self, step: int) -> float:
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be an int >= 0 (the first is 0), got {step!r}")
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        last = self.decay_steps - 1  # the step at which the factor reaches min_factor
        if step >= last:
            return self.min_factor  # flat after the decay: a longer run never raises it
        progress = (step - self.warmup_steps) / (last - self.warmup_steps)  # in [0, 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # from 1 down towards 0
        return self.min_factor + (1.0 - self.min_factor) * cosine


def warmup_cosine(
    warmup_steps: int, decay_steps: int, min_factor: float = 0.1
) -> Callable[[int], float]:
    """The learning-rate schedule of the book: linear warm-up, cosine decay, then flat.

    Returns ``factor(step)``, the number :func:`train` multiplies each base learning
    rate by at ``step`` (counted from 0, as ``train(lr_schedule=...)`` passes it):

    - warm-up, ``step < warmup_steps``: ``(step + 1) / warmup_steps``, so the first
      step uses ``1 / warmup_steps`` of the peak, step ``warmup_steps - 1`` the peak;
    - cosine, ``warmup_steps <= step <= decay_steps - 1``: with ``progress =
      (step - warmup_steps) / (decay_steps - 1 - warmup_steps)``, the factor is
      ``min_factor + (1 - min_factor) * (1 + cos(pi * progress)) / 2``: 1 at step
      ``warmup_steps``, ``min_factor`` at step ``decay_steps - 1``, the last step of
      a run of ``decay_steps`` steps (when ``decay_steps == warmup_steps + 1`` that
      step is both, and gets ``min_factor``);
    - flat, ``step >= decay_steps - 1``: ``min_factor``, so a run that trains longer
      than planned never raises the learning rate again.

    ``warmup_steps=0`` starts the cosine at the peak. ``warmup_cosine(100, 2000)`` is
    the schedule of a 2,000-step run with 100 warm-up steps, ending at a tenth of the
    peak. The result is a small picklable object whose ``repr`` shows its arguments.
    """
    for name, value in (("warmup_steps", warmup_steps), ("decay_steps", decay_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"decay_steps must be greater than warmup_steps (the decay ends after the "
            f"warm-up), got warmup_steps={warmup_steps}, decay_steps={decay_steps}"
        )
    if (
        isinstance(min_factor, bool)
        or not isinstance(min_factor, (int, float))
        or not 0.0 <= min_factor <= 1.0
    ):
        raise ValueError(f"min_factor must be a number in [0, 1], got {min_factor!r}")
    return _WarmupCosine(warmup_steps, decay_steps, float(min_factor))


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
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    generator: torch.Generator | None = None,
    start_step: int = 0,
) -> History:
    """Train ``model`` up to optimizer step ``steps`` and return its :class:`History`.

    Args:
        model: any module whose ``forward(*inputs)`` returns ``(logits, loss)``.
        train_batches: a function returning a fresh batch on each call, or an iterable
            of batches (cycled if it runs out). A batch is a tuple of positional
            inputs, e.g. ``(x, y)``, or a dict of keyword inputs.
        steps: the number of the last optimizer step: a run that starts from scratch
            takes ``steps`` steps, one resumed at step k takes ``steps - k``.
        optimizer: defaults to ``AdamW(model.parameters(), lr=lr)``.
        eval_batches: a function returning an iterable of evaluation batches; the
            mean loss over them is recorded every ``eval_every`` steps and after the
            last step.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        lr_schedule: a function ``step -> factor`` multiplying each group's base
            learning rate (``step`` counts from 0), e.g. :func:`warmup_cosine`. The
            base rate is the group's ``lr`` when it first meets a schedule, kept in the
            group as ``initial_lr`` (the key PyTorch's own schedulers use), so that it
            survives a checkpoint and a second call to ``train``.
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
        checkpoint_dir: save a checkpoint (:func:`save_checkpoint`) into the folder
            ``checkpoint_dir/step-N`` every ``checkpoint_every`` steps and after the
            last step. Each holds the model, the optimizer, the random states,
            ``generator`` and the history so far.
        checkpoint_every: steps between checkpoints (None: only after the last step).
        resume: continue from the latest checkpoint in ``checkpoint_dir``
            (:func:`latest_checkpoint`), if there is one; else start from scratch. So
            the same call, run again after an interruption, finishes the run, and its
            losses are those of the uninterrupted run, bit for bit (on the same machine
            and software). The returned history then covers the whole run.
        generator: the ``torch.Generator`` that ``train_batches`` draws with, e.g.
            ``lambda: lm_batch(data, 32, 64, generator=g)``: checkpoints save its state
            and ``resume`` restores it. Batches drawn with torch's global generator
            need nothing: checkpoints save that one anyway. (An iterable of batches
            restarts from its beginning on resume.)
        start_step: the number of steps already taken, for a model and optimizer
            restored by hand with :func:`load_checkpoint`: the schedule continues at
            this step and the history counts from ``start_step + 1``. ``resume`` sets
            it from the checkpoint.

    Under ``torch.distributed`` (e.g. launched by ``torchrun`` with the model wrapped in
    ``DistributedDataParallel``) the loop runs unchanged on every process; only rank 0
    prints, shows a progress bar and saves checkpoints (with its own random states).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if type(start_step) is not int or start_step < 0:
        raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
    if start_step >= steps:
        raise ValueError(
            f"start_step ({start_step}) must be less than steps ({steps}), the number "
            "of the last step: there is nothing left to train"
        )
    if checkpoint_dir is None and (checkpoint_every is not None or resume):
        raise ValueError("checkpoint_every and resume need a checkpoint_dir")
    if checkpoint_every is not None and (
        not isinstance(checkpoint_every, int) or checkpoint_every < 1
    ):
        raise ValueError(
            f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}"
        )
    _check_type("generator", generator, torch.Generator)
    if device is not None:
        device = torch.device(device)
        model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    next_batch = _batch_source(train_batches)

    from tqdm.auto import tqdm

    history = History()
    if not _is_main_process():
        progress = log = False
    if resume and (found := latest_checkpoint(checkpoint_dir)) is not None:
        if start_step:
            raise ValueError("pass start_step or resume=True, not both")
        restored = load_checkpoint(found, model, optimizer, generator=generator)
        start_step = restored["step"]
        saved = (restored["extra"] or {}).get("history")
        if saved is not None:
            history = History(**saved)
        if log:
            print(f"resumed from {found} (step {start_step})")
        if start_step >= steps:
            return history
    base_lrs = [
        group.setdefault("initial_lr", group["lr"])
        if lr_schedule is not None
        else group["lr"]
        for group in optimizer.param_groups
    ]
    start = time.perf_counter() - history.seconds
    model.train()
    if progress is None:
        progress = os.environ.get("MINILLM_PROGRESS", "1") != "0"
    bar = tqdm(
        range(start_step, steps), disable=not progress, leave=False, desc="training"
    )
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
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step + 1}"
                )
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
        every = checkpoint_every or steps
        due = last or (step + 1) % every == 0
        if checkpoint_dir is not None and due and _is_main_process():
            history.seconds = time.perf_counter() - start
            folder = Path(checkpoint_dir) / f"step-{step + 1:06d}"
            save_checkpoint(
                folder,
                model,
                optimizer,
                step=step + 1,
                generator=generator,
                extra={"history": asdict(history)},
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


# --- checkpoints -----------------------------------------------------------------

_WEIGHTS_FILE = "model.safetensors"
_STATE_FILE = "training_state.pt"
_META_FILE = "meta.json"
_CHECKPOINT_FILES = (_WEIGHTS_FILE, _STATE_FILE, _META_FILE)
_FORMAT_VERSION = 1
_STEP_FOLDER = re.compile(r"step-(\d+)")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int,
    generator: torch.Generator | None = None,
    extra: dict | None = None,
) -> Path:
    """Save all that a run needs to continue where it stopped; return the folder.

    Writes the folder ``path`` with three files:

    - ``model.safetensors``: the model's state dict (weights and buffers) in the
      ``safetensors`` format. A tensor shared by several names (GPT's ``lm_head.weight``
      is ``wte.weight``) is stored once, under its first name; the file's metadata
      records the other names.
    - ``training_state.pt``: ``step``, the optimizer's state dict, the random number
      generators' states (Python's ``random``, NumPy's global generator, torch's CPU
      generator, every CUDA device's generator if CUDA is available), the state of
      ``generator`` (e.g. the one :func:`lm_batch` draws batches with) and ``extra``.
    - ``meta.json``: the step, the minillm and torch versions, the model's class and the
      name and shape of every tensor in its state dict, readable without Python.

    ``extra`` holds anything else to keep (a config, a token count...): plain Python
    values (None, bool, int, float, str, and lists, tuples and str-keyed dicts of them)
    and tensors, which :func:`load_checkpoint` reads back without unpickling code.

    The files are written into a hidden temporary folder next to ``path``, renamed to
    ``path`` only once they are complete, so an interrupted save never leaves a half
    checkpoint (an earlier checkpoint at ``path`` is replaced only then).
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    _check_type("model", model, nn.Module, optional=False)
    _check_type("optimizer", optimizer, torch.optim.Optimizer)
    _check_type("generator", generator, torch.Generator)
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        _check_plain(extra, "extra")
    from safetensors.torch import save_file

    import minillm

    path = Path(path)
    _check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _weights_to_save(model)
    state = {
        "format_version": _FORMAT_VERSION,
        "step": step,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "rng": _rng_state(),
        "generator": None if generator is None else generator.get_state(),
        "extra": extra,
    }
    meta = {
        "format": "minillm checkpoint",
        "format_version": _FORMAT_VERSION,
        "step": step,
        "minillm_version": minillm.__version__,
        "torch_version": torch.__version__,
        "model": type(_unwrap(model)).__name__,
        "parameters": {
            name: list(t.shape) for name, t in _unwrap(model).state_dict().items()
        },
        "tied": aliases,
        "has_optimizer": optimizer is not None,
        "has_generator": generator is not None,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        save_file(
            tensors,
            tmp / _WEIGHTS_FILE,
            metadata={"format": "pt", "minillm.tied": json.dumps(aliases)},
        )
        torch.save(state, tmp / _STATE_FILE)
        (tmp / _META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        for name in _CHECKPOINT_FILES:
            _fsync(tmp / name)
        _move_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    generator: torch.Generator | None = None,
) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint`; return what it says.

    Loads the weights into ``model``, the optimizer's state into ``optimizer`` (if
    given), the saved batch generator's state into ``generator`` (if given), and the
    global random number generators (Python, NumPy, torch CPU, CUDA), so that training
    continues as if it had never stopped. Everything is checked before anything is
    changed: a checkpoint of a model of another architecture or size is a
    ``ValueError`` that names the first tensor whose shape differs and the names
    missing on either side.

    Returns ``{"step": int, "extra": dict | None, "path": Path}``.
    """
    _check_type("model", model, nn.Module, optional=False)
    _check_type("optimizer", optimizer, torch.optim.Optimizer)
    _check_type("generator", generator, torch.Generator)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"no checkpoint at {path}: expected a folder written by save_checkpoint, "
            f"holding {', '.join(_CHECKPOINT_FILES)}"
        )
    for name in _CHECKPOINT_FILES:
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"the checkpoint {path} is incomplete: {name} is missing"
            )
    state = torch.load(path / _STATE_FILE, map_location="cpu", weights_only=True)
    if state.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{path / _STATE_FILE} has format version {state.get('format_version')!r}; "
            f"this minillm reads version {_FORMAT_VERSION}"
        )
    weights = _read_weights(path / _WEIGHTS_FILE, model)  # checked, not yet loaded
    if optimizer is not None:
        _check_optimizer_state(state["optimizer"], optimizer, path)
    if generator is not None and state["generator"] is None:
        raise ValueError(
            f"a generator was given, but the checkpoint {path} holds no generator "
            "state (save_checkpoint was called without generator=)"
        )
    if generator is None and state["generator"] is not None:
        warnings.warn(
            f"the checkpoint {path} holds a batch generator's state, but no generator "
            "was given to restore it into: the batches after it will differ from the "
            "uninterrupted run's",
            stacklevel=2,
        )
    _unwrap(model).load_state_dict(weights, strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if generator is not None:
        generator.set_state(state["generator"])
    _set_rng_state(state["rng"])
    return {"step": state["step"], "extra": state["extra"], "path": path}


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint of the highest step among the ``step-N`` folders that
    :func:`train` writes into ``directory``; None if there is none (or no directory)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = []
    for child in directory.iterdir():
        match = _STEP_FOLDER.fullmatch(child.name)
        if match and child.is_dir() and (child / _META_FILE).is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def _unwrap(model: nn.Module) -> nn.Module:
    """The module whose weights count: inside DistributedDataParallel, DataParallel or
    ``torch.compile`` (their state dicts add a prefix to every name)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    state = _unwrap(model).state_dict()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"the model's state dict holds {name!r}, a {type(value).__name__}: "
                "checkpoints store tensors only"
            )
    return state


def _view_key(t: torch.Tensor) -> tuple:
    return (
        t.device,
        t.dtype,
        t.untyped_storage().data_ptr(),
        t.storage_offset(),
        tuple(t.shape),
        t.stride(),
    )


def _tied_names(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{name: first_name}`` for every name whose tensor is the same view of the same
    memory as an earlier name's (tied weights)."""
    first: dict[tuple, str] = {}
    tied = {}
    for name, t in state.items():
        if t.numel() == 0:
            continue
        key = _view_key(t)
        if key in first:
            tied[name] = first[key]
        else:
            first[key] = name
    return tied


def _weights_to_save(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    state = _state_tensors(model)
    tied = _tied_names(state)
    tensors = {name: t.detach() for name, t in state.items() if name not in tied}
    # safetensors refuses tensors that overlap in memory: other views get their own copy
    by_storage: dict[tuple, list[str]] = {}
    for name, t in tensors.items():
        key = (t.device, t.untyped_storage().data_ptr())
        by_storage.setdefault(key, []).append(name)
    for names in by_storage.values():
        if len(names) > 1:
            for name in names:
                tensors[name] = tensors[name].clone()
    return {name: t.cpu().contiguous() for name, t in tensors.items()}, tied


def _read_weights(file: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict for ``model``, checked against its names, shapes."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt", device="cpu") as f:
        tied = json.loads((f.metadata() or {}).get("minillm.tied", "{}"))
        stored = {name: f.get_tensor(name) for name in f.keys()}
    available = dict(stored)
    for name, target in tied.items():
        if target in stored:
            available[name] = stored[target]
    expected = _state_tensors(model)
    missing = [name for name in expected if name not in available]
    unexpected = [name for name in available if name not in expected]
    mismatch = next(
        (
            name
            for name, t in expected.items()
            if name in available and tuple(available[name].shape) != tuple(t.shape)
        ),
        None,
    )
    if missing or unexpected or mismatch:
        problems = []
        if mismatch:
            theirs = tuple(available[mismatch].shape)
            ours = tuple(expected[mismatch].shape)
            problems.append(
                f"{mismatch!r} has shape {theirs} in the checkpoint but {ours} in the "
                "model"
            )
        if missing:
            problems.append(f"missing from the checkpoint: {_some(missing)}")
        if unexpected:
            problems.append(
                f"in the checkpoint but not in the model: {_some(unexpected)}"
            )
        kind = type(_unwrap(model)).__name__
        raise ValueError(
            f"the checkpoint {file.parent} does not fit this {kind} (another "
            "architecture or size?): " + "; ".join(problems)
        )
    for name, target in _tied_names(expected).items():
        if not torch.equal(available[name], available[target]):
            raise ValueError(
                f"the model ties {name!r} to {target!r} (one tensor), but the "
                f"checkpoint {file.parent} holds different values for them"
            )
    return {name: available[name] for name in expected}


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


_TYPE_NAMES = {
    nn.Module: "torch.nn.Module",
    torch.Generator: "torch.Generator",
    torch.optim.Optimizer: "torch.optim.Optimizer",
}


def _check_type(name: str, value, kind: type, optional: bool = True) -> None:
    if not (isinstance(value, kind) or (optional and value is None)):
        expected = _TYPE_NAMES.get(kind, kind.__name__)
        raise TypeError(f"{name} must be a {expected}, got {type(value).__name__}")


def _check_optimizer_state(saved, optimizer: torch.optim.Optimizer, path) -> None:
    if saved is None:
        raise ValueError(
            f"an optimizer was given, but the checkpoint {path} holds no optimizer "
            "state (save_checkpoint was called without an optimizer)"
        )
    ours = [len(group["params"]) for group in optimizer.param_groups]
    theirs = [len(group["params"]) for group in saved["param_groups"]]
    if ours != theirs:
        raise ValueError(
            f"the optimizer does not fit the checkpoint {path}: its parameter groups "
            f"hold {ours} parameters, the saved optimizer's {theirs}"
        )


def _check_plain(value, where: str) -> None:
    """Only values that ``torch.load(weights_only=True)`` reads back."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; use str "
                    "keys"
                )
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint's extra holds only None, "
        "bool, int, float, str, tensors, and lists, tuples and dicts of them"
    )


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"the checkpoint holds the random states of {len(cuda)} CUDA devices, "
                f"this machine has {torch.cuda.device_count()}: CUDA random states not "
                "restored",
                stacklevel=3,
            )


def _check_replaceable(path: Path) -> None:
    if not path.exists():
        return
    if not path.is_dir() or not (
        not any(path.iterdir()) or (path / _META_FILE).is_file()
    ):
        raise FileExistsError(
            f"{path} exists and is not a checkpoint; refusing to replace it"
        )


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished folder ``tmp`` to ``path``, replacing an older checkpoint."""
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / "checkpoint")
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old / "checkpoint", path)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Ask the OS to put ``path`` on disk (a no-op where that is not possible)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        ax.plot(
            history.steps[k - 1 :], running, label=f"train (mean of {k} steps)", lw=1.5
        )
    if history.val_loss:
        ax.plot(history.eval_steps, history.val_loss, "o-", label="validation", ms=4)
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(
            value, ls="--", lw=1, color=f"C{i + 2}", label=f"{name}: {value:.3f}"
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
