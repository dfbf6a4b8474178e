"""Source files and spans: where every piece of a spec came from."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """The text of one spec file, with its display name."""

    name: str
    text: str

    @classmethod
    def from_path(cls, path: str | Path) -> Source:
        """Read a spec file (UTF-8)."""
        p = Path(path)
        return cls(str(path), p.read_text(encoding="utf-8"))

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines() or [""]

    def line(self, lineno: int) -> str:
        """The 1-based line ``lineno`` without its newline ('' past the end)."""
        lines = self.lines
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset (a binary search: many lookups stay fast)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1


@dataclass(frozen=True)
class Span:
    """A region of a source file: 1-based line/column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @classmethod
    def at(cls, file: str, line: int, col: int, length: int = 1) -> Span:
        return cls(file, line, col, line, col + max(length, 1))

    def merge(self, other: Span | None) -> Span:
        """The smallest span covering both."""
        if other is None or other.file != self.file:
            return self
        start = min((self.line, self.col), (other.line, other.col))
        end = max((self.end_line, self.end_col), (other.end_line, other.end_col))
        return Span(self.file, start[0], start[1], end[0], end[1])
