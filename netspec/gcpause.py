"""Building a syntax tree or an IR without the cyclic garbage collector looking on."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def building() -> Iterator[None]:
    """Pause the cyclic GC while a structure is built; its objects then join the oldest generation.

    Everything made while parsing or checking stays alive, so a collection during the build finds no
    garbage: it only scans a heap that grows with the spec, which made the cost per layer grow with the
    spec's size. And once the GC runs again, its first collections would scan all of it anyway (the
    young generations hold every object made since the pause). On the way out, ``gc.freeze()`` and
    ``gc.unfreeze()`` move the survivors into the oldest generation without scanning them (a splice of
    two lists), where only the rare full collections look at them; nothing stays frozen, so garbage
    among them is collected as usual. Nested uses pause once: only the outermost one resumes.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        gc.enable()
