"""The Python API: ``netspec.load(path) -> Spec``."""

from __future__ import annotations

from pathlib import Path

from . import ir
from .checker import check_module
from .diagnostics import SpecError
from .frontend import form_of, parse_source, read_source
from .source import Source


class Spec:
    """A checked spec: its source, syntax tree and IR."""

    def __init__(self, source: Source, module, program: ir.Program):
        self.source = source
        self.module = module
        self.program = program

    @property
    def networks(self) -> tuple[ir.Network, ...]:
        return self.program.networks

    def network(self, name: str | None = None) -> ir.Network:
        """One network by name (default: the first); raises KeyError for an unknown name."""
        return self.program.network(name)

    def check(self):
        """The report (shapes, parameters, MACs) as an object."""
        from .report import build_report

        return build_report(self.program)


def parse_text(text: str, name: str = "<string>.net") -> Spec:
    """Parse and check spec text; the name's extension chooses the form."""
    source = Source(name, text)
    try:
        module = parse_source(source)
        program = check_module(module, source)
    except SpecError as exc:
        exc.sources.setdefault(source.name, source)
        raise
    return Spec(source, module, program)


def load(path: str | Path) -> Spec:
    """Load and check a spec file (.net, .yaml or .yml).

    Raises :class:`netspec.SpecError` carrying the diagnostics on bad input.
    """
    form_of(path)
    source = read_source(path)
    return parse_text(source.text, source.name)
