"""The formatter: the canonical text of a syntax tree, as .net or YAML.

Canonical .net: 4-space indentation, one statement per line, a chain on one
line when it fits in 100 columns and otherwise one ``-> step`` per continuation
line, one blank line between declarations, at most one blank line kept between
statements, comments kept where they stood (trailing comments aligned; in a
multi-line chain each comment stays on its line; inside another multi-line
statement they join its last line). Parsing the output gives the same IR.
"""

from __future__ import annotations

import json

from . import ast

WIDTH = 100
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2}


# Expressions ----------------------------------------------------------------------------


def _prec(e) -> int:
    if isinstance(e, ast.BinOp):
        return _PREC[e.op]
    if isinstance(e, ast.Neg):
        return 3
    return 4


def expr(e) -> str:
    """An expression in canonical .net syntax."""
    if isinstance(e, ast.Num):
        if isinstance(e.value, float):
            text = repr(e.value).replace("e-0", "e-").replace("e+0", "e+").replace("e+", "e")
            return text if any(c in text for c in ".eEn") else text + ".0"
        return str(e.value)
    if isinstance(e, ast.Str):
        return json.dumps(e.value)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.BlockInput):
        return "in"
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(expr(x) for x in e.items) + "]"
    if isinstance(e, ast.TupleExpr):
        inner = ", ".join(expr(x) for x in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, ast.Call):
        parts = [expr(a) for a in e.args] + [f"{k.name}={expr(k.value)}" for k in e.kwargs]
        return f"{e.name}({', '.join(parts)})"
    if isinstance(e, ast.Neg):
        inner = expr(e.operand)
        return f"-{inner}" if _prec(e.operand) >= 3 else f"-({inner})"
    if isinstance(e, ast.BinOp):
        p = _PREC[e.op]
        left, right = expr(e.left), expr(e.right)
        if _prec(e.left) < p:
            left = f"({left})"
        if _prec(e.right) <= p:
            right = f"({right})"
        return f"{left} {e.op} {right}"
    raise TypeError(type(e).__name__)  # pragma: no cover


def step(s: ast.Step) -> str:
    text = expr(s.target)
    if s.repeat is not None:
        rep = expr(s.repeat)
        text += f" * {rep}" if isinstance(s.repeat, (ast.Num, ast.Name)) else f" * ({rep})"
    return text


def chain_parts(c: ast.Chain) -> list[str]:
    return [expr(c.source), *(step(s) for s in c.steps)]


def tensor_type(t: ast.TensorType) -> str:
    return f"{t.dtype or ''}[{', '.join(str(d) for d in t.dims)}]"


# .net -----------------------------------------------------------------------------------


def header_comments(text: str) -> list[tuple[int, int, str]]:
    """The comment lines at the top of a file, before anything else (kept by every conversion)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            out.append((lineno, line.index("#") + 1, stripped))
        elif stripped:
            break
    return out


def source_comments(text: str, form: str) -> list[tuple[int, int, str]]:
    """Comments the formatter keeps: all of a .net file's, the header of a YAML file's."""
    return extract_comments(text) if form == "net" else header_comments(text)


def extract_comments(text: str) -> list[tuple[int, int, str]]:
    """(line, column, text) of every ``#`` comment, skipping ``#`` inside strings."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        in_str = esc = False
        for col, ch in enumerate(line):
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "#":
                out.append((lineno, col + 1, line[col:].rstrip()))
                break
    return out


_MARK = "\0"  # stands before a trailing comment until comments are aligned


def _align(lines: list[str]) -> list[str]:
    """Align the trailing comments of consecutive lines, two spaces after the longest code."""
    out: list[str] = []
    run: list[tuple[str, str]] = []

    def flush():
        if run:
            width = max(len(code) for code, _ in run)
            out.extend(f"{code.ljust(width)}  {comment}" for code, comment in run)
            run.clear()

    for line in lines:
        if _MARK in line:
            code, comment = line.split(_MARK, 1)
            comment = comment.replace(_MARK, "  ")
            if code.endswith("{") or code.startswith("}"):  # declaration lines stand alone
                flush()
                out.append(f"{code}  {comment}")
                continue
            run.append((code, comment))
        else:
            flush()
            out.append(line)
    flush()
    return out


