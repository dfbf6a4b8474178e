"""Front ends: .net text and YAML documents, both to one syntax tree."""

from __future__ import annotations

from pathlib import Path

from ..diagnostics import Diagnostic, SpecError
from ..source import Source
from . import ast

FORMS = {".net": "net", ".yaml": "yaml", ".yml": "yaml"}


def form_of(path: str | Path) -> str:
    """The form of a spec file by its extension; raises SpecError (E002) for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMS:
        raise SpecError([Diagnostic("E002", f"cannot tell the form of '{path}': use .net, .yaml or .yml")])
    return FORMS[suffix]


def parse_source(source: Source, form: str | None = None) -> ast.Module:
    """Parse a source in the given form (default: by its name's extension)."""
    form = form or form_of(source.name)
    if form == "yaml":
        from .yaml import parse_yaml

        return parse_yaml(source)
    from .net import parse_net

    return parse_net(source)


def read_source(path: str | Path) -> Source:
    """Read a spec file; raises SpecError (E001) when it cannot be read."""
    try:
        return Source.from_path(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError([Diagnostic("E001", f"cannot read '{path}': {reason}")]) from None
