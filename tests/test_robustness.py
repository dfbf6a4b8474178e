"""Bad input never crashes netspec: it is a clean spec or a SpecError that points at the spec.

Random mutations of the real specs (tokens or characters deleted, duplicated,
swapped or replaced; truncation), random token soup and random text go through
``netspec.parse_text``. Each must either check (and its report render) or raise
:class:`netspec.SpecError` whose every diagnostic renders with a
``file:line:col`` prefix; only file-level errors (E209: no network) may lack a
place. Any other exception - a RecursionError, a ValueError from a literal, a
TypeError from an odd YAML node - is a bug.

The same for YAML: text mutations of ``specs/yaml/*.yaml`` and structural
mutations of their documents (values replaced by odd scalars, lists and
mappings; keys dropped).

Generated specs also aim at the classes of hostile input of issue 11: big integers
(in dimensions, arguments, repeat counts and block arithmetic), deep and wide block
expansion, large inputs (up to the size limit) and odd names (Python and framework
names, dunders, keywords, control characters in strings). Every rendered diagnostic
must be free of control characters.

Set NETSPEC_FUZZ_EXAMPLES to run more examples (default 300 per test); scripts/fuzz.py
runs long campaigns outside the unit suite.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec import SpecError

ROOT = Path(__file__).resolve().parent.parent
# resnet152 is resnet50 with more blocks, at twice the cost per example: left out to keep the test fast.
NET_SPECS = {p.name: p.read_text() for p in sorted((ROOT / "specs").glob("*.net")) if p.name != "resnet152.net"}
YAML_SPECS = {p.name: p.read_text() for p in sorted((ROOT / "specs" / "yaml").glob("*.yaml"))}

EXAMPLES = int(os.environ.get("NETSPEC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Diagnostics that concern a whole file and may have no place in it.
FILE_LEVEL = {"E001", "E209"}

# Tokens: names, numbers, arrows and operators, runs of space, anything else one character at a time.
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|->|//|\s+|.", re.S)

# Tokens worth inserting: the grammar's keywords and punctuation, edge-case literals, odd characters.
VOCAB = [
    "network", "block", "input", "target", "layer", "output", "loss", "optimizer", "return", "in",
    "true", "false", "int64", "float32", "T", "same", "valid", "relu", "flatten", "dense(3)", "lstm(4)",
    "add(a, b)", "concat(x, y, axis=0)", "conv2d(8, 3)", "maxpool2d(2)", "softmax(axis=9)",
    "(", ")", "[", "]", "{", "}", ",", "=", ":", "->", "*", "+", "-", "/", "//", "%", ".", '"', "'",
    "\n", "\t", " ", "\\\n", "\r\n", "\r", "\f", "#", "\x00", "\u00e9", "\u2028", "\ufeff",
    "0", "-1", "1.5", "1e400", "1e-3", "99999999999999999999", "9" * 5000, '"s"', '"\\x"', '"\\N{x}"',
    "()", "[]", "(1,)", "((1, 2), (3, 4))", "[1, -1]", "* 0", "* 100000", "* 2.5", "/ 0", "// 0",
    "- - - 1", "(" * 300 + "1" + ")" * 300, "-" * 300 + "1", "+".join("1" * 300),
    "filters", "stride", "padding", "kernel_init", "activation", "x", "image",
]


def check_text(text: str, name: str) -> None:
    """The property: a clean spec (whose report renders) or a SpecError with placed diagnostics."""
    try:
        spec = netspec.parse_text(text, name)
    except SpecError as exc:
        assert exc.diagnostics, "a SpecError carries at least one diagnostic"
        rendered = exc.render()
        assert all(ch.isprintable() or ch == "\n" for ch in rendered), f"a control character in:\n{rendered!r}"
        lines = max(len(text.split("\n")), 1)
        for d in exc.diagnostics:
            rendered = d.render(exc.sources)
            if d.span is None:
                assert d.code in FILE_LEVEL, f"diagnostic without a place:\n{rendered}"
                continue
            prefix = f"{name}:{d.span.line}:{d.span.col}: "
            assert rendered.startswith(prefix), rendered
            assert 1 <= d.span.line <= lines + 1 and d.span.col >= 1, rendered
        return
    spec.check().render()
    spec.check().to_json()


@st.composite
def mutated(draw, texts: dict[str, str]) -> str:
    name = draw(st.sampled_from(sorted(texts)))
    tokens = TOKEN.findall(texts[name])
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "vocab", "char_delete",
                                     "char_insert", "truncate"]))
        i = draw(st.integers(0, len(tokens) - 1))
        j = draw(st.integers(0, len(tokens) - 1))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[j])
        elif kind == "swap":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "replace":
            tokens[i] = tokens[j]
        elif kind == "vocab":
            tokens[i] = draw(st.sampled_from(VOCAB))
        elif kind == "truncate":
            tokens = tokens[:i]
        else:
            text = "".join(tokens)
            k = draw(st.integers(0, len(text)))
            if kind == "char_delete":
                text = text[:k] + text[k + 1:]
            else:
                text = text[:k] + draw(st.characters(codec="utf-8")) + text[k:]
            tokens = TOKEN.findall(text)
    return "".join(tokens)


@FUZZ
@given(text=mutated(NET_SPECS))
def test_mutated_net_specs(text):
    check_text(text, "fuzz.net")


@FUZZ
@given(text=st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(VOCAB), max_size=40).map(" ".join),
    st.lists(st.sampled_from(VOCAB), max_size=40).map("".join),
))
def test_random_net_text(text):
    check_text(text, "fuzz.net")


@FUZZ
@given(text=mutated(YAML_SPECS))
def test_mutated_yaml_specs(text):
    check_text(text, "fuzz.yaml")


# Structural YAML mutations: replace a value somewhere in the document, or drop a key.
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 2**70), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["in", "relu", "dense(0)", "x ->", "int64[", "[1, 2]", "mse(a)", "adam(lr=-1)", "0x1F",
                     "1:30", ".inf", "~", "*", "in -> in", "conv2d(8, 3) * 2", '"\\x"', "a b c"]),
    st.lists(st.integers(-2, 5) | st.text(max_size=3), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def yaml_documents(draw) -> str:
    doc = yaml.safe_load(YAML_SPECS[draw(st.sampled_from(sorted(YAML_SPECS)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans()))


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(text=yaml_documents())
def test_structurally_mutated_yaml(text):
    check_text(text, "fuzz.yaml")


@FUZZ
@given(text=st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(VOCAB + ["networks:", "blocks:", "  ", "- ", "&a", "*a", "? ", "|", ">", "!!int",
                                      "{", "}", "inputs:", "values:"]), max_size=40).map("".join),
))
def test_random_yaml_text(text):
    check_text(text, "fuzz.yaml")


@pytest.mark.parametrize("text", [
    'network N {\n input x: [4]\n y = x -> dense(2, activation="\\x")\n output y\n}\n',  # bad escape
    "network N {\n input x: [4]\n y = x -> dense(" + "9" * 5000 + ")\n output y\n}\n",  # int too long
    "network N {\n input x: [" + "9" * 5000 + "]\n y = x -> relu\n output y\n}\n",  # dimension too long
    "network N {\n input x: [4]\n y = x -> dropout(" + "9" * 400 + ")\n output y\n}\n",  # float overflow
    "network N {\n input x: [4]\n y = x -> dropout(" + "9" * 400 + " / 3)\n output y\n}\n",
    "network N {\n input x: [4]\n y = x -> dense(" + "-" * 3000 + "2)\n output y\n}\n",  # deep nesting
    "network N {\n input x: [4]\n target t: [2]\n y = x -> dense(2)\n output y\n loss "
    + " + ".join(["mse(y, t)"] * 2000) + "\n}\n",
    "network N {\n input x: [4]\n y = x -> relu * 100000000\n output y\n}\n",  # would never finish
    "block b(f) {\n return in -> f\n}\nnetwork N {\n input x: [4]\n y = x -> b(add(1))\n output y\n}\n",
    "".join(f"block b{i}() {{\n return in -> b{i + 1}\n}}\n" for i in range(400))
    + "block b400() {\n return in\n}\nnetwork N {\n input x: [4]\n y = x -> b0\n output y\n}\n",
])
def test_known_crashes_net(text):
    check_text(text, "case.net")


@pytest.mark.parametrize("text", [
    "networks:\n  N:\n    inputs: {x: [4]}\n    values: {y: x}\n    outputs: {a: y}\n",  # mapping as outputs
    "networks:\n  N:\n    inputs: {x: [4]}\n    values: {y: x}\n    outputs: [[y]]\n",
    "networks:\n  N:\n    inputs: {x: [0x10]}\n    values: {y: x}\n    outputs: [y]\n",  # YAML 1.1 ints
    "networks:\n  N:\n    inputs: {x: [1:30]}\n    values: {y: x}\n    outputs: [y]\n",
    "blocks:\n  b:\n    params: {f: 017}\n    return: in\n",
    "blocks:\n  b:\n    params: {f: .inf}\n    return: in\n",
    "networks:\n  N:\n    loss: &a [*a]\n",  # recursive alias
    "networks:\n  N:\n    loss: " + "[" * 600 + "]" * 600 + "\n",  # deep nesting (RecursionError in PyYAML)
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    "networks:\n  N:\x00\n",  # a character YAML rejects (no mark)
])
def test_known_crashes_yaml(text):
    check_text(text, "case.yaml")


# Random chains of real ops with random arguments on random inputs: the checker's shape and
# argument rules meet values no spec author would write.
def _op_names():
    from netspec.ops.registry import OPS

    return sorted(name for name, op in OPS.items() if op.category != "merge")


def _attr_names():
    from netspec.ops.registry import OPS

    return sorted({a for op in OPS.values() for a in op.attrs})


ARG_VALUES = st.deferred(lambda: st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["0", "1", "2", "-1", "0.5", "1.5", "1e-3", "true", "false", "same", "valid", "relu",
                     "nearest", "linear", "xyz", "concat", "l2(0.01)", "lstm(4)", "gru(3, return_sequences=true)",
                     "normal(0.02)", "uniform(-1, 1)", "softmax(axis=0)", '"same"', "in", "x", "2 * 3", "7 // 2"]),
    st.lists(st.integers(-2, 9).map(str), min_size=1, max_size=4).map(lambda xs: "(" + ", ".join(xs) + ",)"),
    st.lists(st.integers(-2, 9).map(str), max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.tuples(st.integers(0, 3), st.integers(0, 3)).map(lambda t: f"(({t[0]}, {t[1]}), ({t[1]}, {t[0]}))"),
))


def _typed_value(draw, kind, op) -> str:
    """A value that fits an attribute's kind (mostly), as the spec would write it."""
    from netspec.ops import base as k

    ints = st.integers(1, 5).map(str)
    if isinstance(kind, k.Int):
        return str(draw(st.integers(-1 if kind.min is None else kind.min, 8)))
    if isinstance(kind, k.Float):
        return draw(st.sampled_from(["0.0", "0.1", "0.5", "0.9", "1", "1e-3"]))
    if isinstance(kind, k.Bool):
        return draw(st.sampled_from(["true", "false"]))
    if isinstance(kind, k.Enum):
        return draw(st.sampled_from(kind.choices))
    if isinstance(kind, k.IntTuple):
        if draw(st.booleans()):
            return draw(ints)
        return "(" + ", ".join(draw(st.lists(ints, min_size=op.rank or 1, max_size=op.rank or 1))) + ",)"
    if isinstance(kind, k.Padding):
        return draw(st.sampled_from(["same", "valid", "0", "1", "2", "(1, 0)", "((0, 1), (1, 0))", "((1, 1),)"]))
    if isinstance(kind, k.Shape):
        return draw(st.sampled_from(["[-1]", "[2, -1]", "[-1, 4]", "[4, 3]", "[1, 1, -1]", "[12]"]))
    if isinstance(kind, k.IntsOrInt):
        return draw(st.sampled_from(["0", "-1", "1", "(0, 1)", "(1, 0)", "(-1,)", "(0, 2, 1)", "(-2, -1)"]))
    if isinstance(kind, k.Callable):
        from netspec.ops.registry import FAMILIES

        return draw(st.sampled_from(sorted(FAMILIES[kind.family])))
    if isinstance(kind, k.Layer):
        return draw(st.sampled_from(["lstm(4)", "gru(3, return_sequences=true)", "simple_rnn(2)"]))
    return "1"


