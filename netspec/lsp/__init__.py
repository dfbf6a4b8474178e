"""The language server: ``netspec lsp`` (LSP over stdio).

:mod:`.analysis` and :mod:`.features` are core (no framework, no LSP library);
:mod:`.server` wires them to the protocol with pygls (the ``lsp`` extra).
"""
