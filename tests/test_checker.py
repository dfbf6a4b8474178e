"""Checker semantics: normalised attributes, naming, blocks, shared layers, losses, error collection."""

import pytest

import netspec
from netspec import SpecError


def net(body: str, blocks: str = ""):
    return netspec.parse_text(f"{blocks}\nnetwork N {{\n{body}\n}}\n", "t.net").network()


def node(n, name):
    return n.node(name)


@pytest.mark.parametrize(("size", "kernel", "stride", "pads", "out"), [
    (5, 3, 2, (1, 1), 3), (6, 3, 2, (0, 1), 3), (7, 3, 3, (1, 1), 3), (8, 3, 3, (0, 1), 3),
    (6, 4, 2, (1, 1), 3), (5, 2, 2, (0, 1), 3), (9, 4, 3, (0, 1), 3), (4, 4, 1, (1, 2), 4),
])
def test_same_padding_is_explicit_begin_end(size, kernel, stride, pads, out):
    n = net(f"input x: [1, {size}, {size}]\ny = x -> conv2d(2, {kernel}, stride={stride}, padding=same)\noutput y")
    conv = node(n, "y.conv2d")
    assert conv.attrs["padding"] == (pads, pads)
    assert conv.type.shape == (2, out, out)


def test_padding_forms_normalise():
    n = net("input x: [1, 9, 9]\n"
            "a = x -> conv2d(2, 3, padding=1)\nb = x -> conv2d(2, 3, padding=(1, 2))\n"
            "c = x -> conv2d(2, 3, padding=((0, 1), (2, 3)))\nd = x -> conv2d(2, 3)\noutput a, b, c, d")
    assert node(n, "a.conv2d").attrs["padding"] == ((1, 1), (1, 1))
    assert node(n, "b.conv2d").attrs["padding"] == ((1, 1), (2, 2))
    assert node(n, "c.conv2d").attrs["padding"] == ((0, 1), (2, 3))
    assert node(n, "c.conv2d").type.shape == (2, 8, 12)
    assert node(n, "d.conv2d").attrs["padding"] == ((0, 0), (0, 0))


def test_dilation_and_groups():
    n = net("input x: [8, 16, 16]\ny = x -> conv2d(4, 3, dilation=2, groups=4)\noutput y")
    conv = node(n, "y.conv2d")
    assert conv.type.shape == (4, 12, 12)
    assert [p.shape for p in conv.params] == [(4, 2, 3, 3), (4,)]
    with pytest.raises(SpecError, match=r"groups=3 must divide the input channels \(8\)"):
        net("input x: [8, 16, 16]\ny = x -> conv2d(6, 3, groups=3)\noutput y")


def test_transposed_conv_same_and_output_padding():
    n = net("input x: [4, 5, 5]\na = x -> conv_transpose2d(2, 3, stride=2, padding=same)\n"
            "b = x -> conv_transpose2d(2, 3, stride=2, padding=1, output_padding=1)\n"
            "c = x -> conv_transpose2d(2, 1, stride=3, padding=same)\noutput a, b, c")
    a, b, c = (node(n, f"{v}.conv_transpose2d") for v in "abc")
    assert a.type.shape == (2, 10, 10) and a.attrs["padding"] == ((0, 1), (0, 1))
    assert b.type.shape == (2, 10, 10) and b.attrs["output_padding"] == (1, 1)
    assert c.type.shape == (2, 15, 15) and c.attrs["output_padding"] == (2, 2)
    assert [p.shape for p in a.params] == [(4, 2, 3, 3), (2,)]


def test_pooling_stride_default_ceil_mode_and_count_include_pad():
    n = net("input x: [1, 5, 5]\na = x -> maxpool2d(2)\nb = x -> maxpool2d(2, ceil_mode=true)\n"
            "c = x -> avgpool2d(3, stride=2, padding=1, count_include_pad=true)\noutput a, b, c")
    assert node(n, "a.maxpool2d").attrs["stride"] == (2, 2)
    assert node(n, "a.maxpool2d").type.shape == (1, 2, 2)
    assert node(n, "b.maxpool2d").type.shape == (1, 3, 3)
    c = node(n, "c.avgpool2d")
    assert c.attrs["count_include_pad"] is True and c.type.shape == (1, 3, 3)
    assert node(n, "a.maxpool2d").attrs.get("count_include_pad") is None