@st.composite
def op_chains(draw) -> str:
    from netspec.ops.registry import OPS

    dims = draw(st.lists(st.one_of(st.integers(1, 12).map(str), st.sampled_from(["T", "H"])), max_size=4))
    dtype = draw(st.sampled_from(["", "", "", "int64", "float16"]))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(_op_names()))
        op = OPS[name]
        args, kwargs = [], []
        for key, attr in op.attrs.items():
            if not attr.required and draw(st.integers(0, 3)):
                continue
            value = draw(ARG_VALUES) if draw(st.integers(0, 9)) == 0 else _typed_value(draw, attr.kind, op)
            if key in op.positional and not kwargs and draw(st.integers(0, 3)):
                args.append(value)
            else:
                kwargs.append((key, value))
        if draw(st.integers(0, 9)) == 0:
            kwargs.append((draw(st.sampled_from(_attr_names())), draw(ARG_VALUES)))
        inner = ", ".join([*args, *(f"{k}={v}" for k, v in kwargs)])
        steps.append(f"{name}({inner})" if inner or draw(st.booleans()) else name)
        if draw(st.integers(0, 5)) == 0:
            steps[-1] += f" * {draw(st.integers(0, 3))}"
    merge = draw(st.sampled_from(["", "add(y, x)", "concat(y, y, axis=-1)", "dot(y, y)", "multiply(y, x)"]))
    lines = [f"    input x: {dtype}[{', '.join(dims)}]", f"    y = x -> {' -> '.join(steps)}"]
    if merge:
        lines.append(f"    z = {merge}")
    lines.append(f"    output {'z' if merge else 'y'}")
    if draw(st.booleans()):
        loss = draw(st.sampled_from(["mse", "sparse_categorical_crossentropy", "categorical_crossentropy",
                                     "kl_normal", "hinge"]))
        lines.insert(1, f"    target t: {draw(st.sampled_from(['', 'int64']))}[{', '.join(dims[:2])}]")
        extra = draw(st.sampled_from(["", ", axis=1", ", axis=-1", ", from_logits=true"]))
        lines.append(f"    loss {loss}({'z' if merge else 'y'}, t{extra})")
    return "network N {\n" + "\n".join(lines) + "\n}\n"


