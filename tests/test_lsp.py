"""`netspec lsp`, driven as an editor drives it: JSON-RPC over the pipes of a real server process.

Every request goes through the protocol (Content-Length framing, initialize, didOpen,
didChange, ...); expected values come from `netspec check` and `netspec fmt` on the same
text, so the editor and the command line cannot drift apart.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, SPECS

TIMEOUT = 60


class Client:
    """A minimal LSP client over a subprocess's stdin/stdout."""

    def __init__(self, root: Path = ROOT):
        self.proc = subprocess.Popen([sys.executable, "-m", "netspec", "lsp"], cwd=root, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []  # not yet consumed
        self.published: list[dict] = []  # every publishDiagnostics received, in order
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            body = out.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def send(self, message: dict) -> None:
        self.send_all([message])

    def send_all(self, messages: list[dict]) -> None:
        """Write several messages at once (as a fast typist's editor does)."""
        data = b""
        for m in messages:
            body = json.dumps({"jsonrpc": "2.0", **m}).encode()
            data += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _next(self) -> dict:
        msg = self.messages.get(timeout=TIMEOUT)
        if msg is None:
            raise AssertionError(f"the server exited: {self.proc.stderr.read().decode()[-3000:]}")
        if msg.get("method") == "textDocument/publishDiagnostics":
            self.published.append(msg["params"])
        return msg

    def request(self, method: str, params: dict | None = None):
        self.next_id += 1
        rid = self.next_id
        self.send({"id": rid, "method": method, "params": params or {}})
        while True:
            msg = self._next()
            if msg.get("id") == rid and "method" not in msg:
                assert "error" not in msg, msg["error"]
                return msg["result"]
            if "method" in msg:
                if "id" in msg:  # a request from the server (e.g. registerCapability): accept it
                    self.send({"id": msg["id"], "result": None})
                else:
                    self.notifications.append(msg)

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def diagnostics(self, uri: str, version: int | None = None) -> list[dict]:
        """The next diagnostics published for ``uri`` (for ``version``, when given)."""
        while True:
            for i, msg in enumerate(self.notifications):
                p = msg["params"]
                if (msg["method"] == "textDocument/publishDiagnostics" and p["uri"] == uri
                        and (version is None or p.get("version") == version)):
                    del self.notifications[: i + 1]
                    return p["diagnostics"]
            msg = self._next()
            if "method" in msg and "id" not in msg:
                self.notifications.append(msg)
            elif "method" in msg:
                self.send({"id": msg["id"], "result": None})

    def open(self, path: Path, text: str | None = None, version: int = 1) -> str:
        uri = path.resolve().as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "netspec", "version": version,
            "text": path.read_text(encoding="utf-8") if text is None else text}})
        return uri

    def close(self) -> int:
        try:
            self.request("shutdown")
            self.notify("exit", {})
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                stream.close()


def _initialize(client: Client) -> dict:
    result = client.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {
        "textDocument": {"hover": {"contentFormat": ["markdown"]},
                         "documentSymbol": {"hierarchicalDocumentSymbolSupport": True},
                         "publishDiagnostics": {"relatedInformation": True, "versionSupport": True}}}})
    client.notify("initialized", {})
    return result


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("pygls", reason="the server needs the lsp extra (pygls); the core tests run without it")
    client = Client()
    client.capabilities = _initialize(client)["capabilities"]
    yield client
    assert client.close() == 0


def pos(text: str, needle: str, offset: int = 0) -> dict:
    """The LSP position of the first ``needle`` in ``text`` (plus ``offset`` characters)."""
    i = text.index(needle) + offset
    line = text.count("\n", 0, i)
    return {"line": line, "character": i - (text.rfind("\n", 0, i) + 1)}


def doc(uri: str, position: dict) -> dict:
    return {"textDocument": {"uri": uri}, "position": position}


def check_json(path: Path) -> list[dict]:
    """The errors `netspec check --format json` reports for a file."""
    proc = subprocess.run([sys.executable, "-m", "netspec", "check", "--format", "json", str(path)],
                          cwd=ROOT, capture_output=True, text=True)
    data = json.loads(proc.stdout)
    return data.get("errors", [])


