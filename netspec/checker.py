"""The checker: syntax tree -> IR.

Expands blocks (hierarchical names), resolves names, binds and validates
arguments, infers every value's type, normalises attributes and counts
parameters. Errors are collected, not raised one by one: a failed node poisons
its output, and uses of a poisoned value stay silent so that each independent
mistake is reported exactly once.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from . import ir_plain as ir  # the plain IR: checking never imports pydantic
from . import limits
from .diagnostics import DiagnosticBag
from .frontend import ast
from .gcpause import building
from .limits import int_text
from .ops.base import AttrError, CallValue, InferError, OpDef, Sym, brief, did_you_mean, show
from .ops.lecture import MASK_KEEPING, STATE_RESULTS
from .ops.registry import LOSS_FNS, MERGE_OPS, OPS, OPTIMIZER_DEFS, SOURCE_OPS
from .source import Source, Span

DTYPES = ("float32", "int32", "int64")
# Known to users from the frameworks, not supported: netspec models compute in float32.
UNSUPPORTED_DTYPES = ("float16", "bfloat16", "float64", "int8", "int16", "uint8", "bool")

#: Expansion limits: a spec that asks for more is an error, not a hang.
MAX_REPEAT = 10_000  # `STEP * n`
MAX_NODES = 20_000  # nodes in one file (all its networks) once blocks and repeats are expanded
MAX_BLOCK_USES = 20_000  # block expansions in one file (a block may add no node)
MAX_BLOCK_DEPTH = 64  # blocks used inside blocks

#: Loss names from Keras and PyTorch, and what netspec calls them.
LOSS_ALIASES = {
    "mean_squared_error": "mse", "mse_loss": "mse", "mean_absolute_error": "mae", "l1_loss": "mae",
    "bce": "binary_crossentropy", "huber_loss": "huber", "smooth_l1_loss": "huber", "kld": "kl_divergence",
    "kl_div": "kl_divergence",
}


class ValueRef:
    """A block parameter bound to a value of the caller's scope (``decoder_layer(enc, src_pad)``).

    ``value`` is the value's id in the network; ``text`` how the use wrote it (``enc``, ``in``).
    It reads as that text in messages (``show``).
    """

    __slots__ = ("value", "text")

    def __init__(self, value: str, text: str):
        self.value, self.text = value, text

    def __eq__(self, other) -> bool:
        return isinstance(other, ValueRef) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.text


def _refs(value) -> ValueRef | None:
    """The first value reference inside an evaluated argument (a list, a tuple, a call's arguments)."""
    if isinstance(value, ValueRef):
        return value
    if isinstance(value, (list, tuple)):
        return next((r for v in value if (r := _refs(v)) is not None), None)
    if isinstance(value, CallValue):
        return _refs(value.args) or _refs(tuple(v for _, v in value.kwargs))
    return None


class _Poisoned(Exception):
    """Raised to abandon a chain after its error was reported."""


class _EvalError(Exception):
    def __init__(self, message: str, span: Span | None, code: str = "E305"):
        super().__init__(message)
        self.message, self.span, self.code = message, span, code


def evaluate(expr: ast.Expr, params: dict[str, Any]) -> Any:
    """Evaluate an argument expression; block parameters substitute, other names are symbols."""
    if isinstance(expr, ast.Num):
        return _bounded(expr.value, expr.span)
    if isinstance(expr, (ast.Str, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.Name):
        return params[expr.id] if expr.id in params else Sym(expr.id)
    if isinstance(expr, ast.ListExpr):
        return [evaluate(x, params) for x in expr.items]
    if isinstance(expr, ast.TupleExpr):
        return tuple(evaluate(x, params) for x in expr.items)
    if isinstance(expr, ast.Call):
        return CallValue(expr.name, tuple(evaluate(a, params) for a in expr.args),
                         tuple((k.name, evaluate(k.value, params)) for k in expr.kwargs),
                         span=expr.span, arg_spans=tuple(a.span for a in expr.args))
    if isinstance(expr, ast.Neg):
        v = evaluate(expr.operand, params)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _EvalError(f"cannot negate {show(v)}", expr.span)
        return -v
    if isinstance(expr, ast.BinOp):
        a, b = evaluate(expr.left, params), evaluate(expr.right, params)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (a, b)):
            raise _EvalError(f"arithmetic needs numbers; received: {_short(show(a))} {expr.op} {_short(show(b))}",
                             expr.span)
        if expr.op in ("/", "//", "%") and b == 0:
            raise _EvalError(f"division by zero: {_short(show(a))} {expr.op} {_short(show(b))}", expr.span)
        ops = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
               "//": operator.floordiv, "%": operator.mod}
        try:
            result = ops[expr.op](a, b)
        except OverflowError:
            raise _EvalError(f"the result of {_short(show(a))} {expr.op} {_short(show(b))} is too large "
                             "for a float", expr.span) from None
        if isinstance(result, float) and not math.isfinite(result):
            raise _EvalError(f"the result of {_short(show(a))} {expr.op} {_short(show(b))} is not a finite "
                             "number", expr.span)
        return _bounded(result, expr.span, f"{show(a)} {expr.op} {show(b)} = ")
    if isinstance(expr, ast.BlockInput):
        raise _EvalError("'in' is a value, not an argument", expr.span)
    raise _EvalError("invalid expression", getattr(expr, "span", None))  # pragma: no cover


