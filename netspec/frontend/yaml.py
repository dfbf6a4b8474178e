"""The YAML front end: the same syntax tree from a YAML document.

Schema (docs/language.md, "The YAML form")::

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

import math

import yaml

from ..diagnostics import Diagnostic, SpecError
from ..source import Source, Span
from . import ast
from .net import _keywords, parse_fragment

NETWORK_KEYS = ("inputs", "targets", "layers", "values", "outputs", "loss", "optimizer")
BLOCK_KEYS = ("params", "layers", "values", "return")

#: Limits that keep a hostile document from exhausting the stack or memory:
#: collections nested deeper than MAX_DEPTH, or more than MAX_NODES nodes once
#: aliases are expanded (a "billion laughs" document), are errors.
MAX_DEPTH = 50
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    pass


_CONSTRUCT = yaml.constructor.SafeConstructor()


def _err(source: Source, node, message: str, code: str = "E102", notes=()) -> SpecError:
    span = _span(source, node)
    return SpecError([Diagnostic(code, message, span, tuple(notes))], {source.name: source})


def _span(source: Source, node) -> Span | None:
    if node is None:
        return None
    (line, col), (end_line, end_col) = _at(source, node.start_mark), _at(source, node.end_mark)
    if end_line != line:
        end_col = col + 1
    return Span(source.name, line, col, line, max(end_col, col + 1))


def _at(source: Source, mark) -> tuple[int, int]:
    """A YAML mark as netspec's 1-based (line, col).

    From the character index, not PyYAML's own line count: YAML also breaks
    lines at a lone '\\r', '\\x85' and '\\u2028', netspec (like the .net lexer) only at '\\n'.
    """
    return source.position(mark.index)


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

    if not isinstance(knode, yaml.ScalarNode):
        raise _err(source, knode, f"expected a name for the {what}", "E102")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", knode.value):
        raise _err(source, knode, f"{what} '{knode.value}' is not a valid name", "E101")
    if knode.value in _keywords():  # the .net form could not write it
        raise _err(source, knode, f"{what} '{knode.value}' is a keyword and cannot be used as a name", "E101")
    return knode.value


def _positions(source: Source, node) -> list[tuple[int, int]] | None:
    """The file (line, col) of each character of a scalar's value, or None when unknown.

    Aligns the value with the raw text between the node's marks: folded line
    breaks, block indentation, quotes and simple escapes are skipped over.
    """
    s, e = node.start_mark, node.end_mark
    raw = source.text[s.index:e.index]
    if not raw:
        return None
    where, (line, col) = [], _at(source, s)
    for ch in raw:  # the (line, col) of every raw character
        where.append((line, col))
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
    out, j, n = [], 0, len(raw)
    for ch in node.value:
        if ch.isspace():
            if j < n and raw[j].isspace():
                out.append(where[j])
                if raw[j] == ch:
                    j += 1
                else:  # a folded line break: one space for the whole run
                    while j < n and raw[j].isspace():
                        j += 1
            else:  # whitespace from an escape: no raw counterpart of its own
                out.append(where[min(j, n - 1)])
            continue
        while j < n and raw[j] != ch:
            j += 1
        if j == n:
            return None
        out.append(where[j])
        j += 1
    return out


def _fragment(source: Source, node, start: str):
    """Parse a scalar as a .net fragment, with spans pointing into the YAML file."""
    if not isinstance(node, yaml.ScalarNode):
        raise _err(source, node, f"expected a string holding a {start.replace('_', ' ')}")
    text = node.value.rstrip()
    line, col = _at(source, node.start_mark)
    if node.style in ("'", '"'):
        col += 1
    positions = _positions(source, node)
    if positions is not None:
        positions = positions[:len(text)]
    if node.style in ("|", ">"):
        line, col = line + 1, col  # block scalars start on the next line
    return parse_fragment(text, start, source, line, col, positions)


def _number(source: Source, node, kind: str):
    """A YAML int or float scalar as Python's number (YAML 1.1: 0x1F, 0o17, 1_000, 1:30, .inf)."""
    try:
        value = _CONSTRUCT.construct_yaml_int(node) if kind == "int" else _CONSTRUCT.construct_yaml_float(node)
    except (ValueError, yaml.YAMLError):
        raise _err(source, node, f"invalid number '{node.value}'", "E103") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _err(source, node, f"'{node.value}' is not a finite number", "E103")
    return value


