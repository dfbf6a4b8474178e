"""Odd but valid names: every name the language accepts gives a working model in every backend.

Each name is used as a value, a shared layer, a network, a block and a block parameter.
A name the language refuses (its own keywords) must be refused with a clear reason; every
other name must build, load canonical weights, run, and (PyTorch) give ``state_dict()``
keys that are the canonical names after the documented rename.
"""

from __future__ import annotations

import keyword

import numpy as np
import pytest

import netspec
from netspec.diagnostics import SpecError

torch = pytest.importorskip("torch")
from netspec.backends import torch as tb  # noqa: E402

NAMES = sorted(set(
    # the reproducers
    ["__h", "_", "super", "len", "__class__", "__dict__", "__init__", "__module__", "__name__", "netspec_module",
     "__call__", "__getattr__"]
    # Python keywords, soft keywords and builtins
    + [k for k in keyword.kwlist if k.isidentifier()] + ["match", "case", "type", "_"]
    + ["self", "cls", "object", "print", "list", "dict", "tuple", "set", "id", "sum", "max", "min", "range",
       "super", "isinstance", "getattr", "setattr", "Exception", "ValueError", "math", "operator"]
    # dunders and underscores
    + ["__", "___", "_x", "__x", "__x__", "__init_", "__init___", "__doc__", "__slots__", "__weakref__",
       "__getattribute__", "__setattr__", "__all__", "__file__", "__builtins__", "__annotations__"]
    # torch, nn.Module and nn.Sequential attributes, generated helpers and public functions
    + ["torch", "nn", "F", "functional", "Tensor", "Module", "forward", "training", "train", "eval", "parameters",
       "state_dict", "modules", "children", "cuda", "to", "float", "half", "apply", "add_module", "_modules",
       "_parameters", "_buffers", "_version", "T_destination", "dump_patches", "call_super_init",
       "reset_parameters", "append", "pop", "insert", "extend", "register_buffer", "zero_grad", "forward_",
       "training_", "training__", "_init", "_expect", "_avg_pool", "_dot", "_BatchNorm2d", "_Adam",
       "_Optimizer", "compute_loss", "regularization_loss", "make_optimizer", "train_step", "inputs",
       "outputs", "targets", "optimizer", "loss", "loss_values", "return_loss_values", "x", "y"]
    # ruff's ambiguous names, look-alikes of generated names, digits, case
    + ["l", "O", "I", "a1", "x_1", "dense", "dense_1", "relu", "add", "conv2d", "features_0_main", "Net", "N",
       "Block", "B", "Res", "ResNet50", "Sequential", "Linear", "Conv2d", "keras", "ops", "layers", "tf", "np",
       "onnx", "helper", "main", "skip", "in_channels", "in_features", "arg0", "nn_", "torch_", "A" * 60,
       "camelCase", "UPPER", "_Private", "name_with_many_parts_1_2_3"]
))


def _spec(name: str) -> str:
    """The name as a block, a block parameter, a value in a block and in a network, a network and a layer."""
    return f"""
block {name}({name}=3) {{
    {name} = in -> dense({name}) -> relu
    return {name} -> dense(4)
}}
network Blocks {{
    input {name}: [4]
    layer shared = dense(4)
    {name}_ = {name} -> {name}(3) -> {name}({name}=2)
    g = {name}_ -> shared -> shared
    output g
}}
network {name}_net {{
    input q9_input: [4]
    layer {name} = dense(4)
    h = q9_input -> {name} -> {name} -> {name}(5)
    out = h -> relu
    output out
}}
"""


def _network_spec(name: str) -> str:
    return f"network {name} {{\n    input {name}: [4]\n    {name}_ = {name} -> dense(4)\n    output {name}_\n}}\n"


def _load(text: str):
    try:
        return netspec.parse_text(text, "names.net")
    except SpecError as exc:
        return exc


def test_enough_names():
    assert len(NAMES) >= 150


def _specs(name: str) -> list:
    """The parsed specs; a name the language refuses is refused as a keyword (and the test says so)."""
    out = []
    for text in (_spec(name), _network_spec(name)):
        spec = _load(text)
        if isinstance(spec, SpecError):
            # the language's own words are refused, and say why; so is a block that would hide an op
            assert "keyword" in str(spec) or "would hide the op" in str(spec), str(spec)
            continue
        out.append(spec)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_torch_runs_every_name(name):
    for spec in _specs(name):
        _check_torch(spec)


def _check_torch(spec):
    for net in spec.networks:
        weights = netspec.init_weights(spec, seed=1, network=net.name)
        model = spec.to_torch(weights=weights, network=net.name)
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32))
        out = model(x)
        assert out.shape == (2, 4)
        back = tb.export_canonical(model, net)
        assert set(back) == set(weights)
        for key, w in weights.items():
            assert np.array_equal(back[key], w), key
        plans = tb.plan(net)
        sd = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
        assert sd == {tb.torch_key(k, plans) for k in weights}
        for key in weights:  # the documented rename: escape each segment, the param suffix renamed
            layer, param = key.rsplit(".", 1)
            want = ".".join(tb.escape(s) for s in layer.split("."))
            assert tb.torch_key(key, plans).startswith(want + "."), key
            assert [tb.unescape(s) for s in want.split(".")] == layer.split(".")


def test_escape_is_injective_and_reversible():
    names = NAMES + [n + "_" for n in NAMES] + [n + "__" for n in NAMES] + sorted(tb.RESERVED)
    escaped = {tb.escape(n) for n in names}
    assert len(escaped) == len(set(names))
    for n in names:
        assert tb.unescape(tb.escape(n)) == n
        assert tb.escape(n) not in tb.RESERVED


def test_reserved_names_cover_the_installed_torch():
    module = torch.nn.Sequential()
    names = set(dir(module)) | set(vars(torch.nn.Module()))
    assert names <= tb.RESERVED, sorted(names - tb.RESERVED)


def _outputs_agree(spec, run) -> None:
    """Every network of ``spec`` gives PyTorch's numbers in another backend (``run(spec, net, weights, x)``)."""
    for net in spec.networks:
        weights = netspec.init_weights(spec, seed=1, network=net.name)
        x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
        want = spec.to_torch(weights=weights, network=net.name)(torch.from_numpy(x)).detach().numpy()
        got = run(spec, net, weights, x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_onnx_runs_every_name():
    ort = pytest.importorskip("onnxruntime")

    def run(spec, net, weights, x):
        model = spec.to_onnx(weights=weights, network=net.name)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    for name in NAMES:
        for spec in _specs(name):
            _outputs_agree(spec, run)


@pytest.mark.slow
def test_keras_runs_every_name():
    pytest.importorskip("keras")

    def run(spec, net, weights, x):
        return np.asarray(spec.to_keras(weights=weights, network=net.name)(x))

    for name in NAMES:
        for spec in _specs(name):
            _outputs_agree(spec, run)
