"""The checker: syntax tree -> IR.

Expands blocks (hierarchical names), resolves names, binds and validates
arguments, infers every value's type, normalises attributes and counts
parameters. Errors are collected, not raised one by one: a failed node poisons
its output, and uses of a poisoned value stay silent so that each independent
mistake is reported exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ir
from .diagnostics import DiagnosticBag
from .frontend import ast
from .ops.base import AttrError, CallValue, InferError, OpDef, Sym, did_you_mean, show
from .ops.registry import LOSS_FNS, MERGE_OPS, OPS, OPTIMIZER_DEFS
from .source import Source, Span

DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


class _Poisoned(Exception):
    """Raised to abandon a chain after its error was reported."""


class _EvalError(Exception):
    def __init__(self, message: str, span: Span | None, code: str = "E305"):
        super().__init__(message)
        self.message, self.span, self.code = message, span, code


def evaluate(expr: ast.Expr, params: dict[str, Any]) -> Any:
    """Evaluate an argument expression; block parameters substitute, other names are symbols."""
    if isinstance(expr, (ast.Num, ast.Str, ast.Bool)):
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
            raise _EvalError(f"arithmetic needs numbers; received: {show(a)} {expr.op} {show(b)}", expr.span)
        if expr.op in ("/", "//", "%") and b == 0:
            raise _EvalError(f"division by zero: {show(a)} {expr.op} {show(b)}", expr.span)
        ops = {"+": a.__add__, "-": a.__sub__, "*": a.__mul__, "/": a.__truediv__,
               "//": a.__floordiv__, "%": a.__mod__}
        return ops[expr.op](b)
    if isinstance(expr, ast.BlockInput):
        raise _EvalError("'in' is a value, not an argument", expr.span)
    raise _EvalError("invalid expression", getattr(expr, "span", None))  # pragma: no cover


@dataclass
class _Shared:
    """A ``layer`` declaration: one weight owner used at several places."""

    name: str  # qualified weight-owner name
    call: ast.Call
    op: OpDef
    attrs: dict[str, Any] | None = None
    params: tuple[ir.Param, ...] | None = None
    first_input: ir.TensorType | None = None
    uses: int = 0
    failed: bool = False


@dataclass
class _Scope:
    """Names visible while expanding a network body or one block instance."""

    path: str  # '' at network level, 'stage2.0.' inside a block instance
    values: dict[str, str | None] = field(default_factory=dict)  # name -> value id (None: poisoned)
    params: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, _Shared] = field(default_factory=dict)
    block_input: str | None = None
    in_block: bool = False
    stack: tuple[str, ...] = ()


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

    # names ---------------------------------------------------------------------------
    def fresh(self, prefix: str, base: str) -> str:
        name = prefix + base
        k = 0
        while name in self.used_names:
            k += 1
            name = f"{prefix}{base}_{k}"
        self.used_names.add(name)
        return name

    # statements -------------------------------------------------------------------------
    def build(self) -> ir.Network | None:
        scope = _Scope(path="")
        outputs: list[tuple[str, str | None, Span | None]] = []
        loss: list[ir.LossTerm] = []
        optimizer = None
        seen_output = seen_loss = seen_opt = False
        for stmt in self.net.body:
            if isinstance(stmt, ast.InputDecl):
                self.declare_input(stmt, scope)
            elif isinstance(stmt, ast.Binding):
                self.bind(stmt, scope)
            elif isinstance(stmt, ast.LayerDecl):
                self.declare_layer(stmt, scope)
            elif isinstance(stmt, ast.OutputDecl):
                if seen_output:
                    self.bag.error("E202", "a network has one output statement; list every output in it",
                                   stmt.span)
                seen_output = True
                for n in stmt.names:
                    outputs.append((n.id, self.lookup_value(n, scope, allow_target=False), n.span))
            elif isinstance(stmt, ast.LossDecl):
                if seen_loss:
                    self.bag.error("E202", "a network has one loss statement", stmt.span)
                seen_loss = True
                loss = self.loss(stmt, scope)
            elif isinstance(stmt, ast.OptimizerDecl):
                if seen_opt:
                    self.bag.error("E202", "a network has one optimizer statement", stmt.span)
                seen_opt = True
                optimizer = self.optimizer(stmt)
            elif isinstance(stmt, ast.Return):
                self.bag.error("E205", "'return' belongs in a block; a network names its results with "
                               "'output'", stmt.span)
        if not seen_output:
            self.bag.error("E206", f"network '{self.net.name}' declares no output",
                           self.net.span and Span.at(self.net.span.file, self.net.span.line, self.net.span.col, 7),
                           notes=("add a line such as `output logits`",))
        if not self.inputs:
            self.bag.error("E206", f"network '{self.net.name}' declares no input",
                           self.net.span and Span.at(self.net.span.file, self.net.span.line, self.net.span.col, 7))
        for name, layer in scope.layers.items():
            if layer.uses == 0:
                pass  # an unused layer declaration holds no weights; nothing to report
        if any(v is None for _, v, _ in outputs) or self.bag.items:
            return None
        return ir.Network(
            name=self.net.name,
            inputs=tuple(self.inputs),
            targets=tuple(self.targets),
            nodes=tuple(self.nodes),
            outputs=tuple(v for _, v, _ in outputs),
            output_names=tuple(n for n, _, _ in outputs),
            loss=tuple(loss),
            optimizer=optimizer,
            span=self.net.span,
        )

    def declare_input(self, stmt: ast.InputDecl, scope: _Scope) -> None:
        if scope.in_block:
            self.bag.error("E205", f"'{stmt.kind}' belongs in a network, not in a block", stmt.span)
            return
        t = stmt.type
        dtype = t.dtype or "float32"
        if dtype not in DTYPES:
            hint = did_you_mean(dtype, DTYPES)
            self.bag.error("E403", f"unknown dtype '{dtype}'" + (f"; {hint}" if hint else ""), t.span,
                           notes=(f"dtypes: {', '.join(DTYPES)}",))
            return
        for d in t.dims:
            if isinstance(d, int) and d < 1:
                self.bag.error("E304", f"dimensions must be positive; received: {d}", t.span)
                return
        if self.define(stmt.name, stmt.span, scope):
            value = ir.Value.model_construct(name=stmt.name, type=ir.TensorType.model_construct(dtype=dtype, shape=t.dims), span=stmt.span)
            (self.inputs if stmt.kind == "input" else self.targets).append(value)
            self.types[stmt.name] = value.type
            scope.values[stmt.name] = stmt.name
            self.used_names.add(stmt.name)
            if stmt.kind == "target":
                self.c.target_names.add(stmt.name)

    def define(self, name: str, span: Span | None, scope: _Scope) -> bool:
        if name in scope.values or name in scope.layers:
            self.bag.error("E202", f"'{name}' is already defined in this scope", span,
                           notes=("values cannot be rebound; choose another name",))
            return False
        return True

    def bind(self, stmt: ast.Binding, scope: _Scope) -> None:
        if not self.define(stmt.name, stmt.span, scope):
            return
        value = self.chain(stmt.chain, scope, f"{scope.path}{stmt.name}.")
        scope.values[stmt.name] = value

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
                self.unknown_op(call.name, call.name_span or call.span, scope)
                return
            self.bag.error("E301", msg, call.name_span or call.span)
            return
        name = f"{scope.path}{stmt.name}"
        self.used_names.add(name)
        scope.layers[stmt.name] = _Shared(name, call, op)

    # chains -----------------------------------------------------------------------------
    def chain(self, chain: ast.Chain, scope: _Scope, prefix: str) -> str | None:
        try:
            value = self.source(chain.source, scope, prefix)
            for step in chain.steps:
                value = self.step(step, value, scope, prefix)
            return value
        except _Poisoned:
            return None

    def lookup_value(self, name: ast.Name, scope: _Scope, allow_target: bool = True) -> str | None:
        if name.id in scope.values:
            value = scope.values[name.id]
            if not allow_target and value in self.c.target_names:
                self.bag.error("E205", f"'{name.id}' is a target; a model cannot compute from or return it",
                               name.span)
                return None
            return value
        if name.id in scope.layers:
            self.bag.error("E201", f"'{name.id}' is a layer, not a value: use it as a step, `x -> {name.id}`",
                           name.span)
            return None
        candidates = list(scope.values)
        hint = did_you_mean(name.id, candidates)
        notes = []
        if scope.in_block and name.id not in scope.values:
            notes.append("a block sees only 'in', its parameters and its own bindings")
        self.bag.error("E201", f"unknown value '{name.id}'" + (f"; {hint}" if hint else ""), name.span,
                       notes=tuple(notes))
        return None

    def source(self, src, scope: _Scope, prefix: str) -> str:
        if isinstance(src, ast.BlockInput):
            if scope.block_input is None:
                self.bag.error("E205", "'in' is the input of a block; it has no meaning in a network", src.span)
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

    def merge(self, call: ast.Call, scope: _Scope, prefix: str) -> str:
        op = MERGE_OPS.get(call.name)
        if op is None:
            span = call.name_span or call.span
            if call.name in OPS or call.name in self.c.blocks:
                self.bag.error("E205", f"a chain starts with a value or a merge; '{call.name}' is a step",
                               span, notes=(f"write `x -> {call.name}(...)`",))
            else:
                hint = did_you_mean(call.name, MERGE_OPS)
                self.bag.error("E203", f"unknown merge '{call.name}'" + (f"; {hint}" if hint else ""), span,
                               notes=(f"merges: {', '.join(MERGE_OPS)}",))
            raise _Poisoned
        inputs = []
        poisoned = False
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
                self.bag.error("E301", f"{call.name} takes values (names, 'in' or merges); received: "
                               f"{_text(arg)}", arg.span)
                poisoned = True
        if poisoned:
            raise _Poisoned
        n = len(inputs)
        if n < op.min_inputs or (op.max_inputs is not None and n > op.max_inputs):
            want = (f"exactly {op.max_inputs}" if op.max_inputs == op.min_inputs
                    else f"at least {op.min_inputs}")
            self.bag.error("E301", f"{call.name} takes {want} values; received: {n}", call.span)
            raise _Poisoned
        kwargs = self.eval_kwargs(call, scope)
        return self.apply(op, (), kwargs, inputs, call, scope, prefix, base=call.name)

    def eval_kwargs(self, call: ast.Call, scope: _Scope) -> tuple:
        try:
            return tuple((k.name, evaluate(k.value, scope.params)) for k in call.kwargs)
        except _EvalError as exc:
            self.bag.error(exc.code, exc.message, exc.span)
            raise _Poisoned from None

    def step(self, step: ast.Step, value: str, scope: _Scope, prefix: str) -> str:
        count = 1
        if step.repeat is not None:
            try:
                count = evaluate(step.repeat, scope.params)
            except _EvalError as exc:
                self.bag.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.bag.error("E304", f"a repeat count must be a positive integer; received: {show(count)}",
                               step.repeat.span)
                raise _Poisoned
        target = step.target
        name = target.id if isinstance(target, ast.Name) else target.name
        span = target.span if isinstance(target, ast.Name) else (target.name_span or target.span)
        if isinstance(target, ast.Name) and name in scope.layers:
            if count > 1:
                self.bag.error("E301", f"shared layer '{name}' cannot be repeated: a repeat gives each copy "
                               "its own weights", step.span)
                raise _Poisoned
            return self.use_shared(scope.layers[name], value, target, scope, prefix)
        if isinstance(target, ast.Name) and name in scope.params:
            param = scope.params[name]
            if isinstance(param, Sym):
                target = ast.Call(param.name, span=target.span, name_span=target.span)
                name = param.name
            elif isinstance(param, CallValue):
                for _ in range(count):
                    value = self.apply_value(param, value, target, scope, prefix)
                return value
            else:
                self.bag.error("E301", f"block parameter '{name}' is {show(param)}, not an op", span)
                raise _Poisoned
        if name in self.c.blocks:
            for _ in range(count):
                value = self.block(self.c.blocks[name], target, value, scope, prefix)
            return value
        op = OPS.get(name)
        if op is None:
            self.unknown_op(name, span, scope)
            raise _Poisoned
        if op.category == "merge":
            self.bag.error("E205", f"'{name}' is a merge: use it as a chain's source, `{name}(a, b)`", span)
            raise _Poisoned
        if isinstance(target, ast.Call):
            try:
                args = tuple(evaluate(a, scope.params) for a in target.args)
            except _EvalError as exc:
                self.bag.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            kwargs = self.eval_kwargs(target, scope)
        else:
            args, kwargs = (), ()
        for _ in range(count):
            value = self.apply(op, args, kwargs, [value], target, scope, prefix, base=name)
        return value

    def apply_value(self, call: CallValue, value: str, at, scope: _Scope, prefix: str) -> str:
        op = OPS.get(call.name)
        if op is None or op.category == "merge":
            self.unknown_op(call.name, at.span, scope)
            raise _Poisoned
        return self.apply(op, call.args, call.kwargs, [value], at, scope, prefix, base=call.name)

    def unknown_op(self, name: str, span: Span | None, scope: _Scope) -> None:
        candidates = [*OPS, *self.c.blocks, *scope.layers]
        hint = did_you_mean(name, candidates)
        self.bag.error("E203", f"unknown op '{name}'" + (f"; {hint}" if hint else ""), span)

    # nodes --------------------------------------------------------------------------------
    def bind_attrs(self, op: OpDef, args, kwargs, at) -> dict[str, Any]:
        try:
            return op.bind_values(args, kwargs)
        except AttrError as exc:
            self.bag.error(exc.code, str(exc), _arg_span(at, op, exc.arg))
            raise _Poisoned from None

    def input_types(self, op: OpDef, inputs: list[str], at) -> list[ir.TensorType]:
        types = [self.types.get(v) for v in inputs]
        if any(t is None for t in types):
            raise _Poisoned
        if op.float_input and op.category != "merge":
            for t in types:
                if t.is_integer:
                    notes = ("integer ids go through `embedding(vocab, dim)` first",)
                    self.bag.error("E403", f"{op.name} expects a float input; received: {t}", _span_of(at),
                                   notes=notes)
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
            self.bag.error(exc.code, exc.message, span, formula=exc.formula, notes=notes)
            raise _Poisoned from None

    def apply(self, op: OpDef, args, kwargs, inputs: list[str], at, scope: _Scope, prefix: str,
              base: str) -> str:
        attrs = self.bind_attrs(op, args, kwargs, at)
        types = self.input_types(op, inputs, at)
        out, attrs = self.infer(op, attrs, types, at)
        name = self.fresh(prefix, base)
        params = tuple(op.params(attrs, types, out))
        node = ir.Node.model_construct(name=name, op=op.name, attrs=attrs, inputs=tuple(inputs), type=out, layer=name,
                       params=params, macs=op.macs(attrs, types, out), span=_span_of(at))
        self.nodes.append(node)
        self.types[name] = out
        return name

    def use_shared(self, layer: _Shared, value: str, at: ast.Name, scope: _Scope, prefix: str) -> str:
        op = layer.op
        if layer.failed:
            raise _Poisoned
        if layer.attrs is None:
            layer.failed = True  # until the arguments bind: report them once, not per use
            call = layer.call
            try:
                args = tuple(evaluate(a, scope.params) for a in call.args)
            except _EvalError as exc:
                self.bag.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            kwargs = self.eval_kwargs(call, scope)
            layer.attrs = self.bind_attrs(op, args, kwargs, call)
            layer.failed = False
        types = self.input_types(op, [value], at)
        out, attrs = self.infer(op, layer.attrs, types, layer.call)
        params = tuple(op.params(attrs, types, out))
        if layer.params is None:
            layer.params, layer.first_input = params, types[0]
        elif [p.shape for p in params] != [p.shape for p in layer.params]:
            self.bag.error("E402", f"shared layer '{at.id}' was built for input {layer.first_input}; "
                           f"this use gives {types[0]}, which needs other weight shapes", at.span)
            raise _Poisoned
        layer.uses += 1
        name = self.fresh(prefix, at.id)
        node = ir.Node.model_construct(name=name, op=op.name, attrs=attrs, inputs=(value,), type=out, layer=layer.name,
                       params=layer.params, macs=op.macs(attrs, types, out), span=at.span)
        self.nodes.append(node)
        self.types[name] = out
        return name

    # blocks --------------------------------------------------------------------------------
    def block(self, block: ast.BlockDef, call, value: str, scope: _Scope, prefix: str) -> str:
        span = call.name_span if isinstance(call, ast.Call) else call.span
        if block.name in scope.stack:
            chain = " -> ".join((*scope.stack, block.name))
            self.bag.error("E207", f"block '{block.name}' uses itself: {chain}", span)
            raise _Poisoned
        params = self.bind_block_args(block, call, scope)
        index = self.block_counters.get(prefix, 0)
        self.block_counters[prefix] = index + 1
        path = f"{prefix}{index}."
        inner = _Scope(path=path, params=params, block_input=value, in_block=True,
                       stack=(*scope.stack, block.name))
        result = None
        returned = False
        for stmt in block.body:
            if isinstance(stmt, ast.Binding):
                self.bind(stmt, inner)
            elif isinstance(stmt, ast.LayerDecl):
                self.declare_layer(stmt, inner)
            elif isinstance(stmt, ast.Return):
                if returned:
                    self.bag.error("E202", "a block has one 'return'", stmt.span)
                    continue
                returned = True
                result = self.chain(stmt.chain, inner, path)
            else:
                kind = type(stmt).__name__.replace("Decl", "").lower()
                kind = getattr(stmt, "kind", kind)
                self.bag.error("E205", f"'{kind}' belongs in a network, not in a block", stmt.span)
        if not returned:
            self.c.missing_return(block)
            raise _Poisoned
        if result is None:
            raise _Poisoned
        return result

    def bind_block_args(self, block: ast.BlockDef, call, scope: _Scope) -> dict[str, Any]:
        args, kwargs = (), ()
        if isinstance(call, ast.Call):
            try:
                args = tuple(evaluate(a, scope.params) for a in call.args)
            except _EvalError as exc:
                self.bag.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
            kwargs = self.eval_kwargs(call, scope)
        names = [p.name for p in block.params]
        span = _span_of(call)
        if len(args) > len(names):
            self.bag.error("E301", f"block {block.name} takes {len(names)} positional arguments; "
                           f"received: {len(args)}", span)
            raise _Poisoned
        bound = dict(zip(names, args))
        for key, val in kwargs:
            if key not in names:
                hint = did_you_mean(key, names)
                self.bag.error("E303", f"block {block.name} has no parameter '{key}'" + (f"; {hint}" if hint else ""),
                               _arg_span(call, None, key))
                raise _Poisoned
            if key in bound:
                self.bag.error("E301", f"block {block.name} got parameter '{key}' twice", _arg_span(call, None, key))
                raise _Poisoned
            bound[key] = val
        for p in block.params:
            if p.name in bound:
                continue
            if p.default is None:
                self.bag.error("E302", f"block {block.name} needs parameter '{p.name}'", span)
                raise _Poisoned
            try:
                bound[p.name] = evaluate(p.default, bound)
            except _EvalError as exc:
                self.bag.error(exc.code, exc.message, exc.span)
                raise _Poisoned from None
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
                except _EvalError:
                    continue
                if isinstance(w, (int, float)) and not isinstance(w, bool):
                    if expr.op == "/" and w == 0:
                        break
                    self.loss_terms(term, weight * w if expr.op == "*" else weight / w, scope, out)
                    return
        if isinstance(expr, ast.Call):
            out.append(self.loss_call(expr, weight, scope))
            return
        self.bag.error("E501", "a loss is a loss call or a weighted sum of them, "
                       "e.g. `mse(y, t) + 0.5 * kl_normal(mu, logvar)`", expr.span)
        raise _Poisoned

    def loss_call(self, call: ast.Call, weight: float, scope: _Scope) -> ir.LossTerm:
        fn = LOSS_FNS.get(call.name)
        span = call.name_span or call.span
        if fn is None:
            hint = did_you_mean(call.name, LOSS_FNS)
            self.bag.error("E501", f"unknown loss '{call.name}'" + (f"; {hint}" if hint else ""), span,
                           notes=(f"losses: {', '.join(LOSS_FNS)}",))
            raise _Poisoned
        if len(call.args) != 2 or not all(isinstance(a, ast.Name) for a in call.args):
            what = "(mu, logvar)" if fn.kind == "normal" else "(prediction, target)"
            self.bag.error("E501", f"{call.name} takes two values {what}; received: {len(call.args)} arguments",
                           call.span)
            raise _Poisoned
        values = []
        for arg in call.args:
            v = self.lookup_value(arg, scope)
            if v is None:
                raise _Poisoned
            values.append(v)
        kwargs = self.eval_kwargs(call, scope)
        attrs = self.bind_attrs(fn, (), kwargs, call)
        pred, target = (self.types[v] for v in values)
        if pred is None or target is None:
            raise _Poisoned
        self.check_loss_shapes(fn, attrs, pred, target, call)
        return ir.LossTerm.model_construct(fn=fn.name, args=tuple(values), attrs=attrs, weight=float(weight), span=call.span)

    def check_loss_shapes(self, fn: OpDef, attrs, pred: ir.TensorType, target: ir.TensorType, call) -> None:
        if pred.is_integer:
            self.bag.error("E403", f"{fn.name}'s first argument must be float; received: {pred}", call.args[0].span)
            raise _Poisoned
        if fn.name == "sparse_categorical_crossentropy":
            if not target.is_integer:
                self.bag.error("E403", f"sparse_categorical_crossentropy needs integer class ids as target; "
                               f"received: {target}", call.args[1].span,
                               notes=("declare it as e.g. `target label: int64[]`",))
                raise _Poisoned
            if pred.rank == 0:
                self.bag.error("E402", "sparse_categorical_crossentropy needs a class axis in the prediction",
                               call.args[0].span)
                raise _Poisoned
            axis = attrs["axis"] % pred.rank
            want = pred.shape[:axis] + pred.shape[axis + 1:]
            if target.shape not in (want, want + (1,)):
                self.bag.error("E402", f"sparse_categorical_crossentropy: prediction {pred} (classes on axis "
                               f"{axis}) needs a target of shape {list(want)}; received: {target}", call.span)
                raise _Poisoned
            return
        if target.shape != pred.shape:
            first, second = ("mu", "logvar") if fn.name == "kl_normal" else ("prediction", "target")
            self.bag.error("E402", f"{fn.name}: {first} {pred} and {second} {target} must have one shape",
                           call.span)
            raise _Poisoned

    def optimizer(self, stmt: ast.OptimizerDecl) -> ir.Optimizer | None:
        call = stmt.call
        opt = OPTIMIZER_DEFS.get(call.name)
        if opt is None:
            hint = did_you_mean(call.name, OPTIMIZER_DEFS)
            self.bag.error("E502", f"unknown optimizer '{call.name}'" + (f"; {hint}" if hint else ""),
                           call.name_span or call.span, notes=(f"optimizers: {', '.join(OPTIMIZER_DEFS)}",))
            return None
        try:
            args = tuple(evaluate(a, {}) for a in call.args)
            kwargs = tuple((k.name, evaluate(k.value, {})) for k in call.kwargs)
            attrs = self.bind_attrs(opt, args, kwargs, call)
        except _EvalError as exc:
            self.bag.error(exc.code, exc.message, exc.span)
            return None
        except _Poisoned:
            return None
        return ir.Optimizer.model_construct(name=opt.name, attrs=attrs, span=call.span)


def _text(expr) -> str:
    return type(expr).__name__.lower()


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
    """Checks one parsed module and builds its :class:`ir.Program`."""

    def __init__(self, module: ast.Module, source: Source | None = None):
        self.module = module
        self.bag = DiagnosticBag(source)
        self.blocks: dict[str, ast.BlockDef] = {}
        self.target_names: set[str] = set()
        self._missing_return: set[str] = set()

    def missing_return(self, block: ast.BlockDef) -> None:
        if block.name not in self._missing_return:
            self._missing_return.add(block.name)
            span = block.span and Span.at(block.span.file, block.span.line, block.span.col, 5)
            self.bag.error("E206", f"block '{block.name}' has no 'return'", span)

    def run(self) -> ir.Program:
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
            built = _NetworkBuilder(self, net).build()
            if built is not None:
                networks.append(built)
        self.bag.raise_if_any()
        return ir.Program.model_construct(file=self.module.file, networks=tuple(networks))


def check_module(module: ast.Module, source: Source | None = None) -> ir.Program:
    """Check a parsed module; raises :class:`SpecError` with every diagnostic found."""
    return Checker(module, source).run()
