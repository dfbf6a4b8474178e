"""One open spec, analysed for the editor: diagnostics, symbols and the checked IR by position.

No framework and no LSP library here: text in, plain data out. Positions are
1-based (line, column) counted in characters, like netspec's spans; the server
converts them to the protocol's units.

Parsing reuses work between edits: a .net text is cut into its top-level
declarations (``network`` and ``block``), each parsed on its own, and a
declaration whose text and first line did not change keeps its syntax tree.
That also isolates syntax errors: a typo in one block leaves the others parsed,
so they still get checked, hovered and outlined. An edit that leaves every tree
as it was, spans included (typing in a comment), is not checked again.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field

from .. import ir_plain as ir  # the checker's plain IR (netspec.ir_plain): no pydantic in the editor loop
from ..checker import check_module, evaluate
from ..diagnostics import Diagnostic, SpecError, source_lines
from ..frontend import ast, form_of, parse_source
from ..frontend.net import parse_net
from ..source import Source, Span

_DECL = re.compile(r"[ \t\f]*(network|block)\b[ \t\f]*([A-Za-z_][A-Za-z0-9_]*)?")
_DECL_LINE = re.compile(r"[ \t\f]*(?:network|block)[ \t\f]+[A-Za-z_]")


@dataclass
class Symbol:
    """A name the spec defines: a network, block, input, target, value, shared layer or block parameter."""

    name: str
    kind: str  # network | block | input | target | value | layer | param
    span: Span  # the name where it is defined
    decl_span: Span | None  # the whole definition
    container: str | None  # the network or block it belongs to (None for networks and blocks)
    node: object = None  # the syntax-tree node that defines it
    refs: list[Span] = field(default_factory=list)


@dataclass
class Occurrence:
    """Something at a place in the text that a hover or a jump can be about."""

    span: Span
    kind: str  # def | ref | op | kwarg
    symbol: Symbol | None = None
    op: str | None = None  # op name (kind op / kwarg)
    prefer: str | None = None  # the registry table the op belongs to (loss, optimizer, ...)
    key: str | None = None  # argument name (kind kwarg)
    target: object = None  # the step's call or name: IR nodes carry its span
    step: object = None  # the ast.Step, for repeats
    container: str | None = None


@dataclass
class Chunk:
    """One top-level declaration's text (with the comments before it), parsed alone."""

    line: int  # first line, 1-based
    text: str
    decls: tuple = ()
    error: SpecError | None = None
    name: str | None = None  # the declared name, read from the text (for a chunk that fails to parse)
    kind: str | None = None
    #: For a chunk that does not parse: the syntax tree of its last version that did, when it
    #: declares the same thing on the same lines (an edit inside a line): it keeps the outline,
    #: hovers and jumps working while a line is being typed. Never checked.
    fallback: tuple = ()


def split(text: str) -> list[tuple[int, str]]:
    """Cut .net text into top-level declarations: (first line, text) each; joined they give the text back.

    A cut goes before every line that starts with ``network NAME`` or ``block NAME``. Those
    keywords cannot appear anywhere else in a statement, so in a valid spec each such line
    starts a declaration, and in a broken one (a bracket left open) the next declaration
    still parses on its own.
    """
    lines = text.split("\n")
    starts = [0] + [i for i, line in enumerate(lines) if i > 0 and _DECL_LINE.match(line)]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body = "\n".join(lines[start:end])
        if end < len(lines):
            body += "\n"
        out.append((start + 1, body))
    return out


def _parse_chunk(name: str, line: int, text: str) -> Chunk:
    chunk = Chunk(line, text)
    m = None
    for ln in text.split("\n"):
        m = _DECL.match(ln)
        if m:
            chunk.kind, chunk.name = m.group(1), m.group(2)
            break
    # newlines in front keep every line number; the parser skips them
    padded = Source(name, "\n" * (line - 1) + text)
    try:
        chunk.decls = parse_net(padded).decls
    except SpecError as exc:
        chunk.error = exc
    return chunk


