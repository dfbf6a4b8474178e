"""The .net front end: lark grammar -> syntax tree with spans."""

from __future__ import annotations

import ast as pyast
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from ..diagnostics import Diagnostic, SpecError
from ..source import Source, Span
from . import ast

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}

_HUMAN = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a float", "STRING": "a string",
    "_NL": "a new line", "_ARROW": "'->'", "$END": "the end of the file",
}


class _PostLex:
    """Drop newlines inside brackets and around ``->``; fold repeated newlines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        pending = None  # a newline waiting to see the next token
        prev_type = None
        for tok in stream:
            t = tok.type
            if t == "_NL":
                if depth > 0 or prev_type == "_ARROW" or prev_type is None:
                    continue
                pending = pending or tok
                continue
            if pending is not None:
                if t != "_ARROW":
                    yield pending
                pending = None
            if t in _OPEN:
                depth += 1
            elif t in _CLOSE:
                depth = max(depth - 1, 0)
            prev_type = t
            yield tok
        if pending is not None:
            yield pending


def _cache_path(grammar: str, start: str) -> str | bool:
    """Where lark keeps the built LALR tables: a per-user cache keyed by grammar, start and versions."""
    import hashlib
    import os
    import sys
    import tempfile

    import lark

    key = hashlib.sha256(f"{grammar}\0{start}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "netspec")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        folder = tempfile.gettempdir()
    return os.path.join(folder, f"grammar-{start}-{key}.lark.cache")


@lru_cache(maxsize=None)
def parser(start: str = "start") -> Lark:
    """The LALR parser for one start symbol (cached; built once per process)."""
    grammar = resources.files("netspec.grammar").joinpath("netspec.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", start=start, postlex=_PostLex(), cache=_cache_path(grammar, start),
                propagate_positions=True, maybe_placeholders=True)


def _span(file: str, meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + len(tok))


class _ToAst(Transformer):
    """Maps each grammar rule to one syntax-tree class."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, meta):
        return _span(self.file, meta)

    @v_args(meta=True)
    def start(self, meta, decls):
        return ast.Module(tuple(decls), file=self.file, span=self._s(meta))

    @v_args(meta=True)
    def network(self, meta, c):
        name, body = c
        return ast.NetworkDef(str(name), body, span=self._s(meta))

    @v_args(meta=True)
    def block(self, meta, c):
        name, *params, body = c
        return ast.BlockDef(str(name), tuple(p for p in params if p is not None), body,
                            span=self._s(meta))

    @v_args(meta=True)
    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], span=self._s(meta))

    def body(self, c):
        return tuple(c)

    @v_args(meta=True)
    def input_decl(self, meta, c):
        return ast.InputDecl(str(c[0]), c[1], "input", span=self._s(meta))

    @v_args(meta=True)
    def target_decl(self, meta, c):
        return ast.InputDecl(str(c[0]), c[1], "target", span=self._s(meta))

    @v_args(meta=True)
    def tensor_type(self, meta, c):
        dtype, *dims = c
        return ast.TensorType(None if dtype is None else str(dtype),
                              tuple(d for d in dims if d is not None), span=self._s(meta))

    def dim(self, c):
        tok = c[0]
        return int(tok) if tok.type == "INT" else str(tok)

    @v_args(meta=True)
    def binding(self, meta, c):
        return ast.Binding(str(c[0]), c[1], span=self._s(meta))

    @v_args(meta=True)
    def layer_decl(self, meta, c):
        return ast.LayerDecl(str(c[0]), c[1], span=self._s(meta))

    @v_args(meta=True)
    def output_decl(self, meta, c):
        names = tuple(ast.Name(str(t), span=_tok_span(self.file, t)) for t in c)
        return ast.OutputDecl(names, span=self._s(meta))

    @v_args(meta=True)
    def loss_decl(self, meta, c):
        return ast.LossDecl(c[0], span=self._s(meta))

    @v_args(meta=True)
    def optimizer_decl(self, meta, c):
        call = c[0]
        if isinstance(call, ast.Name):
            call = ast.Call(call.id, span=call.span, name_span=call.span)
        return ast.OptimizerDecl(call, span=self._s(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, c):
        return ast.Return(c[0], span=self._s(meta))

    @v_args(meta=True)
    def chain(self, meta, c):
        return ast.Chain(c[0], tuple(c[1:]), span=self._s(meta))

    @v_args(meta=True)
    def block_input(self, meta, c):
        return ast.BlockInput(span=self._s(meta))

    @v_args(meta=True)
    def step(self, meta, c):
        return ast.Step(c[0], c[1], span=self._s(meta))

    def _bin(op):  # noqa: N805 - a factory used in the class body
        @v_args(meta=True)
        def rule(self, meta, c):
            return ast.BinOp(op, c[0], c[1], span=self._s(meta))
        return rule

    add, sub, mul = _bin("+"), _bin("-"), _bin("*")
    div, floordiv, mod = _bin("/"), _bin("//"), _bin("%")

    @v_args(meta=True)
    def neg(self, meta, c):
        return ast.Neg(c[0], span=self._s(meta))

    @v_args(meta=True)
    def int(self, meta, c):
        return ast.Num(int(c[0]), span=self._s(meta))

    @v_args(meta=True)
    def float(self, meta, c):
        return ast.Num(float(c[0]), span=self._s(meta))

    @v_args(meta=True)
    def string(self, meta, c):
        return ast.Str(pyast.literal_eval(str(c[0])), span=self._s(meta))

    @v_args(meta=True)
    def true(self, meta, c):
        return ast.Bool(True, span=self._s(meta))

    @v_args(meta=True)
    def false(self, meta, c):
        return ast.Bool(False, span=self._s(meta))

    @v_args(meta=True)
    def name(self, meta, c):
        return ast.Name(str(c[0]), span=self._s(meta))

    @v_args(meta=True)
    def list(self, meta, c):
        return ast.ListExpr(tuple(x for x in c if x is not None), span=self._s(meta))

    @v_args(meta=True)
    def tuple(self, meta, c):
        return ast.TupleExpr(tuple(x for x in c if x is not None), span=self._s(meta))

    @v_args(meta=True)
    def call(self, meta, c):
        name, *rest = c
        args = tuple(a for a in rest if a is not None and not isinstance(a, ast.Kwarg))
        kwargs = tuple(a for a in rest if isinstance(a, ast.Kwarg))
        return ast.Call(str(name), args, kwargs, span=self._s(meta),
                        name_span=_tok_span(self.file, name))

    @v_args(meta=True)
    def kwarg(self, meta, c):
        return ast.Kwarg(str(c[0]), c[1], span=self._s(meta))


def _expected(tokens) -> str:
    names = []
    for t in sorted(tokens):
        if t in _HUMAN:
            names.append(_HUMAN[t])
            continue
        term = next((x for x in parser().terminals if x.name == t), None)
        if term is not None and isinstance(term.pattern, PatternStr):
            names.append(f"'{term.pattern.value}'")
        else:
            names.append(t.lower())
    names = sorted(set(names))
    if len(names) > 6:
        names = names[:6] + ["..."]
    return ", ".join(names)


def _describe(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def syntax_error(source: Source, exc: UnexpectedInput, line_offset: int = 0,
                 col_offset: int = 0) -> Diagnostic:
    """Turn a lark exception into an E101 diagnostic."""
    line = (getattr(exc, "line", None) or 1)
    col = (getattr(exc, "column", None) or 1)
    if line < 1 or col < 1:  # lark reports end of input as -1
        lines = source.lines
        line, col = len(lines), len(lines[-1]) + 1
    length = 1
    notes: tuple[str, ...] = ()
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "_NL":
            length = 1
        elif tok.type != "$END":
            length = len(str(tok))
        msg = f"unexpected {_describe(tok)}"
        exp = _expected(exc.accepts or exc.expected)
        if exp:
            notes = (f"expected {exp}",)
        if tok.type == "$END":
            msg = "unexpected end of file"
    elif isinstance(exc, UnexpectedCharacters):
        ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else ""
        msg = f"unexpected character {ch!r}"
    elif isinstance(exc, UnexpectedEOF):
        msg = "unexpected end of file"
        exp = _expected(exc.expected)
        notes = (f"expected {exp}",) if exp else ()
    else:  # pragma: no cover - lark has no other input errors
        msg = str(exc).splitlines()[0]
    span = Span.at(source.name, line + line_offset, col + (col_offset if line == 1 else 0), length)
    return Diagnostic("E101", msg, span, notes)


def parse_net(source: Source) -> ast.Module:
    """Parse .net text; raises :class:`SpecError` (E101) on a syntax error."""
    try:
        tree = parser().parse(source.text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_error(source, exc)], {source.name: source}) from None
    module = _ToAst(source.name).transform(tree)
    return module


def parse_fragment(text: str, start: str, source: Source, line: int, col: int):
    """Parse a fragment (a chain, an expression, a tensor type) found in a YAML file.

    ``line``/``col`` are where the fragment starts in ``source``; spans point there.
    """
    frag = Source(source.name, text)
    try:
        tree = parser(start).parse(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_error(frag, exc, line - 1, col - 1)], {source.name: source}) from None
    node = _ToAst(source.name).transform(tree)
    return _shift(node, line - 1, col - 1)


def _shift(node, dl: int, dc: int):
    """Move every span in a fragment's tree to where the fragment sits in the file."""
    import dataclasses

    if isinstance(node, tuple):
        return tuple(_shift(x, dl, dc) for x in node)
    if not dataclasses.is_dataclass(node):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, Span):
            changes[f.name] = Span(v.file, v.line + dl, v.col + (dc if v.line == 1 else 0),
                                   v.end_line + dl, v.end_col + (dc if v.end_line == 1 else 0))
        elif isinstance(v, tuple) or dataclasses.is_dataclass(v):
            changes[f.name] = _shift(v, dl, dc)
    return dataclasses.replace(node, **changes)
