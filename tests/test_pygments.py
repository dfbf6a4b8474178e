"""The Pygments lexer (netspec/pygments_lexer.py) and the TextMate grammar (editors/textmate)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS

pygments = pytest.importorskip("pygments", reason="the lexer needs Pygments (the dev extra)")
from pygments.token import Error, Keyword, Name, Number, Operator, String  # noqa: E402

from netspec.ops.registry import FAMILIES, LOSS_FNS, OPS, OPTIMIZER_DEFS  # noqa: E402
from netspec.pygments_lexer import FUNCTIONS, NetspecLexer  # noqa: E402
from netspec.pygments_lexer import OPS as LEXER_OPS  # noqa: E402

GRAMMAR = ROOT / "editors" / "textmate" / "netspec.tmLanguage.json"


def _tokens(text: str):
    return list(NetspecLexer().get_tokens(text))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_tokenises_without_error_tokens(spec):
    text = spec.read_text()
    tokens = _tokens(text)
    errors = [v for t, v in tokens if t in Error]
    assert errors == []
    assert "".join(v for _, v in tokens) == (text if text.endswith("\n") else text + "\n")


def test_the_fenced_examples_in_the_docs_tokenise_without_error_tokens():
    blocks = []
    for doc in ("language.md", "diagnostics.md"):
        blocks += re.findall(r"```net\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)
    assert len(blocks) >= 5
    for block in blocks:
        assert [v for t, v in _tokens(block) if t in Error] == [], block


def test_the_lexer_knows_every_op_of_the_registry():
    assert sorted(LEXER_OPS) == sorted(OPS)
    families = {*LOSS_FNS, *OPTIMIZER_DEFS, *FAMILIES["initializer"], *FAMILIES["regularizer"]}
    assert sorted(FUNCTIONS) == sorted(families)


def test_tokens_of_a_chain():
    tokens = [(t, v) for t, v in _tokens("network N {\n  x = in -> conv2d(8, 3, stride=2) * 2  # c\n}\n")
              if v.strip()]
    assert (Keyword.Declaration, "network") in tokens and (Name.Class, "N") in tokens
    assert (Operator, "->") in tokens and (Name.Builtin, "conv2d") in tokens
    assert (Name.Attribute, "stride") in tokens and (Number.Integer, "8") in tokens
    assert (Keyword.Pseudo, "in") in tokens and (Name.Variable, "x") in tokens
    assert any(t in pygments.token.Comment for t, v in tokens if v == "# c")
    assert (String.Double, '"x"') in [(t, v) for t, v in _tokens('y = f(name="x")\n')]


def test_the_lexer_is_registered_through_an_entry_point():
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pygments.lexers"]["netspec"] == "netspec.pygments_lexer:NetspecLexer"
    # installed metadata may be older than this checkout's pyproject: check it only when it has the entry point
    from importlib.metadata import entry_points

    if any(ep.name == "netspec" for ep in entry_points(group="pygments.lexers")):
        from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

        assert isinstance(get_lexer_by_name("netspec"), NetspecLexer)
        assert isinstance(get_lexer_for_filename("model.net"), NetspecLexer)


def test_the_lexer_module_imports_only_pygments():
    probe = ("import sys, json; import netspec.pygments_lexer; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('pydantic', 'lark', 'yaml', 'numpy', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# The TextMate grammar ----------------------------------------------------------------------------------


def _patterns(node):
    """Every regular expression in a TextMate grammar."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_textmate_grammar_is_valid_and_knows_every_op():
    grammar = json.loads(GRAMMAR.read_text())
    assert grammar["scopeName"] == "source.netspec" and "net" in grammar["fileTypes"]
    patterns = list(_patterns(grammar))
    assert len(patterns) > 10
    for p in patterns:
        re.compile(p.replace("(?x)", ""))  # Oniguruma syntax used here is a subset of Python's
    for name in (*OPS, *LOSS_FNS, *OPTIMIZER_DEFS):
        assert any(re.search(rf"\b{name}\b", p) for p in patterns), name
    for ref in re.findall(r'"include":\s*"#([\w-]+)"', GRAMMAR.read_text()):
        assert ref in grammar["repository"], ref


def test_textmate_grammar_scopes_a_spec():
    """A poor man's TextMate engine (first match wins, line by line) on ResNet-50: every op is scoped."""
    grammar = json.loads(GRAMMAR.read_text())
    rules = []

    def collect(items):
        for item in items:
            if "include" in item:
                collect(grammar["repository"][item["include"][1:]]["patterns"])
            elif "match" in item:
                rules.append((re.compile(item["match"]), item))
    collect(grammar["patterns"])
    text = (ROOT / "specs" / "resnet50.net").read_text()
    scoped: dict[str, str] = {}
    for line in text.split("\n"):
        i = 0
        while i < len(line):
            best = None
            for rx, item in rules:
                m = rx.search(line, i)
                if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                    best = (m, item)
            if best is None:
                break
            m, item = best
            if "name" in item:
                scoped.setdefault(m.group(0), item["name"])
            for k, cap in (item.get("captures") or {}).items():
                if m.group(int(k)):
                    scoped.setdefault(m.group(int(k)), cap["name"])
            i = m.end()
    assert scoped["conv2d"].startswith("support.function")
    assert scoped["->"].startswith("keyword.operator")
    assert scoped["bottleneck"].startswith("entity.name")
    assert scoped["network"].startswith("storage.type") or scoped["network"].startswith("keyword")
    assert scoped["1e-5"].startswith("constant.numeric")


def test_vscode_extension_wires_the_grammar_and_the_server():
    folder = ROOT / "editors" / "vscode"
    package = json.loads((folder / "package.json").read_text())
    (language,) = package["contributes"]["languages"]
    assert language["id"] == "netspec" and language["extensions"] == [".net"]
    assert (folder / language["configuration"]).is_file()
    json.loads((folder / language["configuration"]).read_text())
    (grammar,) = package["contributes"]["grammars"]
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text())["scopeName"]
    # the packaged grammar is copied from editors/textmate before packaging
    assert "../textmate/netspec.tmLanguage.json" in package["scripts"]["grammar"]
    assert grammar["path"].lstrip("./") in package["scripts"]["grammar"]
    assert "npm run grammar" in package["scripts"]["vscode:prepublish"]
    main = (folder / package["main"]).read_text()
    assert "vscode-languageclient" in main and "vscode-languageclient" in package["dependencies"]
    assert package["contributes"]["configuration"]["properties"]["netspec.server.args"]["default"] == ["lsp"]


def test_highlighter_lists_are_generated_from_the_registry():
    """scripts/gen_editor_grammars.py writes both highlighters' op lists; a new op needs only a rerun."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_editor_grammars.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
