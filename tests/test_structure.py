"""The spec's structure in the IR: blocks used, block instances, repeat runs and parameter expressions."""

from __future__ import annotations

from pathlib import Path

import netspec

ROOT = Path(__file__).resolve().parent.parent


def _net(text: str):
    return netspec.parse_text(text, "m.net").program.networks[0]


def test_resnet50_records_its_blocks_instances_and_repeats():
    net = netspec.load(ROOT / "specs" / "resnet50.net").program.networks[0]
    assert [(b.name, [(p.name, p.default) for p in b.params]) for b in net.blocks] == [
        ("bottleneck_down", [("width", None), ("stride", "1")]), ("bottleneck", [("width", None)])]
    assert [i.path for i in net.instances] == [f"features.{k}." for k in range(16)]
    first, second = net.instances[:2]
    assert (first.block, first.args, first.input, first.output) == (
        "bottleneck_down", {"width": 64, "stride": 1}, "stem.maxpool2d", "features.0.relu")
    assert (second.block, second.args, second.input) == ("bottleneck", {"width": 64}, "features.0.relu")
    assert [i.args.get("stride") for i in net.instances if i.block == "bottleneck_down"] == [1, 2, 2, 2]
    assert [(r.step, r.kind, r.members) for r in net.repeats] == [
        ("bottleneck", "block", tuple(f"features.{k}." for k in ks))
        for ks in ([1, 2], [4, 5, 6], range(8, 13), [14, 15])]
    exprs = {n.name: n.exprs for n in net.nodes if n.name.startswith("features.0.")}
    assert exprs["features.0.main.conv2d_2"] == {"filters": "width * 4"}
    assert exprs["features.0.skip.conv2d"] == {"filters": "width * 4", "stride": "stride"}
    assert exprs["features.0.main.batchnorm"] == {}
    # every node of an instance is named under its path
    for inst in net.instances:
        assert inst.output.startswith(inst.path)


def test_nested_instances_come_after_their_enclosing_instance():
    net = _net("""
block inner(n, k=n * 2 - 1) { return in -> dense(n + 1) -> dense(k) }
block outer(n) { h = in -> inner(n) * 2 -> relu
                 return h -> inner(-(n - 5) * 2) }
network N { input x: [4]
  y = x -> outer(3) -> dense(2) * 3
  output y }
""")
    assert [(i.path, i.block, i.args) for i in net.instances] == [
        ("y.0.", "outer", {"n": 3}), ("y.0.h.0.", "inner", {"n": 3, "k": 5}), ("y.0.h.1.", "inner", {"n": 3, "k": 5}),
        ("y.0.0.", "inner", {"n": 4, "k": 7})]
    assert net.blocks[0].name == "outer" and net.blocks[1].params[1].default == "n * 2 - 1"
    assert [(r.kind, r.members) for r in net.repeats] == [
        ("block", ("y.0.h.0.", "y.0.h.1.")), ("op", ("y.dense", "y.dense_1", "y.dense_2"))]
    assert net.node("y.0.0.dense").exprs == {"units": "n + 1"}
    assert net.instances[0].output == "y.0.0.dense_1"
    assert net.node("y.0.h.0.dense_1").exprs == {"units": "k"}


def test_structure_is_not_part_of_the_meaning():
    a = netspec.parse_text("""
block b(width) { return in -> dense(width * 2) -> relu }
network N { input x: [4]
  y = x -> b(3)
  output y }""", "a.net").program
    b = netspec.parse_text("""
block b(w) { return in -> dense(6) -> relu }
network N { input x: [4]
  y = x -> b(3)
  output y }""", "b.net").program
    assert a.networks[0].nodes[0].exprs == {"units": "width * 2"}
    assert b.networks[0].nodes[0].exprs == {}
    assert a.meaning() == b.meaning()
    assert "instances" in a.networks[0].model_dump()


def test_value_parameters_are_recorded_in_both_ir_forms_and_stay_out_of_the_meaning():
    text = """
block mix(other, k=2) { return add(in, other) -> dense(k) }
network N { input x: [2]
  input o: [2]
  y = x -> mix(o)
  output y }"""
    spec = netspec.parse_text(text, "a.net")
    plain, typed = spec.plain_program.networks[0].instances[0], spec.program.networks[0].instances[0]
    assert plain.values == typed.values == {"other": "o"} and plain.args == typed.args == {"k": 2}
    assert typed.model_dump()["values"] == {"other": "o"}
    # renaming the value parameter changes the structure, not the meaning
    renamed = netspec.parse_text(text.replace("other", "second"), "b.net").program
    assert renamed.networks[0].instances[0].values == {"second": "o"}
    assert renamed.meaning() == spec.program.meaning()
