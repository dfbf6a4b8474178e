"""``netspec lsp``: the Language Server Protocol over stdio, with pygls.

The analysis lives in :mod:`netspec.lsp.analysis` and :mod:`netspec.lsp.features`
(no LSP library there); this module converts positions and wires the requests:

- diagnostics: the ones ``netspec check`` prints (code, span, message; the
  arithmetic and the notes as related information), published after the typing
  pauses (``DEBOUNCE_S``), at once on open and save; a request that arrives
  first analyses the current text, so no answer comes from a stale version;
- hover, go to definition, find references, document symbols, completion and
  formatting (the text ``netspec fmt`` writes).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

from .. import __version__
from ..diagnostics import Diagnostic
from ..source import Span
from . import features
from .analysis import Analysis

log = logging.getLogger(__name__)

#: Seconds of quiet after an edit before the document is re-checked and diagnostics are published.
DEBOUNCE_S = 0.15

_NOTE_AT = re.compile(r"\bat (\S+?):(\d+):(\d+)\b")

_SYMBOL_KINDS = {
    "network": t.SymbolKind.Class, "block": t.SymbolKind.Function, "input": t.SymbolKind.Field,
    "target": t.SymbolKind.Field, "value": t.SymbolKind.Variable, "layer": t.SymbolKind.Object,
    "param": t.SymbolKind.TypeParameter,
}
_COMPLETION_KINDS = {
    "layer": t.CompletionItemKind.Class, "pool": t.CompletionItemKind.Class, "shape": t.CompletionItemKind.Class,
    "normalization": t.CompletionItemKind.Class, "regularization": t.CompletionItemKind.Class,
    "activation": t.CompletionItemKind.Function, "merge": t.CompletionItemKind.Operator,
    "block": t.CompletionItemKind.Module, "value": t.CompletionItemKind.Variable,
    "param": t.CompletionItemKind.TypeParameter, "keyword": t.CompletionItemKind.Keyword,
    "argument": t.CompletionItemKind.Property, "loss": t.CompletionItemKind.Function,
    "optimizer": t.CompletionItemKind.Function, "initializer": t.CompletionItemKind.Function,
    "regularizer": t.CompletionItemKind.Function,
}


class NetspecServer(LanguageServer):
    """Keeps one analysis per open document and the timers of pending re-checks."""

    def __init__(self):
        super().__init__("netspec", __version__, text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, tuple[int | None, Analysis]] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}

    # documents -------------------------------------------------------------------------
    def analysis(self, uri: str) -> tuple[object, Analysis]:
        """The analysis of the document's current text (made now if the text changed since)."""
        doc = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached[0] == doc.version and cached[1].text == doc.source:
            return doc, cached[1]
        previous = cached[1] if cached else None
        a = Analysis(_name(uri), doc.source, previous)
        self.analyses[uri] = (doc.version, a)
        return doc, a

    def publish(self, uri: str) -> None:
        self.cancel(uri)
        doc, a = self.analysis(uri)
        lines = _lines(a)
        diags = [to_lsp_diagnostic(d, uri, a, doc, lines) for d in a.diagnostics]
        self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=diags,
                                                                          version=doc.version))

    def schedule(self, uri: str) -> None:
        self.cancel(uri)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous transport): publish now
            self.publish(uri)
            return
        self.pending[uri] = loop.call_later(DEBOUNCE_S, self._publish_safely, uri)

    def _publish_safely(self, uri: str) -> None:
        self.pending.pop(uri, None)
        try:
            if uri in self.analyses or self.workspace.text_documents.get(uri) is not None:
                self.publish(uri)
        except Exception:  # noqa: BLE001 - one bad analysis must not stop the server
            log.exception("netspec: analysing %s failed", uri)

    def cancel(self, uri: str) -> None:
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()


def _name(uri: str) -> str:
    """The display name of a document: its path for file URIs (as `netspec check PATH` shows it)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    name = Path(unquote(parsed.path)).name or "untitled"
    return name if "." in name else f"{name}.net"


# positions ---------------------------------------------------------------------------------


def _lines(a: Analysis) -> list[str]:
    return a.text.split("\n")


def to_range(span: Span | None, doc, lines: list[str]) -> t.Range:
    """A netspec span (1-based, characters, end exclusive) as an LSP range in the client's units."""
    if span is None:
        return t.Range(start=t.Position(line=0, character=0), end=t.Position(line=0, character=0))
    rng = ServerTextRange(ServerTextPosition(span.line - 1, span.col - 1),
                          ServerTextPosition(span.end_line - 1, span.end_col - 1))
    codec = doc.position_codec
    return t.Range(start=codec.position_to_client_units(lines, rng.start),
                   end=codec.position_to_client_units(lines, rng.end))


def from_position(pos: t.Position, doc, lines: list[str]) -> tuple[int, int]:
    """An LSP position as netspec's 1-based (line, column)."""
    p = doc.position_codec.position_from_client_units(lines, t.Position(line=pos.line, character=pos.character))
    return p.line + 1, p.character + 1