def _bounded(value, span: Span | None, arithmetic: str | None = None):
    """``value``, or an E304 when it is an integer beyond int64 (every backend stores sizes as int64)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limits.MAX_INT:
        raise _EvalError(f"{arithmetic or ''}{int_text(value)} is too large: integers are at most 2**63 - 1 "
                         f"({limits.MAX_INT})", span, "E304")
    return value


class _Shared:
    """A ``layer`` declaration: one weight owner used at several places."""

    __slots__ = ("name", "call", "op", "attrs", "params", "first_input", "first_use", "uses", "failed")

    def __init__(self, name: str, call: ast.Call, op: OpDef | None, failed: bool = False):
        self.name = name  # qualified weight-owner name
        self.call = call
        self.op = op  # None (and failed) when the declaration names no op
        self.attrs: dict[str, Any] | None = None
        self.params: tuple[ir.Param, ...] | None = None
        self.first_input: ir.TensorType | None = None
        self.first_use: Span | None = None
        self.uses = 0
        self.failed = failed


class _Scope:
    """Names visible while expanding a network body or one block instance."""

    __slots__ = ("path", "values", "defined_at", "declared", "params", "layers", "block_input", "in_block", "stack",
                 "defaults", "caller", "hparams")

    def __init__(self, path: str, declared: dict[str, Span | None] | None = None,
                 params: dict[str, Any] | None = None, block_input: str | None = None, in_block: bool = False,
                 stack: tuple[str, ...] = ()):
        self.path = path  # '' at network level, 'stage2.0.' inside a block instance
        self.values: dict[str, str | None] = {}  # name -> value id (None: poisoned)
        self.defined_at: dict[str, Span | None] = {}  # where each name was defined
        self.declared = {} if declared is None else declared  # every name the body defines, in advance
        self.params = {} if params is None else params
        self.layers: dict[str, _Shared] = {}
        self.block_input = block_input
        self.in_block = in_block
        self.stack = stack
        self.defaults: set[str] = set()  # block parameters that took their default
        self.caller: dict[str, str | None] = {}  # the values where the block is used (for hints; not copied)
        self.hparams = self.params  # the parameters that are not values (for Node.exprs)


class _NetworkBuilder:
    def __init__(self, checker: Checker, net: ast.NetworkDef):
        self.c = checker
        self.bag = checker.bag
        self.net = net
        self.nodes: list[ir.Node] = []
        self.types: dict[str, ir.TensorType | None] = {}
        self.inputs: list[ir.Value] = []
        self.targets: list[ir.Value] = []
        self.used_names: set[str] = set()
        self.counters: dict[str, int] = {}
        self.block_counters: dict[str, int] = {}
        self.declared_inputs = 0  # `input` statements, bad ones included (no "declares no input" cascade)
        self.sites: list[tuple[str, Span | None]] = []  # the block uses being expanded, outermost first
        self.too_big = False  # MAX_NODES or MAX_BLOCK_USES was reported
        self.block_uses = 0  # block expansions so far
        self.value_refs = False  # whether a block parameter was bound to a value (then op arguments are checked)
        # (name, value id, name span, first node, end node) of every binding, for the unused-value warning
        self.bindings: list[tuple[str, str | None, Span | None, int, int]] = []
        # recurrent nodes with return_state=true: their value is several results, read only through `result` nodes
        self.multi: dict[str, tuple[str, ...]] = {}
        # masked values: value -> (mask source value, "ids" or "values", padding value, masked axis)
        self.masks: dict[str, tuple[str, str, float, int]] = {}
        # the spec's structure, for generators that mirror it (ir.Network.blocks/instances/repeats)
        self.block_defs: dict[str, ir.BlockDef] = {}
        self.instances: list[ir.BlockInstance | None] = []  # None: an expansion that failed
        self.repeats: list[ir.RepeatGroup] = []

    # names ---------------------------------------------------------------------------
    def error(self, code: str, message: str, span: Span | None = None, *, formula: str | None = None,
              notes: tuple[str, ...] | list[str] = ()) -> None:
        """Report an error; inside a block expansion, say which use of the block it came from."""
        sites = tuple(f"in block '{name}' used at {where}" for name, where in reversed(self.sites) if where)
        self.bag.error(code, message, span, formula=formula, notes=(*notes, *sites))

    def fresh(self, prefix: str, base: str) -> str:
        """``prefix + base``, or with the smallest suffix ``_k`` not yet used.

        Names are never freed, so the search resumes where the last one for this
        base stopped (linear, not quadratic, in ``relu * 10000``).
        """
        stem = prefix + base
        k = self.counters.get(stem, 0)
        name = stem if k == 0 else f"{stem}_{k}"
        if name in self.used_names:
            while name in self.used_names:
                k += 1
                name = f"{stem}_{k}"
            self.counters[stem] = k
        self.used_names.add(name)
        return name

    # statements -------------------------------------------------------------------------
    def build(self) -> ir.Network | None:
        scope = _Scope(path="", declared=_declared(self.net.body))
        outputs: list[tuple[str, str | None, Span | None]] = []
        loss: list[ir.LossTerm] = []
        optimizer = None
        seen_output = seen_loss = seen_opt = seen_return = False
        for stmt in self.net.body:
            if isinstance(stmt, ast.InputDecl):
                self.declare_input(stmt, scope)
            elif isinstance(stmt, ast.Binding):
                self.bind(stmt, scope)
            elif isinstance(stmt, ast.LayerDecl):
                self.declare_layer(stmt, scope)
            elif isinstance(stmt, ast.OutputDecl):
                if seen_output:
                    self.error("E202", "a network has one output statement; list every output in it",
                                   stmt.span)
                seen_output = True
                listed: set[str] = {n for n, _, _ in outputs}
                for n in stmt.names:
                    if n.id in listed:
                        # ONNX (and a Keras model's outputs) need distinct names; one value, one output
                        self.error("E202", f"'{n.id}' is listed twice in the output statement", n.span,
                                   notes=("to return one value under two names, bind it again: `copy = "
                                          f"{n.id}`",))
                        continue
                    listed.add(n.id)
                    outputs.append((n.id, self.lookup_value(n, scope, allow_target=False), n.span))
            elif isinstance(stmt, ast.LossDecl):
                if seen_loss:
                    self.error("E202", "a network has one loss statement", stmt.span)
                seen_loss = True
                loss = self.loss(stmt, scope)
            elif isinstance(stmt, ast.OptimizerDecl):
                if seen_opt:
                    self.error("E202", "a network has one optimizer statement", stmt.span)
                seen_opt = True
                optimizer = self.optimizer(stmt)
            elif isinstance(stmt, ast.Return):
                seen_return = True
                self.error("E205", "'return' belongs in a block; a network names its results with "
                               "'output'", stmt.span)
        if not seen_output and not seen_return:
            self.error("E206", f"network '{self.net.name}' declares no output",
                           self.net.span and Span.at(self.net.span.file, self.net.span.line, self.net.span.col, 7),
                           notes=("add a line such as `output logits`",))
        if not self.declared_inputs:
            self.error("E206", f"network '{self.net.name}' declares no input",
                           self.net.span and Span.at(self.net.span.file, self.net.span.line, self.net.span.col, 7))
        if any(v is None for _, v, _ in outputs) or self.bag.items:
            return None
        nodes = self.live_nodes([v for _, v, _ in outputs] + [a for term in loss for a in term.args])
        # Everything here was validated while it was built: construct without re-validating.
        return ir.Network(
            name=self.net.name,
            inputs=tuple(self.inputs),
            targets=tuple(self.targets),
            nodes=nodes,
            outputs=tuple(v for _, v, _ in outputs),
            output_names=tuple(n for n, _, _ in outputs),
            loss=tuple(loss),
            optimizer=optimizer,
            blocks=tuple(self.block_defs.values()),
            instances=tuple(i for i in self.instances if i is not None),
            repeats=tuple(self.repeats),
            span=self.net.span,
        )

    def live_nodes(self, roots: list[str]) -> tuple[ir.Node, ...]:
        """The nodes some output or loss term depends on; the others are dropped, with a warning (E208).

        An unused binding would otherwise hold weights that no backend can agree on
        (Keras prunes what no output reaches, PyTorch and ONNX keep it): dropping it
        here gives every backend, the report and the canonical weights the same layers.
        """
        live = set(roots)
        for node in reversed(self.nodes):
            if node.name in live:
                live.update(node.inputs)
        if len(live) >= len(self.nodes) and all(n.name in live for n in self.nodes):
            return tuple(self.nodes)
        for name, value, span, first, last in self.bindings:
            if value is not None and value not in live and first < last:
                dropped = sum(1 for n in self.nodes[first:last] if n.name not in live)
                self.c.bag.warning("E208", f"'{name}' is never used: no output or loss depends on it", span,
                                   notes=(f"its {dropped} layer{'s are' if dropped != 1 else ' is'} left out of the "
                                          "model (no weights, not in the report or any backend)",))
        return tuple(n for n in self.nodes if n.name in live)

    def declare_input(self, stmt: ast.InputDecl, scope: _Scope) -> None:
        if scope.in_block:
            self.error("E205", f"'{stmt.kind}' belongs in a network, not in a block", stmt.span)
            return
        t = stmt.type
        dtype = t.dtype or "float32"
        if not self.define(stmt.name, stmt.span, scope):
            return
        if stmt.kind == "input":
            self.declared_inputs += 1
        ok = True
        if dtype in UNSUPPORTED_DTYPES:
            self.error("E403", f"dtype '{dtype}' is not supported: netspec models compute in float32", t.span,
                       notes=("inputs and targets are float32, or int32/int64 ids and class labels",))
            ok = False
        elif dtype not in DTYPES:
            hint = did_you_mean(dtype, DTYPES)
            self.error("E403", f"unknown dtype '{dtype}'" + (f"; {hint}" if hint else ""), t.span,
                           notes=(f"dtypes: {', '.join(DTYPES)}",))
            ok = False
        else:
            for d in t.dims:
                if isinstance(d, int) and d < 1:
                    self.error("E304", f"dimensions must be positive; received: {int_text(d)}", t.span)
                    ok = False
                    break
            problem = ok and limits.shape_problem(t.dims, f"{stmt.kind} '{stmt.name}'")
            if problem:
                self.error("E304", problem, t.span)
                ok = False
        if not ok:
            scope.values[stmt.name] = None  # poisoned: its uses stay silent
            return
        value = ir.Value(name=stmt.name, span=stmt.span, type=ir.TensorType(dtype=dtype, shape=t.dims))
        (self.inputs if stmt.kind == "input" else self.targets).append(value)
        self.types[stmt.name] = value.type
        scope.values[stmt.name] = stmt.name
        self.used_names.add(stmt.name)
        if stmt.kind == "target":
            self.c.target_names.add(stmt.name)

    def define(self, name: str, span: Span | None, scope: _Scope, name_span: Span | None = None) -> bool:
        if name in scope.values or name in scope.layers:
            first = scope.defined_at.get(name)
            notes = (f"first defined at {first}",) if first else ()
            self.error("E202", f"'{name}' is already defined in this scope", name_span or span,
                       notes=(*notes, "values cannot be rebound; choose another name"))
            return False
        scope.defined_at[name] = name_span or span
        return True

    def bind(self, stmt: ast.Binding, scope: _Scope) -> None:
        name_span = stmt.span and Span.at(stmt.span.file, stmt.span.line, stmt.span.col, len(stmt.name))
        if stmt.names:
            return self.bind_results(stmt, scope)
        if not self.define(stmt.name, stmt.span, scope, name_span):
            return
        first = len(self.nodes)
        value = self.chain(stmt.chain, scope, f"{scope.path}{stmt.name}.")
        if value in self.multi:
            node = self.nodes[-1]
            parts = self.multi[value]
            self.error("E301", f"{node.op} with return_state=true has {len(parts)} results ({', '.join(parts)}); "
                       f"name each of them", name_span,
                       notes=(f"write `{', '.join(p if p != 'output' else stmt.name for p in parts)} = ...`",))
            value = None
        scope.values[stmt.name] = value
        self.bindings.append((stmt.name, value, name_span, first, len(self.nodes)))

    def bind_results(self, stmt: ast.Binding, scope: _Scope) -> None:
        """``out, h, c = CHAIN``: the chain ends at a layer with several results; one ``result`` node per name."""
        spans, col = [], stmt.span.col if stmt.span else 0
        text = stmt.span and self.c.source and self.c.source.line(stmt.span.line)
        for n in stmt.names:  # each name's own span, for diagnostics
            if stmt.span is None:
                spans.append(None)
                continue
            if text:
                found = text.find(n, col - 1)
                col = found + 1 if found >= 0 else col
            spans.append(Span.at(stmt.span.file, stmt.span.line, col, len(n)))
            col += len(n)
        # `_` discards a result (it names nothing, and may appear more than once)
        defined = [n != "_" and self.define(n, stmt.span, scope, s) for n, s in zip(stmt.names, spans)]
        stem = "_".join(n for n in stmt.names if n != "_") or "results"  # `h, c = ...`: layers `h_c.lstm`
        value = self.chain(stmt.chain, scope, f"{scope.path}{stem}.")
        parts = self.multi.get(value) if value is not None else None
        if value is not None and parts is None:
            self.error("E301", f"{len(stmt.names)} names need a layer with several results; this chain gives one "
                       f"value {self.types.get(value)}", stmt.span,
                       notes=("a recurrent layer with `return_state=true` has several: "
                              "`out, h, c = x -> lstm(64, return_state=true)`",))
            value = None
        elif parts is not None and len(parts) != len(stmt.names):
            op = self.nodes[-1].op if self.nodes else "the layer"
            self.error("E301", f"{op} with return_state=true has {len(parts)} results ({', '.join(parts)}); "
                       f"received {len(stmt.names)} names", stmt.span)
            value = None
        for i, (name, span, ok) in enumerate(zip(stmt.names, spans, defined)):
            if not ok:
                continue
            start = len(self.nodes)
            result = None
            if value is not None:
                src = _node_of(self.nodes, value)
                out = src.type if i == 0 else ir.TensorType(shape=(src.attrs["units"],))
                result = self.fresh(f"{scope.path}{name}.", "result")
                self.nodes.append(ir.Node(name=result, op="result", attrs={"index": i},
                                          inputs=(value,), type=out, layer=result, span=span))
                self.types[result] = out
                if i == 0 and src.attrs["return_sequences"] and src.inputs[0] in self.masks:
                    self.masks[result] = self.masks[src.inputs[0]]
            scope.values[name] = result
            self.bindings.append((name, result, span, start, len(self.nodes)))

    def state_inputs(self, op: OpDef, kwargs: tuple, at, scope: _Scope) -> tuple[tuple, list[str]]:
        """``initial_state=[h, c]`` of a recurrent step: the kwargs without it, and the state values."""
        given = [v for k, v in kwargs if k == "initial_state"]
        if not given:
            return kwargs, []
        rest = tuple((k, v) for k, v in kwargs if k != "initial_state")
        span = next((k.value.span for k in getattr(at, "kwargs", ()) if k.name == "initial_state"), _span_of(at))
        want = len(STATE_RESULTS[op.name]) - 1
        items = given[0] if isinstance(given[0], (list, tuple)) else [given[0]]
        shape = "[h, c]" if want == 2 else "h"
        if len(items) != want or not all(isinstance(v, (Sym, ValueRef)) for v in items):
            self.error("E301", f"{op.name} argument 'initial_state': expected {want} value name"
                       f"{'s' if want > 1 else ''} ({shape}); received: {brief(given[0])}", span)
            raise _Poisoned
        values = [v.value if isinstance(v, ValueRef) else
                  self.lookup_value(ast.Name(v.name, span=span), scope, allow_target=False) for v in items]
        if any(v is None for v in values):
            raise _Poisoned
        return rest, values

    def check_states(self, op: OpDef, attrs, states: list[str], at) -> None:
        span = next((k.value.span for k in getattr(at, "kwargs", ()) if k.name == "initial_state"), _span_of(at))
        want = ir.TensorType(shape=(attrs["units"],))
        for v in states:
            t = self.types.get(v)
            if t is None:
                raise _Poisoned
            if t != want:
                self.error("E402", f"{op.name}'s initial state must be {want} (its units); received: {t}", span)
                raise _Poisoned

    def declare_layer(self, stmt: ast.LayerDecl, scope: _Scope) -> None:
        if not self.define(stmt.name, stmt.span, scope):
            return
        call = stmt.call
        op = OPS.get(call.name)
        if op is None or op.category == "merge":
            if call.name in self.c.blocks:
                msg = f"'layer' declares one op; '{call.name}' is a block"
            elif op is not None:
                msg = f"'layer' declares one op with weights; '{call.name}' is a merge"
            else:
                msg = None
                self.unknown_op(call.name, call.name_span or call.span, scope)
            if msg:
                self.error("E301", msg, call.name_span or call.span)
            # poisoned: its uses stay silent instead of reporting an unknown op each
            scope.layers[stmt.name] = _Shared(f"{scope.path}{stmt.name}", call, op, failed=True)
            return
        stateful = next((k for k in call.kwargs if k.name in ("return_state", "initial_state")), None)
        if stateful is not None:
            self.error("E301", f"a shared layer does not take {stateful.name} (not supported); write the layer in "
                       "the chain", stateful.span)
            scope.layers[stmt.name] = _Shared(f"{scope.path}{stmt.name}", call, op, failed=True)
            return
        name = f"{scope.path}{stmt.name}"
        self.used_names.add(name)
        scope.layers[stmt.name] = _Shared(name, call, op)

    # chains -----------------------------------------------------------------------------
    def chain(self, chain: ast.Chain, scope: _Scope, prefix: str) -> str | None:
        done = 0
        try:
            value = self.source(chain.source, scope, prefix)
            for step in chain.steps:
                done += 1
                value = self.step(step, value, scope, prefix)
            return value
        except _Poisoned:
            # the value is lost, but the arguments of the later steps do not depend on it
            for step in chain.steps[done:]:
                try:
                    self.step(step, None, scope, prefix, check_only=True)
                except _Poisoned:
                    pass
            return None

    def lookup_value(self, name: ast.Name, scope: _Scope, allow_target: bool = True) -> str | None:
        if name.id in scope.values:
            value = scope.values[name.id]
            if not allow_target and value in self.c.target_names:
                self.error("E205", f"'{name.id}' is a target; a model cannot compute from or return it",
                               name.span)
                return None
            return value
        if name.id in scope.layers:
            self.error("E201", f"'{name.id}' is a layer, not a value: use it as a step, `x -> {name.id}`",
                           name.span)
            return None
        if name.id in scope.params:
            self.not_a_value(name, scope)
            return None
        if name.id in scope.declared:
            self.used_before(name.id, name.span, scope)
            return None
        candidates = list(scope.values)
        hint = did_you_mean(name.id, candidates)
        notes = []
        if scope.in_block and name.id not in scope.values:
            notes.append("a block sees only 'in', its parameters and its own bindings")
            if name.id in scope.caller:  # the value exists where the block is used: say how to pass it
                block = scope.stack[-1]
                notes.append(f"to read '{name.id}' where the block is used, make it a parameter: "
                             f"`block {block}(..., {name.id})`, used as `{block}(..., {name.id})`")
        self.error("E201", f"unknown value '{name.id}'" + (f"; {hint}" if hint else ""), name.span,
                       notes=tuple(notes))
        return None

    def not_a_value(self, name: ast.Name, scope: _Scope) -> None:
        """A block parameter read as a value whose argument is a constant (or a name of no value)."""
        param = scope.params[name.id]
        block = scope.stack[-1] if scope.stack else "the block"
        default = name.id in scope.defaults
        got = _short(show(param), 40)
        if isinstance(param, Sym) and not default:
            hint = did_you_mean(param.name, list(scope.caller))
            got += ", which names no value where the block is used" + (f"; {hint}" if hint else "")
        notes = ["expected the name of a value in the scope of the block's use: an input, a binding, `in`, "
                 "or a value parameter of the enclosing block"]
        if default:
            notes.append(f"'{name.id}' took its default; a default is a constant, so a value parameter "
                         "needs an argument at every use")
        self.error("E301", f"block parameter '{name.id}' is read as a value, but this use of block "
                   f"{block} gives it {got}", name.span, notes=tuple(notes))

    def source(self, src, scope: _Scope, prefix: str) -> str:
        if isinstance(src, ast.BlockInput):
            if scope.block_input is None:
                self.error("E205", "'in' is the input of a block; it has no meaning in a network", src.span)
                raise _Poisoned
            return scope.block_input
        if isinstance(src, ast.Name):
            value = self.lookup_value(src, scope, allow_target=False)
            if value is None:
                raise _Poisoned
            return value
        if isinstance(src, ast.Call):
            return self.merge(src, scope, prefix)
        raise _Poisoned  # pragma: no cover

    def value_kwargs(self, op: OpDef, call, scope: _Scope, prefix: str) -> tuple[Any, list[str]]:
        """Split off the keyword arguments that name values (attention's ``mask=pad``).

        Returns the call without them and the values they name (inputs after the others);
        each such keyword is then bound as ``true``.
        """
        names = op.value_args
        if not names or not isinstance(call, ast.Call) or not any(k.name in names for k in call.kwargs):
            return call, []
        keep, values = [], []
        for kw in call.kwargs:
            if kw.name not in names:
                keep.append(kw)
            elif isinstance(kw.value, (ast.Name, ast.BlockInput)):
                values.append(self.source(kw.value, scope, prefix))
            else:
                self.error("E301", f"{op.name} argument '{kw.name}' names a value of the spec; received: "
                               f"{_text(kw.value)}", kw.span,
                           notes=(f"e.g. `{kw.name}=pad` for `input pad: int64[T]`",))
                raise _Poisoned
        rest = ast.Call(call.name, call.args, tuple(keep), call.name_span, span=call.span)
        return rest, values

    def merge(self, call: ast.Call, scope: _Scope, prefix: str) -> str:
        op = MERGE_OPS.get(call.name) or SOURCE_OPS.get(call.name)
        if op is None:
            span = call.name_span or call.span
            if call.name in OPS or call.name in self.c.blocks:
                self.error("E205", f"a chain starts with a value or a merge; '{call.name}' is a step",
                               span, notes=(f"write `x -> {call.name}(...)`",))
            else:
                hint = did_you_mean(call.name, MERGE_OPS)
                self.error("E203", f"unknown merge '{call.name}'" + (f"; {hint}" if hint else ""), span,
                               notes=(f"merges: {', '.join(MERGE_OPS)}",))
            raise _Poisoned
        inputs = []
        poisoned = False
        at = call
        call, extra = self.value_kwargs(op, call, scope, prefix)
        for arg in call.args:
            if isinstance(arg, (ast.Name, ast.BlockInput)):
                try:
                    inputs.append(self.source(arg, scope, prefix))
                except _Poisoned:
                    poisoned = True
            elif isinstance(arg, ast.Call) and arg.name in MERGE_OPS:
                try:
                    inputs.append(self.merge(arg, scope, prefix))
                except _Poisoned:
                    poisoned = True
            else:
                notes = ((f"as a source, {call.name}'s arguments are values; give "
                          f"{op.positional[0]} by keyword: `{call.name}(x, memory, {op.positional[0]}=...)`",)
                         if op.category != "merge" and op.positional else ())
                self.error("E301", f"{call.name} takes values (names, 'in' or merges); received: "
                               f"{_text(arg)}", arg.span, notes=notes)
                poisoned = True
        if poisoned:
            if op.category == "merge":  # a layer's missing constant would only repeat the error above
                self.bind_attrs(op, (), self.eval_kwargs(call, scope), call)
            raise _Poisoned
        n = len(inputs)
        if n < op.min_inputs or (op.max_inputs is not None and n + len(extra) > op.max_inputs):
            want = (f"exactly {op.max_inputs}" if op.max_inputs == op.min_inputs
                    else f"at least {op.min_inputs}" if op.max_inputs is None
                    else f"{op.min_inputs} to {op.max_inputs - len(op.value_args)}")
            self.error("E301", f"{call.name} takes {want} values; received: {n}", call.span)
            raise _Poisoned
        kwargs = self.eval_kwargs(call, scope) + tuple((k, True) for k in op.value_args
                                                       if any(kw.name == k for kw in at.kwargs))
        if op.category != "merge":  # a layer's leading arguments are constants: `attention(q, kv, heads=8)`
            return self.apply(op, (), kwargs, inputs + extra, at, scope, prefix, base=call.name)
        return self.apply(op, (), kwargs, inputs, call, scope, prefix, base=call.name)

    def eval_call(self, call: ast.Call, scope: _Scope) -> tuple[tuple, tuple]:
        """A call's positional and keyword argument values (block parameters substituted)."""
        try:
            params = scope.params
            args = tuple([evaluate(a, params) for a in call.args]) if call.args else ()
        except _EvalError as exc:
            self.error(exc.code, exc.message, exc.span)
            raise _Poisoned from None
        return args, self.eval_kwargs(call, scope) if call.kwargs else ()

    def eval_kwargs(self, call: ast.Call, scope: _Scope) -> tuple:
        try:
            params = scope.params
            return tuple([(k.name, evaluate(k.value, params)) for k in call.kwargs])
        except _EvalError as exc:
            self.error(exc.code, exc.message, exc.span)
            raise _Poisoned from None

    def step(self, step: ast.Step, value: str | None, scope: _Scope, prefix: str, check_only: bool = False) -> str:
        """Apply one step; with ``check_only`` (its input was lost), only check its arguments."""
        count = 1
        if step.repeat is not None:
            try:
                count = evaluate(step.repeat, scope.params)
            except _EvalError as exc:
                self.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.error("E304", f"a repeat count must be a positive integer; received: "
                               f"{_short(show(count))}", step.repeat.span)
                raise _Poisoned
            if count > MAX_REPEAT:
                self.error("E304", f"a repeat count must be at most {MAX_REPEAT}; received: "
                               f"{_short(show(count))}", step.repeat.span)
                raise _Poisoned
        target = step.target
        name = target.id if isinstance(target, ast.Name) else target.name
        span = target.span if isinstance(target, ast.Name) else (target.name_span or target.span)
        if isinstance(target, ast.Name) and name in scope.layers:
            if check_only:
                return None
            if count > 1:
                self.error("E301", f"shared layer '{name}' cannot be repeated: a repeat gives each copy "
                               "its own weights", step.span)
                raise _Poisoned
            return self.use_shared(scope.layers[name], value, target, scope, prefix)
        if isinstance(target, ast.Name) and name in scope.params:
            param = scope.params[name]
            if isinstance(param, Sym):
                target = ast.Call(param.name, span=target.span, name_span=target.span)
                name = param.name
            elif isinstance(param, CallValue):
                if check_only:
                    self.check_value_call(param, target, scope)
                    return None
                start = self.mark(prefix)
                value = self.repeat(step, count, value,
                                    lambda v: self.apply_value(param, v, target, scope, prefix))
                self.record_repeat(param.name, count, start, prefix, span)
                return value
            elif isinstance(param, ValueRef):
                self.error("E301", f"block parameter '{name}' holds the value '{param}', not an op", span,
                           notes=(f"a value is a chain's source: `{name} -> ...`, `add(in, {name})`",
                                  "a name bound to a value in the scope of the block's use passes that value; "
                                  "to pass an op of that spelling, write a call: `relu()`"))
                raise _Poisoned
            else:
                self.error("E301", f"block parameter '{name}' is {_short(show(param), 40)}, not an op", span)
                raise _Poisoned
        if name in self.c.blocks:
            if check_only:
                self.bind_block_args(self.c.blocks[name], target, scope)
                return None
            block = self.c.blocks[name]
            start = self.mark(prefix)
            value = self.repeat(step, count, value, lambda v: self.block(block, target, v, scope, prefix))
            self.record_repeat(name, count, start, prefix, span)
            return value
        op = OPS.get(name)
        if op is None:
            self.unknown_op(name, span, scope)
            raise _Poisoned
        if op.category == "merge":
            self.error("E205", f"'{name}' is a merge: use it as a chain's source, `{name}(a, b)`", span)
            raise _Poisoned
        if op.family == "result":
            self.error("E301", "'result' is written by the checker for `out, h, c = ...`; name the results instead",
                       span)
            raise _Poisoned
        extra = []
        if isinstance(target, ast.Call):
            if check_only:  # the values named by keywords are not needed to check the constants
                names = op.value_args
                plain = ast.Call(target.name, target.args, tuple(k for k in target.kwargs if k.name not in names),
                                 target.name_span, span=target.span)
            else:
                plain, extra = self.value_kwargs(op, target, scope, prefix)
            args, kwargs = self.eval_call(plain, scope)
            kwargs += tuple((k, True) for k in op.value_args if extra and
                            any(kw.name == k for kw in target.kwargs))
        else:
            args, kwargs = (), ()
        if check_only:
            self.bind_attrs(op, args, kwargs, target)
            return None
        self.budget(step, nodes=count)  # `relu * 10000` past the limit: refused before the first node
        if count == 1:
            return self.apply(op, args, kwargs, [value, *extra], target, scope, prefix, base=name)
        start = self.mark(prefix)
        for _ in range(count):
            value = self.apply(op, args, kwargs, [value, *extra], target, scope, prefix, base=name)
        self.record_repeat(name, count, start, prefix, span)
        return value

    def mark(self, prefix: str) -> tuple[int, int]:
        """Where the next instance index under ``prefix`` and the next node are (for record_repeat)."""
        return self.block_counters.get(prefix, 0), len(self.nodes)

    def record_repeat(self, step: str, count: int, start: tuple[int, int], prefix: str, span: Span | None) -> None:
        """Record a ``STEP * n`` run (n > 1) that expanded: its instance paths or node names."""
        if count < 2:
            return
        if step in self.c.blocks:
            members = tuple(f"{prefix}{i}." for i in range(start[0], self.block_counters.get(prefix, 0)))
            kind = "block"
        else:
            members = tuple(n.name for n in self.nodes[start[1]:] if n.name.startswith(prefix)
                            and "." not in n.name[len(prefix):])
            kind = "op"
        self.repeats.append(ir.RepeatGroup(step=step, kind=kind, members=members, span=span))

    def check_value_call(self, call: CallValue, at, scope: _Scope) -> None:
        """The arguments of a call passed as a block parameter, when its input was lost."""
        if call.name in self.c.blocks:
            self.bind_block_args(self.c.blocks[call.name], call, scope)
        elif call.name in OPS and OPS[call.name].category != "merge":
            self.bind_attrs(OPS[call.name], call.args, call.kwargs, call)

    def apply_value(self, call: CallValue, value: str, at, scope: _Scope, prefix: str) -> str:
        if call.name in self.c.blocks:
            return self.block(self.c.blocks[call.name], call, value, scope, prefix)
        op = OPS.get(call.name)
        if op is not None and op.category == "merge":
            self.error("E205", f"block parameter '{at.id}' is {_short(str(call), 40)}, a merge; "
                           "a step is a layer, an activation or a block", at.span)
            raise _Poisoned
        if op is None:
            self.unknown_op(call.name, call.span or at.span, scope)
            raise _Poisoned
        return self.apply(op, call.args, call.kwargs, [value], at, scope, prefix, base=call.name)

    def used_before(self, name: str, span: Span | None, scope: _Scope) -> None:
        where = scope.declared[name]
        if where and span and (where.line, where.col) <= (span.line, span.col) <= (where.end_line, where.end_col):
            self.error("E201", f"'{name}' is used in its own definition", span,
                       notes=("a chain cannot use the value it defines",))
            return
        self.error("E201", f"'{name}' is used before its definition" + (f" on line {where.line}" if where else ""),
                   span, notes=("statements are checked in order: define a name before the line that uses it",))

    def unknown_op(self, name: str, span: Span | None, scope: _Scope) -> None:
        if name in scope.declared and name not in scope.values and name not in scope.layers:
            self.used_before(name, span, scope)
            return
        if name in scope.values:
            self.error("E201", f"'{name}' is a value, not an op: a step is an op, a shared layer or a block",
                           span, notes=(f"to combine values use a merge, e.g. `add(x, {name})`",))
            return
        candidates = [*OPS, *self.c.blocks, *scope.layers]
        hint = did_you_mean(name, candidates)
        if hint and hint.split("'")[1] in self.c.blocks:
            self.error("E204", f"unknown block '{name}'; {hint}", span)
            return
        self.error("E203", f"unknown op '{name}'" + (f"; {hint}" if hint else ""), span)

    # nodes --------------------------------------------------------------------------------
    def bind_attrs(self, op: OpDef, args, kwargs, at) -> dict[str, Any]:
        if self.value_refs:  # only once a block has received a value can an argument hold one
            self.no_values(op, args, kwargs, at)
        try:
            return op.bind_values(args, kwargs)
        except AttrError as exc:
            self.error(exc.code, str(exc), _arg_span(at, op, exc.arg), notes=exc.notes)
            raise _Poisoned from None

    def no_values(self, op: OpDef, args, kwargs, at) -> None:
        """An E301 for a value passed where an op wants a constant (``dense(memory)``, memory a value parameter)."""
        for key, v in [*enumerate(args), *kwargs]:
            ref = _refs(v)
            if ref is None:
                continue
            attr = op.positional[key] if isinstance(key, int) and key < len(op.positional) else key
            what = f"argument '{attr}'" if isinstance(attr, str) else f"argument {attr + 1}"
            self.error("E301", f"{op.name} {what} takes a constant; received: a block parameter holding the "
                       f"value '{ref}'", _arg_span(at, op, key),
                       notes=("a value is read as a chain's source, a merge's argument, `mask=` or "
                              "`initial_state=`; an op's other arguments are hyperparameters",))
            raise _Poisoned

    def input_types(self, op: OpDef, inputs: list[str], at) -> list[ir.TensorType]:
        known = self.types
        types = []
        for v in inputs:
            t = known.get(v)
            if t is None:
                raise _Poisoned
            types.append(t)
        multi = self.multi and next((v for v in inputs if v in self.multi), None)
        if multi:
            parts = self.multi[multi]
            self.error("E301", f"'{multi}' has {len(parts)} results ({', '.join(parts)}) because of return_state=true; "
                       f"{op.name} cannot read them as one value", _span_of(at),
                       notes=(f"name them: `{', '.join(parts)} = x -> ...`, then use one",))
            raise _Poisoned
        if op.float_input:
            for t in types:
                if t.is_integer:
                    notes = ("integer ids go through `embedding(vocab, dim)` first",)
                    self.error("E403", f"{op.name} expects a float input; received: {t}", _span_of(at),
                                   notes=notes)
                    raise _Poisoned
        elif op.category == "merge" and len({t.dtype for t in types}) > 1:
            got = ", ".join(str(t) for t in types)
            self.error("E403", f"{op.name} needs inputs of one dtype; received: {got}", _span_of(at))
            raise _Poisoned
        return types

    def infer(self, op: OpDef, attrs, types, at):
        try:
            out, attrs = op.infer(attrs, types)
            if attrs.get("activation"):
                act = OPS[attrs["activation"]["name"]]
                act_attrs = {k: v for k, v in attrs["activation"].items() if k != "name"}
                _, act_attrs = act.infer(act_attrs, [out])
                attrs = {**attrs, "activation": {"name": act.name, **act_attrs}}
            return out, attrs
        except InferError as exc:
            notes = exc.notes
            span = _arg_span(at, op, exc.arg) if exc.arg else _span_of(at)
            if types:
                notes = (f"input: {', '.join(str(t) for t in types)}", *notes)
            self.error(exc.code, exc.message, span, formula=exc.formula, notes=notes)
            raise _Poisoned from None

    def budget(self, at, nodes: int = 1, uses: int = 0, notes: tuple[str, ...] = ()) -> None:
        """Stop expanding once the spec would grow past MAX_NODES nodes or MAX_BLOCK_USES block
        expansions, counting this network's ``nodes`` and ``uses`` more and every network before it
        in the file (reported once)."""
        before_nodes, before_uses = self.c.spent_nodes, self.c.spent_uses
        if (before_nodes + len(self.nodes) + nodes <= MAX_NODES
                and before_uses + self.block_uses + uses <= MAX_BLOCK_USES):
            return
        if not self.too_big and not self.c.too_big:  # once per file: the later networks cannot fit either
            self.too_big = self.c.too_big = True
            alone = len(self.nodes) + nodes > MAX_NODES or self.block_uses + uses > MAX_BLOCK_USES
            if before_nodes + len(self.nodes) + nodes > MAX_NODES:
                what, limit = "layers", MAX_NODES
            else:
                what, limit = "uses of blocks", MAX_BLOCK_USES
            if alone:
                message = f"network '{self.net.name}' expands to more than {limit} {what}"
            else:
                earlier = before_nodes if what == "layers" else before_uses
                message = (f"network '{self.net.name}' brings the file to more than {limit} {what}, with "
                           f"the {earlier} {what} of the networks before it")
                notes = (*notes, f"a spec file expands to at most {limit} {what}, all its networks together")
            self.error("E304", message, _span_of(at),
                       notes=(*notes, "check the repeat counts (`STEP * n`) and the blocks used here"))
        raise _Poisoned

    def repeat(self, step: ast.Step, count: int, value: str, once) -> str:
        """``value = once(value)`` ``count`` times; after the first time, a repeat that would
        pass the limits is refused at once, before expanding the rest."""
        nodes, uses = len(self.nodes), self.block_uses
        value = once(value)
        if count > 1:
            per_nodes, per_uses = len(self.nodes) - nodes, self.block_uses - uses
            what = f"{per_nodes} layers" + (f" in {per_uses} uses of blocks" if per_uses > 1 else
                                            " in one use of a block" if per_uses else "")
            self.budget(step, per_nodes * (count - 1), per_uses * (count - 1),
                        notes=(f"each of the {count} repeats adds {what}",))
        for _ in range(count - 1):
            value = once(value)
        return value

    def check_sizes(self, op: OpDef, out: ir.TensorType, params, types, at) -> None:
        """The language limits on a node's output and weights: dimensions and element counts fit int64."""
        fit = self.c.fitting_shapes  # shapes repeat: each (tuple) is checked once
        problem = None
        if type(out.shape) is not tuple or out.shape not in fit:
            problem = limits.shape_problem(out.shape, lambda: f"{op.name}'s output {_short(str(out), 60)}")
            if not problem and type(out.shape) is tuple:
                fit.add(out.shape)
        for p in params:
            if problem or (type(p.shape) is tuple and p.shape in fit):
                continue
            problem = limits.shape_problem(p.shape, lambda p=p: f"{op.name}'s weight '{p.name}'")
            if not problem and type(p.shape) is tuple:
                fit.add(p.shape)
        if problem:
            self.error("E401", problem, _span_of(at), notes=(f"input: {', '.join(str(t) for t in types)}",))
            raise _Poisoned

    def apply(self, op: OpDef, args, kwargs, inputs: list[str], at, scope: _Scope, prefix: str,
              base: str) -> str:
        self.budget(at)
        states: list[str] = []
        if op.name in STATE_RESULTS:
            kwargs, states = self.state_inputs(op, kwargs, at, scope)
        attrs = self.bind_attrs(op, args, kwargs, at)
        types = self.input_types(op, inputs, at)
        out, attrs = self.infer(op, attrs, types, at)
        if states:
            self.check_states(op, attrs, states, at)
            attrs = {**attrs, "initial_state": True}
            inputs = [*inputs, *states]
        if op.family == "bidirectional" and (attrs["layer"]["attrs"]["return_state"]
                                             or attrs["layer"]["attrs"]["initial_state"]):
            self.error("E301", "bidirectional does not take return_state or initial_state (not supported)",
                       _span_of(at))
            raise _Poisoned
        mask = self.masks.get(inputs[0]) if inputs else None
        if mask is not None:
            attrs, inputs = self.read_mask(op, attrs, inputs, mask, at)
        exprs = _exprs(op, at, scope.hparams, self.c.expr_cache)
        if op.family == "time_distributed":  # the same function as its inner layer on [T, F] (ops/lecture.py)
            inner, inner_attrs = op.inner(attrs)
            exprs = {}
            op = OPS[inner]
            types = self.input_types(op, inputs, at)
            out, attrs = self.infer(op, inner_attrs, types, at)
        params = _frozen(tuple(op.params(attrs, types, out)), attrs)
        self.check_sizes(op, out, params, types, at)
        name = self.fresh(prefix, base)
        node = ir.Node(name=name, op=op.name, attrs=attrs, inputs=tuple(inputs), type=out, layer=name,
                       params=params, macs=op.macs(attrs, types, out), exprs=exprs, span=_span_of(at))
        self.nodes.append(node)
        self.types[name] = out
        if attrs.get("return_state"):
            self.multi[name] = STATE_RESULTS[op.name]
        self.carry_mask(op, node, types)
        return name

    def read_mask(self, op: OpDef, attrs, inputs: list[str], mask, at) -> tuple[dict, list[str]]:
        """A recurrent layer or 1-D global pool reading a masked value: the mask's source joins its inputs."""
        src, kind, value, axis = mask
        if op.family == "bidirectional":
            self.error("E301", "bidirectional does not read a mask (not supported); the input is masked by "
                       f"'{src}'", _span_of(at), notes=("run the layer in one direction, or drop mask_zero/masking",))
            raise _Poisoned
        if op.family == "attention" and not attrs.get("mask"):
            self.error("E301", f"attention does not read the mask that '{src}' puts on its input; give the padding "
                       "explicitly", _span_of(at), notes=(f"for example attention(..., mask={src}) with an id input, "
                                                          "nonzero = attend",))
            raise _Poisoned
        reads = (op.family == "recurrent" and axis == 0) or (op.family == "global_pool" and op.rank == 1 and axis == 1)
        if not reads:
            return attrs, inputs
        return {**attrs, "sequence_mask": kind, "sequence_mask_value": value}, [*inputs, src]

    def carry_mask(self, op: OpDef, node: ir.Node, types) -> None:
        """Record the mask of a node's output: made by mask_zero and masking, kept by per-step ops."""
        a = node.attrs
        if op.family == "embedding" and a.get("mask_zero") and types[0].rank == 1:
            self.masks[node.name] = (node.inputs[0], "ids", 0.0, 0)
            return
        if op.family == "masking":
            self.masks[node.name] = (node.inputs[0], "values", a["value"], 0)
            return
        mask = self.masks.get(node.inputs[0]) if node.inputs else None
        if mask is None:
            return
        src, kind, value, axis = mask
        rank = types[0].rank
        if op.family in MASK_KEEPING or (op.family in ("dense", "layernorm") and rank == 2 and axis == 0):
            self.masks[node.name] = mask
        elif op.family == "recurrent" and a["return_sequences"] and not a.get("return_state"):
            self.masks[node.name] = mask
        elif op.family == "permute" and rank == 2:
            self.masks[node.name] = (src, kind, value, a["dims"].index(axis))

    def use_shared(self, layer: _Shared, value: str, at: ast.Name, scope: _Scope, prefix: str) -> str:
        op = layer.op
        if layer.failed:
            raise _Poisoned
        self.budget(at)
        if layer.attrs is None:
            layer.failed = True  # until the arguments bind: report them once, not per use
            call = layer.call
            args, kwargs = self.eval_call(call, scope)
            layer.attrs = self.bind_attrs(op, args, kwargs, call)
            layer.failed = False
        types = self.input_types(op, [value], at)
        mask = self.masks.get(value)
        if mask is not None and op.family in ("recurrent", "bidirectional", "global_pool"):
            self.error("E301", f"shared layer '{at.id}' does not read a mask (not supported); its input is masked "
                       f"by '{mask[0]}'", at.span, notes=("write the layer in the chain instead of as a `layer`",))
            raise _Poisoned
        out, attrs = self.infer(op, layer.attrs, types, layer.call)
        params = _frozen(tuple(op.params(attrs, types, out)), attrs)
        self.check_sizes(op, out, params, types, at)
        if layer.params is None:
            layer.params, layer.first_input, layer.first_use = params, types[0], at.span
        elif [p.shape for p in params] != [p.shape for p in layer.params]:
            first = ", ".join(f"{p.name} {list(p.shape)}" for p in layer.params)
            here = ", ".join(f"{p.name} {list(p.shape)}" for p in params)
            self.error("E402", f"shared layer '{at.id}' was built for input {layer.first_input}; "
                       f"this use gives {types[0]}, which needs other weight shapes",
                       at.span, notes=(f"first use at {layer.first_use}: {first}", f"this use: {here}"))
            raise _Poisoned
        layer.uses += 1
        name = self.fresh(prefix, at.id)
        node = ir.Node(name=name, op=op.name, attrs=attrs, inputs=(value,), type=out, layer=layer.name,
                       params=layer.params, macs=op.macs(attrs, types, out),
                       exprs=_exprs(op, layer.call, scope.hparams, self.c.expr_cache), span=at.span)
        self.nodes.append(node)
        self.types[name] = out
        return name

    # blocks --------------------------------------------------------------------------------
    def block(self, block: ast.BlockDef, call, value: str, scope: _Scope, prefix: str) -> str:
        span = call.name_span if isinstance(call, ast.Call) else call.span
        if block.name in scope.stack:
            chain = " -> ".join((*scope.stack, block.name))
            self.error("E207", f"block '{block.name}' uses itself: {chain}", span)
            raise _Poisoned
        if len(scope.stack) >= MAX_BLOCK_DEPTH:
            self.error("E207", f"blocks nest more than {MAX_BLOCK_DEPTH} deep: "
                           f"{scope.stack[0]} -> ... -> {block.name}", span)
            raise _Poisoned
        self.block_uses += 1
        self.budget(call, nodes=0)
        defaults: set[str] = set()
        params = self.bind_block_args(block, call, scope, defaults)
        index = self.block_counters.get(prefix, 0)
        self.block_counters[prefix] = index + 1
        path = f"{prefix}{index}."
        slot = len(self.instances)
        self.instances.append(None)  # an enclosing instance is listed before those inside it
        if block.name not in self.block_defs:
            self.block_defs[block.name] = ir.BlockDef(
                name=block.name, span=block.span,
                params=tuple(ir.BlockParam(name=p.name, default=None if p.default is None
                                           else _py_text(p.default)) for p in block.params))
        inner = _Scope(path=path, params=params, block_input=value, in_block=True,
                       stack=(*scope.stack, block.name), declared=_declared(block.body))
        inner.defaults = defaults
        inner.caller = scope.values
        values = {k: v.value for k, v in params.items() if isinstance(v, ValueRef)}
        for k, v in values.items():  # a value parameter reads as a value wherever a value name does
            inner.values[k] = v
            inner.defined_at[k] = block.span
        if values:  # value parameters are inputs of the nodes, not parameter expressions
            inner.hparams = {k: v for k, v in params.items() if k not in values}
        result = None
        returned = False
        self.sites.append((block.name, _span_of(call)))
        try:
            for stmt in block.body:
                if isinstance(stmt, ast.Binding):
                    self.bind(stmt, inner)
                elif isinstance(stmt, ast.LayerDecl):
                    self.declare_layer(stmt, inner)
                elif isinstance(stmt, ast.Return):
                    if returned:
                        self.error("E202", "a block has one 'return'", stmt.span)
                        continue
                    returned = True
                    result = self.chain(stmt.chain, inner, path)
                else:
                    kind = type(stmt).__name__.replace("Decl", "").lower()
                    kind = getattr(stmt, "kind", kind)
                    self.error("E205", f"'{kind}' belongs in a network, not in a block", stmt.span)
        finally:
            self.sites.pop()
        if not returned:
            self.c.missing_return(block)
            raise _Poisoned
        if result is None:
            raise _Poisoned
        self.instances[slot] = ir.BlockInstance(
            path=path, block=block.name, args={k: _plain(v) for k, v in params.items() if k not in values},
            values=values, input=value, output=result, span=_span_of(call))
        return result

    def block_arg(self, expr, scope: _Scope) -> Any:
        """One argument of a block call: a name bound to a value (or ``in``) passes that value."""
        if isinstance(expr, ast.BlockInput):
            if scope.block_input is None:
                self.error("E205", "'in' is the input of a block; it has no meaning in a network", expr.span)
                raise _Poisoned
            self.value_refs = True
            return ValueRef(scope.block_input, "in")
        if isinstance(expr, ast.Name) and expr.id not in scope.params and expr.id in scope.values:
            value = self.lookup_value(expr, scope, allow_target=False)
            if value is None:
                raise _Poisoned
            self.value_refs = True
            return ValueRef(value, expr.id)
        try:
            value = evaluate(expr, scope.params)
        except _EvalError as exc:
            self.error(exc.code, exc.message, exc.span)
            raise _Poisoned from None
        return self.call_values(value, scope) if isinstance(value, CallValue) else value

    def call_values(self, call: CallValue, scope: _Scope) -> CallValue:
        """A block call passed as an argument (``unit=mix(memory)``): its value names become values here."""
        def arg(v):
            if isinstance(v, Sym) and v.name not in scope.params and v.name in scope.values:
                if scope.values[v.name] is None:
                    raise _Poisoned
                self.value_refs = True
                return ValueRef(scope.values[v.name], v.name)
            return self.call_values(v, scope) if isinstance(v, CallValue) else v

        return CallValue(call.name, tuple(arg(a) for a in call.args), tuple((k, arg(v)) for k, v in call.kwargs),
                         span=call.span, arg_spans=call.arg_spans)

    def bind_block_args(self, block: ast.BlockDef, call, scope: _Scope,
                        defaults: set[str] | None = None) -> dict[str, Any]:
        """The block's parameters bound to a use's arguments (``defaults`` collects those that took theirs)."""
        args, kwargs = (), ()
        if isinstance(call, CallValue):  # a block call passed as a block parameter
            args, kwargs = call.args, call.kwargs
        elif isinstance(call, ast.Call):
            args = tuple(self.block_arg(a, scope) for a in call.args)
            kwargs = tuple((k.name, self.block_arg(k.value, scope)) for k in call.kwargs)
        names = [p.name for p in block.params]
        span = _span_of(call)
        if len(args) > len(names):
            self.error("E301", f"block {block.name} takes {len(names)} positional arguments; "
                           f"received: {len(args)}", span)
            raise _Poisoned
        bound = dict(zip(names, args))
        for key, val in kwargs:
            if key not in names:
                hint = did_you_mean(key, names)
                self.error("E303", f"block {block.name} has no parameter '{key}'" + (f"; {hint}" if hint else ""),
                               _arg_span(call, None, key))
                raise _Poisoned
            if key in bound:
                self.error("E301", f"block {block.name} got parameter '{key}' twice", _arg_span(call, None, key))
                raise _Poisoned
            bound[key] = val
        for p in block.params:
            if p.name in bound:
                continue
            if p.default is None:
                self.error("E302", f"block {block.name} needs parameter '{p.name}'", span)
                raise _Poisoned
            try:
                bound[p.name] = evaluate(p.default, bound)
            except _EvalError as exc:
                self.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            ref = _refs(bound[p.name])
            if ref is not None:
                self.error("E301", f"block {block.name}: the default of parameter '{p.name}' reads the value "
                           f"'{ref}'; a default is a constant", p.default.span,
                           notes=(f"give '{p.name}' as an argument at each use instead",))
                raise _Poisoned
            if defaults is not None:
                defaults.add(p.name)
        return {n: bound[n] for n in names}

    # training setup -----------------------------------------------------------------------
    def loss(self, stmt: ast.LossDecl, scope: _Scope) -> list[ir.LossTerm]:
        terms: list[ir.LossTerm] = []
        try:
            self.loss_terms(stmt.expr, 1.0, scope, terms)
        except _Poisoned:
            return []
        return terms

    def loss_terms(self, expr, weight: float, scope: _Scope, out: list) -> None:
        if isinstance(expr, ast.BinOp) and expr.op in "+-":
            self.loss_terms(expr.left, weight, scope, out)
            self.loss_terms(expr.right, -weight if expr.op == "-" else weight, scope, out)
            return
        if isinstance(expr, ast.Neg):
            self.loss_terms(expr.operand, -weight, scope, out)
            return
        if isinstance(expr, ast.BinOp) and expr.op in ("*", "/"):
            for num, term in ((expr.left, expr.right), (expr.right, expr.left)):
                if expr.op == "/" and num is expr.left:
                    continue
                try:
                    w = evaluate(num, scope.params)
                except _EvalError as exc:
                    if exc.code != "E304":
                        continue
                    self.error(exc.code, exc.message, exc.span)
                    raise _Poisoned from None
                if isinstance(w, (int, float)) and not isinstance(w, bool):
                    if expr.op == "/" and w == 0:
                        self.error("E305", f"division by zero in a loss weight: {_text(expr)}", expr.span)
                        raise _Poisoned
                    scaled = weight * w if expr.op == "*" else weight / w
                    if not math.isfinite(scaled):
                        self.error("E305", f"the loss weight of {_text(term)} is not a finite number", expr.span)
                        raise _Poisoned
                    self.loss_terms(term, scaled, scope, out)
                    return
        if isinstance(expr, ast.Call):
            out.append(self.loss_call(expr, weight, scope))
            return
        self.error("E501", f"a loss term must be a loss call such as `mse(y, t)`; received: {_text(expr)}",
                   expr.span, notes=("a loss is a loss call or a weighted sum of them, "
                                     "e.g. `mse(y, t) + 0.5 * kl_normal(mu, logvar)`",))
        raise _Poisoned

    def loss_call(self, call: ast.Call, weight: float, scope: _Scope) -> ir.LossTerm:
        fn = LOSS_FNS.get(call.name)
        span = call.name_span or call.span
        if fn is None:
            alias = LOSS_ALIASES.get(call.name)
            hint = f"did you mean '{alias}'?" if alias else did_you_mean(call.name, LOSS_FNS)
            self.error("E501", f"unknown loss '{call.name}'" + (f"; {hint}" if hint else ""), span,
                           notes=(f"losses: {', '.join(LOSS_FNS)}",))
            raise _Poisoned
        what = _LOSS_ARGS.get(fn.kind, "(prediction, target)")
        arity = what.count(",") + 1
        count = "three" if arity == 3 else "two"
        if len(call.args) != arity:
            self.error("E501", f"{call.name} takes {count} values {what}; received: {len(call.args)} argument"
                           f"{'' if len(call.args) == 1 else 's'}", call.span)
            raise _Poisoned
        for arg in call.args:
            if not isinstance(arg, ast.Name):
                self.error("E501", f"{call.name} takes {count} value names {what}; received: {_text(arg)}",
                               arg.span)
                raise _Poisoned
        values = [self.lookup_value(arg, scope) for arg in call.args]
        kwargs = self.eval_kwargs(call, scope)
        attrs = self.bind_attrs(fn, (), kwargs, call)
        if any(v is None for v in values):
            raise _Poisoned
        types = [self.types[v] for v in values]
        if any(t is None for t in types):
            raise _Poisoned
        if fn.kind == "triplet":  # anchor, positive, negative: three float embeddings of one shape
            self.check_loss_shapes(fn, attrs, types[0], types[1], call)
            self.check_loss_shapes(fn, attrs, types[0], types[2], call)
        else:
            self.check_loss_shapes(fn, attrs, types[0], types[1], call)
        return ir.LossTerm(fn=fn.name, args=tuple(values), attrs=attrs, weight=float(weight), span=call.span)

    def check_loss_shapes(self, fn: OpDef, attrs, pred: ir.TensorType, target: ir.TensorType, call) -> None:
        if fn.kind == "triplet" and target.is_integer:
            self.error("E403", f"{fn.name}'s embeddings must be float; received: {target}", call.span)
            raise _Poisoned
        if pred.is_integer:
            self.error("E403", f"{fn.name}'s first argument must be float; received: {pred}", call.args[0].span)
            raise _Poisoned
        if "axis" in attrs and pred.rank > 0 and not -pred.rank <= attrs["axis"] < pred.rank:
            self.error("E405", f"{fn.name} axis={attrs['axis']} is out of range for the prediction {pred} "
                           f"(per-sample axes {-pred.rank}..{pred.rank - 1})", _arg_span(call, fn, "axis"))
            raise _Poisoned
        if fn.name == "sparse_categorical_crossentropy":
            if not target.is_integer:
                self.error("E403", f"sparse_categorical_crossentropy needs integer class ids as target; "
                               f"received: {target}", call.args[1].span,
                               notes=("declare it as e.g. `target label: int64[]`",))
                raise _Poisoned
            if pred.rank == 0:
                self.error("E402", "sparse_categorical_crossentropy needs a class axis in the prediction",
                               call.args[0].span)
                raise _Poisoned
            axis = attrs["axis"] % pred.rank
            want = pred.shape[:axis] + pred.shape[axis + 1:]
            if target.shape not in (want, want + (1,)):
                self.error("E402", f"sparse_categorical_crossentropy: prediction {pred} (classes on axis "
                               f"{axis}) needs a target of shape {list(want)}; received: {target}", call.span)
                raise _Poisoned
            return
        if target.shape != pred.shape:
            first, second = {"normal": ("mu", "logvar"), "triplet": ("anchor", "positive or negative")}.get(
                fn.kind, ("prediction", "target"))
            self.error("E402", f"{fn.name}: {first} {pred} and {second} {target} must have the same shape",
                           call.span)
            raise _Poisoned

    def optimizer(self, stmt: ast.OptimizerDecl) -> ir.Optimizer | None:
        call = stmt.call
        opt = OPTIMIZER_DEFS.get(call.name)
        if opt is None:
            hint = did_you_mean(call.name, OPTIMIZER_DEFS)
            self.error("E502", f"unknown optimizer '{call.name}'" + (f"; {hint}" if hint else ""),
                           call.name_span or call.span, notes=(f"optimizers: {', '.join(OPTIMIZER_DEFS)}",))
            return None
        try:
            args = tuple(evaluate(a, {}) for a in call.args)
            kwargs = tuple((k.name, evaluate(k.value, {})) for k in call.kwargs)
            attrs = self.bind_attrs(opt, args, kwargs, call)
        except _EvalError as exc:
            self.error(exc.code, exc.message, exc.span)
            return None
        except _Poisoned:
            return None
        return ir.Optimizer(name=opt.name, attrs=attrs, span=call.span)


#: the value arguments of a loss kind, as messages write them
_LOSS_ARGS = {"pair": "(prediction, target)", "normal": "(mu, logvar)", "triplet": "(anchor, positive, negative)"}


def _node_of(nodes: list[ir.Node], name: str) -> ir.Node:
    """The node called ``name`` (searched from the end: it is usually the last one)."""
    return next(n for n in reversed(nodes) if n.name == name)


def _frozen(params: tuple, attrs: dict) -> tuple:
    """A layer's weights, non-trainable when the layer says ``trainable=false``."""
    if attrs.get("trainable", True):
        return params
    return tuple(p.model_copy(update={"trainable": False}) for p in params)


def _declared(body) -> dict[str, Span | None]:
    """The names a network or block body defines, first definition wins (for use-before-definition)."""
    out: dict[str, Span | None] = {}
    for stmt in body:
        if isinstance(stmt, (ast.Binding, ast.LayerDecl, ast.InputDecl)):
            out.setdefault(stmt.name, stmt.span)
    return out


def _names(expr) -> set[str]:
    """The names an expression mentions."""
    if isinstance(expr, ast.Name):
        return {expr.id}
    if isinstance(expr, ast.BinOp):
        return _names(expr.left) | _names(expr.right)
    if isinstance(expr, ast.Neg):
        return _names(expr.operand)
    if isinstance(expr, (ast.ListExpr, ast.TupleExpr)):
        return set().union(*(_names(x) for x in expr.items))
    if isinstance(expr, ast.Call):
        return set().union(*(_names(x) for x in expr.args), *(_names(k.value) for k in expr.kwargs))
    return set()


_PY_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2}