def as_check(d: dict) -> dict:
    """An LSP diagnostic in the form of `netspec check --format json`."""
    r = d["range"]
    out = {"code": d["code"], "severity": "error", "message": d["message"], "line": r["start"]["line"] + 1,
           "col": r["start"]["character"] + 1, "end_line": r["end"]["line"] + 1,
           "end_col": r["end"]["character"] + 1}
    related = [x["message"] for x in d.get("relatedInformation") or []]
    if related and related[0].startswith("arithmetic: "):
        out["formula"] = related.pop(0)[len("arithmetic: "):]
    if related:
        out["notes"] = related
    return out


def without_file(errors: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "file"} for e in errors]


# The protocol ---------------------------------------------------------------------------------------


def test_initialize_advertises_every_feature(server):
    caps = server.capabilities
    for provider in ("hoverProvider", "definitionProvider", "referencesProvider", "documentSymbolProvider",
                     "documentFormattingProvider"):
        assert caps.get(provider), provider
    assert ">" in caps["completionProvider"]["triggerCharacters"]
    sync = caps["textDocumentSync"]
    assert (sync["change"] if isinstance(sync, dict) else sync) == 2  # incremental


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_real_specs_have_no_diagnostics(server, spec):
    uri = server.open(spec)
    assert server.diagnostics(uri) == []


# Diagnostics ------------------------------------------------------------------------------------------

SEVERAL_ERRORS = """\
block down(width) {
    y = in -> conv2d(width, 3, strides=2) -> relu
    return y
}

network Broken {
    input image: [3, 4, 4]
    a = image -> conv2d(8, 5)
    b = image -> dense(0)
    c = image -> down(16) -> flaten
    d = missing -> relu
    e = image -> conv2d(8, 3) -> relu
    output e
}
"""


def test_diagnostics_are_the_ones_check_prints(server, tmp_path):
    path = tmp_path / "broken.net"
    path.write_text(SEVERAL_ERRORS)
    uri = server.open(path)
    diags = server.diagnostics(uri)
    expected = without_file(check_json(path))
    assert len(expected) >= 4  # the spec has independent errors in several places
    assert [as_check(d) for d in diags] == expected
    assert all(d["source"] == "netspec" and d["severity"] == 1 for d in diags)
    window = next(d for d in diags if d["code"] == "E401")
    assert window["relatedInformation"][0]["message"] == "arithmetic: (4 + 0 + 0 - 5) // 1 + 1 = 0"


def test_a_duplicate_definition_points_at_the_first_one(server, tmp_path):
    path = tmp_path / "dup.net"
    text = "network N {\n    input x: [4]\n    y = x -> relu\n    y = x -> tanh\n    output y\n}\n"
    path.write_text(text)
    uri = server.open(path)
    (diag,) = server.diagnostics(uri)
    assert diag["code"] == "E202"
    first = next(r for r in diag["relatedInformation"] if r["message"].startswith("first defined at"))
    assert first["location"]["range"]["start"] == {"line": 2, "character": 4}


SYNTAX_AND_CHECK_ERRORS = """\
block broken(width) {
    y = in -> conv2d(width, 3 -> relu
    return y
}

block fine(width) {
    return in -> dense(width) -> relu
}

network N {
    input x: [8]
    h = x -> fine(16) -> dense(0)
    g = x -> fine(4) -> flaten
    output h
}
"""


def test_a_syntax_error_leaves_the_other_declarations_checked(server, tmp_path):
    path = tmp_path / "syntax.net"
    path.write_text(SYNTAX_AND_CHECK_ERRORS)
    uri = server.open(path)
    diags = [as_check(d) for d in server.diagnostics(uri)]
    (syntax,) = without_file(check_json(path))  # the command line stops at the syntax error
    assert diags[0] == syntax
    # the network, which does not use the broken block, is still checked: its errors are the
    # ones `netspec check` prints once the syntax error is fixed
    fixed = tmp_path / "fixed.net"
    fixed.write_text(SYNTAX_AND_CHECK_ERRORS.replace("3 -> relu", "3) -> relu"))
    assert diags[1:] == without_file(check_json(fixed))
    assert [d["code"] for d in diags[1:]] == ["E301", "E203"]


