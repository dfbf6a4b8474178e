"""The plain IR the checker builds (netspec/ir_plain.py) and the typed pydantic IR built from it on demand."""

import inspect

import pydantic
import pytest
from conformance_cases import CASES
from conftest import SPECS, YAML_SPECS

import netspec
from netspec import ir, ir_plain
from netspec.api import Spec
from netspec.report import build_report, dim_names

PAIRS = [(name, cls, getattr(ir, name)) for name, cls in ir_plain.CLASSES.items()]


@pytest.mark.parametrize(("name", "plain", "typed"), PAIRS, ids=[p[0] for p in PAIRS])
def test_plain_classes_have_the_typed_fields_and_defaults(name, plain, typed):
    """Each plain class lists its pydantic twin's fields, in order, with the same defaults."""
    assert plain._fields == tuple(typed.model_fields), name
    assert set(plain.__slots__) == set(typed.model_fields)
    params = inspect.signature(plain.__init__).parameters
    assert set(params) - {"self"} == set(typed.model_fields)
    for field, info in typed.model_fields.items():
        default = params[field].default
        if info.is_required():
            assert default is inspect.Parameter.empty, (name, field)
        elif info.default_factory is not None:  # a fresh dict per object: None in the signature
            assert default is None, (name, field)
        else:
            assert default == info.default, (name, field)


def test_plain_defaults_are_fresh_and_equal_the_typed_ones():
    a, b = ir_plain.Param(name="w", shape=(2,)), ir_plain.Param(name="w", shape=(2,))
    assert a.init == {"name": "zeros"} == ir.Param(name="w", shape=(2,)).init
    assert a.init is not b.init
    n = ir_plain.Node(name="d", op="dense", type=ir_plain.TensorType(shape=(3,)), layer="d")
    assert (n.attrs, n.exprs, n.inputs, n.params, n.macs) == ({}, {}, (), (), 0)


def test_plain_behaviour_matches_the_typed_one():
    for shape, dtype in (((3, 4), "float32"), (("T", 8), "int64"), ((), "float32")):
        p, t = ir_plain.TensorType(dtype=dtype, shape=shape), ir.TensorType(dtype=dtype, shape=shape)
        assert (str(p), p.rank, p.is_static, p.size, p.is_integer) == (str(t), t.rank, t.is_static, t.size,
                                                                       t.is_integer)
    assert ir_plain.TensorType(shape=(2,)) == ir_plain.TensorType(shape=(2,))
    assert hash(ir_plain.TensorType(shape=(2,))) == hash(ir_plain.TensorType(shape=(2,)))
    assert ir_plain.TensorType(shape=(2,)) != ir_plain.TensorType(shape=(3,))
    copy = ir_plain.TensorType(shape=(2,)).model_copy(update={"dtype": "int32"})
    assert (copy.dtype, copy.shape) == ("int32", (2,))
    with pytest.raises(AttributeError):
        ir_plain.TensorType().model_copy(update={"rank": 2})


def _typed_objects(obj):
    """Every IR object reachable from a typed one."""
    yield obj
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, pydantic.BaseModel):
                yield from _typed_objects(v)
            else:
                assert not isinstance(v, ir_plain._Plain), (type(obj).__name__, name)


def _check(spec):
    plain = spec.plain_program
    assert isinstance(plain, ir_plain.Program)
    program = spec.program
    assert isinstance(program, ir.Program)
    assert spec.program is program  # built once
    for obj in _typed_objects(program):
        assert type(obj).__module__ == "netspec.ir"
    # the data the checker built is valid under the schema, and means what the typed IR means
    dump = program.model_dump()
    validated = ir.Program.model_validate(dump)
    assert validated.model_dump() == dump
    assert validated.meaning() == program.meaning() == plain.meaning()
    assert repr(program) == repr(validated)
    # the plain and the typed IR answer alike, and give the same report
    for p, t in zip(plain.networks, program.networks, strict=True):
        assert p.param_counts() == t.param_counts()
        assert list(p.layers()) == list(t.layers())
        for node in t.nodes:
            assert str(p.type_of(node.name)) == str(t.type_of(node.name))
            assert p.node(node.name).shared == node.shared
        assert p.instances == () or all(a.path == b.path for a, b in zip(p.instances, t.instances, strict=True))
    assert str(build_report(plain)) == str(build_report(program)) == str(spec.check())
    return program


@pytest.mark.parametrize("path", SPECS + YAML_SPECS, ids=lambda p: p.name)
def test_specs_typed_program_is_valid_and_equals_the_plain_one(path):
    _check(netspec.load(path))


def test_conformance_cases_typed_programs_are_valid():
    for case in CASES:
        _check(netspec.parse_text(case.text(), f"{case.name}.net"))


def test_shared_layer_weights_stay_one_object():
    spec = netspec.parse_text("network N {\n  input x: [4]\n  layer d = dense(4)\n  y = x -> d -> d\n"
                              "  output y\n}\n")
    a, b = spec.program.networks[0].nodes
    assert a.params is b.params and b.shared


def test_report_binds_dims_on_both_irs():
    spec = netspec.load("specs/translator.net")
    for program in (spec.plain_program, spec.program):
        names = {d for n in program.networks for d in dim_names(n)}
        dims = dict.fromkeys(names, 16)
        text = str(build_report(program, dims=dims, training_batch=2))
        assert text == str(build_report(spec.plain_program, dims=dims, training_batch=2))


def test_a_typed_program_passed_to_spec_is_kept():
    spec = netspec.load("specs/mlp.net")
    again = Spec(spec.source, spec.module, spec.program)
    assert again.program is spec.program and again.plain_program is spec.program
    assert str(again.check()) == str(spec.check())


def test_each_node_owns_its_default_attributes():
    """Defaults are validated once per op (ops/base.py), but no two nodes share a dict of attributes."""
    spec = netspec.parse_text("network N {\n  input x: [4, 8]\n  y = x -> dense(4) -> dense(4)\n"
                              "  z = y -> bidirectional(lstm(3, return_sequences=true)) -> bidirectional(lstm(3))\n"
                              "  output z\n}\n")
    a, b, c, d = spec.plain_program.networks[0].nodes
    assert a.attrs == b.attrs and a.attrs["kernel_init"] is not b.attrs["kernel_init"]
    inner_c, inner_d = c.attrs["layer"]["attrs"], d.attrs["layer"]["attrs"]
    assert inner_c["units"] == inner_d["units"] and inner_c is not inner_d
    assert inner_c["kernel_init"] == inner_d["kernel_init"] and inner_c["kernel_init"] is not inner_d["kernel_init"]