def _py(expr) -> str | None:
    """An argument expression as Python source (None for what Python cannot say the same way: calls)."""
    if isinstance(expr, (ast.Num, ast.Str, ast.Bool)):
        return repr(expr.value)
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, (ast.ListExpr, ast.TupleExpr)):
        items = [_py(x) for x in expr.items]
        if any(i is None for i in items):
            return None
        if isinstance(expr, ast.ListExpr):
            return "[" + ", ".join(items) + "]"
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(expr, ast.Neg):
        inner = _py(expr.operand)
        if inner is None:
            return None
        return f"-({inner})" if isinstance(expr.operand, ast.BinOp) else f"-{inner}"
    if isinstance(expr, ast.BinOp):
        left, right = _py(expr.left), _py(expr.right)
        if left is None or right is None:
            return None
        p = _PY_PREC[expr.op]
        if isinstance(expr.left, ast.BinOp) and _PY_PREC[expr.left.op] < p:
            left = f"({left})"
        if isinstance(expr.right, ast.BinOp) and _PY_PREC[expr.right.op] <= p:
            right = f"({right})"
        return f"{left} {expr.op} {right}"
    return None


def _py_text(expr) -> str:
    """Python source of an expression, or its spec text when Python cannot say it."""
    py = _py(expr)
    if py is not None:
        return py
    from .frontend.format import expr as unparse

    return unparse(expr)


