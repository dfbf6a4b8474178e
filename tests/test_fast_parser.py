"""The hand-written .net parser (netspec/frontend/fast.py) builds exactly lark's tree, or gives up.

The grammar (netspec/grammar/netspec.lark) and its generated lark parser are the
reference. For every input here, either both parsers succeed and the trees are equal
*including every span* (``ast.Node.__eq__`` ignores spans, so they are compared one by
one, and int/float/bool are told apart), or lark rejects the text and the fast parser
gave up (netspec.frontend.fast.Unsure), so the diagnostic is lark's. The fast parser
may also give up on valid text it is unsure of, but never on a spec of the repository.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import test_robustness as rb
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from netspec import SpecError
from netspec.frontend import ast, fast, net
from netspec.frontend._larkpath import UnexpectedInput, _to_ast, grammar_keywords, parser
from netspec.source import Source, Span

ROOT = Path(__file__).resolve().parent.parent


def differences(a, b, path: str = "module") -> str | None:
    """Where two syntax trees differ (fields, spans, the types of values), or None."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, tuple):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for k, (x, y) in enumerate(zip(a, b)):
            if (d := differences(x, y, f"{path}[{k}]")) is not None:
                return d
        return None
    if isinstance(a, ast.Node):
        if set(vars(a)) != set(vars(b)):
            return f"{path}: attributes {sorted(vars(a))} != {sorted(vars(b))}"
        for key in vars(a):
            if (d := differences(getattr(a, key), getattr(b, key), f"{path}.{key}")) is not None:
                return d
        return None
    if isinstance(a, Span):
        return None if a == b else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _text(text: str) -> str:
    return " " + text[1:] if text.startswith("\ufeff") else text  # as parse_net does


def reference(text: str, name: str = "t.net"):
    """Lark's tree, or the exception it raises (a syntax error, E103, E305)."""
    text = _text(text)
    try:
        return _to_ast(parser().parse(text), Source(name, text), name)
    except (UnexpectedInput, SpecError) as exc:
        return exc


def fast_tree(text: str, name: str = "t.net"):
    """The fast parser's tree, or Unsure (any other exception fails the test)."""
    try:
        return fast.parse(_text(text), name)
    except fast.Unsure as exc:
        return exc


def agree(text: str, name: str = "t.net", must_parse: bool = False) -> str:
    """Assert the two parsers agree on ``text``; returns 'parsed', 'rejected' or 'unsure'."""
    ref, got = reference(text, name), fast_tree(text, name)
    if isinstance(ref, Exception):
        assert isinstance(got, fast.Unsure), f"lark rejects ({ref}) but the fast parser accepts {text!r}"
        return "rejected"
    if isinstance(got, fast.Unsure):
        assert not must_parse, f"the fast parser gave up on a valid spec ({got}): {name}"
        return "unsure"
    diff = differences(got, ref)
    assert diff is None, f"{name}: {diff}\n{text!r}"
    return "parsed"


# -- the specs of the repository ---------------------------------------------------------------


def _repo_net_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.net"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return [ROOT / p for p in out.stdout.split()]
    return sorted(p for p in ROOT.rglob("*.net") if ".venv" not in p.parts)


def _doc_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        text = path.read_text(encoding="utf-8")
        for k, m in enumerate(re.finditer(r"```(?:net|netspec)\n(.*?)```", text, re.S)):
            blocks.append((f"{path.name}#{k}", m.group(1)))
    return blocks


def test_every_net_file_of_the_repository():
    """specs/, examples/, tests/golden and the rest: the same tree; valid specs never fall back."""
    counts = {"parsed": 0, "rejected": 0}
    for path in _repo_net_files():
        try:  # as netspec reads them (tests/golden has one file that is not UTF-8 on purpose)
            text = path.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            continue
        counts[agree(text, str(path.relative_to(ROOT)), must_parse=True)] += 1
    assert counts["parsed"] >= 50, counts  # the specs, examples and valid golden inputs
    assert counts["rejected"] >= 5, counts  # the golden syntax errors


def test_specs_with_their_bytes_as_written():
    """The same files without newline translation (an editor may send CRLF text)."""
    for path in sorted((ROOT / "specs").glob("*.net")):
        text = path.read_text(encoding="utf-8")
        agree(text.replace("\n", "\r\n"), path.name, must_parse=True)
        agree("\ufeff" + text, path.name, must_parse=True)


def test_code_blocks_of_the_docs():
    blocks = _doc_blocks()
    assert blocks
    for name, text in blocks:
        agree(text, name)


# -- hand-written edge cases ---------------------------------------------------------------------

NET = "network N {{\n input x: [3, 8]\n{body}\n output y\n}}\n"