class Analysis:
    """Everything the server answers from, for one version of one document."""

    def __init__(self, name: str, text: str, previous: Analysis | None = None):
        self.name = name
        self.text = text
        self.source = Source(name, text)
        self.lines = source_lines(text) or [""]
        self.form = _form(name)
        self.diagnostics: list[Diagnostic] = []
        self.module: ast.Module | None = None
        self.index_module: ast.Module | None = None  # what hovers and jumps see, when not ``module``
        self.program: ir.Program | None = None
        self.networks: dict[str, ir.Network] = {}  # checked networks (all of them when the spec checks)
        self.checked = False  # the whole spec checks clean
        self.chunks: list[Chunk] = []
        self._symbols: list[Symbol] | None = None
        self._occurrences: list[Occurrence] = []
        self._by_span: dict[Span, list[tuple[ir.Network, ir.Node]]] | None = None
        self._groups: dict[tuple[str, bool], dict[str, list[ir.Node]]] = {}
        # The cyclic GC would scan the growing trees again and again while they are built (a
        # third of a warm re-check); it waits until the build is done, and collects then.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._parse(previous)
            if not self._unchanged(previous):
                self._check()
        finally:
            if paused:
                gc.enable()
        #: The networks of the last version that checked clean (this one, or an earlier one):
        #: value hovers fall back on them while the text has errors.
        self.last_good: dict[str, ir.Network] = (
            dict(self.networks) if self.checked else dict(previous.last_good) if previous is not None else {})

    @property
    def symbols(self) -> list[Symbol]:
        """Every definition (indexed on first use: publishing diagnostics does not need it)."""
        if self._symbols is None:
            self._symbols = []
            if self.module is not None:
                _Indexer(self, self.index_module or self.module).run()
        return self._symbols

    @property
    def occurrences(self) -> list[Occurrence]:
        self.symbols  # noqa: B018 - builds the index
        return self._occurrences

    # parsing ----------------------------------------------------------------------------
    def _parse(self, previous: Analysis | None) -> None:
        if self.form != "net":
            try:
                self.module = parse_source(self.source, self.form)
            except SpecError as exc:
                self.diagnostics = list(exc.diagnostics)
            return
        same = previous is not None and previous.name == self.name
        cache = {(c.line, c.text): c for c in previous.chunks} if same else {}
        before = {(c.kind, c.name, c.line, c.text.count("\n")): c for c in previous.chunks} if same else {}
        for line, text in split(self.text):
            chunk = cache.get((line, text)) or _parse_chunk(self.name, line, text)
            if chunk.error is not None:
                old = before.get((chunk.kind, chunk.name, chunk.line, chunk.text.count("\n")))
                if old is not None and chunk.name:
                    chunk = Chunk(chunk.line, chunk.text, (), chunk.error, chunk.name, chunk.kind,
                                  old.decls or old.fallback)
            self.chunks.append(chunk)
        decls = tuple(d for c in self.chunks for d in c.decls)
        self.module = ast.Module(decls, file=self.name)
        if any(c.fallback for c in self.chunks):
            self.index_module = ast.Module(tuple(d for c in self.chunks for d in (c.decls or c.fallback)),
                                           file=self.name)
        for c in self.chunks:
            if c.error is not None:
                self.diagnostics += c.error.diagnostics

    # checking ---------------------------------------------------------------------------
    def _unchanged(self, previous: Analysis | None) -> bool:
        """When the edit left every syntax tree as it was, spans included (a comment was typed),
        take the previous check's results instead of checking again."""
        if (previous is None or previous.name != self.name or self.form != "net" or previous.form != "net"
                or len(previous.chunks) != len(self.chunks)
                or any(c.error is not None for c in (*self.chunks, *previous.chunks))):
            return False
        if not all(new is old or _same(new.decls, old.decls) for new, old in zip(self.chunks, previous.chunks)):
            return False
        self.diagnostics = list(previous.diagnostics)
        self.program, self.networks, self.checked = previous.program, previous.networks, previous.checked
        self.module = previous.module
        return True

    def _check(self) -> None:
        if self.module is None:
            return
        failed = [c for c in self.chunks if c.error is not None]
        try:
            self.program = check_module(self.module, self.source)
        except SpecError as exc:
            found = list(exc.diagnostics)
            if failed:  # drop what only follows from a declaration that did not parse
                names = {c.name for c in failed if c.name}
                found = [d for d in found if d.code != "E209" and not any(f"'{n}'" in d.message for n in names)]
            self.diagnostics += found
            self._check_networks_alone()
        else:
            self.networks = {n.name: n for n in self.program.networks}
            self.checked = not failed
        self.diagnostics.sort(key=_order)

    def _check_networks_alone(self) -> None:
        """With errors, each network on its own (with every block): the sound ones can still be hovered."""
        nets = self.module.networks
        if len(nets) < 2:
            return
        blocks = tuple(self.module.blocks)
        for net in nets:
            try:
                prog = check_module(ast.Module((*blocks, net), file=self.name), self.source)
            except SpecError:
                continue
            self.networks.setdefault(net.name, prog.networks[0])

    # look-ups ---------------------------------------------------------------------------
    def at(self, line: int, col: int) -> Occurrence | None:
        """The innermost occurrence at a 1-based position (a cursor just after a name counts)."""
        best = None
        for occ in self.occurrences:
            s = occ.span
            if (s.line, s.col) <= (line, col) <= (s.end_line, s.end_col):
                if best is None or _size(s) < _size(best.span):
                    best = occ
        return best

    def nodes_at(self, span: Span | None) -> list[tuple[ir.Network, ir.Node]]:
        """The IR nodes an op step (or merge) at ``span`` became, in every network and block use."""
        if span is None:
            return []
        if self._by_span is None:
            self._by_span = {}
            for net in self.networks.values():
                for node in net.nodes:
                    if node.span is not None:
                        self._by_span.setdefault(node.span, []).append((net, node))
        return self._by_span.get(span, [])

    def value_nodes(self, network: str, stale: bool = False) -> dict[str, list[ir.Node]]:
        """A checked network's nodes grouped by the network-level binding that made them
        (``features.0.main.conv2d`` -> ``features``), in order; {} when it did not check.
        ``stale``: from the last version that checked."""
        key = (network, stale)
        if key not in self._groups:
            groups: dict[str, list[ir.Node]] = {}
            net = (self.last_good if stale else self.networks).get(network)
            for node in net.nodes if net is not None else ():
                groups.setdefault(node.name.split(".", 1)[0], []).append(node)
            self._groups[key] = groups
        return self._groups[key]

    def symbol(self, name: str, container: str | None) -> Symbol | None:
        for s in self.symbols:
            if s.name == name and s.container == container:
                return s
        return None

    def blocks(self) -> list[ast.BlockDef]:
        module = self.index_module or self.module
        return module.blocks if module else []


