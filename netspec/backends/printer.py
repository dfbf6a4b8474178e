"""The one printer of Python source, shared by the PyTorch and Keras generators.

Generated files must pass ``ruff check`` and read as ``ruff format`` would write them. This
module holds what both generators need for that:

- names and values: :func:`identifier` (a spec name as a Python name), :func:`literal`
  (``repr``-exact values) and :func:`lit` (the same with double-quoted strings, ruff's style);
- a tiny expression tree (:class:`Call`, :class:`Tup`, :class:`Bin`), :func:`flat` (one line)
  and :func:`fmt` (the lines of ``prefix + expr + suffix``, split like ruff at ``width``
  columns: one item per line with a magic trailing comma, sums inside parentheses);
- :func:`call_lines`: ``target = func(args)(operand)`` from already printed arguments (the Keras
  generator's form: the call always one argument per line once it does not fit, nested lists and
  calls split the same way as :func:`fmt` splits them);
- :func:`docstring`: one line, or wrapped inside ``width``; :func:`def_lines` (a ``def`` line) and
  :func:`unpack_lines` (``a, b = value``).

PyTorch files use ruff's default width, 88 (``torch.LINE``); Keras files 120.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from dataclasses import dataclass
from typing import Any

_IDENT = re.compile(r"[^0-9A-Za-z_]")

#: Names every generated file imports or uses itself; a spec name never becomes one of them.
_RESERVED = frozenset({"self", "torch", "nn", "F", "keras", "ops"})


def identifier(name: str, taken: set[str] | None = None) -> str:
    """A valid, non-keyword Python identifier for a spec name (``stage2.0.conv2d`` -> ``stage2_0_conv2d``).

    Spec names are already ``[A-Za-z_][A-Za-z0-9_]*`` joined by dots and digits;
    this maps them injectively within ``taken`` (which it updates).
    """
    out = _IDENT.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    if keyword.iskeyword(out) or keyword.issoftkeyword(out) or out in _RESERVED:
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


def lit(value: Any) -> str:
    """:func:`literal` in ruff's style: strings double-quoted (also inside tuples and lists)."""
    if isinstance(value, str):
        text = literal(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, (tuple, list)):
        inner = ", ".join(lit(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return literal(value)


# A tiny expression tree, formatted the way `ruff format` formats it ------------------------------


@dataclass(frozen=True)
class Call:
    """``func(args, kw=value)``; ``open`` ``[`` makes it a subscript or a list (``name=[...]``)."""

    func: str
    args: tuple = ()
    kwargs: tuple = ()  # (name, expr) pairs
    explode: bool = False  # once split, always one item per line (a magic trailing comma)
    open: str = "("

    @property
    def close(self) -> str:
        return "]" if self.open == "[" else ")"


@dataclass(frozen=True)
class Tup:
    items: tuple
    explode: bool = False  # always one item per line (a magic trailing comma)
    bare: bool = False  # no parentheses when on one line (``return a, b``)


@dataclass(frozen=True)
class Bin:
    """``a + b - c`` (operands are atoms or calls); ``tail`` (``/ 2``) parenthesises the sum."""

    operands: tuple
    ops: tuple
    tail: str = ""


def flat(e) -> str:
    """``e`` on one line."""
    if isinstance(e, str):
        return e
    if isinstance(e, Call):
        parts = [flat(a) for a in e.args] + [f"{k}={flat(v)}" for k, v in e.kwargs]
        return f"{e.func}{e.open}{', '.join(parts)}{e.close}"
    if isinstance(e, Tup):
        inner = ", ".join(flat(a) for a in e.items)
        if e.bare and len(e.items) > 1:
            return inner
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, Bin):
        text = flat(e.operands[0]) + "".join(f" {op} {flat(x)}" for op, x in zip(e.ops, e.operands[1:]))
        return f"({text}) {e.tail}" if e.tail else text
    raise TypeError(type(e))


def fmt(prefix: str, e, suffix: str = "", indent: int = 0, width: int = 88) -> list[str]:
    """Lines for ``prefix + e + suffix`` at ``indent``: one line if it fits ``width``, else split like ruff.

    Calls and tuples split one item per line with a magic trailing comma (which
    ruff keeps), or all items on one line between the brackets when they fit there;
    sums split inside parentheses, one operator per line.
    """
    pad = " " * indent
    line = pad + prefix + flat(e) + suffix
    exploded = isinstance(e, (Call, Tup)) and e.explode
    if (len(line) <= width and not (isinstance(e, Tup) and e.explode)) or isinstance(e, str):
        return [line]
    if isinstance(e, (Call, Tup)):
        items = [("", a) for a in e.args] if isinstance(e, Call) else [("", a) for a in e.items]
        if isinstance(e, Call):
            items += [(f"{k}=", v) for k, v in e.kwargs]
        if not items:
            return [line]
        opener, closer = (e.open, e.close) if isinstance(e, Call) else ("(", ")")
        head = pad + prefix + (e.func if isinstance(e, Call) else "") + opener
        if len(head) > width and prefix.endswith(" = "):  # ruff parenthesises the right-hand side
            return [pad + prefix + "(", *fmt("", e, "", indent + 4, width), pad + ")" + suffix]
        body = " " * (indent + 4) + ", ".join(key + flat(item) for key, item in items)
        if len(body) <= width and not exploded and not (isinstance(e, Tup) and (e.bare or len(items) == 1)):
            return [head, body, pad + closer + suffix]
        out = [head]
        for key, item in items:
            out += fmt(key, item, ",", indent + 4, width)
        out.append(pad + closer + suffix)
        return out
    if isinstance(e, Bin):
        inner = " " * (indent + 4)
        body = flat(Bin(e.operands, e.ops))
        out = [pad + prefix + "("]
        if len(inner + body) <= width:
            out.append(inner + body)
        else:
            out += fmt("", e.operands[0], "", indent + 4, width)
            for op, x in zip(e.ops, e.operands[1:]):
                out += fmt(f"{op} ", x, "", indent + 4, width)
        out.append(pad + ")" + (f" {e.tail}" if e.tail else "") + suffix)
        return out
    raise TypeError(type(e))


def docstring(text: str, indent: int, width: int = 88) -> list[str]:
    """A docstring at ``indent``: one line if it fits ``width``, else wrapped with the quotes on their own line."""
    pad = " " * indent
    one = f'{pad}"""{text}"""'
    if len(one) <= width:
        return [one]
    lines = textwrap.wrap(text, width - indent - 3)
    return [f'{pad}"""{lines[0]}', *(pad + x for x in lines[1:]), f'{pad}"""']


def def_lines(indent: int, name: str, params: list[str], width: int = 88) -> list[str]:
    """``def name(params):`` at ``indent``; beyond ``width`` the parameters on one line below, else one per line."""
    pad = " " * indent
    line = f"{pad}def {name}({', '.join(params)}):"
    if len(line) <= width:
        return [line]
    body = f"{pad}    {', '.join(params)}"
    if len(body) <= width:
        return [f"{pad}def {name}(", body, f"{pad}):"]
    return [f"{pad}def {name}(", *(f"{pad}    {p}," for p in params), f"{pad}):"]


def unpack_lines(targets: list[str], value: str, indent: int, width: int = 88) -> list[str]:
    """``a, b = value``; ruff parenthesises a target list that does not fit."""
    pad = " " * indent
    line = f"{pad}{', '.join(targets)} = {value}"
    if len(line) <= width:
        return [line]
    return [f"{pad}(", *(f"{pad}    {t}," for t in targets), f"{pad}) = {value}"]


# Printed arguments back into the tree -------------------------------------------------------------


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and strings."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


_KEYWORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(?!=)(.*)", re.S)


def _items(text: str) -> tuple[tuple, tuple]:
    """(positional trees, (name, tree) pairs) of printed, comma-separated arguments."""
    args, kwargs = [], []
    for part in split_top(text):
        m = _KEYWORD.fullmatch(part)
        if m:
            kwargs.append((m[1], tree(m[2])))
        elif kwargs:  # a positional after a keyword: not a call's arguments, keep the text
            kwargs.append(("", part))
        else:
            args.append(tree(part))
    return tuple(args), tuple(kwargs)


def tree(arg: str):
    """A printed argument as a tree :func:`fmt` can split: ``[a, b]``, ``f(x, k=y)``, ``(a, b)``.

    Lossless: ``flat(tree(text)) == text`` for what the generators print. Text that does not end
    in a bracket it opened (a sum, a name, a string) stays as it is.
    """
    if not arg.endswith(("]", ")")):
        return arg
    depth = 0  # the bracket that the final one closes
    for i in range(len(arg) - 1, -1, -1):
        depth += arg[i] in ")]"
        depth -= arg[i] in "(["
        if depth == 0:
            break
    opener = "[" if arg.endswith("]") else "("
    if arg[i] != opener:
        return arg
    head, inner = arg[:i], arg[i + 1:-1]
    args, kwargs = _items(inner)
    if any(not k for k, _ in kwargs) or (opener == "[" and kwargs):
        return arg
    if not head and opener == "(":  # a tuple; a parenthesised expression stays as it is
        if kwargs or (len(args) == 1 and not inner.rstrip().endswith(",")):
            return arg
        return Tup(args)
    out = Call(head, args, kwargs, open=opener)
    return out if flat(out) == arg else arg


def call_lines(target: str, func: str, args: list[str], operand: str, indent: str = "    ",
               width: int = 120) -> list[str]:
    """``target = func(args)(operand)`` (``target`` may be empty), one argument per line beyond ``width``.

    An argument that does not fit its line opens its bracket there; its items go on one line below
    when they fit, else one per line with a trailing comma (as :func:`fmt` writes any call).
    """
    prefix = f"{target} = " if target else ""
    tail = f"({operand})" if operand else ""
    one = f"{indent}{prefix}{func}({', '.join(args)}){tail}"
    if len(one) <= width:
        return [one]
    call = tree(f"{func}({', '.join(args)})")
    if not isinstance(call, Call):  # arguments it cannot read: split between them only
        call = Call(func, tuple(tree(a) for a in args))
    return fmt(prefix, Call(call.func, call.args, call.kwargs, explode=True), tail, len(indent), width)


__all__ = ["Bin", "Call", "Tup", "call_lines", "def_lines", "docstring", "flat", "fmt", "identifier", "lit", "literal",
           "split_top", "tree", "unpack_lines"]
