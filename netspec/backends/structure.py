"""Mirror the spec's blocks in generated Python: one function per block, a loop per ``STEP * n`` run.

A generator first writes a network flat (one statement per layer, every value in a variable named
after its canonical name), recording which statements each IR node wrote. :func:`mirror` then
rewrites that body: the statements of every outermost block instance become one call of a
function written once per block (keras.applications style, ``def bottleneck(x, width, stride=1,
name="")``), and consecutive calls of a ``STEP * n`` run become a ``for`` loop.

Nested blocks are mirrored innermost first, so an enclosing block's function calls the inner
blocks' functions (their arguments must then be the enclosing block's parameters or constants).
A block is written as a function only where that is provably the same program: every instance's
statements, with the instance's variable names made relative, its layer names made
``name + relative``, its input called ``x``, must be token for token the same, and every number
that differs between instances must be the value of one of the block's parameter expressions
(``Node.exprs``) in every instance. Otherwise (a layer shared across the block's boundary, a
layout that depends on the instance, a decision that differs per instance) that block stays
inline: correct, just flat. Works on source text, so it needs no framework.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass

from .. import ir
from .base import identifier, literal

_ASSIGN = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*) = ")
_FOR = re.compile(r"^\s+for ([A-Za-z_][A-Za-z0-9_]*) in ")
_BUILTINS = {"range", "True", "False", "None"}
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT,
         tokenize.ENDMARKER}


@dataclass
class Flat:
    """A flat body and where each node's statements are: ``spans[node] = (first line, end line)``."""

    body: list[str]
    spans: dict[str, tuple[int, int]]
    outputs: list[str]  # variables read after the body (the model's outputs)
    globals: set[str]  # names the body may read that are not values (modules, helpers, shared layers)
    #: value id -> the variables that hold it (one per layout), for blocks that read values besides their input
    value_vars: dict[str, set[str]] | None = None


@dataclass
class _Seg:
    inst: ir.BlockInstance
    start: int
    end: int
    defined: list[str]
    input_var: str
    output_var: str
    values: dict[str, str]  # variable read -> the value parameter it is (a block's values besides its input)
    value_args: list[str]  # the variables passed for the value parameters, in parameter order


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in _SKIP]


def _names_read(lines: list[str]) -> set[str]:
    """Variable names a run of statements reads (not attribute names, not keyword-argument names)."""
    toks = _tokens("\n".join(line.strip() for line in lines))
    out = set()
    for i, t in enumerate(toks):
        if t.type != tokenize.NAME:
            continue
        if i and toks[i - 1].string == ".":
            continue
        if i + 1 < len(toks) and toks[i + 1].string == "=":
            continue
        out.add(t.string)
    return out