class _NetWriter:
    def __init__(self, comments, keep_breaks: bool = True):
        self.keep_breaks = keep_breaks
        self.comments = list(comments)
        self.lines: list[str] = []
        self.last_line = 0  # source line of the last thing written

    def take(self, before_line: int) -> list[tuple[int, int, str]]:
        taken = [c for c in self.comments if c[0] < before_line]
        self.comments = [c for c in self.comments if c[0] >= before_line]
        return taken

    def leading(self, span, indent: str, blank_ok: bool) -> None:
        if span is None:
            return
        blank_ok = blank_ok and self.keep_breaks
        first = span.line
        cs = self.take(first)
        start = cs[0][0] if cs else first
        if blank_ok and self.last_line and start > self.last_line + 1 and self.lines and self.lines[-1] != "":
            self.lines.append("")
        prev = None
        for line, _, text in cs:
            if blank_ok and prev is not None and line > prev + 1:
                self.lines.append("")
            self.lines.append(indent + text)
            prev = line
        if cs and blank_ok and first > cs[-1][0] + 1:
            self.lines.append("")

    def inner(self, span) -> dict[int, str]:
        """Take the comments on a statement's lines: source line -> comment text."""
        if span is None:
            return {}
        found = [c for c in self.comments if span.line <= c[0] <= span.end_line]
        self.comments = [c for c in self.comments if c not in found]
        self.last_line = span.end_line
        return {line: text for line, _, text in found}

    def trailing(self, span) -> str:
        comments = self.inner(span)
        return "".join(f"{_MARK}{t}" for t in comments.values())

    def stmt_lines(self, s, indent: str) -> list[str]:
        comments = self.inner(s.span)
        if isinstance(s, (ast.Binding, ast.Return)):
            name = ", ".join(s.names) if isinstance(s, ast.Binding) and s.names else getattr(s, "name", "")
            head = f"{indent}{name} = " if isinstance(s, ast.Binding) else f"{indent}return "
            return self.chain(head, s.chain, indent, comments)
        lines = self.stmt_text(s, indent)
        for text in comments.values():
            lines[-1] += f"{_MARK}{text}"
        return lines

    def stmt_text(self, s, indent: str) -> list[str]:
        if isinstance(s, ast.InputDecl):
            return [f"{indent}{s.kind} {s.name}: {tensor_type(s.type)}"]
        if isinstance(s, ast.LayerDecl):
            call = s.call.name if not (s.call.args or s.call.kwargs) else expr(s.call)
            return [f"{indent}layer {s.name} = {call}"]
        if isinstance(s, ast.OutputDecl):
            return [f"{indent}output {', '.join(n.id for n in s.names)}"]
        if isinstance(s, ast.LossDecl):
            return [f"{indent}loss {expr(s.expr)}"]
        if isinstance(s, ast.OptimizerDecl):
            return [f"{indent}optimizer {expr(s.call)}"]
        raise TypeError(type(s).__name__)  # pragma: no cover

    def chain(self, head: str, c: ast.Chain, indent: str, comments: dict[int, str]) -> list[str]:
        """A chain keeps the author's line breaks (in .net sources); a line too long breaks at every step."""
        parts = chain_parts(c)
        cont = indent + "    "
        items = [(c.source, parts[0]), *zip(c.steps, parts[1:])]
        lines_of = [getattr(node, "span", None) and node.span.line for node, _ in items]
        if not self.keep_breaks or None in lines_of:
            lines_of = [0] * len(items)
        groups: dict[int, list[str]] = {}
        for line, text in zip(lines_of, items):
            groups.setdefault(line, []).append(text[1])
        out: list[str] = []
        for line in sorted(set(groups) | set(comments)):
            comment = f"{_MARK}{comments[line]}" if line in comments else ""
            if line not in groups:
                out.append(cont + comments[line])
                continue
            group = groups[line]
            prefix = head if not out else f"{cont}-> "
            text = prefix + " -> ".join(group)
            if len(text) > WIDTH and len(group) > 1:
                out.append(prefix + group[0])
                out.extend(f"{cont}-> {p}" for p in group[1:])
            else:
                out.append(text)
            out[-1] += comment
        return out

    def decl(self, d) -> None:
        self.leading(d.span, "", blank_ok=True)
        if isinstance(d, ast.NetworkDef):
            header = f"network {d.name} {{"
        else:
            params = ", ".join(p.name if p.default is None else f"{p.name}={expr(p.default)}" for p in d.params)
            header = f"block {d.name}({params}) {{"
        header_line = d.span.line if d.span else 0
        self.lines.append(header + self.trailing(_line_span(d.span, header_line)))
        self.last_line = header_line
        for s in d.body:
            self.leading(s.span, "    ", blank_ok=True)
            self.lines.extend(self.stmt_lines(s, "    "))
        end = d.span.end_line if d.span else 0
        self.leading(_line_span(d.span, end) if d.span else None, "    ", blank_ok=True)
        self.lines.append("}" + self.trailing(_line_span(d.span, end)))


