"""Op and attribute documentation for hovers and completions, from the op registry.

The text is the registry's, as scripts/gen_docs.py puts it in docs/language.md: an
op's ``doc``, its call, each argument's accepted values, default and ``doc``, and
the shape, weight and MAC rules.
"""

from __future__ import annotations

import re
from functools import cache

from ..ops import base as _base
from ..ops.base import REQUIRED, AttrError, OpDef
from ..ops.registry import FAMILIES, LOSS_FNS, OPS, OPTIMIZER_DEFS

#: Where a name is looked up, first match wins: steps and merges, then the training families.
_TABLES = (("op", OPS), ("loss", LOSS_FNS), ("optimizer", OPTIMIZER_DEFS),
           ("initializer", FAMILIES["initializer"]), ("regularizer", FAMILIES["regularizer"]))


def find(name: str, prefer: str | None = None) -> OpDef | None:
    """The registry entry called ``name`` (``prefer``: a table to look in first, e.g. "loss")."""
    tables = sorted(_TABLES, key=lambda t: t[0] != prefer)
    for _, table in tables:
        if name in table:
            return table[name]
    return None


def value_text(value) -> str:
    """A default as the spec writes it (``true``, ``glorot_uniform``, ``(1, 1)``); '' for none."""
    if value is None or value is REQUIRED:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace("e-0", "e-").replace("e+0", "e+")
    if isinstance(value, tuple):
        inner = ", ".join(value_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return value
    return str(value)


class _Probe:
    """A value no attribute kind accepts: its error message says what the kind accepts."""

    def __str__(self) -> str:
        return "?"


def kind_text(kind, op: OpDef) -> str:
    """What an attribute accepts, as its own error message says it."""
    if isinstance(kind, _base.Callable):
        return kind.text
    try:
        kind(_Probe(), op)
    except AttrError as exc:
        m = re.match(r"expected (.*?); received", str(exc))
        if m:
            return m.group(1)
    except Exception:  # noqa: BLE001 - a kind that cannot describe itself falls back to its text
        pass
    return kind.text


def code_rule(text: str) -> str:
    """A shape rule as docs/language.md writes it: the leading ``[...] -> [...]`` part in code."""
    head, sep, tail = text.partition("; ")
    if "->" in head or head.startswith("["):
        return f"`{head}`" + (f"; {tail}" if sep else "")
    return text


def shape_text(op: OpDef) -> str:
    """An op's shape rule as docs/language.md shows it (layers: with the shapes in code)."""
    return op.shape_rule if op.category in ("merge", "activation") else code_rule(op.shape_rule)


def signature(op: OpDef) -> str:
    """``conv2d(filters, kernel)``: the call with its positional arguments."""
    return f"{op.name}({', '.join(op.positional)})" if op.positional else op.name


def call_with_defaults(op: OpDef) -> str:
    """``sgd(lr=0.01, momentum=0.0)``: every argument, with its default where it has one."""
    parts = []
    for key, attr in op.attrs.items():
        default = value_text(attr.default)
        parts.append(key if attr.required else f"{key}={default or 'none'}")
    return f"{op.name}({', '.join(parts)})" if parts else op.name


def attr_line(op: OpDef, key: str) -> str:
    """One argument: ``stride``: a positive integer or a tuple of 2, default ``1``: step between windows."""
    attr = op.attrs[key]
    default = "required" if attr.required else (f"default `{value_text(attr.default)}`"
                                                 if value_text(attr.default) else "default none")
    pos = ", positional" if key in op.positional else ""
    text = f"`{key}`{pos}: {kind_text(attr.kind, op)}; {default}"
    return text + (f". {attr.doc}" if attr.doc else "")


@cache
def op_markdown(name: str, prefer: str | None = None) -> str | None:
    """Markdown documentation of an op, loss, optimiser, initialiser or regulariser; None if unknown."""
    op = find(name, prefer)
    if op is None:
        return None
    out = [f"```netspec\n{signature(op)}\n```", f"*{op.category}*" + (f": {op.doc}" if op.doc else "")]
    formula = getattr(op, "formula", "")
    if formula and formula != op.doc:
        out.append(f"`{formula}`")
    if op.attrs:
        out.append("\n".join(f"- {attr_line(op, k)}" for k in op.attrs))
    rules = []
    if op.shape_rule:
        rules.append(f"Shape: {shape_text(op)}")
    if op.params_rule:
        rules.append(f"Weights: {op.params_rule}")
    if op.macs_rule:
        rules.append(f"MACs: {op.macs_rule}")
    if rules:
        out.append("\n".join(f"- {r}" for r in rules))
    return "\n\n".join(out)


def attr_markdown(op_name: str, key: str, prefer: str | None = None) -> str | None:
    """Markdown documentation of one argument of an op; None if either is unknown."""
    op = find(op_name, prefer)
    if op is None or key not in op.attrs:
        return None
    return f"```netspec\n{op.name}({key}=...)\n```\n\n{attr_line(op, key)}"
