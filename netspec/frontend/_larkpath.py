"""The .net reference parser: lark's LALR parser generated from the grammar, its syntax tree
mapped to netspec.frontend.ast, and its syntax errors turned into diagnostics.

netspec.frontend.net parses with netspec/frontend/fast.py first and comes here only
when that parser is unsure (any syntax error, a literal error, deep nesting): this
module, and lark with it, is imported only then, so ``netspec check`` of a valid spec
never pays for lark's tables. Its trees are the reference the fast parser is tested
against (tests/test_fast_parser.py).
"""

from __future__ import annotations

import ast as pyast
import math
import re
import warnings
from functools import cache

from ..diagnostics import Diagnostic, SpecError, source_lines
from ..source import Source, Span
from . import ast
from ._parser import (
    Lark,
    Lark_StandAlone,
    PatternStr,
    Token,
    Transformer,
    Tree,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
    v_args,
)
from .net import MAX_DEPTH, _keywords, _PostLex

_HUMAN = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a float", "STRING": "a string",
    "_NL": "a new line", "_ARROW": "'->'", "$END": "the end of the file",
}


@cache
def _parser() -> Lark:
    """The LALR parser, generated ahead of time from the grammar (scripts/gen_parser.py).

    Its tables are Python literals in netspec/frontend/_parser.py: nothing is
    built at start-up and no cache is ever read from disk.
    """
    return Lark_StandAlone(postlex=_PostLex())


class _Start:
    """The parser for one start symbol: ``parser("chain").parse(text)``."""

    def __init__(self, start: str):
        self.start = start
        self.terminals = _parser().terminals

    def parse(self, text: str):
        return _parser().parse(text, start=self.start)


@cache
def parser(start: str = "start") -> _Start:
    """The LALR parser for one start symbol (start, expr, chain, step, tensor_type or call)."""
    return _Start(start)


def _span(file: str, meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + len(tok))


class _LiteralError(Exception):
    """A literal the grammar accepts but Python cannot represent (E103)."""

    def __init__(self, message: str, span: Span | None):
        super().__init__(message)
        self.message, self.span = message, span


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


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
        if tok.type != "INT":
            return str(tok)
        try:
            return int(tok)
        except ValueError:  # more digits than Python converts
            raise _LiteralError(f"dimension {_short(str(tok))} is too long ({len(tok)} digits)",
                                _tok_span(self.file, tok)) from None

    @v_args(meta=True)
    def binding(self, meta, c):
        if len(c) > 2:  # `out, h, c = CHAIN`
            names = tuple(str(t) for t in c[:-1])
            return ast.Binding(names[0], c[-1], names, span=self._s(meta))
        return ast.Binding(str(c[0]), c[1], span=self._s(meta))

    @v_args(meta=True)
    def layer_decl(self, meta, c):
        call = c[1]
        if isinstance(call, ast.Name):  # `layer bn = batchnorm`: an op without arguments
            call = ast.Call(call.id, span=call.span, name_span=call.span)
        return ast.LayerDecl(str(c[0]), call, span=self._s(meta))

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
        try:
            value = int(c[0])
        except ValueError:  # more digits than Python converts (sys.int_info.str_digits_check_threshold)
            raise _LiteralError(f"integer literal {_short(str(c[0]))} is too long ({len(c[0])} digits)",
                                self._s(meta)) from None
        return ast.Num(value, span=self._s(meta))

    @v_args(meta=True)
    def float(self, meta, c):
        value = float(c[0])
        if not math.isfinite(value):
            raise _LiteralError(f"float literal {_short(str(c[0]))} is out of range (the largest float is "
                                "about 1.8e308)", self._s(meta))
        return ast.Num(value, span=self._s(meta))

    @v_args(meta=True)
    def string(self, meta, c):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "\q" keeps its backslash, as in Python
                value = pyast.literal_eval(str(c[0]))
        except (SyntaxError, ValueError):
            raise _LiteralError(f"invalid escape sequence in string literal {_short(str(c[0]))}",
                                self._s(meta)) from None
        return ast.Str(value, span=self._s(meta))

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
    # closers and separators first, arithmetic operators last: they are rarely what is missing
    first = ("')'", "']'", "'}'", "','", "'='", "':'", "'->'")
    last = ("'%'", "'*'", "'+'", "'-'", "'/'", "'//'")
    names = sorted(set(names), key=lambda n: (0 if n in first else 2 if n in last else 1,
                                              first.index(n) if n in first else 0, n))
    if len(names) > 6:
        names = names[:6] + ["..."]
    return ", ".join(names)