def test_batchnorm_momentum_meaning_and_counts():
    n = net("input x: [3, 4, 4]\ny = x -> batchnorm(momentum=0.9, eps=1e-5)\noutput y")
    bn = node(n, "y.batchnorm")
    assert bn.attrs["momentum"] == 0.9 and bn.attrs["eps"] == 1e-5 and bn.attrs["axis"] == 0
    assert [(p.name, p.trainable) for p in bn.params] == [
        ("gamma", True), ("beta", True), ("moving_mean", False), ("moving_variance", False)]
    assert n.param_counts() == (6, 6)


def test_rnn_counts_follow_keras():
    n = net("input x: [T, 8]\na = x -> lstm(4, return_sequences=true)\nb = x -> gru(4)\n"
            "c = x -> bidirectional(simple_rnn(4))\noutput a, b, c")
    assert node(n, "a.lstm").type.shape == ("T", 4)
    assert sum(p.size for p in node(n, "a.lstm").params) == 4 * (8 * 4 + 4 * 4 + 4)
    assert sum(p.size for p in node(n, "b.gru").params) == 3 * (8 * 4 + 4 * 4 + 2 * 4)
    assert node(n, "c.bidirectional").type.shape == (8,)
    assert sum(p.size for p in node(n, "c.bidirectional").params) == 2 * (8 * 4 + 4 * 4 + 4)


def test_shared_layer_counts_once_and_names_its_owner():
    n = net("input a: [8]\ninput b: [8]\nlayer enc = dense(4)\nx = a -> enc\ny = b -> enc\n"
            "z = add(x, y)\noutput z")
    uses = [node(n, "x.enc"), node(n, "y.enc")]
    assert {u.layer for u in uses} == {"enc"}
    assert n.param_counts() == (36, 0)
    assert list(n.layers()) == ["enc"]


def test_shared_layer_with_other_width_is_an_error():
    with pytest.raises(SpecError, match="shared layer 'enc' was built for input"):
        net("input a: [8]\ninput b: [9]\nlayer enc = dense(4)\nx = a -> enc\ny = b -> enc\noutput x, y")


BLOCKS = """
block unit(n, act=relu) {
    h = in -> dense(n) -> act
    return add(h, in) -> act
}
block pair(n) {
    return in -> unit(n) -> unit(n)
}
"""


def test_block_naming_repeats_and_nesting():
    n = net("input x: [4]\ny = x -> unit(4) * 2 -> pair(4) -> dense(2) -> dense(2)\noutput y", BLOCKS)
    names = [x.name for x in n.nodes]
    assert names[:3] == ["y.0.h.dense", "y.0.h.relu", "y.0.add"]
    assert "y.1.h.dense" in names and "y.2.0.h.dense" in names and "y.2.1.add" in names
    assert names[-2:] == ["y.dense", "y.dense_1"]


def test_block_parameter_as_op_and_arithmetic():
    n = net("input x: [4]\ny = x -> unit(2 * 2, act=tanh)\noutput y", BLOCKS)
    assert [x.op for x in n.nodes] == ["dense", "tanh", "add", "tanh"]


def test_recursive_block_is_an_error():
    with pytest.raises(SpecError, match="E207"):
        net("input x: [4]\ny = x -> loop\noutput y", "block loop() {\n    return in -> loop\n}\n")


VALUE_BLOCKS = """
block cross(memory, pad, heads=2) {
    c = attention(in, memory, heads=heads, mask=pad)
    return add(in, c) -> layernorm
}
block outer(memory, pad) {
    h = in -> cross(memory, pad)
    return h -> cross(memory, pad=pad, heads=1)
}
block mix(other) {
    return add(in, other)
}
block self_mix() {
    return in -> dense(4) -> mix(in)
}
block act_or_value(act) {
    return in -> act
}
"""