def _exprs(op: OpDef, at, params: dict[str, Any], cache: dict) -> dict[str, str]:
    """attribute -> Python source of the call's arguments that use block parameters (for Node.exprs).

    The same for every instance of a block: cached per call site (the checker keeps the syntax tree alive).
    """
    if not params or not isinstance(at, ast.Call):
        return {}
    key = (id(at), op.name, tuple(params))  # which are hyperparameters (_Scope.hparams): a use may pass some as values
    out = cache.get(key)
    if out is None:
        out = cache[key] = _exprs_of(op, at, params)
    return out


def _exprs_of(op: OpDef, at: ast.Call, params: dict[str, Any]) -> dict[str, str]:
    positional = () if op.category == "merge" else zip(op.positional, at.args)  # a merge's arguments are values
    pairs = [*positional, *((k.name, k.value) for k in at.kwargs)]
    out = {}
    for attr, expr in pairs:
        if _names(expr) & params.keys():
            py = _py(expr)
            if py is not None:
                out[attr] = py
    return out


def _plain(value: Any) -> Any:
    """A block argument for the IR: numbers, strings and lists as they are; an op or block as its spec text."""
    if isinstance(value, (Sym, CallValue)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _text(expr) -> str:
    """An expression as the spec writes it (shortened)."""
    from .frontend.format import expr as unparse

    return _short(unparse(expr), 40)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."



def _span_of(at) -> Span | None:
    return getattr(at, "span", None)


def _arg_span(at, op: OpDef | None, arg) -> Span | None:
    """The span of the argument ``arg`` (a name or a positional index) in a call, else the call's."""
    if not isinstance(at, ast.Call):
        return _span_of(at)
    if isinstance(arg, str):
        for kw in at.kwargs:
            if kw.name == arg:
                return kw.span
        if op is not None and arg in op.positional:
            i = op.positional.index(arg)
            if i < len(at.args):
                return at.args[i].span
    if isinstance(arg, int) and arg < len(at.args):
        return at.args[arg].span
    return at.span


class Checker:
    """Checks one parsed module and builds its program, as plain IR objects (:mod:`netspec.ir_plain`)."""

    def __init__(self, module: ast.Module, source: Source | None = None):
        self.module = module
        self.bag = DiagnosticBag(source)
        self.source = source
        self.blocks: dict[str, ast.BlockDef] = {}
        self.target_names: set[str] = set()
        self._missing_return: set[str] = set()
        self.expr_cache: dict[tuple[int, str], dict[str, str]] = {}  # Node.exprs per call site
        self.fitting_shapes: set[tuple] = set()  # shapes within the limits (limits.shape_problem)
        self.spent_nodes = 0  # nodes and block expansions of the networks checked so far (MAX_NODES...)
        self.spent_uses = 0
        self.too_big = False  # the file's E304 for MAX_NODES or MAX_BLOCK_USES was reported

    def missing_return(self, block: ast.BlockDef) -> None:
        if block.name not in self._missing_return:
            self._missing_return.add(block.name)
            span = block.span and Span.at(block.span.file, block.span.line, block.span.col, 5)
            self.bag.error("E206", f"block '{block.name}' has no 'return'", span)

    def run(self) -> ir.Program:
        """The program; raises :class:`SpecError` with every diagnostic found.

        The cyclic GC waits until the end: every object built here stays alive, and its passes over
        the growing IR would make the check superlinear in the spec's size.
        """
        with building():
            return self._run()

    def _run(self) -> ir.Program:
        names: dict[str, Span | None] = {}
        for decl in self.module.decls:
            if decl.name in names:
                self.bag.error("E202", f"'{decl.name}' is already defined at {names[decl.name]}", decl.span)
                continue
            names[decl.name] = decl.span
            if isinstance(decl, ast.BlockDef):
                if decl.name in OPS:
                    self.bag.error("E202", f"block '{decl.name}' would hide the op of that name", decl.span)
                    continue
                seen = set()
                for p in decl.params:
                    if p.name in seen:
                        self.bag.error("E202", f"parameter '{p.name}' is declared twice", p.span)
                    seen.add(p.name)
                self.blocks[decl.name] = decl
        networks = []
        if not self.module.networks:
            self.bag.error("E209", "the file declares no network", None,
                           notes=("a spec needs at least one `network NAME { ... }`",))
        for net in self.module.networks:
            self.target_names = set()
            builder = _NetworkBuilder(self, net)
            built = builder.build()
            if built is not None:
                networks.append(built)
            # the limits hold for the whole file: each network spends from what the ones before it left
            self.spent_nodes += len(builder.nodes)
            self.spent_uses += builder.block_uses
        self.bag.raise_if_any()
        return ir.Program(file=self.module.file, networks=tuple(networks))


def check_module(module: ast.Module, source: Source | None = None) -> ir.Program:
    """Check a parsed module; raises :class:`SpecError` with every diagnostic found.

    The program is plain IR (:mod:`netspec.ir_plain`); :func:`netspec.ir.from_plain` gives the typed one.
    """
    return Checker(module, source).run()