def test_edits_are_debounced_and_the_last_version_wins(server, tmp_path):
    path = tmp_path / "typing.net"
    text = (ROOT / "specs" / "resnet50.net").read_text()
    path.write_text(text)
    uri = server.open(path)
    assert server.diagnostics(uri, version=1) == []
    start = pos(text, "dense(1000)", len("dense("))
    edits = []
    for version, digit in enumerate("0123456789", start=2):  # type ten characters at once
        at = {"line": start["line"], "character": start["character"] + version - 2}
        edits.append({"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": digit}]}})
    # ... and the last one makes the spec wrong: dense(0...)
    at = start
    edits.append({"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": 12},
        "contentChanges": [{"range": {"start": at, "end": {"line": at["line"], "character": at["character"] + 14}},
                            "text": "0"}]}})
    server.send_all(edits)
    diags = server.diagnostics(uri, version=12)
    assert [d["code"] for d in diags] == ["E301"]
    versions = [p["version"] for p in server.published if p["uri"] == uri]
    # eleven edits in one burst: re-checked once when it ends (a loaded machine may split the burst)
    assert versions[0] == 1 and versions[-1] == 12 and len(versions) <= 3, versions
    # the server's text is the edited text: a hover sees dense(0)
    hover = server.request("textDocument/hover", doc(uri, pos(text, "dense(1000)", 1)))
    assert "dense" in hover["contents"]["value"]


# Hover ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet(server):
    path = ROOT / "specs" / "resnet50.net"
    uri = server.open(path)
    import netspec

    return uri, path.read_text(), netspec.load(path).network()


def test_hover_on_a_value_shows_its_shape_params_and_macs(server, resnet):
    uri, text, net = resnet
    hover = server.request("textDocument/hover", doc(uri, pos(text, "features = stem", 2)))
    value = hover["contents"]["value"]
    nodes = [n for n in net.nodes if n.name.startswith("features.")]
    params = sum(p.size for n in nodes for p in n.params)
    macs = sum(n.macs for n in nodes)
    assert str(nodes[-1].type) == "[2048, 7, 7]" and f"`{nodes[-1].type}`" in value
    assert f"{params:,} params" in value and f"{macs:,} MACs" in value
    assert hover["range"]["start"] == pos(text, "features = stem")


def test_hover_on_a_step_shows_its_layer_and_the_op_documentation(server, resnet):
    uri, text, net = resnet
    value = server.request("textDocument/hover", doc(uri, pos(text, "conv2d(64, 7", 2)))["contents"]["value"]
    node = net.node("stem.conv2d")
    assert f"`stem.conv2d`: conv2d → `{node.type}`" in value
    assert f"{sum(p.size for p in node.params):,} params" in value and f"{node.macs:,} MACs" in value
    from netspec.ops.registry import OPS

    language = (ROOT / "docs" / "language.md").read_text()
    assert OPS["conv2d"].doc in value and OPS["conv2d"].doc in language
    assert OPS["conv2d"].shape_rule.split(";")[0] in value


def test_hover_on_a_block_use_shows_each_repeat(server, resnet):
    uri, text, net = resnet
    value = server.request("textDocument/hover", doc(uri, pos(text, "bottleneck(64) * 2", 3)))["contents"]["value"]
    assert "block bottleneck(width)" in value
    assert "`features.1` → `[256, 56, 56]`" in value and "`features.2` → `[256, 56, 56]`" in value


def test_hover_on_an_argument_shows_its_documentation(server, resnet):
    uri, text, _ = resnet
    value = server.request("textDocument/hover", doc(uri, pos(text, "momentum=0.9)", 1)))["contents"]["value"]
    from netspec.ops.registry import OPS

    attr = OPS["batchnorm"].attrs["momentum"]
    assert "`momentum`" in value and attr.doc in value
    assert attr.doc in (ROOT / "docs" / "language.md").read_text()


def test_hover_on_a_positional_argument_documents_it(server, resnet):
    uri, text, _ = resnet
    value = server.request("textDocument/hover", doc(uri, pos(text, "conv2d(64, 7", len("conv2d(64, "))))
    assert "`kernel`, positional" in value["contents"]["value"]
    value = server.request("textDocument/hover", doc(uri, pos(text, "bottleneck(128) * 3", len("bottleneck(1"))))
    assert "parameter of block `bottleneck`" in value["contents"]["value"]


def test_hover_on_a_shared_layer_counts_its_weights_once(server):
    path = ROOT / "specs" / "siamese.net"
    text = path.read_text()
    uri = server.open(path)
    value = server.request("textDocument/hover", doc(uri, pos(text, "layer embed", 7)))["contents"]["value"]
    assert "used 2 times" in value and f"{128 * 1600 + 128:,} params" in value