def _describe(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def _identity(line: int, col: int) -> tuple[int, int]:
    return line, col


@cache
def grammar_keywords() -> frozenset[str]:
    """The keywords of the generated parser's terminals (``network``, ``in``, ``true``...).

    netspec.frontend.net._keywords() is the same set, written out (tests/test_fast_parser.py
    compares them), so that naming a keyword does not load lark.
    """
    return frozenset(t.pattern.value for t in parser().terminals
                     if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier())


def _offset(text: str, line: int, col: int) -> int:
    start = 0
    for _ in range(max(line, 1) - 1):  # no split of the whole text: an error at the end of a big file
        nl = text.find("\n", start)
        if nl < 0:
            break
        start = nl + 1
    return start + col - 1


#: What the bracket scan skips (comments, strings: to the closing quote, the end of the line or a
#: backslash-escaped character) and what it counts (brackets).
_BRACKETS = re.compile(r'#[^\n]*|"[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*"?|[()\[\]{}]')


def _open_brackets(text: str, end: int) -> list[tuple[str, int]]:
    """The brackets still open at offset ``end`` (skipping comments and strings), innermost last."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for m in _BRACKETS.finditer(text, 0, min(end, len(text))):
        ch = m.group()
        if ch in "([{":
            stack.append((ch, m.start()))
        elif ch in pairs:
            if stack and stack[-1][0] == pairs[ch]:
                stack.pop()
    return stack


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def syntax_error(source: Source, exc: UnexpectedInput, locate=_identity) -> Diagnostic:
    """Turn a lark exception into an E101 diagnostic.

    ``locate`` maps a (line, col) in ``source.text`` to where it lies in the file
    (a YAML fragment's text sits somewhere inside the YAML file).
    """
    line = (getattr(exc, "line", None) or 1)
    col = (getattr(exc, "column", None) or 1)
    if line < 1 or col < 1:  # lark reports end of input as -1
        lines = source_lines(source.text)
        line, col = len(lines), len(lines[-1]) + 1
    length = 1
    notes: tuple[str, ...] = ()
    text = source.text
    at_end = False
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        accepts = exc.accepts or exc.expected
        if tok.type == "_NL":
            length = 1
        elif tok.type != "$END":
            length = len(str(tok))
        msg = f"unexpected {_describe(tok)}"
        exp = _expected(accepts)
        if exp:
            notes = (f"expected {exp}",)
        if tok.type == "$END":
            msg = "unexpected end of file"
            at_end = True
        elif "NAME" in accepts and str(tok) in _keywords():
            notes += (f"'{tok}' is a keyword and cannot be used as a name",)
        elif str(tok) in ("=", ":"):
            word = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t\f]*$", text[:_offset(text, line, col)])
            if word and word.group(1) in _keywords():
                notes += (f"'{word.group(1)}' is a keyword and cannot be used as a name",)
        elif tok.type in ("NAME", "LPAR") and "_ARROW" in accepts:
            notes += ("the steps of a chain are joined by '->'",)
    elif isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        msg = f"unexpected character {ch!r}"
        if ch == '"':
            msg = "unterminated string"
            notes = ("a string ends with '\"' on the same line",)
    elif isinstance(exc, UnexpectedEOF):
        msg = "unexpected end of file"
        exp = _expected(exc.expected)
        notes = (f"expected {exp}",) if exp else ()
        at_end = True
    else:  # pragma: no cover - lark has no other input errors
        msg = str(exc).splitlines()[0]
    # an unclosed bracket: at the end of the file, or a ( or [ left open on an earlier line
    stack = _open_brackets(text, len(text) if at_end else _offset(text, line, col))
    if stack and (at_end or stack[-1][0] != "{"):
        ch, pos = stack[-1]
        bline, bcol = _position(text, pos)
        if at_end or bline < line:
            fl, fc = locate(bline, bcol)
            notes += (f"the '{ch}' at line {fl}, column {fc} is not closed",)
    fline, fcol = locate(line, col)
    span = Span.at(source.name, fline, fcol, length)
    return Diagnostic("E101", msg, span, notes)


def _too_deep(tree: Tree) -> Tree | None:
    """The first subtree nested deeper than MAX_DEPTH, if any (iterative: no recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


def _to_ast(tree: Tree, source: Source, file: str, locate=_identity):
    """Transform a parse tree; a too-deep tree or a bad literal becomes a SpecError."""
    deep = _too_deep(tree)
    if deep is not None:
        meta = deep.meta
        line, col = locate(meta.line, meta.column) if not getattr(meta, "empty", True) else locate(1, 1)
        raise SpecError([Diagnostic("E305", f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                                    Span.at(file, line, col))], {file: source}) from None
    try:
        return _ToAst(file).transform(tree)
    except VisitError as exc:
        err = exc.orig_exc
        if isinstance(err, _LiteralError):
            raise SpecError([Diagnostic("E103", err.message, err.span)], {file: source}) from None
        raise
