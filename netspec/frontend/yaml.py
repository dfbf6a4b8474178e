"""The YAML front end: the same syntax tree from a YAML document.

Schema (docs/yaml.md)::

    blocks:
      residual:
        params: {filters: null, stride: 1}     # null: no default (required)
        layers: {shared: "dense(8)"}           # optional
        values:
          main: "in -> conv2d(filters, 3, stride=stride) -> batchnorm"
        return: "add(main, in) -> relu"
    networks:
      LeNet5:
        inputs: {image: [1, 28, 28]}
        targets: {label: "int64[]"}
        layers: {encoder: "dense(64)"}
        values:
          logits: [image, flatten, "dense(10)"]   # a chain as a list: source, then steps
        outputs: [logits]
        loss: "sparse_categorical_crossentropy(logits, label, from_logits=true)"
        optimizer: "sgd(lr=0.01)"

Strings are .net expressions (``"relu"`` is the name relu; a string literal is
written ``'"text"'``); YAML numbers and booleans are literals.
"""

from __future__ import annotations

import yaml

from ..diagnostics import Diagnostic, SpecError
from ..source import Source, Span
from . import ast
from .net import parse_fragment

NETWORK_KEYS = ("inputs", "targets", "layers", "values", "outputs", "loss", "optimizer")
BLOCK_KEYS = ("params", "layers", "values", "return")


class _Loader(yaml.SafeLoader):
    pass


def _err(source: Source, node, message: str, code: str = "E102", notes=()) -> SpecError:
    span = _span(source, node)
    return SpecError([Diagnostic(code, message, span, tuple(notes))], {source.name: source})


def _span(source: Source, node) -> Span | None:
    if node is None:
        return None
    s, e = node.start_mark, node.end_mark
    end_col = e.column + 1 if e.line == s.line else s.column + 2
    return Span(source.name, s.line + 1, s.column + 1, s.line + 1, max(end_col, s.column + 2))