EDGE_BODIES = [
    # comments, blank lines, continuations, chains across lines
    " y = x # a comment\n\n\n",
    " # only a comment\n y = x\n # another\n",
    " y = x \\\n  -> relu",
    " y = x\n   -> relu\n   -> dense(3)",
    " y = x ->\n relu ->\n\n dense(3)",
    " y = x -> dense(\n  3,\n  activation=\"relu\",\n )",
    " y = x -> dense(3,)",
    " y = x -> dense(3,  # why\n  4)",
    " y = x  \t\f-> relu",
    # nested calls, lists, tuples, arithmetic, repeats
    " y = x -> conv2d(8, (3, 3), stride=[1, 2], padding=((1, 1), (2, 2)))",
    " y = x -> f([], [1,], [[1, 2], [3]], (1,), (1, 2,))",
    " y = x -> f(-1, --2, -(3), -(-4), - 5)",
    " y = x -> f(1 + 2 * 3 - 4 // 5 % 6 / 7, (1 + 2) * 3, -(1 + 2) * -3)",
    " y = x -> f((((1))), ((1) + (2)), (1) * (2 + 3))",
    " y = x -> f(g(h(1)), k=g(a=[1, (2, 3)]), 2)",
    " y = x -> dense(3) * 2 -> relu * n -> block_a(2) * (n + 1) -> b * ((2))",
    " y = x -> f * (n) -> g * (2 * (n))",
    # literals
    " y = x -> f(1., .5, 1e3, 1E-3, 1.5e+2, 0.0, 00, 007, 1.e5, .5e1)",
    ' y = x -> f("", "a b", "\\"q\\"", "tab\\there", "\\\\", "\\u00e9", "\\q", "é ü 中")',
    ' y = x -> f("\t", "\x0c")',
    " y = x -> f(true, false, in, [true, in])",
    " y = x -> f(" + "9" * 300 + ")",
    # multi-name bindings and every statement
    " out, h, c = x -> lstm(64, return_state=true)",
    " layer shared = dense(3)\n layer bn = batchnorm\n y = x -> shared -> bn",
    " target t: [3]\n input u: f32[a, 3, b,]\n input v: []\n loss mse(y, t)\n optimizer adam(lr=1e-3)",
    " optimizer sgd\n loss (y)\n loss -y + 1",
    # keywords where a name would be (all rejected by lark, and by the fast parser)
    *[f" y = {kw}" for kw in sorted(fast.KEYWORDS)],
    *[f" {kw} = x" for kw in sorted(fast.KEYWORDS)],
    *[f" y = x -> {kw}" for kw in sorted(fast.KEYWORDS)],
    *[f" y = x -> f({kw}=1)" for kw in sorted(fast.KEYWORDS)],
    *[f" input {kw}: [3]" for kw in sorted(fast.KEYWORDS)],
    *[f" y = x -> f({kw}x, x{kw}, _{kw}, {kw.upper()})" for kw in sorted(fast.KEYWORDS)],
    # errors: each must fall back to lark
    " y = x -> f(1 2)",
    " y = x -> f(,)",
    " y = x -> f(1,,2)",
    " y = x -> f(()",
    " y = x -> f((1 2))",
    " y = x -> f * 2.0",
    " y = x -> f * -2",
    " y = x -> f * (1, 2)",
    " y = x * 2",
    " y = (x)",
    " y = x -> (f)",
    " y = x -> f(a == 1)",
    " y = x ->",
    " y = x -> f(1",
    " y = x -> f(.)",
    " y = x -> f(1e)",
    " y = x -> f(1.5.3)",
    ' y = x -> f("abc)',
    ' y = x -> f("a\\',
    " y = x -> f($)",
    " y = x -> f(1) y = x",
    " y = x \\ -> relu",
    " y = x \r -> relu",
    " y = x -> f(1e400)",
    " y = x -> f(" + "9" * 5000 + ")",
    ' y = x -> f("\\N{NOT A NAME}")',
    ' y = x -> f("\\x4")',
    ' y = x -> f("a\x00b")',
    ' y = x -> f("a\ud800b")',
    " input x: [" + "9" * 5000 + "]",
    " y = x -> f * " + "9" * 5000,
    " y = x -> f * " + "9" * 300,
    " output y,",
    " output",
    " y, = x",
    " y, z",
]


@pytest.mark.parametrize("body", EDGE_BODIES)
def test_edge_cases(body):
    agree(NET.format(body=body))


