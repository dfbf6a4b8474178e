"""Diagnostics: errors that point at the spec.

A diagnostic renders as::

    model.net:7:14: error[E301]: conv2d output height is 0
        |
      7 |     x = image -> conv2d(8, 5)
        |                  ^^^^^^^^^^^^
        = arithmetic: (4 + 0 + 0 - 5) // 1 + 1 = 0

Codes are stable: tests and users may rely on them. The table ``CODES`` lists
them all; ``docs/diagnostics.md`` documents each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .source import Source, Span

CODES: dict[str, str] = {
    # E0xx: files and usage
    "E001": "cannot read file",
    "E002": "unsupported file type",
    # E1xx: syntax
    "E101": "syntax error",
    "E102": "invalid YAML spec",
    "E103": "invalid literal",
    # E2xx: names and structure
    "E201": "unknown name",
    "E202": "duplicate definition",
    "E203": "unknown op",
    "E204": "unknown block",
    "E205": "misplaced statement",
    "E206": "missing statement",
    "E207": "recursive block",
    "E208": "unused value",
    "E209": "no network",
    # E3xx: arguments
    "E301": "wrong argument",
    "E302": "missing argument",
    "E303": "unknown argument",
    "E304": "argument out of range",
    "E305": "invalid expression",
    # E4xx: shapes and types
    "E401": "shape error",
    "E402": "incompatible shapes",
    "E403": "wrong dtype",
    "E404": "dynamic dimension not allowed here",
    "E405": "axis out of range",
    # E5xx: training setup
    "E501": "invalid loss",
    "E502": "invalid optimizer",
    # E6xx: backends
    "E601": "unsupported by a backend",
    "E602": "weights do not fit the spec",
}


def source_lines(text: str) -> list[str]:
    """The lines of a spec as the lexers count them: split at '\\n' only, without a trailing '\\r'.

    (``str.splitlines`` also splits at form feeds, a lone '\\r' and '\\u2028', and a
    caret would then show the wrong line.)
    """
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if len(lines) > 1 and lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return lines


@lru_cache(maxsize=8)
def _lines(text: str) -> list[str]:
    # split once per text: rendering N diagnostics stays linear in N
    return source_lines(text)


def source_line(source: Source, lineno: int) -> str:
    """The 1-based line ``lineno`` of a source ('' past the end)."""
    lines = _lines(source.text)
    return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on escaped as in Python (``\\x1b``).

    Control characters, line breaks, bidirectional overrides and other invisible
    format characters come from the spec (a string argument, a name in a YAML key)
    and must not clear, recolour or reorder the terminal.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


#: Columns of a source line shown around the caret; longer lines are cut with '...'.
LINE_WINDOW = 160


@dataclass(frozen=True)
class Diagnostic:
    """One error at one place in a spec."""

    code: str
    message: str
    span: Span | None = None
    notes: tuple[str, ...] = ()
    formula: str | None = None
    severity: str = "error"

    def render(self, sources: dict[str, Source] | None = None) -> str:
        """Render with the source line and a caret span when the source is known."""
        where = f"{printable(str(self.span))}: " if self.span else ""
        out = [f"{where}{self.severity}[{self.code}]: {printable(self.message)}"]
        src = (sources or {}).get(self.span.file) if self.span else None
        if src is not None and self.span is not None:
            # one column per character; control characters would garble the terminal
            line = source_line(src, self.span.line)
            if not line.isprintable() or "\t" in line:
                line = "".join(ch if ch.isprintable() else " " for ch in line.expandtabs(1))
            num = str(self.span.line)
            pad = " " * len(num)
            col = self.span.col
            if self.span.end_line == self.span.line:
                width = max(self.span.end_col - col, 1)
            else:
                width = max(len(line) - col + 1, 1)
            width = min(width, max(len(line) - col + 1, 1))
            line, col, width = _window(line, col, width)
            out.append(f"{pad} |")
            out.append(f"{num} | {line}")
            out.append(f"{pad} | {' ' * (col - 1)}{'^' * width}")
        prefix = "   " if not (src and self.span) else " " * (len(str(self.span.line)) + 1)
        if self.formula:
            out.append(f"{prefix}= arithmetic: {printable(self.formula)}")
        for note in self.notes:
            out.append(f"{prefix}= {printable(note)}")
        return "\n".join(out)

    def to_json(self) -> dict:
        """A JSON-ready dict (used by ``--format json``)."""
        data: dict = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.span:
            data.update(file=self.span.file, line=self.span.line, col=self.span.col,
                        end_line=self.span.end_line, end_col=self.span.end_col)
        if self.formula:
            data["formula"] = self.formula
        if self.notes:
            data["notes"] = list(self.notes)
        return data


def _window(line: str, col: int, width: int) -> tuple[str, int, int]:
    """At most about LINE_WINDOW columns of ``line`` around the caret (a 1 MB line stays readable)."""
    if len(line) <= LINE_WINDOW:
        return line, col, width
    start = max(0, min(col - 1 - LINE_WINDOW // 4, len(line) - LINE_WINDOW))
    end = start + LINE_WINDOW
    shown = ("..." if start else "") + line[start:end] + ("..." if end < len(line) else "")
    new_col = col - start + (3 if start else 0)
    width = max(1, min(width, end - (col - 1)))
    return shown, new_col, width


class SpecError(Exception):
    """Bad input: carries one or more diagnostics and the sources to render them."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, Source] | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render(self.sources) for d in self.diagnostics)


#: A check stops after this many errors (like a C compiler's error limit): a flood of
#: diagnostics from generated or hostile input would take longer to read than to fix.
MAX_DIAGNOSTICS = 100


@dataclass
class DiagnosticBag:
    """Collects independent errors so that a check reports all of them at once."""

    source: Source | None = None
    items: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)  # severity "warning": reported, not fatal
    _seen: dict[tuple, Diagnostic] = field(default_factory=dict, repr=False)

    def error(self, code: str, message: str, span: Span | None = None, *,
              formula: str | None = None, notes: tuple[str, ...] | list[str] = ()) -> Diagnostic:
        """Record an error; the same error at the same place (a block used twice) is kept once."""
        assert code in CODES, code
        key = (code, message, span)
        if key in self._seen:
            return self._seen[key]
        d = Diagnostic(code, message, span, tuple(notes), formula)
        self.items.append(d)
        self._seen[key] = d
        if len(self.items) >= MAX_DIAGNOSTICS:
            self.raise_if_any(stopped=True)
        return d

    def warning(self, code: str, message: str, span: Span | None = None, *,
                notes: tuple[str, ...] | list[str] = ()) -> Diagnostic:
        """Record a warning (kept once per place): the spec is valid, but probably not what was meant."""
        assert code in CODES, code
        key = ("warning", code, message, span)
        if key in self._seen:
            return self._seen[key]
        d = Diagnostic(code, message, span, tuple(notes), severity="warning")
        self.warnings.append(d)
        self._seen[key] = d
        return d

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, stopped: bool = False) -> None:
        """Raise a SpecError with every diagnostic so far (``stopped``: the limit was reached)."""
        if self.items:
            sources = {self.source.name: self.source} if self.source else {}
            items = sorted(self.items, key=_order)
            if stopped:
                last = items[-1]
                note = f"too many errors: netspec stops after {MAX_DIAGNOSTICS}; fix these and check again"
                items[-1] = Diagnostic(last.code, last.message, last.span, (*last.notes, note), last.formula,
                                       last.severity)
            raise SpecError(items, sources)


def _order(d: Diagnostic) -> tuple:
    if d.span is None:
        return (0, 0, 0)
    return (1, d.span.line, d.span.col)
