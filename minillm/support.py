"""Support code for the chapters' own code: small helpers the book uses but does not teach.

``add_to_class`` lets a chapter define a class over several cells, each method next to
the prose that explains it (the device of *Dive into Deep Learning*). In a notebook it
attaches the function to the class at once; the exporter (``tools/export_notebooks.py``)
writes such methods into the class body of the generated module, so ``minillm`` itself
holds ordinary classes.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["add_to_class"]


def add_to_class(cls: type) -> Callable:
    """Decorator: add the decorated function to ``cls`` under the function's own name.

    Works for plain functions and for ``staticmethod``, ``classmethod`` and ``property``
    objects (decorate those first, then ``add_to_class``)::

        @add_to_class(GPT)
        def generate(self, idx, max_new_tokens): ...
    """
    if not isinstance(cls, type):
        raise TypeError(f"add_to_class needs a class, got {cls!r}")

    def attach(obj):
        func = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
        name = getattr(func, "__name__", None)
        if not name:
            raise TypeError(f"add_to_class cannot tell the name of {obj!r}")
        setattr(cls, name, obj)
        return obj

    return attach