def test_hover_on_a_network_sums_it_up(server, resnet):
    uri, text, net = resnet
    value = server.request("textDocument/hover", doc(uri, pos(text, "ResNet50 {", 1)))["contents"]["value"]
    trainable, non = net.param_counts()
    assert f"{trainable + non:,} params ({trainable:,} trainable)" in value
    assert "25,610,152 params" in value
    assert "logits `[1000]`" in value


def test_while_the_text_has_errors_values_keep_their_last_checked_shapes(server, tmp_path):
    path = tmp_path / "editing.net"
    text = (ROOT / "specs" / "resnet50.net").read_text()
    path.write_text(text)
    uri = server.open(path)
    assert server.diagnostics(uri, version=1) == []
    at = pos(text, "-> dense(1000)")
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": at, "end": at}, "text": "-> conv2d("}]})  # half typed: a syntax error
    assert [d["code"] for d in server.diagnostics(uri, version=2)] == ["E101"]
    value = server.request("textDocument/hover", doc(uri, pos(text, "features = stem", 2)))["contents"]["value"]
    assert "`[2048, 7, 7]`" in value and "as of the last version that checked" in value


def test_hover_on_nothing_is_null(server, resnet):
    uri, text, _ = resnet
    assert server.request("textDocument/hover", doc(uri, {"line": 0, "character": 3})) is None  # a comment


# Definition, references, outline ----------------------------------------------------------------------


def test_definition_of_a_block_a_value_and_a_shared_layer(server, resnet):
    uri, text, _ = resnet
    loc = server.request("textDocument/definition", doc(uri, pos(text, "bottleneck(64) * 2", 1)))
    assert loc["uri"] == uri and loc["range"]["start"] == pos(text, "bottleneck(width)")
    loc = server.request("textDocument/definition", doc(uri, pos(text, "features = stem", len("features = s"))))
    assert loc["range"]["start"] == pos(text, "stem = image")
    siamese = ROOT / "specs" / "siamese.net"
    stext = siamese.read_text()
    suri = server.open(siamese)
    loc = server.request("textDocument/definition", doc(suri, pos(stext, "-> conv_b", 4)))
    assert loc["range"]["start"] == pos(stext, "conv_b = conv2d")


def test_references_of_a_block_and_a_shared_layer(server, resnet):
    uri, text, _ = resnet
    refs = server.request("textDocument/references", {**doc(uri, pos(text, "block bottleneck(", 7)),
                                                      "context": {"includeDeclaration": True}})
    lines = sorted(r["range"]["start"]["line"] for r in refs)
    assert lines == [pos(text, "block bottleneck(")["line"]] + [
        i for i, ln in enumerate(text.split("\n")) if re.search(r"-> bottleneck\(", ln)]
    siamese = ROOT / "specs" / "siamese.net"
    stext = siamese.read_text()
    suri = server.open(siamese)
    refs = server.request("textDocument/references", {**doc(suri, pos(stext, "layer embed", 7)),
                                                      "context": {"includeDeclaration": False}})
    assert len(refs) == 2


def test_document_symbols_outline_networks_blocks_and_values(server, resnet):
    uri, text, _ = resnet
    symbols = server.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in symbols] == ["bottleneck_down", "bottleneck", "ResNet50"]
    net = symbols[-1]
    assert [c["name"] for c in net["children"]] == ["image", "label", "stem", "features", "logits"]
    features = next(c for c in net["children"] if c["name"] == "features")
    assert features["detail"] == "[2048, 7, 7]"
    assert [c["name"] for c in symbols[0]["children"]] == ["width", "stride", "main", "skip"]


# Completion ---------------------------------------------------------------------------------------------


def _complete(server, tmp_path, text: str, marker: str = "|") -> list[dict]:
    path = tmp_path / "complete.net"
    at = pos(text, marker)
    text = text.replace(marker, "", 1)
    path.write_text(text)
    uri = server.open(path, text)
    result = server.request("textDocument/completion", doc(uri, at))
    return result["items"] if isinstance(result, dict) else result


SCOPE = """\
block res(width, stride=1) {
    return in -> conv2d(width, 3)
}

network N {
    input image: [3, 32, 32]
    stem = image -> conv2d(16, 3)
    later = stem -> relu
}
"""


