"""Hostile input (issue 11): no code from a cache, no hang, no memory blow-up, no terminal escapes.

Each reproducer of the issue is a test. Where a defect shows as a hang or a memory
blow-up, the spec is checked by ``netspec check`` in a subprocess under an address-space
limit and a generous timeout: the assertion is that it finishes and refuses (or accepts)
with the right code, never a timing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netspec
from netspec import SpecError
from netspec.diagnostics import Diagnostic, printable
from netspec.frontend import MAX_SOURCE_BYTES
from netspec.source import Source, Span

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gen_parser  # noqa: E402

#: Generous bounds for a subprocess: the targets are 2 s and 500 MiB on an idle machine.
TIMEOUT = 120
MEMORY = 1536 << 20

_LIMITS = textwrap.dedent(f"""
    import resource, runpy, sys
    resource.setrlimit(resource.RLIMIT_AS, ({MEMORY}, {MEMORY}))
    sys.argv = ["netspec", *sys.argv[1:]]
    runpy.run_module("netspec", run_name="__main__")
""")


def run_netspec(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``netspec ARGS`` in a subprocess with a memory limit; fails the test on a timeout."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    try:
        return subprocess.run([sys.executable, "-c", _LIMITS, *args], capture_output=True, text=True,
                              timeout=TIMEOUT, env=full_env, cwd=cwd or ROOT)
    except subprocess.TimeoutExpired:  # pragma: no cover - the defect this file guards against
        pytest.fail(f"netspec {' '.join(args)} ran past {TIMEOUT} s")


def check_file(tmp_path: Path, text: str, name: str = "spec.net") -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return run_netspec("check", str(path))


def codes(proc: subprocess.CompletedProcess) -> list[str]:
    import re

    return re.findall(r"error\[(E\d{3})\]", proc.stderr)


def fill(head: str, unit: str, tail: str, size: int = MAX_SOURCE_BYTES) -> str:
    """``head + unit * n + tail`` as long as fits in ``size`` bytes."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


RESNET50 = (ROOT / "specs" / "resnet50.net").read_text(encoding="utf-8")


# -- 1. the grammar cache ---------------------------------------------------------------------------

def _old_cache_names() -> list[str]:
    """The names the removed lark cache used (for every start symbol and the lark versions in use)."""
    grammar = gen_parser.GRAMMAR.read_text(encoding="utf-8")
    names = []
    try:
        import lark

        versions = [lark.__version__]
    except ImportError:  # pragma: no cover
        versions = []
    for version in versions:
        for start in gen_parser.STARTS:
            key = hashlib.sha256(f"{grammar}\0{start}\0{version}\0{sys.version}".encode()).hexdigest()[:16]
            names.append(f"grammar-{start}-{key}.lark.cache")
    return names


class _Payload:
    """Unpickling this creates the file MARKER: the proof that a planted pickle ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_grammar_cache_is_never_executed(tmp_path):
    """The reproducer: HOME unwritable, TMPDIR a folder anyone could write, a pickle planted there."""
    import pickle

    shared = tmp_path / "shared"
    shared.mkdir()
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(str(marker)))
    for name in _old_cache_names():
        (shared / name).write_bytes(payload)
    home = tmp_path / "home"  # a HOME with a planted cache where the old code looked first
    (home / ".cache" / "netspec").mkdir(parents=True)
    for name in _old_cache_names():
        (home / ".cache" / "netspec" / name).write_bytes(payload)
    before = sorted(p.name for p in shared.iterdir())
    for env in ({"HOME": "/proc/x", "TMPDIR": str(shared), "XDG_CACHE_HOME": ""},
                {"HOME": str(home), "TMPDIR": str(shared), "XDG_CACHE_HOME": ""},
                {"HOME": "/proc/x", "XDG_CACHE_HOME": str(shared)}):
        for spec in ("specs/tiny_mlp.net", "specs/yaml/lenet5.yaml"):
            proc = run_netspec("check", spec, env=env)
            assert proc.returncode == 0, proc.stderr
            assert not marker.exists(), "a planted pickle was executed"
    assert sorted(p.name for p in shared.iterdir()) == before, "netspec wrote into the shared folder"


def test_parsing_loads_no_pickle_and_writes_no_cache(tmp_path):
    """Whatever the environment, parsing never unpickles and never writes a file."""
    code = textwrap.dedent("""
        import pickle, sys
        def refuse(*a, **k):
            raise AssertionError("pickle used")
        pickle.load = pickle.loads = pickle.Unpickler = refuse
        import netspec
        netspec.load("specs/resnet50.net").check()
        netspec.load("specs/yaml/lenet5.yaml").check()
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=TIMEOUT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_generated_parser_is_up_to_date():
    """netspec/frontend/_parser.py was generated from the current grammar (scripts/gen_parser.py)."""
    assert gen_parser.main(["--check"]) == 0, "run: python scripts/gen_parser.py"