def test_block_value_parameters_read_the_callers_values():
    n = net("input x: [3, 8]\ninput m: [5, 8]\ninput pad: int64[5]\nmem = m -> dense(8)\n"
            "y = x -> cross(mem, pad) * 3\noutput y", VALUE_BLOCKS)
    attentions = [x for x in n.nodes if x.op == "attention"]
    assert [a.inputs for a in attentions] == [("x", "mem.dense", "pad"), ("y.0.layernorm", "mem.dense", "pad"),
                                              ("y.1.layernorm", "mem.dense", "pad")]  # every copy: the same values
    assert [(i.path, i.values, i.args) for i in n.instances] == [
        (f"y.{k}.", {"memory": "mem.dense", "pad": "pad"}, {"heads": 2}) for k in range(3)]
    assert all(a.exprs == {"heads": "heads"} for a in attentions)  # a value is no parameter expression


def test_block_value_parameters_pass_on_to_inner_blocks_and_in_is_a_value():
    n = net("input x: [3, 8]\ninput m: [5, 8]\ninput pad: int64[5]\ny = x -> outer(m, pad)\noutput y", VALUE_BLOCKS)
    assert [(i.path, i.values) for i in n.instances] == [
        ("y.0.", {"memory": "m", "pad": "pad"}), ("y.0.h.0.", {"memory": "m", "pad": "pad"}),
        ("y.0.0.", {"memory": "m", "pad": "pad"})]
    assert n.instances[2].args == {"heads": 1}
    n = net("input x: [4]\ny = x -> self_mix\noutput y", VALUE_BLOCKS)
    assert n.instances[1].values == {"other": "x"} and n.node("y.0.0.add").inputs == ("y.0.dense", "x")


def test_a_value_name_passes_the_value_and_a_call_passes_the_op():
    with pytest.raises(SpecError, match="block parameter 'act' holds the value 'relu', not an op"):
        net("input x: [4]\nrelu = x -> dense(4)\ny = x -> act_or_value(relu)\noutput y", VALUE_BLOCKS)
    n = net("input x: [4]\nrelu = x -> dense(4)\ny = x -> act_or_value(relu())\noutput y", VALUE_BLOCKS)
    assert [x.op for x in n.nodes if x.name.startswith("y.")] == ["relu"]
    n = net("input x: [4]\ny = x -> act_or_value(relu)\noutput y", VALUE_BLOCKS)  # no such value: the op
    assert [x.op for x in n.nodes] == ["relu"] and n.instances[0].values == {}


@pytest.mark.parametrize(("body", "message"), [
    ("y = x -> mix(3)", "block parameter 'other' is read as a value, but this use of block mix gives it 3"),
    ("y = x -> mix(xx)", "gives it xx, which names no value where the block is used; did you mean 'x'"),
    ("y = x -> mix(other=(x, x))", r"gives it \(x, x\)"),
    ("y = x -> mix(in)", "'in' is the input of a block"),
])
def test_block_value_parameter_misuse_is_located(body, message):
    with pytest.raises(SpecError, match=message):
        net(f"input x: [4]\n{body}\noutput y", VALUE_BLOCKS)


def test_block_value_parameters_are_not_constants_steps_or_defaults():
    with pytest.raises(SpecError, match="dense argument 'units' takes a constant; received: a block parameter "
                                        "holding the value 'x'"):
        net("input x: [4]\ny = x -> b(x)\noutput y", "block b(m) { return in -> dense(m) }")
    with pytest.raises(SpecError, match="conv1d argument 'kernel' takes a constant"):
        net("input x: [3, 8]\ny = x -> b(x)\noutput y", "block b(m) { return in -> conv1d(4, kernel=(m,)) }")
    with pytest.raises(SpecError, match="the default of parameter 'o' reads the value 'x'; a default is a constant"):
        net("input x: [4]\ny = x -> b(x)\noutput y", "block b(m, o=m) { return add(in, o) }")
    with pytest.raises(SpecError, match="'m' took its default; a default is a constant"):
        net("input x: [4]\ny = x -> b\noutput y", "block b(m=x) { return add(in, m) }")
    with pytest.raises(SpecError, match="E202"):  # a value parameter is a value of the block: not rebound
        net("input x: [4]\ny = x -> b(x)\noutput y", "block b(m) {\n  m = in -> relu\n  return m\n}")