@FUZZ
@given(text=op_chains())
def test_random_op_chains(text):
    check_text(text, "ops.net")


# -- issue 11: big integers, deep and wide expansion, large inputs, odd names ------------------------

BIG_INTS = st.one_of(
    st.integers(2**31 - 2, 2**31 + 2), st.integers(2**63 - 2, 2**63 + 2), st.integers(2**64 - 1, 2**64 + 1),
    st.integers(10**18, 10**40), st.integers(1, 4400).map(lambda n: "9" * n), st.just("9" * 4301),
    st.integers(0, 2**70), st.integers(1, 10).map(str),
).map(str)

#: Names that are valid in the language but special to Python, the frameworks or the generated code,
#: and names that are not valid at all.
ODD_NAMES = [
    "_", "__", "__h", "_N__h", "__class__", "__dict__", "__init__", "__call__", "__getattr__", "__module__",
    "__name__", "__slots__", "super", "len", "self", "forward", "call", "build", "torch", "nn", "F", "keras",
    "layers", "np", "netspec_module", "Model", "Sequential", "inputs", "x", "True", "None", "def", "class",
    "lambda", "import", "in", "network", "output", "a" * 300, "\u00e9t\u00e9", "x\u200b", "a-b", "1a",
]

STRING_ARGS = st.one_of(
    st.sampled_from(['"\\u001b[2J"', '"\\x1b[31m"', '"a\\u202eb"', '"\\n"', '"\\x00"', '"\\u2028"',
                     '"relu"', '"same"']),
    st.text(max_size=12).map(lambda t: '"' + t.replace("\\", "").replace('"', "").replace("\n", "") + '"'),
)