EDGE_FILES = [
    "",
    "\n\n\n",
    "# only a comment\n",
    "# é ü 中 — unicode in a comment\nnetwork N { input x: [3]\n output x }",
    "\ufeffnetwork N {\n input x: [3]\n output x\n}\n",
    "\ufeff",
    "network N {}",
    "network N {\n}\n",
    "network N {\n\n}\n\n\n# trailing comment\n\n",
    "network N { input x: [3]\n output x }   ",
    "network N { input x: [3]\n output x }\n   \t",
    "network N { input x: [3]\n output x }\n# c\n# d\n",
    "network N {\r\n input x: [3]\r\n output x\r\n}\r\n",
    "network N {\r\n\r\n input x: [3]\r\n\t\r\n output x\r\n}\r\n\r\n",
    "network N { input x: [3] }\nnetwork M { input x: [3] }",
    "network N { input x: [3] } network M { input x: [3] }",
    "block B() { return in }\nblock C(a, b=2, c=(1, 2),) {\n return in -> f(a) * b\n}\n",
    "block B(a=-1, b=[1, 2], c=\"s\") {\n y = in -> f(a, b, c)\n return y\n}\n",
    "block B(\n  a,\n  b = 2\n) {\n return in\n}\n",
    "\n\nnetwork N {\n input x: [3]\n output x\n}",
    "network N {\n input x: [3] \\\n\n output x\n}\n",
    "network N {\n input x: [3]\n output x\n}\n}",
    "network {\n}\n",
    "block B { return in }",
    "network N {\n input x: [3]\n output x\n\n\n",
    "network N {\n input x: [3] output x\n}\n",
    "network N {\n y = x\n\n -> relu\n}\n",
    "network N {\n y = x\n # c\n -> relu\n}\n",
    "network N {\n y = [\n x\n ]\n}\n",
]


@pytest.mark.parametrize("text", EDGE_FILES)
def test_edge_files(text):
    agree(text)


def test_edge_cases_cover_both_outcomes():
    outcomes = {agree(NET.format(body=b)) for b in EDGE_BODIES} | {agree(t) for t in EDGE_FILES}
    assert {"parsed", "rejected"} <= outcomes


def _deep(n: int, open_: str, close: str) -> str:
    return NET.format(body=f" y = x -> f({open_ * n}1{close * n})")


@pytest.mark.parametrize("text, code", [
    (_deep(150, "[", "]"), "E305"),  # too deep for lark's tree: the fast parser must give up
    (_deep(150, "f(", ")"), "E305"),
    (NET.format(body=" y = x -> f(" + " + ".join(["1"] * 150) + ")"), "E305"),
    (NET.format(body=" y = x -> f(" + "-" * 150 + "1)"), "E305"),
    (NET.format(body=" y = x -> f(" + "9" * 5000 + ")"), "E103"),
    (NET.format(body=" y = x -> f(1e999)"), "E103"),
    (NET.format(body=' y = x -> f("\\N{NOT A NAME}")'), "E103"),
])
def test_what_lark_rejects_after_parsing_gets_lark_diagnostic(text, code):
    assert isinstance(fast_tree(text), fast.Unsure)
    with pytest.raises(SpecError) as info:
        net.parse_net(Source("t.net", text))
    assert [d.code for d in info.value.diagnostics] == [code]


@pytest.mark.parametrize("n", [40, 49, 60, 90, 99, 100, 101, 200])
def test_nesting_near_the_limits(n):
    """Deep but legal nesting: the same tree, or the fast parser gives up and lark decides."""
    for open_, close in (("(", ")"), ("[", "]"), ("f(", ")"), ("(1, ", ")")):
        agree(_deep(n, open_, close))
    agree(NET.format(body=" y = x -> f(" + " * ".join(["2"] * n) + ")"))
    agree(NET.format(body=" y = x -> f(" + "-" * n + "1)"))


def test_long_statements_are_measured():
    """A statement of many tokens but little depth still parses fast (no fallback)."""
    text = NET.format(body=" y = x -> f(" + ", ".join(["[1, 2]"] * 300) + ")")
    assert agree(text) == "parsed"


def test_syntax_errors_are_lark_diagnostics():
    """parse_net's error for text the fast parser gives up on is lark's, byte for byte."""
    text = NET.format(body=" y = x -> dense(3 4)")
    from netspec.frontend._larkpath import syntax_error

    with pytest.raises(UnexpectedInput) as lark_exc:
        parser().parse(text)
    with pytest.raises(SpecError) as info:
        net.parse_net(Source("t.net", text))
    assert info.value.diagnostics == [syntax_error(Source("t.net", text), lark_exc.value)]


def test_an_unforeseen_failure_of_the_fast_parser_falls_back_to_lark(monkeypatch):
    text = NET.format(body=" y = x -> dense(3)")
    expected = reference(text)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(fast, "parse", broken)
    assert differences(net.parse_net(Source("t.net", text)), expected) is None


def test_constants_match_the_reference():
    assert fast.KEYWORDS == grammar_keywords()
    assert fast.MAX_DEPTH == net.MAX_DEPTH
    assert net._keywords() == grammar_keywords()


