"""The shared printer of Python source (netspec/backends/printer.py): one formatter for PyTorch and Keras."""

from __future__ import annotations

import ast

import pytest

from netspec.backends import keras_render, printer
from netspec.backends import torch as tb
from netspec.backends.printer import Call, Tup, call_lines, flat, fmt, tree

LONG = ", ".join(f'"name_{i}"' for i in range(14))


def test_both_generators_use_the_one_printer():
    assert tb.fmt is printer.fmt and tb.Call is printer.Call and tb.docstring is printer.docstring
    assert keras_render._call_lines is printer.call_lines and keras_render._lit is printer.lit
    assert tb._lit is printer.lit


@pytest.mark.parametrize("text", [
    "(1,)", "(a + b)", "k=(1,)", "[a, b]", "f(x, k=[1, 2], m=(3,))", "x[0]", '"a)"', "layers.Dense(3)(x)",
    "{1: 2}", "f(*args)", "(a, b)",
])
def test_tree_is_lossless(text):
    assert flat(tree(text)) == text


def test_a_call_that_fits_stays_on_one_line():
    assert call_lines("x", "layers.Conv2D", ["16", "3", 'name="a"'], "inp") == [
        '    x = layers.Conv2D(16, 3, name="a")(inp)']


def test_a_long_call_takes_one_argument_per_line_and_splits_what_does_not_fit():
    lines = call_lines("model", "keras.Model", [f"inputs=[{LONG}]", "outputs=[a, b]", 'name="M"'], "")
    assert lines[0] == "    model = keras.Model("
    assert lines[1] == "        inputs=["  # the list opens on its argument's line
    assert lines[2] == '            "name_0",' and "        ]," in lines  # too long for one line: one per line
    assert lines[-2:] == ['        name="M",', "    )"]
    assert all(len(line) <= 120 for line in lines)
    ast.parse("\n".join(line[4:] for line in lines))


def test_a_one_element_tuple_keeps_its_comma_when_split():
    long = ", ".join(str(i * 100000) for i in range(30))
    lines = call_lines("y", "f", [f"({long})", "k=(1,)"], "z")
    assert "        k=(1,)," in lines and lines[-1] == "    )(z)"
    assert "\n".join(lines).count(",\n") > 30  # the long tuple: one item per line
    ast.parse("\n".join(line[4:] for line in lines))


def test_fmt_splits_like_ruff_at_the_given_width():
    call = Call("nn.Conv2d", ("64", "128", "3"), (("stride", "2"), ("padding", "1"), ("bias", "False")))
    one = "        self.conv = nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False)"
    assert fmt("self.conv = ", call, "", 8) == [one]
    assert fmt("self.conv = ", call, "", 8, width=60) == [
        "        self.conv = nn.Conv2d(", "            64, 128, 3, stride=2, padding=1, bias=False", "        )"]
    assert fmt("return ", Tup(("a", "b"), explode=True), "", 4) == ["    return (", "        a,", "        b,", "    )"]


def test_docstring_wraps_inside_the_width():
    assert printer.docstring("short", 4) == ['    """short"""']
    lines = printer.docstring("word " * 40, 4)
    assert lines[0].startswith('    """') and lines[-1] == '    """' and all(len(x) <= 88 for x in lines)