def test_generated_parser_agrees_with_lark():
    """The committed parser and one lark builds from the grammar now give the same trees."""
    lark = pytest.importorskip("lark")
    from netspec.frontend.net import _PostLex, parser

    fresh = lark.Lark(gen_parser.GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="basic",
                      start="start", propagate_positions=True, maybe_placeholders=True, postlex=_PostLex())
    for path in sorted((ROOT / "specs").glob("*.net")):
        text = path.read_text(encoding="utf-8")
        assert parser().parse(text).pretty() == fresh.parse(text).pretty(), path.name


# -- 3. sizes and the lexer --------------------------------------------------------------------------

@pytest.mark.parametrize("name, text", [
    ("blank.net", "\n" * (50 << 20)),  # 10 MB of blank lines took 5.8 GB
    ("string.net", 'network a {\n input x: [3]\n y = x -> dense(3, activation="' + "a" * (10 << 20) + '")\n}\n'),
    ("synerr.net", "# comment\n" * (5 << 20) + "network {{\n"),  # a syntax error at the end of 50 MB
    ("parens.net", "network a { input x: [3]\n y = x -> dense(" + "(" * 1_000_000 + "\n"),
    ("comment.yaml", "#" + "x" * (50 << 20) + "\n"),
])
def test_oversized_input_is_refused_at_once(tmp_path, name, text):
    proc = check_file(tmp_path, text, name)
    assert proc.returncode == 2, proc.stderr
    assert codes(proc) == ["E001"]
    assert f"a spec may be at most {MAX_SOURCE_BYTES:,} bytes" in proc.stderr