def _same(x, y) -> bool:
    """Equal syntax trees, spans included (``==`` on nodes ignores where they are written)."""
    if type(x) is not type(y):
        return False
    if isinstance(x, ast.Node):
        return x.span == y.span and all(_same(getattr(x, f), getattr(y, f)) for f in x._fields)
    if isinstance(x, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def _form(name: str) -> str:
    try:
        return form_of(name)
    except SpecError:
        return "net"


def _order(d: Diagnostic) -> tuple:
    return (0, 0, 0) if d.span is None else (1, d.span.line, d.span.col)


def _size(s: Span) -> tuple[int, int]:
    return (s.end_line - s.line, s.end_col - s.col if s.end_line == s.line else s.end_col)


class _Indexer:
    """Walks the syntax tree: every definition, every use of a name, every op and argument name."""

    def __init__(self, analysis: Analysis, module: ast.Module):
        self.a = analysis
        self.module = module
        self.top: dict[str, Symbol] = {}

    def name_span(self, span: Span | None, name: str) -> Span | None:
        """Where ``name`` is first written, as a whole word, inside ``span``."""
        if span is None:
            return None
        lines = self.a.lines
        for ln in range(span.line, min(span.end_line, len(lines)) + 1):
            text = lines[ln - 1]
            i = span.col - 1 if ln == span.line else 0
            while (i := text.find(name, i)) >= 0:
                end = i + len(name)
                if not (i > 0 and _word(text[i - 1])) and not (end < len(text) and _word(text[end])):
                    return Span(span.file, ln, i + 1, ln, end + 1)
                i = end
        return None

    def define(self, name: str, kind: str, span: Span | None, decl_span, container, node) -> Symbol | None:
        where = self.name_span(span, name) or span
        if where is None:
            return None
        sym = Symbol(name, kind, where, decl_span, container, node)
        self.a._symbols.append(sym)
        self.a._occurrences.append(Occurrence(where, "def", sym, container=container))
        return sym

    def ref(self, sym: Symbol, span: Span | None, container, target=None, step=None) -> None:
        if span is None:
            return
        sym.refs.append(span)
        self.a._occurrences.append(Occurrence(span, "ref", sym, target=target, step=step, container=container))

    def run(self) -> None:
        module = self.module
        for decl in module.decls:
            kind = "network" if isinstance(decl, ast.NetworkDef) else "block"
            sym = self.define(decl.name, kind, decl.span, decl.span, None, decl)
            if sym is not None:
                self.top.setdefault(decl.name, sym)
        for decl in module.decls:
            self.body(decl)

    def body(self, decl) -> None:
        where = decl.name
        scope: dict[str, Symbol] = {}
        if isinstance(decl, ast.BlockDef):
            for p in decl.params:
                sym = self.define(p.name, "param", p.span, p.span, where, p)
                if sym is not None:
                    scope.setdefault(p.name, sym)
        for stmt in decl.body:
            if isinstance(stmt, ast.InputDecl):
                sym = self.define(stmt.name, stmt.kind, _after_keyword(stmt.span, stmt.kind), stmt.span, where, stmt)
            elif isinstance(stmt, ast.Binding):
                sym = self.define(stmt.name, "value", stmt.span, stmt.span, where, stmt)
            elif isinstance(stmt, ast.LayerDecl):
                sym = self.define(stmt.name, "layer", _after_keyword(stmt.span, "layer"), stmt.span, where, stmt)
            else:
                continue
            if sym is not None:
                scope.setdefault(stmt.name, sym)
        if isinstance(decl, ast.BlockDef):
            for p in decl.params:
                if p.default is not None:
                    self.expr(p.default, scope, where)
        for stmt in decl.body:
            if isinstance(stmt, (ast.Binding, ast.Return)):
                self.chain(stmt.chain, scope, where)
            elif isinstance(stmt, ast.LayerDecl):
                self.call(stmt.call, scope, where, step=None)
            elif isinstance(stmt, ast.OutputDecl):
                for n in stmt.names:
                    self.name(n, scope, where)
            elif isinstance(stmt, ast.LossDecl):
                self.expr(stmt.expr, scope, where, prefer="loss")
            elif isinstance(stmt, ast.OptimizerDecl):
                self.call(stmt.call, scope, where, prefer="optimizer")

    def chain(self, chain: ast.Chain, scope, where) -> None:
        self.expr(chain.source, scope, where)
        for step in chain.steps:
            t = step.target
            if isinstance(t, ast.Name):
                if t.id in scope:
                    self.ref(scope[t.id], t.span, where, target=t, step=step)
                elif t.id in self.top and self.top[t.id].kind == "block":
                    self.ref(self.top[t.id], t.span, where, target=t, step=step)
                elif t.span is not None:
                    self.a._occurrences.append(Occurrence(t.span, "op", op=t.id, target=t, step=step,
                                                         container=where))
            else:
                self.call(t, scope, where, step=step)
            if step.repeat is not None:
                self.expr(step.repeat, scope, where)

    def name(self, n: ast.Name, scope, where, prefer=None) -> None:
        if n.id in scope:
            self.ref(scope[n.id], n.span, where)
        elif n.id in self.top and self.top[n.id].kind == "block":
            self.ref(self.top[n.id], n.span, where)
        elif n.span is not None:
            self.a._occurrences.append(Occurrence(n.span, "op", op=n.id, prefer=prefer, container=where))

    def call(self, call: ast.Call, scope, where, step=None, prefer=None) -> None:
        span = call.name_span or call.span
        if call.name in self.top and self.top[call.name].kind == "block":
            self.ref(self.top[call.name], span, where, target=call, step=step)
        elif span is not None:
            self.a._occurrences.append(Occurrence(span, "op", op=call.name, prefer=prefer, target=call, step=step,
                                                 container=where))
        names = self._positional(call.name, prefer)
        for i, arg in enumerate(call.args):
            if i < len(names) and arg.span is not None:  # hovering `64` in conv2d(64, 3) documents `filters`
                self.a._occurrences.append(Occurrence(arg.span, "kwarg", op=call.name, prefer=prefer, key=names[i],
                                                      container=where))
            self.expr(arg, scope, where)
        for kw in call.kwargs:
            if kw.span is not None:
                self.a._occurrences.append(Occurrence(Span.at(kw.span.file, kw.span.line, kw.span.col, len(kw.name)),
                                                     "kwarg", op=call.name, prefer=prefer, key=kw.name,
                                                     container=where))
            self.expr(kw.value, scope, where)

    def _positional(self, name: str, prefer: str | None) -> tuple[str, ...]:
        """The names of a call's positional arguments: an op's, or a block's parameters."""
        if name in self.top and self.top[name].kind == "block":
            return tuple(p.name for p in self.top[name].node.params)
        from .docs import find

        op = find(name, prefer)
        return op.positional if op is not None else ()

    def expr(self, e, scope, where, prefer=None) -> None:
        if isinstance(e, ast.Name):
            self.name(e, scope, where)
        elif isinstance(e, ast.Call):
            self.call(e, scope, where, prefer=prefer)
        elif isinstance(e, (ast.ListExpr, ast.TupleExpr)):
            for x in e.items:
                self.expr(x, scope, where)
        elif isinstance(e, ast.BinOp):
            self.expr(e.left, scope, where, prefer)
            self.expr(e.right, scope, where, prefer)
        elif isinstance(e, ast.Neg):
            self.expr(e.operand, scope, where, prefer)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _after_keyword(span: Span | None, keyword: str) -> Span | None:
    """The part of a statement's span after its leading keyword (``input x``: from ``x``)."""
    if span is None:
        return None
    return Span(span.file, span.line, span.col + len(keyword), span.end_line, span.end_col)


def repeat_count(step) -> int:
    """A network-level step's repeat count (1 when absent or not a plain number)."""
    if step is None or step.repeat is None:
        return 1
    try:
        n = evaluate(step.repeat, {})
    except Exception:  # noqa: BLE001 - a bad count was reported by the checker
        return 1
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
