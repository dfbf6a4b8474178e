"""Formatter round trips: the canonical text and the YAML form parse to the identical IR."""

import pytest
from conftest import SPECS, YAML_SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec.frontend import parse_source
from netspec.frontend.format import format_module, source_comments
from netspec.source import Source


def canonical(text: str, name: str = "m.net", to: str | None = None) -> str:
    source = Source(name, text)
    module = parse_source(source)
    form = "yaml" if name.endswith(".yaml") else "net"
    comments = source_comments(text, form)
    return format_module(module, to or form, comments, keep_breaks=form == "net")


def assert_round_trips(text: str, name: str = "m.net") -> None:
    meaning = netspec.parse_text(text, name).program.meaning()
    net = canonical(text, name, "net")
    assert netspec.parse_text(net, "m.net").program.meaning() == meaning
    assert canonical(net) == net, "formatting is not idempotent"
    yml = canonical(text, name, "yaml")
    assert netspec.parse_text(yml, "m.yaml").program.meaning() == meaning
    assert canonical(yml, "m.yaml") == yml


@pytest.mark.parametrize("spec", SPECS + YAML_SPECS, ids=lambda p: p.name)
def test_repo_specs_round_trip(spec):
    assert_round_trips(spec.read_text(), spec.name)


def test_yaml_twins_mean_the_same_as_net():
    assert YAML_SPECS, "specs/yaml/ holds the YAML forms"
    for path in YAML_SPECS:
        twin = path.parent.parent / (path.stem + ".net")
        assert netspec.load(path).program.meaning() == netspec.load(twin).program.meaning()


def test_comments_and_layout_are_kept():
    text = (
        "# header\n"
        "\n"
        "network N {  # trailing on header\n"
        "    input x: [8]  # features\n"
        "\n"
        "    # the body\n"
        "    h = x -> dense(16) -> relu  # hidden\n"
        "        -> dense(4)             # out\n"
        "    output h\n"
        "}\n"
    )
    assert canonical(text) == text


def test_messy_layout_becomes_canonical():
    text = "network N{input x:[8]\ny=x->dense(4,\n  activation=relu)->\n dropout(0.5)\n\n\n\noutput y}"
    assert canonical(text) == (
        "network N {\n    input x: [8]\n    y = x -> dense(4, activation=relu)\n"
        "        -> dropout(0.5)\n\n    output y\n}\n"
    )


def test_literals_are_canonical():
    text = ("network N {\n    input x: [3, 8, 8]\n"
            "    y = x -> conv2d(4, (3, 3), padding=((1, 0), (0, 1)), kernel_init=normal(1e-05), "
            "bias_init=constant(-2.50))\n    output y\n}\n")
    out = canonical(text)
    assert "normal(1e-5)" in out and "constant(-2.5)" in out and "((1, 0), (0, 1))" in out
    assert_round_trips(text)


# Generated specs ----------------------------------------------------------------------------

ACTS = ["relu", "tanh", "sigmoid", "gelu", "swish", "elu", "softplus", "relu6", "hard_sigmoid", "linear"]
names = st.sampled_from(["h", "a", "b", "hidden", "z1", "feat", "x2", "out_"])


@st.composite
def dense_step(draw):
    kind = draw(st.sampled_from(["dense", "act", "dropout", "layernorm", "batchnorm", "leaky", "softmax"]))
    if kind == "dense":
        units = draw(st.integers(1, 32))
        act = draw(st.sampled_from([None, *ACTS]))
        return f"dense({units}, activation={act})" if act else f"dense({units})", units
    if kind == "act":
        return draw(st.sampled_from(ACTS)), None
    if kind == "dropout":
        return f"dropout({draw(st.floats(0, 0.9).map(lambda f: round(f, 3)))})", None
    if kind == "layernorm":
        return f"layernorm(eps={draw(st.sampled_from(['1e-5', '0.001', '1e-3', '2.5e-4']))})", None
    if kind == "batchnorm":
        return draw(st.sampled_from(["batchnorm", "batchnorm(momentum=0.9, eps=1e-5)"])), None
    if kind == "leaky":
        return f"leaky_relu({draw(st.sampled_from(['0.2', '0.01', '1e-1']))})", None
    return "softmax(axis=-1)", None


def sep(draw):
    return draw(st.sampled_from([" -> ", "->", " ->\n        ", "\n        -> ", "  ->  "]))


@st.composite
def generated_spec(draw):
    width = draw(st.integers(1, 16))
    lines = []
    use_block = draw(st.booleans())
    if use_block:
        lines += ["block unit(n, act=relu) {", "    h = in -> dense(n) -> act",
                  "    return h -> dense(n * 2 // 2)", "}", ""]
    lines += ["network Gen {", f"    input x: [{width}]"]
    values, current = [], width
    for i in range(draw(st.integers(1, 4))):
        src = draw(st.sampled_from(values)) if values and draw(st.booleans()) else ("x", width)
        text, units = src[0], src[1]
        for _ in range(draw(st.integers(1, 4))):
            step, new = draw(dense_step())
            rep = draw(st.sampled_from(["", "", " * 2"])) if new is not None else ""
            text += sep(draw) + step + rep
            units = new or units
        if use_block and draw(st.booleans()):
            n = draw(st.integers(1, 8))
            text += f" -> unit({n})" + draw(st.sampled_from(["", " * 2", " * (1 + 1)"]))
            units = n
        name = f"{draw(names)}{i}"
        comment = draw(st.sampled_from(["", "  # note", "   # [shape]"]))
        lines.append(f"    {name} = {text}{comment}")
        values.append((name, units))
        current = units
    last, current = values[-1]
    same = [v for v in values[:-1] if v[1] == current]
    if same and draw(st.booleans()):
        merge = draw(st.sampled_from(["add", "maximum", "average", "multiply"]))
        lines.append(f"    merged = {merge}({last}, {same[0][0]})")
        last = "merged"
    elif len(values) > 1 and draw(st.booleans()):
        lines.append(f"    merged = concat({last}, {values[0][0]}, axis=0) -> dense({current})")
        last = "merged"
    lines.append(f"    target t: [{current}]")
    lines.append(f"    output {last}")
    w = draw(st.sampled_from(["", "0.5 * ", "2 * ", "1e-3 * "]))
    lines.append(f"    loss mse({last}, t) + {w}mae({last}, t)" if w else f"    loss mse({last}, t)")
    lines.append("    " + draw(st.sampled_from(["optimizer adam(lr=1e-3)", "optimizer sgd(lr=0.1, momentum=0.9)",
                                                 "optimizer rmsprop", "optimizer adamw(weight_decay=0.01)"])))
    lines.append("}")
    return "\n".join(lines) + "\n"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_spec())
def test_generated_specs_round_trip(text):
    assert_round_trips(text)
