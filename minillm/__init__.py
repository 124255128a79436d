"""minillm: the package that the minillm book writes, chapter by chapter.

Chapter modules (``minillm.bigram``, and later ``minillm.tokenization``,
``minillm.attention``, ...) are generated from the book's notebooks by
``python tools/export_notebooks.py``; support modules (``minillm.data``,
``minillm.training``, ``minillm.exercises``) are ordinary library code.

Submodules are imported on first use, so ``import minillm`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "attention",
    "bert",
    "bigram",
    "data",
    "exercises",
    "finetune",
    "gpt",
    "layers",
    "llama",
    "positional",
    "scaling",
    "support",
    "tokenization",
    "training",
    "viz",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'minillm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