def _line_span(span, line):
    if span is None:
        return None
    from ..source import Span

    return Span(span.file, line, 1, line, 10**6)


def format_net(module: ast.Module, comments=(), keep_breaks: bool = True) -> str:
    """Canonical .net text of a module, comments kept.

    ``keep_breaks``: keep the author's layout, the line breaks of multi-line
    chains and single blank lines (for .net sources; a module from YAML breaks
    by width only).
    """
    w = _NetWriter(comments, keep_breaks)
    for i, d in enumerate(module.decls):
        if i and w.lines[-1] != "":
            w.lines.append("")
        w.decl(d)
    rest = w.comments
    if rest:
        w.lines.append("")
        w.lines.extend(t for _, _, t in rest)
    return "\n".join(_align(w.lines)) + "\n"


# YAML -------------------------------------------------------------------------------------


class _Flow(list):
    """A list the YAML writer prints in flow style ([1, 28, 28])."""


def _yaml_value(e):
    if isinstance(e, ast.Num) and not isinstance(e.value, bool):
        return e.value
    if isinstance(e, ast.Bool):
        return e.value
    return expr(e)


def _yaml_chain(c: ast.Chain):
    parts = chain_parts(c)
    one = " -> ".join(parts)
    return one if len(one) <= 80 else parts


def _yaml_body(body) -> dict:
    out: dict = {}
    for s in body:
        if isinstance(s, ast.InputDecl):
            key = "inputs" if s.kind == "input" else "targets"
            t = s.type
            out.setdefault(key, {})[s.name] = _Flow(t.dims) if t.dtype is None else tensor_type(t)
        elif isinstance(s, ast.LayerDecl):
            out.setdefault("layers", {})[s.name] = expr(s.call)
        elif isinstance(s, ast.Binding):
            out.setdefault("values", {})[", ".join(s.names) if s.names else s.name] = _yaml_chain(s.chain)
        elif isinstance(s, ast.OutputDecl):
            out["outputs"] = _Flow(n.id for n in s.names)
        elif isinstance(s, ast.LossDecl):
            out["loss"] = expr(s.expr)
        elif isinstance(s, ast.OptimizerDecl):
            out["optimizer"] = expr(s.call)
        elif isinstance(s, ast.Return):
            out["return"] = _yaml_chain(s.chain)
    order = ("params", "inputs", "targets", "layers", "values", "return", "outputs", "loss", "optimizer")
    return {k: out[k] for k in order if k in out}


def format_yaml(module: ast.Module, header: list[str] | None = None) -> str:
    """The YAML form of a module (see netspec/frontend/yaml.py for the schema)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", list(v),
                                                                     flow_style=True))
    doc: dict = {}
    for d in module.decls:
        if isinstance(d, ast.BlockDef):
            body = _yaml_body(d.body)
            params = {p.name: (None if p.default is None else _yaml_value(p.default)) for p in d.params}
            doc.setdefault("blocks", {})[d.name] = {"params": params, **body} if params else body
        else:
            doc.setdefault("networks", {})[d.name] = _yaml_body(d.body)
    text = yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=WIDTH,
                     allow_unicode=True)
    lead = "".join(f"{line}\n" for line in (header or []))
    return lead + text


def format_module(module: ast.Module, form: str = "net", comments=(), keep_breaks: bool = True) -> str:
    """Canonical text in ``form`` ("net" or "yaml")."""
    if form == "yaml":
        first = module.decls[0].span.line if module.decls and module.decls[0].span else 1
        header = [t for line, col, t in comments if line < first and col == 1]
        return format_yaml(module, header)
    return format_net(module, comments, keep_breaks)