def test_completion_after_an_arrow_offers_ops_and_blocks(server, tmp_path):
    text = SCOPE.replace("stem -> relu", "stem -> |")
    labels = {i["label"] for i in _complete(server, tmp_path, text)}
    assert {"conv2d", "relu", "batchnorm", "res"} <= labels
    assert "add" not in labels  # a merge is a source, not a step


def test_completion_of_keyword_arguments_with_defaults(server, tmp_path):
    text = SCOPE.replace("conv2d(16, 3)", "conv2d(16, 3, |)")
    items = {i["label"]: i for i in _complete(server, tmp_path, text)}
    assert items["stride"]["detail"] == "= 1" and items["stride"]["insertText"] == "stride="
    assert items["padding"]["detail"] == "= valid"
    assert "filters" in items  # positional arguments may also be given by name
    text = SCOPE.replace("conv2d(16, 3)", "conv2d(16, 3, stride=2, |)")
    assert "stride" not in {i["label"] for i in _complete(server, tmp_path, text)}


def test_completion_of_an_activation_argument(server, tmp_path):
    text = SCOPE.replace("conv2d(16, 3)", "conv2d(16, 3, activation=re|)")
    labels = {i["label"] for i in _complete(server, tmp_path, text)}
    assert {"relu", "relu6", "leaky_relu"} <= labels and "conv2d" not in labels


def test_completion_of_block_parameters_and_values_in_scope(server, tmp_path):
    text = SCOPE.replace("stem -> relu", "stem -> res(|)")
    items = {i["label"]: i for i in _complete(server, tmp_path, text)}
    assert items["stride"]["detail"] == "stride=1" and "width" in items
    text = SCOPE.replace("later = stem -> relu", "later = |")
    labels = {i["label"] for i in _complete(server, tmp_path, text)}
    assert {"image", "stem", "add", "concat"} <= labels and "later" not in labels


def test_completion_offers_values_for_block_value_parameters_and_mask(server, tmp_path):
    text = SCOPE.replace("stem -> relu", "stem -> res(|)")
    items = {i["label"]: i for i in _complete(server, tmp_path, text)}
    assert {"image", "stem"} <= set(items) and items["stem"]["kind"] != items["width"]["kind"]  # a value to pass
    text = SCOPE.replace("later = stem -> relu", "later = attention(stem, stem, heads=2, mask=|)")
    assert {"image", "stem"} <= {i["label"] for i in _complete(server, tmp_path, text)}


# Formatting ---------------------------------------------------------------------------------------------


def test_formatting_gives_what_netspec_fmt_writes(server, tmp_path):
    path = tmp_path / "messy.net"
    path.write_text("network  N{\n  input x:[4]\n    y=x->dense( 8 )->relu   # hidden\n  output y\n}\n")
    uri = server.open(path)
    edits = server.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                      "options": {"tabSize": 4, "insertSpaces": True}})
    expected = subprocess.run([sys.executable, "-m", "netspec", "fmt", str(path)], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout
    assert len(edits) == 1 and edits[0]["newText"] == expected
    assert edits[0]["range"]["start"] == {"line": 0, "character": 0}


def test_formatting_a_spec_with_errors_changes_nothing(server, tmp_path):
    path = tmp_path / "broken.net"
    path.write_text(SEVERAL_ERRORS)
    uri = server.open(path)
    assert server.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                      "options": {"tabSize": 4, "insertSpaces": True}}) is None


# Robustness ------------------------------------------------------------------------------------------------


def test_every_request_answers_on_a_half_typed_spec(server, tmp_path):
    text = "block b(w) {\n    return in -> dense(w\n}\nnetwork N {\n    input x: [4]\n    y = x -> b(\n"
    path = tmp_path / "half.net"
    path.write_text(text)
    uri = server.open(path)
    assert server.diagnostics(uri)  # syntax errors, no crash
    for line in range(text.count("\n") + 1):
        for character in (0, 4, 12):
            p = doc(uri, {"line": line, "character": character})
            server.request("textDocument/hover", p)
            server.request("textDocument/definition", p)
            server.request("textDocument/completion", p)
            server.request("textDocument/references", {**p, "context": {"includeDeclaration": True}})
    server.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})


