"""Printing Keras source: literals, keyword arguments and calls wrapped as ``ruff format`` wraps them."""

from __future__ import annotations

import json
from typing import Any

from .base import literal


def _ints(values: tuple[int, ...]) -> str:
    """An int when every axis agrees (Keras broadcasts it), else a tuple."""
    return str(values[0]) if len(set(values)) == 1 else literal(tuple(values))


def _pairs(pairs: tuple[tuple[int, int], ...]) -> str:
    """Keras padding/cropping: an int, one symmetric int per axis, or (begin, end) pairs."""
    pairs = tuple(tuple(p) for p in pairs)
    if all(b == e for b, e in pairs):
        return _ints(tuple(b for b, _ in pairs))
    if len(pairs) == 1:
        return literal(pairs[0])
    return literal(pairs)


def _lit(value: Any) -> str:
    """A Python literal with double-quoted strings (spec names are plain ASCII)."""
    if isinstance(value, str):
        return json.dumps(value)
    return literal(value)


def _kw(name: str, value: str) -> str:
    return f"{name}={value}"


def _split_top(text: str) -> list[str]:
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


def _arg_lines(arg: str, indent: str) -> list[str]:
    """One call argument and its comma, as ``ruff format`` (line length 120) writes it.

    A list or call value that does not fit opens its bracket on the argument's line; its items go on
    one line below when they fit there, else one per line with a trailing comma.
    """
    line = f"{indent}{arg},"
    if len(line) <= 120 or not arg.endswith(("]", ")")):
        return [line]
    opener = "[" if arg.endswith("]") else "("
    depth = 0  # the bracket that the final one closes
    for i in range(len(arg) - 1, -1, -1):
        depth += arg[i] in ")]"
        depth -= arg[i] in "(["
        if depth == 0:
            break
    if arg[i] != opener:
        return [line]
    head, items = arg[:i + 1], _split_top(arg[i + 1:-1])
    inner = f"{indent}    {', '.join(items)}"
    if len(inner) <= 120:
        return [f"{indent}{head}", inner, f"{indent}{arg[-1]},"]
    out = [f"{indent}{head}"]
    for item in items:
        out += _arg_lines(item, indent + "    ")
    return [*out, f"{indent}{arg[-1]},"]


def _call_lines(target: str, func: str, args: list[str], operand: str, indent: str = "    ") -> list[str]:
    """``target = func(args)(operand)``, wrapped one argument per line beyond 120 characters."""
    head = f"{indent}{target} = " if target else indent
    tail = f"({operand})" if operand else ""
    one = f"{head}{func}({', '.join(args)}){tail}"
    if len(one) <= 120:
        return [one]
    out = [f"{head}{func}("]
    for a in args:
        out += _arg_lines(a, f"{indent}    ")
    out.append(f"{indent}){tail}")
    return out
