"""What every backend shares: the emitter registry pattern, safe names, literals, diagnostics.

A backend's generator lists one emitter per op in ``TRANSFORMS`` (sqlglot's
pattern): a subclass overrides only what differs with
``TRANSFORMS = {**Parent.TRANSFORMS, "op": emit_fn}``. An op without an emitter
gives an E601 diagnostic at the op's place in the spec, never a crash.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from typing import Any, ClassVar

from .. import ir
from ..diagnostics import Diagnostic, SpecError

_IDENT = re.compile(r"[^0-9A-Za-z_]")


def identifier(name: str, taken: set[str] | None = None) -> str:
    """A valid, non-keyword Python identifier for a spec name (``stage2.0.conv2d`` -> ``stage2_0_conv2d``).

    Spec names are already ``[A-Za-z_][A-Za-z0-9_]*`` joined by dots and digits;
    this maps them injectively within ``taken`` (which it updates).
    """
    out = _IDENT.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    if keyword.iskeyword(out) or keyword.issoftkeyword(out) or out in {"self", "torch", "nn", "F", "keras", "ops"}:
        out += "_"
    if taken is not None:
        base, k = out, 1
        while out in taken:
            k += 1
            out = f"{base}_{k}"
        taken.add(out)
    return out


def literal(value: Any) -> str:
    """A Python literal for an attribute value (``repr`` is exact for str, int, float, bool, None)."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no literal for {type(value).__name__}")


def unsupported(backend: str, node: ir.Node, what: str | None = None) -> Diagnostic:
    """E601: this backend cannot express this node (or one of its attributes)."""
    detail = what or f"op '{node.op}'"
    return Diagnostic("E601", f"the {backend} backend does not support {detail} (layer '{node.name}')", node.span)


class Emitter:
    """Base of a backend generator: dispatches each node to ``TRANSFORMS[node.op]``."""

    backend: ClassVar[str] = ""
    TRANSFORMS: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(self, network: ir.Network):
        self.network = network
        self.errors: list[Diagnostic] = []

    def emit(self, node: ir.Node, *args, **kwargs):
        fn = self.TRANSFORMS.get(node.op)
        if fn is None:
            self.errors.append(unsupported(self.backend, node))
            return None
        return fn(self, node, *args, **kwargs)

    def fail(self, node: ir.Node, what: str) -> None:
        """Report an attribute this backend cannot express."""
        self.errors.append(unsupported(self.backend, node, what))

    def raise_errors(self, sources=None) -> None:
        if self.errors:
            raise SpecError(self.errors, sources)
