"""Issue 12: one backend contract, registered in one place; verify and the CLI use nothing else."""

import ast
import re

import pytest
from conftest import ROOT

import netspec
from netspec import backends
from netspec.backends import structure
from netspec.backends.base import Backend


def test_every_backend_is_registered_once_with_its_needs():
    assert backends.BACKENDS == ("torch", "keras", "onnx")
    assert backends.TARGETS == ("torch", "keras")
    assert backends.TRAINERS == ("torch", "keras")
    for name, entry in backends.REGISTRY.items():
        module, cls = entry.path.split(":")
        assert module.startswith("netspec.backends") and cls.endswith("Backend"), name
    with pytest.raises(ValueError, match="unknown backend 'tf'"):
        backends.get("tf")
    with pytest.raises(ValueError, match="unknown target 'onnx'"):
        backends.generator("onnx")


def test_keras_and_onnx_backends_fulfil_the_contract_without_importing_their_framework():
    pytest.importorskip("onnx")
    for name in ("keras", "onnx"):
        b = backends.get(name)
        assert isinstance(b, Backend) and b.name == name
        for method in ("build", "load_canonical", "export_canonical", "run"):
            assert getattr(type(b), method) is not getattr(Backend, method), (name, method)
    assert backends.get("keras").lowering and backends.get("onnx").lowering


def test_torch_declares_its_lowering():
    from netspec import lower
    from netspec.backends import torch as tb

    assert backends.get("torch").lowering is tb.LOWERING
    assert lower.ceil_extra in tb.LOWERING and len(tb.LOWERING) == 2


def test_verify_and_cli_do_not_branch_on_backend_names():
    """No string literal naming a backend in verify.py or cli.py (the contract carries the differences)."""
    for path in (ROOT / "netspec" / "verify.py", ROOT / "netspec" / "cli.py"):
        tree = ast.parse(path.read_text())
        names = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in backends.BACKENDS]
        assert names == [], f"{path.name} names backends: {names}"
        assert not re.search(r"from \.backends import (torch|keras)\b|backends\.(torch|keras)\b", path.read_text())


def test_compile_goes_through_the_registered_backend():
    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    assert spec.compile("keras") == backends.get("keras").generate(spec.network())
    with pytest.raises(ValueError, match="unknown target"):
        spec.compile("onnx")


# Mirroring blocks ---------------------------------------------------------------------------------


BLOCKS = """
block unit(width, stride=1) {
    return in -> conv2d(width, 3, stride=stride, padding=1) -> relu
}
network N {
    input x: [3, 16, 16]
    y = x -> unit(8) -> unit(8) * 2 -> unit(16, stride=2)
    output y
}
"""


def test_a_block_becomes_one_function_and_a_run_one_loop():
    source = netspec.parse_text(BLOCKS).compile("keras")
    assert source.count("\ndef unit(x, width, stride=1, name=\"\"):") == 1
    assert "strides=stride" in source and "layers.Conv2D(width, 3" in source
    assert re.search(r"    for i in range\(1, 3\):\n        y_2_relu = unit\(y_2_relu, 8, name=f\"y-\{i\}-\"\)",
                     source), source
    assert 'unit(y_2_relu, 16, stride=2, name="y-3-")' in source
    # every layer keeps its canonical name
    net = netspec.parse_text(BLOCKS).network()
    for n in net.nodes:
        rel = n.name.split(".", 2)[2].replace(".", "-")
        assert f'name=f"{{name}}{rel}"' in source, n.name


def test_a_block_whose_instances_differ_stays_inline():
    text = """
    block unit(width) {
        return in -> flatten -> dense(width)
    }
    network N {
        input x: [2, 3, 3]
        input z: [5]
        a = x -> unit(4)
        b = z -> unit(4)
        output a, b
    }
    """
    source = netspec.parse_text(text).compile("keras")
    # the image input is permuted to channels-first before its flatten, the vector is not: two programs
    assert "def unit(" not in source
    assert 'name="a-0-dense"' in source and 'name="b-0-dense"' in source


def test_mirror_is_a_no_op_without_blocks():
    flat = structure.Flat(["    y = f(x)"], {"y": (0, 1)}, ["y"], set())
    net = netspec.parse_text("network N {\n input x: [2]\n y = x -> relu\n output y\n}\n").network()
    assert structure.mirror(net, flat, str, set(), None) == ([], flat.body)


NESTED = """
block unit(width) {
    return in -> conv2d(width, 3, padding=1) -> relu
}
block stage(width) {
    return in -> unit(width) * 3 -> maxpool2d(2)
}
network N {
    input x: [3, 16, 16]
    y = x -> stage(8) -> stage(16) -> flatten -> dense(4)
    output y
}
"""


def test_nested_blocks_call_the_inner_functions():
    source = netspec.parse_text(NESTED).compile("keras")
    stage = source[source.index("def stage("):source.index("def build_N")]
    assert "for i in range(3):\n        h2_relu = unit(h2_relu, width, name=f\"{name}{i}-\")" in stage
    assert 'y_1_maxpool2d = stage(y_0_maxpool2d, 16, name="y-1-")' in source
    assert source.index("def unit(") < source.index("def stage(")