def _expr(source: Source, node) -> ast.Expr:
    if isinstance(node, yaml.ScalarNode):
        span = _span(source, node)
        if node.tag.endswith(":int"):
            return ast.Num(_number(source, node, "int"), span=span)
        if node.tag.endswith(":float"):
            return ast.Num(_number(source, node, "float"), span=span)
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
                dims.append(_number(source, d, "int"))
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
            for _, nk, nv in _mapping(source, vnode, key):
                body.append(ast.InputDecl(_name(source, nk, "input"), _tensor_type(source, nv),
                                          "input" if key == "inputs" else "target", span=_span(source, nk)))
        elif key == "layers":
            for _, nk, nv in _mapping(source, vnode, "layers"):
                call = _fragment(source, nv, "call")
                body.append(ast.LayerDecl(_name(source, nk, "layer"), call, span=_span(source, nk)))
        elif key == "values":
            for _, nk, nv in _mapping(source, vnode, "values"):
                if isinstance(nk, yaml.ScalarNode) and "," in str(nk.value):  # `out, h, c: CHAIN`
                    names = tuple(_name(source, yaml.ScalarNode(nk.tag, part.strip(), nk.start_mark, nk.end_mark),
                                        "value") for part in str(nk.value).split(","))
                    body.append(ast.Binding(names[0], _chain(source, nv), names, span=_span(source, nk)))
                    continue
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


def _yaml_error(source: Source, exc: yaml.YAMLError) -> Diagnostic:
    """PyYAML's complaint in words a spec author knows, at its place."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    span = Span.at(source.name, *_at(source, mark)) if mark else Span.at(source.name, 1, 1)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    notes = []
    if problem.startswith("expected <block end>"):
        message = "invalid YAML: this line's indentation does not fit the block around it"
        if cmark is not None:
            notes.append("the enclosing block starts at line {}, column {}; ".format(*_at(source, cmark)) +
                         "its keys must line up with that column")
    elif "'\\t'" in problem or "'\t'" in problem:
        message = "invalid YAML: a tab cannot indent YAML; use spaces"
    else:
        message = f"invalid YAML: {problem}"
        if context and cmark is not None:
            notes.append(f"{context} at line {_at(source, cmark)[0]}")
    return Diagnostic("E102", message, span, tuple(notes))


def _check_size(source: Source, root) -> None:
    """Reject recursive aliases, deep nesting and alias bombs before walking the document."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, depth, children done?)
    stack = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [x for pair in node.value for x in pair] if isinstance(node, yaml.MappingNode) else node.value
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                raise _err(source, node, f"the document is too large: more than {MAX_NODES} values once "
                           "aliases are expanded")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _err(source, node, "an alias refers to a collection that contains it")
        if depth > MAX_DEPTH:
            raise _err(source, node, f"collections nested more than {MAX_DEPTH} deep")
        on_path.add(key)
        stack.append((node, depth, True))
        for c in children:
            if id(c) in on_path:
                raise _err(source, c, "an alias refers to a collection that contains it")
            if id(c) not in sizes:
                stack.append((c, depth + 1, False))


def parse_yaml(source: Source) -> ast.Module:
    """Parse a YAML spec into the syntax tree; raises SpecError (E102) on a bad document."""
    from . import check_size

    check_size(source)
    try:
        root = yaml.compose(source.text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line, col = source.position(exc.position)
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise SpecError([Diagnostic("E102", f"invalid YAML: character {what} is not allowed",
                                    Span.at(source.name, line, col))], {source.name: source}) from None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_error(source, exc)], {source.name: source}) from None
    except RecursionError:
        raise SpecError([Diagnostic("E102", f"invalid YAML: collections nested more than {MAX_DEPTH} deep",
                                    Span.at(source.name, 1, 1))], {source.name: source}) from None
    if root is None:
        raise SpecError([Diagnostic("E209", "the file declares no network", None)], {source.name: source})
    _check_size(source, root)
    top = _mapping(source, root, "the document")
    _check_keys(source, top, ("blocks", "networks"), "the document")
    decls: list = []
    for key, _, vnode in top:
        for name, nk, nv in _mapping(source, vnode, key):
            entries = _mapping(source, nv, f"{key[:-1]} '{name}'")
            if key == "blocks":
                _check_keys(source, entries, BLOCK_KEYS, f"block '{name}'")
                params = []
                for _, pk, pv in next((_mapping(source, v, "params") for k, _, v in entries if k == "params"), []):
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