@st.composite
def big_int_specs(draw) -> str:
    """Big integers everywhere an integer may stand (and YAML's hexadecimal ones)."""
    n = draw(BIG_INTS)
    site = draw(st.sampled_from(["dim", "units", "units_expr", "repeat", "kernel", "block_arg", "reshape",
                                 "maxpool", "yaml_dim", "yaml_hex"]))
    if site == "yaml_dim":
        return f"networks:\n  N:\n    inputs: {{x: [{n}]}}\n    values: {{y: x -> relu}}\n    outputs: [y]\n"
    if site == "yaml_hex":
        return f"networks:\n  N:\n    inputs: {{x: [0x{'f' * draw(st.integers(1, 5000))}]}}\n" \
               "    values: {y: x}\n    outputs: [y]\n"
    dim, step, blocks = "4", "relu", ""
    if site == "dim":
        dim = n
    elif site == "units":
        step = f"dense({n})"
    elif site == "units_expr":
        step = f"dense({n} * {n} {draw(st.sampled_from(['+', '-', '*', '//', '%']))} {draw(BIG_INTS)})"
    elif site == "repeat":
        step = f"relu * {n}"
    elif site == "kernel":
        dim, step = "3, 8, 8", f"conv2d(2, {n}, padding={draw(st.sampled_from(['same', '0', n]))})"
    elif site == "reshape":
        step = f"reshape([{n}, -1])"
    elif site == "maxpool":
        dim, step = "3, 8", f"maxpool1d({n}, ceil_mode=true)"
    elif site == "block_arg":
        blocks = "block b(a) {\n  return in -> dense(a * a * a)\n}\n"
        step = f"b({n})"
    return f"{blocks}network N {{\n  input x: [{dim}]\n  y = x -> {step}\n  output y\n}}\n"


