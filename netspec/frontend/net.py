"""The .net front end: text -> syntax tree with spans.

The grammar, netspec/grammar/netspec.lark, defines the language. Valid text is parsed
by netspec/frontend/fast.py, a hand-written parser that builds the same tree as the
grammar's lark parser without loading lark; whenever it is unsure (any syntax error,
a literal error, deep nesting) the text is parsed again by the lark parser
(netspec/frontend/_larkpath.py), which gives the diagnostics. tests/test_fast_parser.py
proves the two agree.
"""

from __future__ import annotations

from pathlib import Path

from ..diagnostics import SpecError
from ..source import Source, Span
from . import ast, fast

GRAMMAR = Path(__file__).resolve().parent.parent / "grammar" / "netspec.lark"

#: The deepest syntax tree accepted (a spec needs about 10 levels); deeper input,
#: such as thousands of nested parentheses, is an error rather than a RecursionError.
MAX_DEPTH = 100

#: The names that once lived here and now live with the lark parser (netspec/frontend/_larkpath.py);
#: reading one loads lark.
_LARK_NAMES = frozenset({"parser", "_parser", "_Start", "_ToAst", "syntax_error", "_expected",
                         "_describe", "_too_deep", "_to_ast", "_LiteralError", "_open_brackets",
                         "grammar_keywords", "UnexpectedInput"})


def __getattr__(name: str):
    if name in _LARK_NAMES:
        from . import _larkpath

        return getattr(_larkpath, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}


class _PostLex:
    """Drop newlines inside brackets and around ``->``; fold repeated newlines.

    The lark parser's post-lexer (netspec/frontend/fast.py's tokenizer does the same).
    """

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


def _keywords() -> frozenset[str]:
    """The grammar's keywords (``network``, ``in``, ``true``...): words that cannot be names."""
    return fast.KEYWORDS


def parse_net(source: Source) -> ast.Module:
    """Parse .net text; raises :class:`SpecError` (E101) on a syntax error.

    The fast parser (netspec/frontend/fast.py) parses valid text; when it is unsure
    (any error included) lark's parser, the reference, parses the text again and
    reports what is wrong.
    """
    from . import check_size

    check_size(source)
    text = source.text
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the spec; a space keeps the columns
        text = " " + text[1:]
    try:
        return fast.parse(text, source.name)
    except Exception:  # noqa: BLE001 - Unsure, or anything unforeseen: the reference parser decides
        pass
    from ._larkpath import UnexpectedInput, _to_ast, parser, syntax_error

    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_error(source, exc)], {source.name: source}) from None
    return _to_ast(tree, source, source.name)


def parse_fragment(text: str, start: str, source: Source, line: int, col: int,
                   positions: list[tuple[int, int]] | None = None):
    """Parse a fragment (a chain, an expression, a tensor type) found in a YAML file.

    ``line``/``col`` are where the fragment starts in ``source``; spans point there.
    ``positions``, when given, holds the file (line, col) of every character of
    ``text`` (a YAML scalar may be folded, quoted or indented); spans then point
    at the exact characters.
    """
    locate = _locator(text, line, col, positions)
    try:
        node = fast.parse_fragment(text, start, source.name)
    except Exception:  # noqa: BLE001 - Unsure, or anything unforeseen: the reference parser decides
        node = None
    if node is not None:
        return _relocate(node, locate)
    from ._larkpath import UnexpectedInput, _to_ast, parser, syntax_error

    frag = Source(source.name, text)
    try:
        tree = parser(start).parse(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_error(frag, exc, locate)], {source.name: source}) from None
    node = _to_ast(tree, source, source.name, locate)
    return _relocate(node, locate)


def _locator(text: str, line: int, col: int, positions):
    """A function mapping a (line, col) in a fragment's text to its (line, col) in the file."""
    if not positions or len(positions) != len(text):
        return lambda ln, c: (ln + line - 1, c + (col - 1 if ln == 1 else 0))
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)

    def locate(ln: int, c: int) -> tuple[int, int]:
        index = starts[min(max(ln, 1), len(starts)) - 1] + c - 1
        if index < 0:
            return positions[0]
        if index >= len(positions):  # just past the end: one column after the last character
            last_line, last_col = positions[-1]
            return last_line, last_col + 1 + (index - len(positions))
        return positions[index]
    return locate


def _relocate(node, locate):
    """Move every span in a fragment's tree to where the fragment sits in the file."""
    if isinstance(node, tuple):
        return tuple(_relocate(x, locate) for x in node)
    if not isinstance(node, ast.Node):
        return node
    changes = {}
    for name in (*ast.fields(node), "span"):
        v = getattr(node, name)
        if isinstance(v, Span):
            line, col = locate(v.line, v.col)
            if (v.end_line, v.end_col) > (v.line, v.col):  # the end is exclusive: place the last character
                end_line, end_col = locate(v.end_line, v.end_col - 1)
                end_col += 1
            else:
                end_line, end_col = line, col + 1
            changes[name] = Span(v.file, line, col, end_line, end_col)
        elif isinstance(v, (tuple, ast.Node)):
            changes[name] = _relocate(v, locate)
    return ast.replace(node, **changes)