# -- YAML fragments ----------------------------------------------------------------------------

FRAGMENTS = {
    "chain": ["x", "in", "x -> relu", "x -> dense(3) * 2 -> f * (n)", "f(1) -> g", "x ->\n relu", "x\n -> relu",
              "x -> ", "x relu", "(x)", "x\n", "input", "x -> f(\n1)"],
    "expr": ["1", "-1", "1 + 2 * (3)", "(1)", "((1, 2))", "[1, (2,)]", "f(a=1)", "in", "true", '"s"', "1.5",
             "1 +", "", "1\n", "x -> y", "1e999"],
    "tensor_type": ["[3]", "f32[a, 3,]", "[]", "[3", "[1.5]", "x", "[3]\n"],
    "call": ["f()", "f(1, a=2)", "f", "f(1) -> g", "(f)(1)", "f(\n)"],
    "step": ["relu", "dense(3) * 2", "f * (n + 1)", "f * 2.0", "in", "f -> g"],
}


@pytest.mark.parametrize("start", sorted(FRAGMENTS))
def test_fragments(start):
    for text in FRAGMENTS[start]:
        try:
            ref = _to_ast(parser(start).parse(text), Source("s.yaml", text), "s.yaml")
        except (UnexpectedInput, SpecError) as exc:
            ref = exc
        try:
            got = fast.parse_fragment(text, start, "s.yaml")
        except fast.Unsure as exc:
            got = exc
        if isinstance(ref, Exception):
            assert isinstance(got, fast.Unsure), (start, text)
        else:
            assert not isinstance(got, fast.Unsure), (start, text, got)
            assert differences(got, ref) is None, (start, text, differences(got, ref))


def test_yaml_specs_parse_alike_through_either_fragment_parser(monkeypatch):
    """parse_yaml with the fast fragment parser and with lark's: the same trees, spans included."""
    from netspec.frontend.yaml import parse_yaml

    paths = sorted((ROOT / "specs" / "yaml").glob("*.yaml")) + sorted((ROOT / "examples").rglob("*.yaml"))
    sources = [Source(str(p), p.read_text(encoding="utf-8")) for p in paths]
    fast_trees = []
    for s in sources:
        try:
            fast_trees.append(parse_yaml(s))
        except SpecError as exc:
            fast_trees.append(exc.diagnostics)

    def unsure(*args, **kwargs):
        raise fast.Unsure("forced")

    monkeypatch.setattr(fast, "parse_fragment", unsure)
    for s, got in zip(sources, fast_trees):
        try:
            ref = parse_yaml(s)
        except SpecError as exc:
            assert got == exc.diagnostics, s.name
            continue
        assert differences(got, ref) is None, (s.name, differences(got, ref))


# -- generated programs (the fuzzers' generators) ----------------------------------------------

GENERATORS = {
    "mutated_net": rb.mutated(rb.NET_SPECS),
    "random_tokens": st.lists(st.sampled_from(rb.VOCAB), max_size=40).map(" ".join),
    "random_text": st.text(max_size=200),
    "op_chains": rb.op_chains(),
    "big_ints": rb.big_int_specs(),
    "expansion": rb.expansion_specs(),
    "odd_names": rb.odd_name_specs(),
}


def _generated(examples: int):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(GENERATORS)))
        text = data.draw(GENERATORS[name])
        if text.startswith("networks:"):  # a YAML document
            return
        agree(text, f"{name}.net")
    return run


def test_generated_programs():
    _generated(300)()


@pytest.mark.slow
def test_many_generated_programs():
    _generated(3000)()


# -- no lark on the common path ----------------------------------------------------------------


@pytest.mark.parametrize("spec", ["specs/resnet50.net", "specs/yaml/resnet50.yaml"])
def test_check_of_a_valid_spec_does_not_load_lark(spec):
    code = ("import sys\nfrom netspec.cli import main\n"
            f"rc = main(['check', {spec!r}])\n"
            "loaded = [m for m in ('lark', 'regex', 'netspec.frontend._parser', 'netspec.frontend._larkpath')"
            " if m in sys.modules]\n"
            "print('LOADED', rc, loaded, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "LOADED 0 []" in proc.stderr, proc.stderr[-2000:]


def test_a_syntax_error_still_loads_lark_and_reports(tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("network N {\n y = x -> dense(3 4)\n}\n", encoding="utf-8")
    code = ("import sys\nfrom netspec.cli import main\n"
            f"rc = main(['check', {str(bad)!r}])\n"
            "print('LOADED', rc, 'netspec.frontend._parser' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "LOADED 1 True" in proc.stderr, proc.stderr[-2000:]
    assert "E101" in proc.stderr