def test_size_limit_in_the_api():
    text = fill("network a {\n input x: [3]\n y = x", " -> relu", "\n output y\n}\n", MAX_SOURCE_BYTES + 100)
    with pytest.raises(SpecError) as info:
        netspec.parse_text(text, "big.net")
    assert [d.code for d in info.value.diagnostics] == ["E001"]
    # multi-byte characters count as bytes of UTF-8
    text = "network a {\n" + "# " + "\u00e9" * (MAX_SOURCE_BYTES // 2) + "\n}\n"
    with pytest.raises(SpecError) as info:
        netspec.parse_text(text, "big.net")
    assert [d.code for d in info.value.diagnostics] == ["E001"]


def test_input_at_the_size_limit_is_parsed():
    text = fill("network a {\n input x: [3]\n y = x -> relu\n output y\n", "#", "\n}\n")
    assert len(text.encode()) == MAX_SOURCE_BYTES
    netspec.parse_text(text, "full.net").check()


def _lexer_pattern(name: str) -> str:
    from netspec.frontend.net import parser

    return next(t.pattern.value for t in parser().terminals if t.name == name)


@pytest.mark.parametrize("terminal, head, unit, count, tail", [
    ("_NL", "", "\n", 4_000_000, ""),  # the old pattern took about 1 GB for this
    ("_NL", "", "\r\n \t", 1_000_000, ""),
    ("STRING", '"', "a", 6_000_000, '"'),  # the old pattern took about 1 GB for this
    ("STRING", '"', "\\n", 1_000_000, '"'),
])
def test_lexer_patterns_do_not_backtrack(terminal, head, unit, count, tail):
    """A long run of newlines or a long string matches in bounded memory (measured in a subprocess)."""
    code = textwrap.dedent(f"""
        import re, resource
        resource.setrlimit(resource.RLIMIT_AS, ({768 << 20}, {768 << 20}))
        text = {head!r} + {unit!r} * {count} + {tail!r}
        m = re.compile({_lexer_pattern(terminal)!r}).match(text)
        assert m and m.end() == len(text), m
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr


def test_lexer_patterns_keep_their_meaning():
    ok = ['network N {\n input x: [4]\n y = x -> dense(2, activation="re\\"lu\\\\")\n output y\n}\n',
          "network N {\r\n\r\n input x: [4]\n \t\n\n y = x\n\n   -> relu\n output y\n}\n"]
    from netspec.frontend import parse_source

    for text in ok:
        parse_source(Source("t.net", text))
    with pytest.raises(SpecError) as info:
        parse_source(Source("t.net", 'network N {\n y = x -> dense(2, activation="abc\n}\n'))
    assert info.value.diagnostics[0].message == "unterminated string"


@pytest.mark.parametrize("text", [
    # up to the size limit: every kind of long input is answered (accepted or refused)
    fill("network a {\n input x: [3]\n y = x", "->relu", "\n output y\n}\n"),  # the 100,000 `-> relu` chain
    fill("network a {\n input x: [3]\n y = x", "->q", "\n output y\n}\n"),  # a flood of errors
    fill("network a {\n input x: [3]\n", " y = x -> relu\n", "}\n) ]\n"),  # a syntax error at the end
    fill("network a { input x: [3]\n y = x -> dense(", "(", "\n"),  # nested (
    fill("network a { input x: [3]\n y = x -> dense(", "(", ""),
    fill("network a {\n input x: [1", ",1", "]\n output x\n}\n"),
    fill('network a { input x: [3]\n y = x -> dense(3, activation="', "\\n", '")\n output y }\n'),
    fill("network a {\n", "\n", "}\n"),
], ids=["chain", "errors", "syntax_at_end", "parens", "parens_eof", "dims", "string", "blank"])
def test_largest_net_inputs_are_answered(tmp_path, text):
    proc = check_file(tmp_path, text)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("text", [
    fill("#", "x", "\n"),  # the 50 MB YAML comment, at the limit
    fill("networks:\n a:\n  inputs: {x: [3]}\n  values:\n   y: [x", ", relu", "]\n  outputs: [y]\n"),
    fill('networks:\n a:\n  inputs: {x: [3]}\n  values:\n   y: "x', " -> relu", '"\n  outputs: [y]\n'),
    fill("networks: {a: {inputs: {x: [1", ", 1", "]}, outputs: [x]}}\n"),
], ids=["comment", "chain_list", "chain_string", "flow"])
def test_largest_yaml_inputs_are_answered(tmp_path, text):
    proc = check_file(tmp_path, text, "spec.yaml")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr


# -- 2./3. expansion ---------------------------------------------------------------------------------

def test_repeated_block_past_the_limit_is_refused_at_the_repeat(tmp_path):
    """`bottleneck(512) * 10000` in ResNet-50 took 44 s and 366 MB to reach E304."""
    text = RESNET50.replace("bottleneck(512) * 2", "bottleneck(512) * 10000")
    proc = check_file(tmp_path, text)
    assert proc.returncode == 1 and codes(proc) == ["E304"], proc.stderr
    assert "expands to more than 20000 layers" in proc.stderr
    assert "each of the 10000 repeats adds 10 layers" in proc.stderr
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "bottleneck(512) * 10000" in ln)
    assert f"spec.net:{line}:" in proc.stderr


def test_ten_long_lstm_repeats_are_refused(tmp_path):
    """Ten `lstm(8, return_sequences=true) * 10000` (587 bytes) ran past 60 s."""
    steps = "".join("\n        -> lstm(8, return_sequences=true) * 10000" for _ in range(10))
    proc = check_file(tmp_path, f"network a {{\n    input x: [5, 8]\n    y = x{steps}\n    output y\n}}\n")
    assert proc.returncode == 1 and codes(proc) == ["E304"], proc.stderr
    assert "spec.net:6:" in proc.stderr  # the third repeat passes the limit


def test_repeat_of_an_op_past_the_limit_is_refused_before_expanding():
    text = "network a {\n input x: [3]\n y = x -> relu * 5000 -> relu * 10000 -> relu * 10000\n output y\n}\n"
    with pytest.raises(SpecError) as info:
        netspec.parse_text(text, "r.net").check()
    (d,) = info.value.diagnostics
    assert d.code == "E304" and (d.span.line, d.span.col) == (3, text.splitlines()[2].rindex("relu * 10000") + 1)


def test_squaring_block_bomb_is_refused(tmp_path):
    """`block s{i}(a) { return in -> s{i+1}(a * a) }` 30 deep ran without bound in time and memory."""
    blocks = "".join(f"block s{i}(a) {{ return in -> s{i + 1}(a * a) }}\n" for i in range(30))
    text = blocks + "block s30(a) { return in }\nnetwork n {\n input x: [3]\n y = x -> s0(2)\n output y\n}\n"
    proc = check_file(tmp_path, text)
    assert proc.returncode == 1 and codes(proc) == ["E304"], proc.stderr
    assert "is too large: integers are at most 2**63 - 1" in proc.stderr  # the product, at the 6th block


def test_doubling_block_bomb_without_layers_is_refused(tmp_path):
    """Each block uses the next twice and adds no layer: 2**40 expansions, bounded by the uses of blocks."""
    blocks = "".join(f"block s{i}() {{ return in -> s{i + 1} -> s{i + 1} }}\n" for i in range(40))
    text = blocks + "block s40() { return in }\nnetwork n {\n input x: [3]\n y = x -> s0\n output y\n}\n"
    proc = check_file(tmp_path, text)
    assert proc.returncode == 1 and codes(proc) == ["E304"], proc.stderr
    assert "more than 20000 uses of blocks" in proc.stderr


def test_many_networks_share_one_layer_limit(tmp_path):
    """1,350 networks of 19,000 layers each fit in 128 KiB: 25.6 million layers, when the limit held per
    network (40 of them, 3.7 KB, took 16 s and 1.3 GB). The limit holds for the file: one E304."""
    net = "network n{i} {{\n input x: [4]\n y = x -> dense(4) * 10000\n z = y -> dense(4) * 9000\n output z\n}}\n"
    text = "".join(net.format(i=i) for i in range(1_350))
    assert len(text.encode()) <= 128 << 10
    proc = check_file(tmp_path, text)
    assert proc.returncode == 1 and codes(proc) == ["E304"], proc.stderr[-2000:]
    assert "network 'n1' brings the file to more than 20000 layers, with the 19000 layers" in proc.stderr
    assert "a spec file expands to at most 20000 layers, all its networks together" in proc.stderr


def test_networks_within_the_limit_together_are_accepted():
    net = "network n{i} {{\n input x: [3]\n y = x -> relu * 5000\n output y\n}}\n"
    report = netspec.parse_text("".join(net.format(i=i) for i in range(4)), "a.net").check()
    assert sum(len(n.rows) for n in report.networks) == 20_000


def test_network_at_the_layer_limit_is_accepted():
    text = "network a {\n input x: [3]\n y = x -> relu * 10000 -> relu * 10000\n output y\n}\n"
    report = netspec.parse_text(text, "a.net").check()
    assert report is not None


# -- diagnostics -------------------------------------------------------------------------------------

def test_error_flood_stops_after_the_limit():
    lines = "".join(f" y{i} = x -> nosuch{i}\n" for i in range(4000))
    with pytest.raises(SpecError) as info:
        netspec.parse_text(f"network a {{\n input x: [3]\n{lines} output x\n}}\n", "d.net")
    diags = info.value.diagnostics
    assert len(diags) == 100
    assert "too many errors" in diags[-1].notes[-1]


def test_rendering_many_diagnostics_splits_the_source_once(monkeypatch):
    """1,000 diagnostics took 2.5 s to render, 4,000 took 27 s: the source was split per diagnostic."""
    from netspec import diagnostics

    calls = []
    real = diagnostics.source_lines
    monkeypatch.setattr(diagnostics, "source_lines", lambda text: calls.append(1) or real(text))
    diagnostics._lines.cache_clear()
    text = "".join(f"line {i}\n" for i in range(4000))
    src = Source("m.net", text)
    rendered = SpecError([Diagnostic("E203", f"unknown op {i}", Span.at("m.net", i + 1, 1, 4)) for i in range(4000)],
                         {"m.net": src}).render()
    assert rendered.count("error[E203]") == 4000
    assert len(calls) == 1


def test_long_source_lines_are_shown_around_the_caret():
    line = "x" * 5000 + "BAD" + "y" * 5000
    d = Diagnostic("E101", "bad", Span.at("l.net", 1, 5001, 3))
    out = d.render({"l.net": Source("l.net", line + "\n")})
    source_line, caret = out.splitlines()[2:4]
    assert len(source_line) < 200 and "BAD" in source_line
    assert source_line.index("BAD") == caret.index("^^^")


@pytest.mark.parametrize("text", [
    "\x1b[2J\x1b[31m", "a\u202eb", "line\nbreak", "\x07\x00\x7f", "\u200b\ufeff", "\u2028",
])
def test_control_characters_are_escaped_in_every_part_of_a_message(text):
    d = Diagnostic("E301", f"bad {text}", Span.at(f"f{text}.net", 1, 1), notes=(f"note {text}",), formula=text)
    out = d.render({})
    assert all(ch.isprintable() or ch == "\n" for ch in out)
    assert out.count("\n") == 2  # header, formula, note: no line break from the spec
    assert printable(text) in out


def test_control_characters_from_a_spec_reach_the_terminal_escaped(tmp_path):
    """`activation="\\u001b[2J..."` was echoed raw in E301 and cleared the terminal."""
    proc = check_file(tmp_path, 'network N {\n input x: [4]\n y = x -> dense(2, activation="\\u001b[2J\\u202e")'
                                "\n output y\n}\n")
    assert proc.returncode == 1 and codes(proc) == ["E301"]
    assert "\x1b" not in proc.stderr and "\u202e" not in proc.stderr
    assert "'\\x1b[2J\\u202e'" in proc.stderr
    proc = run_netspec("check", "--format", "json", str(tmp_path / "spec.net"))
    assert "\x1b" not in proc.stdout + proc.stderr