def _mapping(source: Source, node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(source, node, f"{what} must be a mapping")
    seen: dict[str, yaml.Node] = {}
    out = []
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise _err(source, k, f"keys of {what} must be names")
        key = k.value
        if key in seen:
            raise _err(source, k, f"'{key}' appears twice in {what}", "E202")
        seen[key] = k
        out.append((key, k, v))
    return out


def _name(source: Source, knode, what: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", knode.value):
        raise _err(source, knode, f"{what} '{knode.value}' is not a valid name", "E101")
    return knode.value


def _fragment(source: Source, node, start: str):
    """Parse a scalar as a .net fragment, with spans pointing into the YAML file."""
    if not isinstance(node, yaml.ScalarNode):
        raise _err(source, node, f"expected a string holding a {start.replace('_', ' ')}")
    text = node.value
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if node.style in ("'", '"'):
        col += 1
    if node.tag.endswith(":bool"):
        text = "true" if node.value.lower() in ("true", "yes", "on") else "false"
    if node.style in ("|", ">"):
        line, col = line + 1, col  # block scalars start on the next line; columns are approximate
    return parse_fragment(text, start, source, line, col)


def _expr(source: Source, node) -> ast.Expr:
    if isinstance(node, yaml.ScalarNode):
        span = _span(source, node)
        if node.tag.endswith(":int"):
            return ast.Num(int(node.value.replace("_", ""), 0), span=span)
        if node.tag.endswith(":float"):
            return ast.Num(float(node.value), span=span)
        if node.tag.endswith(":bool"):
            return ast.Bool(node.value.lower() in ("true", "yes", "on"), span=span)
        return _fragment(source, node, "expr")
    if isinstance(node, yaml.SequenceNode):
        return ast.ListExpr(tuple(_expr(source, x) for x in node.value), span=_span(source, node))
    raise _err(source, node, "expected a value")


def _chain(source: Source, node) -> ast.Chain:
    if isinstance(node, yaml.SequenceNode):
        if not node.value:
            raise _err(source, node, "a chain needs at least a source")
        src = _fragment(source, node.value[0], "chain")
        steps = list(src.steps) + [_fragment(source, x, "step") for x in node.value[1:]]
        return ast.Chain(src.source, tuple(steps), span=_span(source, node))
    return _fragment(source, node, "chain")


def _tensor_type(source: Source, node) -> ast.TensorType:
    if isinstance(node, yaml.SequenceNode):
        dims = []
        for d in node.value:
            if isinstance(d, yaml.ScalarNode) and d.tag.endswith(":int"):
                dims.append(int(d.value))
            elif isinstance(d, yaml.ScalarNode) and d.tag.endswith(":str"):
                dims.append(_name(source, d, "dimension"))
            else:
                raise _err(source, d, "a dimension is a positive integer or a name")
        return ast.TensorType(None, tuple(dims), span=_span(source, node))
    return _fragment(source, node, "tensor_type")


def _stmts(source: Source, entries, kind: str) -> list:
    body: list = []
    for key, knode, vnode in entries:
        if key in ("inputs", "targets"):
            for name, nk, nv in _mapping(source, vnode, key):
                body.append(ast.InputDecl(_name(source, nk, "input"), _tensor_type(source, nv),
                                          "input" if key == "inputs" else "target", span=_span(source, nk)))
        elif key == "layers":
            for name, nk, nv in _mapping(source, vnode, "layers"):
                call = _fragment(source, nv, "call")
                body.append(ast.LayerDecl(_name(source, nk, "layer"), call, span=_span(source, nk)))
        elif key == "values":
            for name, nk, nv in _mapping(source, vnode, "values"):
                body.append(ast.Binding(_name(source, nk, "value"), _chain(source, nv), span=_span(source, nk)))
        elif key == "outputs":
            nodes = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            names = tuple(ast.Name(_name(source, n, "output"), span=_span(source, n)) for n in nodes)
            body.append(ast.OutputDecl(names, span=_span(source, knode)))
        elif key == "loss":
            body.append(ast.LossDecl(_expr(source, vnode), span=_span(source, knode)))
        elif key == "optimizer":
            expr = _expr(source, vnode)
            if isinstance(expr, ast.Name):
                expr = ast.Call(expr.id, span=expr.span, name_span=expr.span)
            if not isinstance(expr, ast.Call):
                raise _err(source, vnode, "an optimizer is a call such as \"adam(lr=1e-3)\"", "E502")
            body.append(ast.OptimizerDecl(expr, span=_span(source, knode)))
        elif key == "return":
            body.append(ast.Return(_chain(source, vnode), span=_span(source, knode)))
    return body


def _check_keys(source: Source, entries, allowed, what: str) -> None:
    import difflib

    for key, knode, _ in entries:
        if key not in allowed:
            match = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{match[0]}'?" if match else ""
            raise _err(source, knode, f"unknown key '{key}' in {what}{hint}", "E102",
                       notes=(f"keys: {', '.join(allowed)}",))


def parse_yaml(source: Source) -> ast.Module:
    """Parse a YAML spec into the syntax tree; raises SpecError (E102) on a bad document."""
    try:
        root = yaml.compose(source.text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        span = Span.at(source.name, mark.line + 1, mark.column + 1) if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Diagnostic("E102", f"invalid YAML: {problem}", span)], {source.name: source}) from None
    if root is None:
        raise SpecError([Diagnostic("E209", "the file declares no network", None)], {source.name: source})
    top = _mapping(source, root, "the document")
    _check_keys(source, top, ("blocks", "networks"), "the document")
    decls: list = []
    for key, knode, vnode in top:
        for name, nk, nv in _mapping(source, vnode, key):
            entries = _mapping(source, nv, f"{key[:-1]} '{name}'")
            if key == "blocks":
                _check_keys(source, entries, BLOCK_KEYS, f"block '{name}'")
                params = []
                for pkey, pk, pv in next((_mapping(source, v, "params") for k, _, v in entries if k == "params"), []):
                    default = None
                    if not (isinstance(pv, yaml.ScalarNode) and pv.tag.endswith(":null")):
                        default = _expr(source, pv)
                    params.append(ast.Param(_name(source, pk, "parameter"), default, span=_span(source, pk)))
                body = _stmts(source, [e for e in entries if e[0] != "params"], "block")
                decls.append(ast.BlockDef(_name(source, nk, "block"), tuple(params), tuple(body),
                                          span=_span(source, nk)))
            else:
                _check_keys(source, entries, NETWORK_KEYS, f"network '{name}'")
                body = _stmts(source, entries, "network")
                decls.append(ast.NetworkDef(_name(source, nk, "network"), tuple(body), span=_span(source, nk)))
    return ast.Module(tuple(decls), file=source.name)