def test_a_block_passed_as_a_parameter_carries_its_value_arguments():
    n = net("input x: [4]\ninput o: [4]\ny = x -> w(mix(o))\noutput y",
            VALUE_BLOCKS + "block w(unit) { return in -> dense(4) -> unit }")
    assert [(i.path, i.values) for i in n.instances] == [("y.0.", {}), ("y.0.0.", {"other": "o"})]
    assert n.node("y.0.0.add").inputs == ("y.0.dense", "o")


def test_block_value_parameter_as_initial_state():
    n = net("input x: [5, 3]\ninput h: [4]\ninput c: [4]\ny = x -> b(h, c)\noutput y",
            "block b(h0, c0) { return in -> lstm(4, initial_state=[h0, c0]) }")
    assert n.node("y.0.lstm").inputs == ("x", "h", "c")


def test_nested_merges_and_in_as_argument():
    n = net("input x: [4]\ninput y: [4]\nz = add(multiply(x, y), x, maximum(x, y))\noutput z")
    assert [x.op for x in n.nodes] == ["multiply", "maximum", "add"]
    assert node(n, "z.add").inputs == ("z.multiply", "x", "z.maximum")


def test_merge_shapes():
    n = net("input a: [2, 3]\ninput b: [1, 3]\ns = add(a, b)\nc = concat(a, a, axis=-1)\n"
            "d = dot(a, a, axes=1)\ne = dot(s, s, axes=(0, 0))\noutput s, c, d, e")
    assert node(n, "s.add").type.shape == (2, 3)
    assert node(n, "c.concat").type.shape == (2, 6) and node(n, "c.concat").attrs["axis"] == 1
    assert node(n, "d.dot").type.shape == (2, 2)
    assert node(n, "e.dot").type.shape == (3, 3)
    n = net("input a: [5]\nd = dot(a, a, axes=0, normalize=true)\noutput d")
    assert node(n, "d.dot").type.shape == (1,)


def test_loss_terms_and_weights():
    n = net("input x: [4]\ntarget t: [4]\ny = x -> dense(4)\noutput y\n"
            "loss mse(y, t) - 0.5 * mae(y, t) + huber(y, t, delta=2.0) / 4")
    assert [(t.fn, t.weight) for t in n.loss] == [("mse", 1.0), ("mae", -0.5), ("huber", 0.25)]
    assert n.loss[2].attrs["delta"] == 2.0


def test_inputs_may_be_loss_targets_but_targets_not_model_inputs():
    n = net("input x: [4]\ny = x -> dense(4)\noutput y\nloss mse(y, x)")
    assert n.loss[0].args == ("y.dense", "x")
    with pytest.raises(SpecError, match="'t' is a target"):
        net("input x: [4]\ntarget t: [4]\ny = t -> dense(4)\noutput y")


def test_sparse_crossentropy_target_shapes():
    net("input x: [4]\ntarget t: int64[]\ny = x -> dense(3)\noutput y\n"
        "loss sparse_categorical_crossentropy(y, t, from_logits=true)")
    net("input x: [3, 8, 8]\ntarget t: int64[8, 8]\ny = x -> conv2d(5, 1)\noutput y\n"
        "loss sparse_categorical_crossentropy(y, t, axis=0)")
    with pytest.raises(SpecError, match="needs a target of shape"):
        net("input x: [4]\ntarget t: int64[2]\ny = x -> dense(3)\noutput y\n"
            "loss sparse_categorical_crossentropy(y, t)")