@st.composite
def expansion_specs(draw) -> str:
    """Blocks that use each other deeply and widely, with repeats and growing arguments."""
    depth = draw(st.integers(1, 70))
    width = draw(st.integers(1, 3))
    counts = st.sampled_from(["1", "2", "3", "10", "1000", "10000", "100000", "a", "a * a"])
    args = st.sampled_from(["a", "a * a", "a + 1", "a * 1000", "2", "a // 2"])
    lines = []
    for i in range(depth):
        steps = []
        for _ in range(width):
            repeat = f" * {draw(counts)}" if draw(st.integers(0, 2)) == 0 else ""
            steps.append(f"s{i + 1}({draw(args)}){repeat}")
        if draw(st.booleans()):
            steps.append(draw(st.sampled_from(["relu", "dense(3)", "dense(a)", "relu * 10000"])))
        lines.append(f"block s{i}(a) {{\n  return in -> {' -> '.join(steps)}\n}}")
    lines.append(f"block s{depth}(a) {{\n  return in{draw(st.sampled_from(['', ' -> relu', ' -> dense(a)']))}\n}}")
    wide = draw(st.integers(1, 30))
    body = "".join(f"  y{k} = x -> s0({draw(st.integers(1, 9))})\n" for k in range(wide))
    outs = ", ".join(f"y{k}" for k in range(wide))
    return "\n".join(lines) + f"\nnetwork N {{\n  input x: [3]\n{body}  output {outs}\n}}\n"


