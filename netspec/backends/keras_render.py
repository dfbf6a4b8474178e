"""Printing Keras source: Keras's int-or-tuple arguments and keyword arguments.

Literals, names and call formatting are the shared printer's (netspec/backends/printer.py); the
names the Keras emitters call (``_lit``, ``_call_lines``, ``_arg_lines``, ``_split_top``) stay here
as aliases of it.
"""

from __future__ import annotations

from .printer import call_lines, fmt, lit, literal, split_top, tree

_lit = lit  # double-quoted strings
_split_top = split_top
_call_lines = call_lines  # ``target = func(args)(operand)`` at 120 columns


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


def _kw(name: str, value: str) -> str:
    return f"{name}={value}"


def _arg_lines(arg: str, indent: str) -> list[str]:
    """One call argument and its comma, as ``ruff format`` (line length 120) writes it."""
    return fmt("", tree(arg), ",", len(indent), 120)