def to_lsp_diagnostic(d: Diagnostic, uri: str, a: Analysis, doc, lines: list[str]) -> t.Diagnostic:
    rng = to_range(d.span, doc, lines)
    here = t.Location(uri=uri, range=rng)
    related = []
    if d.formula:
        related.append(t.DiagnosticRelatedInformation(location=here, message=f"arithmetic: {d.formula}"))
    for note in d.notes:
        where = here
        m = _NOTE_AT.search(note)
        if m and m.group(1) == a.name:  # "first defined at FILE:L:C": point there
            line, col = int(m.group(2)), int(m.group(3))
            where = t.Location(uri=uri, range=to_range(Span.at(a.name, line, col), doc, lines))
        related.append(t.DiagnosticRelatedInformation(location=where, message=note))
    return t.Diagnostic(range=rng, message=d.message, severity=t.DiagnosticSeverity.Error, code=d.code,
                        source="netspec", related_information=related or None)


# the server ----------------------------------------------------------------------------------


def create_server() -> NetspecServer:
    server = NetspecServer()

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NetspecServer, params: t.DidOpenTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NetspecServer, params: t.DidChangeTextDocumentParams):
        ls.schedule(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NetspecServer, params: t.DidSaveTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NetspecServer, params: t.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        ls.cancel(uri)
        ls.analyses.pop(uri, None)
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(ls: NetspecServer, params: t.HoverParams):
        doc, a = ls.analysis(params.text_document.uri)
        lines = _lines(a)
        found = features.hover(a, *from_position(params.position, doc, lines))
        if found is None:
            return None
        text, span = found
        return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text),
                       range=to_range(span, doc, lines))

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: NetspecServer, params: t.DefinitionParams):
        doc, a = ls.analysis(params.text_document.uri)
        lines = _lines(a)
        span = features.definition(a, *from_position(params.position, doc, lines))
        if span is None:
            return None
        return t.Location(uri=params.text_document.uri, range=to_range(span, doc, lines))

    @server.feature(t.TEXT_DOCUMENT_REFERENCES)
    def references(ls: NetspecServer, params: t.ReferenceParams):
        doc, a = ls.analysis(params.text_document.uri)
        lines = _lines(a)
        spans = features.references(a, *from_position(params.position, doc, lines),
                                     include_declaration=params.context.include_declaration)
        return [t.Location(uri=params.text_document.uri, range=to_range(s, doc, lines)) for s in spans]

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: NetspecServer, params: t.DocumentSymbolParams):
        doc, a = ls.analysis(params.text_document.uri)
        lines = _lines(a)

        def convert(item: features.OutlineItem) -> t.DocumentSymbol:
            return t.DocumentSymbol(name=item.name, kind=_SYMBOL_KINDS[item.kind], detail=item.detail,
                                    range=to_range(item.span, doc, lines),
                                    selection_range=to_range(item.selection, doc, lines),
                                    children=[convert(c) for c in item.children])
        return [convert(item) for item in features.outline(a)]

    @server.feature(t.TEXT_DOCUMENT_COMPLETION,
                    t.CompletionOptions(trigger_characters=[">", "(", ",", "=", " "]))
    def completion(ls: NetspecServer, params: t.CompletionParams):
        doc, a = ls.analysis(params.text_document.uri)
        lines = _lines(a)
        items = features.completions(a, *from_position(params.position, doc, lines))
        out = []
        for i, c in enumerate(items):
            out.append(t.CompletionItem(
                label=c.label, kind=_COMPLETION_KINDS.get(c.kind, t.CompletionItemKind.Text),
                detail=c.detail or None, insert_text=c.insert, sort_text=f"{i:04d}",
                documentation=t.MarkupContent(kind=t.MarkupKind.Markdown, value=c.documentation)
                if c.documentation else None))
        return t.CompletionList(is_incomplete=False, items=out)

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: NetspecServer, params: t.DocumentFormattingParams):
        doc, a = ls.analysis(params.text_document.uri)
        text = features.format_text(a.name, a.text)
        if text is None:  # a log line, not a pop-up: format-on-save would raise one on every save
            ls.window_log_message(t.LogMessageParams(
                type=t.MessageType.Info, message="netspec: the spec has errors; not formatted"))
            return None
        if text == a.text:
            return []
        lines = _lines(a)
        end = t.Position(line=len(lines) - 1, character=len(lines[-1]))
        end = doc.position_codec.position_to_client_units(lines, ServerTextPosition(end.line, end.character))
        return [t.TextEdit(range=t.Range(start=t.Position(line=0, character=0), end=end), new_text=text)]

    return server


def serve() -> None:
    """Run the language server on standard input and output until the client exits."""
    import gc

    logging.basicConfig(level=logging.WARNING)
    server = create_server()
    gc.collect()
    gc.freeze()  # modules, the op registry, the grammar: never garbage; keep them out of every GC pass
    server.start_io()