LARGE_MAX = int(os.environ.get("NETSPEC_FUZZ_LARGE", "20000"))


@st.composite
def large_specs(draw) -> str:
    """Long inputs: a long chain, many statements, deep brackets, long strings, blank lines, comments."""
    size = draw(st.integers(1, LARGE_MAX))
    kind = draw(st.sampled_from(["chain", "statements", "parens", "string", "blank", "comment", "list",
                                 "errors", "yaml_chain", "yaml_comment"]))
    if kind == "chain":
        return "network N {\n input x: [3]\n y = x" + " -> relu" * (size // 8) + "\n output y\n}\n"
    if kind == "statements":
        return ("network N {\n input x: [3]\n y0 = x\n" + "".join(f" y{i + 1} = y{i} -> relu\n"
                for i in range(size // 16)) + f" output y{size // 16}\n}}\n")
    if kind == "parens":
        closed = draw(st.booleans())
        return "network N {\n input x: [3]\n y = x -> dense(" + "(" * size + "1" + (")" * size if closed else "") \
            + ")\n output y\n}\n"
    if kind == "string":
        return 'network N {\n input x: [3]\n y = x -> dense(3, activation="' + draw(st.sampled_from(["a", "\\n"])) \
            * (size // 2) + draw(st.sampled_from(['"', ""])) + ")\n output y\n}\n"
    if kind == "blank":
        return "network N {\n" + draw(st.sampled_from(["\n", "\r\n", " \n", "\n\t"])) * (size // 2) + "}\n"
    if kind == "comment":
        return "# " + "x" * size + "\nnetwork N {\n}\n"
    if kind == "list":
        return "network N {\n input x: [" + ", ".join(["1"] * (size // 3)) + "]\n output x\n}\n"
    if kind == "errors":
        return "network N {\n input x: [3]\n" + "".join(f" y{i} = x -> nosuch\n" for i in range(size // 20)) + "}\n"
    if kind == "yaml_chain":
        return "networks:\n  N:\n    inputs: {x: [3]}\n    values:\n      y: [x" + ", relu" * (size // 6) \
            + "]\n    outputs: [y]\n"
    return "#" + "x" * size + "\n"


@st.composite
def odd_name_specs(draw) -> str:
    """Odd names as networks, values, layers, blocks and parameters; odd strings as arguments."""
    pick = st.sampled_from(ODD_NAMES)
    net, value, layer, block, param = (draw(pick) for _ in range(5))
    act = draw(STRING_ARGS)
    return (f"block {block}({param}=2) {{\n  return in -> dense({param}, activation={act})\n}}\n"
            f"network {net} {{\n  input x: [4]\n  layer {layer} = dense(4)\n"
            f"  {value} = x -> {layer} -> {block}\n  output {value}\n}}\n")


# Big integers (issue 11 section 2): the evaluator bounds every integer to int64, the checker every
# dimension and element count; before that this found tracebacks such as `dense(9...9 * 9...9)`.
@FUZZ
@given(text=big_int_specs())
def test_big_integers(text):
    check_text(text, "fuzz.yaml" if text.startswith("networks:") else "fuzz.net")


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 1))
@given(text=expansion_specs())
def test_deep_and_wide_expansion(text):
    check_text(text, "fuzz.net")


@settings(FUZZ, max_examples=max(EXAMPLES // 10, 1))
@given(text=large_specs())
def test_large_inputs(text):
    check_text(text, "fuzz.yaml" if text.startswith(("networks:", "#x")) else "fuzz.net")


@FUZZ
@given(text=odd_name_specs())
def test_odd_names(text):
    check_text(text, "fuzz.net")
