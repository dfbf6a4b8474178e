"""The syntax tree both front ends (.net and YAML) produce.

It keeps the spec as written, with a span on every node; the checker expands
blocks, resolves names and builds the IR from it. The formatter prints it back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..source import Span

_NOT_COMPARED = frozenset({"span", "name_span"})  # where a node is written, not what it says


class Node:
    """Base of every syntax-tree node: frozen, compared by content (spans excluded).

    Subclasses declare their fields as annotations, in constructor order, with
    class-level defaults; ``span`` is keyword-only. (A plain class rather than a
    dataclass: generating code for 26 dataclasses was a measurable share of
    ``netspec check``'s start-up.)
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    span: Span | None

    def __init_subclass__(cls) -> None:
        own = [n for n in cls.__dict__.get("__annotations__", {}) if n not in ("_fields", "_defaults", "span")]
        cls._fields = (*cls._fields, *own)
        cls._defaults = {**cls._defaults, **{n: cls.__dict__[n] for n in own if n in cls.__dict__}}

    def __init__(self, *args: Any, span: Span | None = None, **kwargs: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes {len(self._fields)} positional arguments")
        values = dict(zip(self._fields, args))
        for key, value in kwargs.items():
            if key not in self._fields or key in values:
                raise TypeError(f"{type(self).__name__} got an unexpected or repeated argument '{key}'")
            values[key] = value
        set_ = object.__setattr__
        for name in self._fields:
            if name in values:
                set_(self, name, values[name])
            elif name in self._defaults:
                set_(self, name, self._defaults[name])
            else:
                raise TypeError(f"{type(self).__name__} needs argument '{name}'")
        set_(self, "span", span)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    __delattr__ = __setattr__

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in self._fields if n not in _NOT_COMPARED)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"


def fields(node: Node) -> tuple[str, ...]:
    """The field names of a node, span excluded, in constructor order."""
    return node._fields


def replace(node: Node, **changes: Any) -> Node:
    """A copy of ``node`` with some fields (``span`` included) changed."""
    values = {n: getattr(node, n) for n in node._fields}
    span = changes.pop("span", node.span)
    values.update(changes)
    return type(node)(**values, span=span)


# Expressions ------------------------------------------------------------------


class Num(Node):
    value: int | float


class Str(Node):
    value: str


class Bool(Node):
    value: bool


class Name(Node):
    id: str


class BlockInput(Node):
    """``in``: the value a block is applied to."""


class ListExpr(Node):
    items: tuple[Expr, ...]


class TupleExpr(Node):
    items: tuple[Expr, ...]


class Kwarg(Node):
    name: str
    value: Expr


class Call(Node):
    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()
    name_span: Span | None = None


class BinOp(Node):
    op: str  # + - * / // %
    left: Expr
    right: Expr


class Neg(Node):
    operand: Expr


Expr = Num | Str | Bool | Name | BlockInput | ListExpr | TupleExpr | Call | BinOp | Neg


# Chains and statements ----------------------------------------------------------


class Step(Node):
    target: Name | Call
    repeat: Expr | None = None


class Chain(Node):
    source: Name | BlockInput | Call
    steps: tuple[Step, ...] = ()


class TensorType(Node):
    dtype: str | None
    dims: tuple[int | str, ...]


class InputDecl(Node):
    name: str
    type: TensorType
    kind: str = "input"  # "input" or "target"


class Binding(Node):
    name: str
    chain: Chain
    #: every name of ``a, b, c = CHAIN`` (one per result of a layer with several); empty for one name
    names: tuple[str, ...] = ()


class LayerDecl(Node):
    name: str
    call: Call


class OutputDecl(Node):
    names: tuple[Name, ...]


class LossDecl(Node):
    expr: Expr


class OptimizerDecl(Node):
    call: Call


class Return(Node):
    chain: Chain


Stmt = InputDecl | Binding | LayerDecl | OutputDecl | LossDecl | OptimizerDecl | Return


class Param(Node):
    name: str
    default: Expr | None = None


class NetworkDef(Node):
    name: str
    body: tuple[Stmt, ...]


class BlockDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


class Module(Node):
    """One spec file: blocks and networks in source order."""

    decls: tuple[NetworkDef | BlockDef, ...]
    file: str = ""

    @property
    def networks(self) -> list[NetworkDef]:
        return [d for d in self.decls if isinstance(d, NetworkDef)]

    @property
    def blocks(self) -> list[BlockDef]:
        return [d for d in self.decls if isinstance(d, BlockDef)]