def test_optimizer_defaults_are_filled():
    n = net("input x: [4]\ny = x -> dense(4)\noutput y\noptimizer adam(lr=0.01)")
    controls = {"clipnorm": 0.0, "clipvalue": 0.0, "global_clipnorm": 0.0, "schedule": "constant",
                "decay_steps": 1000, "decay_rate": 0.5, "alpha": 0.0, "warmup": 0}
    assert n.optimizer.attrs == {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "amsgrad": False,
                                 "weight_decay": 0.0, **controls}


def test_dynamic_dims():
    n = net("input x: int64[T]\n"
            "y = x -> embedding(100, 8) -> permute(1, 0) -> conv1d(4, 3, padding=same) -> permute(1, 0) -> lstm(2)\n"
            "output y")
    assert node(n, "y.embedding").type.shape == ("T", 8)
    assert node(n, "y.conv1d").type.shape == (4, "T")
    with pytest.raises(SpecError, match=r"permute\(1, 0\)"):
        net("input x: [T, 8]\ny = x -> conv1d(4, 3)\noutput y")
    with pytest.raises(SpecError, match="E404"):
        net("input x: [T, 4]\ny = x -> flatten\noutput y")


def test_independent_errors_are_all_reported_once():
    with pytest.raises(SpecError) as info:
        net("input x: [3, 4, 4]\na = x -> conv2d(8, 5) -> relu -> dense(3)\n"
            "b = x -> dense(4, activaton=relu)\nc = q -> relu\nd = a -> relu\noutput a, b, c, d")
    codes = [d.code for d in info.value.diagnostics]
    assert codes == ["E401", "E303", "E201"]


def test_float_expected_everywhere_but_embedding():
    with pytest.raises(SpecError, match="dense expects a float input; received: int64"):
        net("input x: int64[4]\ny = x -> dense(2)\noutput y")
    with pytest.raises(SpecError, match="embedding expects integer ids"):
        net("input x: [4]\ny = x -> embedding(10, 2)\noutput y")


def test_activation_argument_is_normalised():
    n = net("input x: [4]\ny = x -> dense(2, activation=leaky_relu(0.2)) -> dense(2, activation=softmax)\n"
            "output y")
    assert node(n, "y.dense").attrs["activation"] == {"name": "leaky_relu", "alpha": 0.2}
    assert node(n, "y.dense_1").attrs["activation"] == {"name": "softmax", "axis": 0}


def test_ir_is_frozen():
    n = net("input x: [4]\ny = x -> dense(2)\noutput y")
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        n.nodes[0].op = "conv2d"


def test_dtype_policy():
    with pytest.raises(SpecError, match="dtype 'float16' is not supported"):
        net("input x: float16[4]\ny = x -> dense(2)\noutput y")
    with pytest.raises(SpecError, match="add expects a float input"):
        net("input a: int64[4]\ny = add(a, a)\noutput y")
    with pytest.raises(SpecError, match="concat needs inputs of one dtype"):
        net("input a: int64[4]\ninput b: int32[4]\ny = concat(a, b)\noutput y")
    n = net("input a: int64[2, 3]\ninput b: int64[2, 3]\n"
            "y = concat(a, b, axis=-1) -> flatten -> reshape([3, 4]) -> permute(1, 0) -> embedding(10, 2)\noutput y")
    assert node(n, "y.concat").type.dtype == "int64" and node(n, "y.permute").type.dtype == "int64"
    assert node(n, "y.embedding").type.shape == (4, 3, 2)


def test_layer_declaration_without_arguments():
    n = net("input x: [3, 4, 4]\nlayer bn = batchnorm\ny = x -> bn -> bn\noutput y")
    assert [u.layer for u in n.nodes] == ["bn", "bn"]


def test_ceil_mode_on_run_time_sizes():
    n = net("input x: [2, T]\na = x -> maxpool1d(2, ceil_mode=true)\nb = x -> maxpool1d(2)\noutput a, b")
    assert node(n, "a.maxpool1d").type.shape == (2, "ceil((T-2)/2)+1")
    assert node(n, "b.maxpool1d").type.shape == (2, "(T-2)//2+1")