def test_yaml_specs_get_the_same_diagnostics(server, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("networks:\n  N:\n    inputs: {x: [4]}\n    values:\n      y: 'x -> dense(0)'\n"
                    "    outputs: [y]\n")
    uri = server.open(path)
    assert [as_check(d) for d in server.diagnostics(uri)] == without_file(check_json(path))


def test_op_documentation_is_the_text_of_language_md():
    """Every op's hover carries the registry's doc, argument docs and shape rule, which
    scripts/gen_docs.py also writes into docs/language.md."""
    from netspec.lsp import docs
    from netspec.ops.registry import LOSS_FNS, OPS, OPTIMIZER_DEFS

    language = (ROOT / "docs" / "language.md").read_text()
    for table, prefer in ((OPS, None), (LOSS_FNS, "loss"), (OPTIMIZER_DEFS, "optimizer")):
        for name, op in table.items():
            text = docs.op_markdown(name, prefer)
            assert text is not None, name
            rule = docs.shape_text(op) if op.shape_rule else ""
            for piece in (op.doc, rule, *(a.doc for a in op.attrs.values())):
                if piece:
                    assert piece in text, (name, piece)
                    # escaped where language.md quotes it in a table cell, as written elsewhere
                    assert piece.replace("|", "\\|") in language or piece in language, (name, piece)
            for key in op.attrs:
                assert f"`{key}`" in docs.attr_markdown(name, key, prefer)


def test_without_pygls_the_command_says_what_to_install():
    probe = "import sys; sys.modules['pygls'] = None; from netspec.cli import main; sys.exit(main(['lsp']))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "pip install 'netspec[lsp]'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_feature_answers_everywhere_while_a_spec_is_typed(spec):
    """In process (the core the server calls): every position of every spec, and the spec cut
    off at many places as if being typed; no exception anywhere."""
    from netspec.lsp import features
    from netspec.lsp.analysis import Analysis

    text = spec.read_text()
    previous = None
    cuts = sorted({len(text) * k // 23 for k in range(1, 23)})
    for version in [text, *(text[:i] + "(" + text[i:] for i in cuts[::4]), *(text[:i] for i in cuts)]:
        a = Analysis(str(spec), version, previous)
        previous = a
        lines = version.split("\n")
        step = 1 if version is text else 4
        for ln, line in enumerate(lines, 1):
            for col in range(1, len(line) + 2, step):
                features.hover(a, ln, col)
                features.definition(a, ln, col)
                features.references(a, ln, col)
        for ln in range(1, len(lines) + 1, 3):
            features.completions(a, ln, len(lines[ln - 1]) + 1)
        features.outline(a)


def _utf8(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


# An editor sends text: the one golden case of bytes that are not UTF-8 has no editor equivalent.
GOLDEN = [p for p in sorted((ROOT / "tests" / "golden").glob("*.net")) if _utf8(p)]


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda p: p.stem)
def test_diagnostics_equal_checks_on_every_golden_error(spec):
    """The analysis behind the server reports exactly the diagnostics `netspec check` does
    (the same Diagnostic objects: code, message, span, notes, arithmetic), on every error case."""
    import netspec
    from netspec.lsp.analysis import Analysis

    text = spec.read_text(encoding="utf-8")
    try:
        netspec.load(spec)
        expected = []
    except netspec.SpecError as exc:
        expected = exc.diagnostics
    assert Analysis(str(spec), text).diagnostics == expected


def test_an_edit_that_changes_no_syntax_tree_is_not_checked_again():
    """Typing in a comment leaves every tree as it was, spans included: the previous check's results
    are reused. Any other edit (even spaces, which move spans) is checked again."""
    from netspec.lsp.analysis import Analysis

    path = ROOT / "specs" / "resnet50.net"
    text = path.read_text()
    first = Analysis(str(path), text)
    at = text.index("# [64, 112, 112]") + 3
    commented = Analysis(str(path), text[:at] + "note: " + text[at:], first)
    assert commented.program is first.program and commented.checked and commented.diagnostics == []
    spaced = Analysis(str(path), text.replace("-> dense(1000)", "->  dense(1000)"), commented)
    assert spaced.program is not first.program and spaced.checked
    broken = Analysis(str(path), text.replace("dense(1000)", "dense(0)"), spaced)
    assert [d.code for d in broken.diagnostics] == ["E301"] and broken.program is None
    fixed = Analysis(str(path), text, broken)
    assert fixed.checked and fixed.diagnostics == []