def _rejoin(lines: list[str]) -> list[str]:
    """Calls wrapped one argument per line put back on one line where that now fits in 120 characters."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        head = lines[i]
        indent = len(head) - len(head.lstrip())
        j = i + 1
        while j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) == indent + 4 and lines[j].endswith(","):
            j += 1
        if head.endswith("(") and j > i + 1 and j < len(lines) and lines[j].startswith(" " * indent + ")") \
                and len(lines[j]) - len(lines[j].lstrip()) == indent:
            joined = head + ", ".join(line.strip()[:-1] for line in lines[i + 1:j]) + lines[j].strip()
            if len(joined) <= 120:
                out.append(joined)
                i = j + 1
                continue
        out.append(head)
        i += 1
    return out


def _render(value) -> str | None:
    try:
        return literal(value)
    except TypeError:
        return None


def _evaluate(expr: str, args: dict):
    try:
        return eval(compile(expr, "<block expression>", "eval"), {"__builtins__": {}}, dict(args))
    except Exception:  # an expression the IR recorded but Python cannot evaluate here: not a candidate
        return None


def _plain_parameter(name: str, taken: set[str]) -> bool:
    """A spec name usable as-is as a Python parameter of a generated function."""
    import builtins

    return (name.isidentifier() and not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
            and name not in {"x", "name"} and not hasattr(builtins, name) and name not in taken
            and not name.startswith("__"))


class _Mirror:
    def __init__(self, network: ir.Network, flat: Flat, kname: Callable[[str], str],
                 taken: set[str], indent: str = "    "):
        self.net, self.flat, self.kname, self.taken, self.indent = network, flat, kname, taken, indent
        self.node_names = [n.name for n in network.nodes]
        self.nodes = {n.name: n for n in network.nodes}
        self.blocks = {b.name: b for b in network.blocks}

    # one instance -------------------------------------------------------------------------------
    def segment(self, inst: ir.BlockInstance) -> _Seg | None:
        idx = [i for i, n in enumerate(self.node_names) if n.startswith(inst.path)]
        if not idx or idx != list(range(idx[0], idx[-1] + 1)):
            return None
        spans = [self.flat.spans.get(self.node_names[i]) for i in idx]
        if None in spans:
            return None
        start, end = spans[0][0], spans[-1][1]
        lines = self.flat.body[start:end]
        defined = [m.group(1) for line in lines if (m := _ASSIGN.match(line))]
        prefix = identifier(inst.path)
        if not defined or any(not d.startswith(prefix) for d in defined):
            return None
        outside = self.flat.body[:start] + self.flat.body[end:]
        read_outside = (_names_read(outside) | set(self.flat.outputs)) & set(defined)
        loop_vars = {m.group(1) for line in lines if (m := _FOR.match(line))}
        read_inside = _names_read(lines) - set(defined) - self.flat.globals - loop_vars - _BUILTINS
        read_inside -= {n for n in read_inside if keyword.iskeyword(n)}
        values: dict[str, str] = {}
        value_args: list[str] = []
        if inst.values:
            known = self.flat.value_vars or {}
            for param, value in inst.values.items():
                held = sorted(known.get(value, ()) & read_inside)
                if len(held) != 1 or held[0] in values:
                    return None  # read in no or several layouts, or one value for two parameters: stays inline
                values[held[0]] = param
                value_args.append(held[0])
            read_inside -= set(values)
        if len(read_outside) != 1 or len(read_inside) != 1:
            return None
        return _Seg(inst, start, end, defined, read_inside.pop(), read_outside.pop(), values, value_args)

    def relative(self, seg: _Seg, params: set[str]) -> dict[str, str]:
        prefix = identifier(seg.inst.path)
        out = {}
        for d in seg.defined:
            rel = d[len(prefix):]
            if rel[:1].isdigit():  # the value of a nested block's instance (`0_relu`): `h0_relu`
                rel = "h" + rel
            if not rel.isidentifier() or keyword.iskeyword(rel) or rel in params or rel in {"x", "name"} \
                    or rel in self.flat.globals:
                rel += "_"
            out[d] = rel
        return out

    def node_of_line(self, seg: _Seg) -> list[str]:
        """The node each line of the segment belongs to."""
        out = [""] * (seg.end - seg.start)
        for name, (a, b) in self.flat.spans.items():
            if seg.start <= a < seg.end:
                for i in range(a, b):
                    out[i - seg.start] = name
        return out

    def nested(self, seg: _Seg, node: str) -> bool:
        """Whether ``node`` belongs to a block instance nested in ``seg``'s."""
        return any(i.path != seg.inst.path and i.path.startswith(seg.inst.path) and node.startswith(i.path)
                   for i in self.net.instances)

    # one block ------------------------------------------------------------------------------------
    def function(self, block: ir.BlockDef, segs: list[_Seg], fn: str) -> list[str] | None:
        """The block's function, or None when its instances do not write one program."""
        params = [p.name for p in block.params]
        if len({tuple(s.inst.values) for s in segs}) > 1:
            return None  # instances that differ in which parameters are values: one function cannot serve them
        # a value parameter only has to avoid the names the body reads (it is local, like the variables it replaces)
        if not all(_plain_parameter(p, self.flat.globals if p in segs[0].inst.values else self.taken)
                   for p in params):
            return None  # a parameter Python cannot take by that name (`False`, `lambda`, `name`): stays inline
        forms = []
        for seg in segs:
            rel = self.relative(seg, set(params))
            kprefix = self.kname(seg.inst.path)
            lines = self.flat.body[seg.start:seg.end]
            owners = self.node_of_line(seg)
            toks = []  # (type, text or None for a number, line offset, start col, end col, number text)
            for t in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
                if t.type in _SKIP:
                    continue
                row = t.start[0] - 1
                if t.type == tokenize.NAME and t.string in rel:
                    toks.append((t.type, rel[t.string], row, t.start[1], t.end[1], None))
                elif t.type == tokenize.NAME and t.string in seg.values:
                    toks.append((t.type, seg.values[t.string], row, t.start[1], t.end[1], None))
                elif t.type == tokenize.NAME and t.string == seg.input_var:
                    toks.append((t.type, "x", row, t.start[1], t.end[1], None))
                elif t.type == tokenize.STRING and t.string.startswith(('"' + kprefix, 'f"' + kprefix)):
                    rest = t.string[t.string.index('"') + 1 + len(kprefix):]
                    toks.append((t.type, 'f"{name}' + rest, row, t.start[1], t.end[1], None))
                elif t.type == tokenize.NUMBER:
                    toks.append((t.type, None, row, t.start[1], t.end[1], t.string))
                else:
                    toks.append((t.type, t.string, row, t.start[1], t.end[1], None))
            forms.append((seg, lines, owners, toks))
        shape = [(t[0], t[1]) for t in forms[0][3]]
        if any([(t[0], t[1]) for t in f[3]] != shape for f in forms[1:]):
            return None
        subst: dict[int, str] = {}
        for j, (kind, _) in enumerate(shape):
            if kind != tokenize.NUMBER:
                continue
            values = [f[3][j][5] for f in forms]
            owner = forms[0][2][forms[0][3][j][2]]
            exprs = list(dict.fromkeys(self.nodes[owner].exprs.values())) if owner in self.nodes else []
            if self.nested(forms[0][0], owner):  # a call of a nested block: its arguments from this block's
                exprs = params  # parameters (the IR keeps a nested instance's arguments as values only)
            found = [e for e in exprs
                     if all(_render(_evaluate(e, f[0].inst.args)) == v for f, v in zip(forms, values))]
            if len(set(values)) > 1:
                if not found:
                    return None
                subst[j] = found[0]
            elif len(found) == 1:
                # the same in every instance: a parameter's value only where it cannot be another number
                row = forms[0][3][j][2]
                same_line = [t[5] for t in forms[0][3] if t[2] == row and t[0] == tokenize.NUMBER]
                if same_line.count(values[0]) == 1:
                    subst[j] = found[0]
        seg, lines, _, toks = forms[0]
        edits: dict[int, list[tuple[int, int, str]]] = {}
        for j, t in enumerate(toks):
            text = subst.get(j, t[1])
            if text is None:
                continue
            orig = lines[t[2]][t[3]:t[4]]
            if text != orig:
                edits.setdefault(t[2], []).append((t[3], t[4], text))
        out_lines = []
        for i, line in enumerate(lines):
            for a, b, text in sorted(edits.get(i, []), reverse=True):
                line = line[:a] + text + line[b:]
            out_lines.append(line)
        out_lines = _rejoin(out_lines)
        values = [p.name for p in block.params if p.name in seg.inst.values]  # after x, before the constants
        sig = ["x", *values]
        for p in block.params:
            if p.name not in seg.inst.values:
                sig.append(p.name if p.default is None else f"{p.name}={p.default}")
        sig.append('name=""')
        args = ", ".join(p.name if p.default is None else f"{p.name}={p.default}" for p in block.params)
        doc = f"Block `{block.name}({args})` of the spec; layers are named `name` + relative names."
        head = [f"def {fn}({', '.join(sig)}):", f'{self.indent}"""{doc}"""']
        body = [*head, *out_lines, f"{self.indent}return {self.relative(seg, set(params))[seg.output_var]}"]
        if any(len(line) > 120 for line in body):
            return None
        return body

    def call_args(self, block: ir.BlockDef, seg: _Seg) -> list[str] | None:
        """The instance's arguments: required ones positional, the others where they differ from the default."""
        args = list(seg.value_args)
        for p in block.params:
            if p.name in seg.inst.values:
                continue
            text = _render(seg.inst.args.get(p.name))
            if text is None:
                return None
            if p.default is None:
                args.append(text)
            elif _render(_evaluate(p.default, seg.inst.args)) != text:
                args.append(f"{p.name}={text}")
        return args

    # the network ----------------------------------------------------------------------------------
    def run(self, call_lines) -> tuple[list[str], list[str]]:
        """Innermost blocks first: an enclosing block's function then calls the inner ones."""
        depth = {i.path: sum(o.path != i.path and i.path.startswith(o.path) for o in self.net.instances)
                 for i in self.net.instances}
        functions: list[str] = []
        for level in sorted(set(depth.values()), reverse=True):
            functions += self.level([i for i in self.net.instances if depth[i.path] == level], call_lines)
        return functions, self.flat.body

    def level(self, instances: list[ir.BlockInstance], call_lines) -> list[str]:
        """Mirror the instances of one nesting level; rewrites ``self.flat`` (body and spans)."""
        by_block: dict[str, list[_Seg]] = {}
        failed: set[str] = set()
        for inst in instances:
            seg = self.segment(inst)
            if seg is None:
                failed.add(inst.block)
            else:
                by_block.setdefault(inst.block, []).append(seg)
        functions: list[str] = []
        calls: dict[str, tuple[_Seg, str, list[str]]] = {}
        for name, segs in by_block.items():
            if name in failed or name not in self.blocks:
                continue
            fn = identifier(name, self.taken)
            body = self.function(self.blocks[name], segs, fn)
            args = [self.call_args(self.blocks[name], s) for s in segs]
            if body is None or None in args:
                continue
            functions += ["", "", *body]
            self.flat.globals.add(fn)
            calls.update({s.inst.path: (s, fn, a) for s, a in zip(segs, args)})
        loops = self.loops(calls, call_lines)
        for seg, fn, args in sorted(calls.values(), key=lambda c: -c[0].start):
            if seg.inst.path in loops:
                lines = loops[seg.inst.path]
            else:
                name = f'name="{self.kname(seg.inst.path)}"'
                lines = call_lines(seg.output_var, fn, [seg.input_var, *args, name], "", self.indent)
            self.replace(seg.start, seg.end, lines)
        return functions

    def replace(self, start: int, end: int, lines: list[str]) -> None:
        """Body lines [start, end) become ``lines``; the nodes they held now hold all of ``lines``."""
        self.flat.body[start:end] = lines
        shift = len(lines) - (end - start)
        for node, (a, b) in self.flat.spans.items():
            if a >= end:
                self.flat.spans[node] = (a + shift, b + shift)
            elif start <= a < end:
                self.flat.spans[node] = (start, start + len(lines))

    def loops(self, calls: dict[str, tuple[_Seg, str, list[str]]], call_lines) -> dict[str, list[str]]:
        """Runs (``STEP * n``) of calls with one set of arguments, each reading the previous: a ``for`` loop.

        Returns instance path -> the statements replacing its call (the loop at the first member,
        nothing at the others).
        """
        out: dict[str, list[str]] = {}
        for group in self.net.repeats:
            if group.kind != "block" or len(group.members) < 2 or not all(m in calls for m in group.members):
                continue
            segs = [calls[m][0] for m in group.members]
            match = [re.fullmatch(r"(.*\.)(\d+)\.", s.inst.path) for s in segs]
            if any(x is None for x in match) or len({x.group(1) for x in match}) != 1:
                continue
            numbers = [int(x.group(2)) for x in match]
            if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                continue
            if len({(calls[m][1], tuple(calls[m][2])) for m in group.members}) != 1:
                continue
            if any(segs[i].input_var != segs[i - 1].output_var for i in range(1, len(segs))):
                continue
            if any(segs[i].start != segs[i - 1].end for i in range(1, len(segs))):
                continue
            inner = {s.output_var for s in segs[:-1]}  # read by nothing but the next call
            rest = self.flat.body[:segs[0].start] + self.flat.body[segs[-1].end:]
            if _names_read(rest) & inner or set(self.flat.outputs) & inner:
                continue
            y, fn, args = segs[-1].output_var, calls[group.members[0]][1], calls[group.members[0]][2]
            name = f'name=f"{self.kname(match[0].group(1))}{{i}}{self.kname(".")}"'
            ind = self.indent
            loop = [f"{ind}{y} = {segs[0].input_var}",
                    f"{ind}for i in range({'' if numbers[0] == 0 else f'{numbers[0]}, '}{numbers[-1] + 1}):",
                    *call_lines(y, fn, [y, *args, name], "", ind * 2)]
            if any(len(line) > 120 for line in loop):
                continue
            out[segs[0].inst.path] = loop
            out.update({s.inst.path: [] for s in segs[1:]})
        return out


def mirror(network: ir.Network, flat: Flat, kname: Callable[[str], str], taken: set[str],
           call_lines) -> tuple[list[str], list[str]]:
    """(function definitions, the rewritten body): each block a function where provably the same program.

    ``kname`` maps a canonical name (or an instance path) to the framework's layer name; ``taken``
    holds the module's names (function names are added to it); ``call_lines(target, func, args,
    operand)`` prints one call statement as the generator prints its others.
    """
    if not network.instances:
        return [], flat.body
    return _Mirror(network, flat, kname, taken).run(call_lines)
