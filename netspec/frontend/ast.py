"""The syntax tree both front ends (.net and YAML) produce.

It keeps the spec as written, with a span on every node; the checker expands
blocks, resolves names and builds the IR from it. The formatter prints it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..source import Span


@dataclass(frozen=True)
class Node:
    span: Span | None = field(default=None, compare=False, kw_only=True)


# Expressions ------------------------------------------------------------------


@dataclass(frozen=True)
class Num(Node):
    value: int | float


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class BlockInput(Node):
    """``in``: the value a block is applied to."""


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class TupleExpr(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Kwarg(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()
    name_span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / // %
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Node):
    operand: Expr


Expr = Num | Str | Bool | Name | BlockInput | ListExpr | TupleExpr | Call | BinOp | Neg


# Chains and statements ----------------------------------------------------------


@dataclass(frozen=True)
class Step(Node):
    target: Name | Call
    repeat: Expr | None = None


@dataclass(frozen=True)
class Chain(Node):
    source: Name | BlockInput | Call
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class TensorType(Node):
    dtype: str | None
    dims: tuple[int | str, ...]


@dataclass(frozen=True)
class InputDecl(Node):
    name: str
    type: TensorType
    kind: str = "input"  # "input" or "target"


@dataclass(frozen=True)
class Binding(Node):
    name: str
    chain: Chain


@dataclass(frozen=True)
class LayerDecl(Node):
    name: str
    call: Call


@dataclass(frozen=True)
class OutputDecl(Node):
    names: tuple[Name, ...]


@dataclass(frozen=True)
class LossDecl(Node):
    expr: Expr


@dataclass(frozen=True)
class OptimizerDecl(Node):
    call: Call


@dataclass(frozen=True)
class Return(Node):
    chain: Chain


Stmt = InputDecl | Binding | LayerDecl | OutputDecl | LossDecl | OptimizerDecl | Return


@dataclass(frozen=True)
class Param(Node):
    name: str
    default: Expr | None = None


@dataclass(frozen=True)
class NetworkDef(Node):
    name: str
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class BlockDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
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
