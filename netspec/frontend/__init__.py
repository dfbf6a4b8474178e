"""Front ends: .net text and YAML documents, both to one syntax tree."""

from __future__ import annotations

from pathlib import Path

from ..diagnostics import Diagnostic, SpecError
from ..source import Source
from . import ast

FORMS = {".net": "net", ".yaml": "yaml", ".yml": "yaml"}

#: The largest spec read, in bytes of UTF-8 (the largest example, ResNet-152, is 2.4 KB).
#: Larger input is refused at once (E001, a usage error) instead of being parsed.
MAX_SOURCE_BYTES = 128 << 10


def _too_large(name: str, size: int) -> SpecError:
    return SpecError([Diagnostic(
        "E001", f"cannot read '{name}': it is {size:,} bytes; a spec may be at most "
        f"{MAX_SOURCE_BYTES:,} bytes ({MAX_SOURCE_BYTES >> 10} KiB)",
        notes=("split the spec, or generate the repeated part with blocks and `STEP * n`",))])


def check_size(source: Source) -> None:
    """Refuse a source over :data:`MAX_SOURCE_BYTES` (SpecError E001)."""
    text = source.text
    if len(text) * 4 <= MAX_SOURCE_BYTES:  # a character is at most 4 bytes: surely small enough
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        raise _too_large(source.name, size)


def form_of(path: str | Path) -> str:
    """The form of a spec file by its extension; raises SpecError (E002) for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMS:
        raise SpecError([Diagnostic("E002", f"cannot tell the form of '{path}': use .net, .yaml or .yml")])
    return FORMS[suffix]


def parse_source(source: Source, form: str | None = None) -> ast.Module:
    """Parse a source in the given form (default: by its name's extension)."""
    form = form or form_of(source.name)
    check_size(source)
    if form == "yaml":
        from .yaml import parse_yaml

        return parse_yaml(source)
    from .net import parse_net

    return parse_net(source)


def read_source(path: str | Path) -> Source:
    """Read a spec file; raises SpecError (E001) when it cannot be read."""
    try:
        with open(path, "rb") as f:  # at most one byte more than the limit, whatever the file claims
            data = f.read(MAX_SOURCE_BYTES + 1)
            if len(data) > MAX_SOURCE_BYTES:
                f.seek(0, 2)
                raise _too_large(str(path), max(f.tell(), len(data)))
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
        return Source(str(path), text)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError([Diagnostic("E001", f"cannot read '{path}': {reason}")]) from None
