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


def source_line(source: Source, lineno: int) -> str:
    """The 1-based line ``lineno`` of a source ('' past the end)."""
    lines = source_lines(source.text)
    return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


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
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{self.severity}[{self.code}]: {self.message}"]
        src = (sources or {}).get(self.span.file) if self.span else None
        if src is not None and self.span is not None:
            # one column per character; control characters would garble the terminal
            text = "".join(ch if ch.isprintable() else " " for ch in source_line(src, self.span.line).expandtabs(1))
            num = str(self.span.line)
            pad = " " * len(num)
            if self.span.end_line == self.span.line:
                width = max(self.span.end_col - self.span.col, 1)
            else:
                width = max(len(text) - self.span.col + 1, 1)
            width = min(width, max(len(text) - self.span.col + 1, 1))
            out.append(f"{pad} |")
            out.append(f"{num} | {text}")
            out.append(f"{pad} | {' ' * (self.span.col - 1)}{'^' * width}")
        prefix = "   " if not (src and self.span) else " " * (len(str(self.span.line)) + 1)
        if self.formula:
            out.append(f"{prefix}= arithmetic: {self.formula}")
        for note in self.notes:
            out.append(f"{prefix}= {note}")
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


class SpecError(Exception):
    """Bad input: carries one or more diagnostics and the sources to render them."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, Source] | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render(self.sources) for d in self.diagnostics)


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

    def raise_if_any(self) -> None:
        if self.items:
            sources = {self.source.name: self.source} if self.source else {}
            raise SpecError(sorted(self.items, key=_order), sources)


def _order(d: Diagnostic) -> tuple:
    if d.span is None:
        return (0, 0, 0)
    return (1, d.span.line, d.span.col)
