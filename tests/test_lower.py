"""The lowering stage (netspec/lower.py): each pass on small specs, framework-free."""

import math

import netspec
from netspec import lower


def _net(body: str):
    text = "network N {\n" + "\n".join("    " + line.strip() for line in body.strip().splitlines()) + "\n}\n"
    return netspec.parse_text(text).network()


def _at(net, value: str, op: str | None = None):
    """The node computing the value ``value`` (``a = x -> conv2d(...)`` is node ``a.conv2d``), or its op node."""
    for n in net.nodes:
        if n.name.split(".")[0] == value and (op is None or n.op == op):
            return n
    raise KeyError(value)


def test_ceil_extra_records_the_end_padding_ceil_mode_adds():
    net = lower.ceil_extra(_net("""
        input x: [2, 6, 5]
        a = x -> maxpool2d(3, stride=2, ceil_mode=true)
        b = x -> maxpool2d(2)
        output a, b
    """))
    a, b = _at(net, "a"), _at(net, "b")
    # height 6: ceil((6-3)/2)+1 = 3 windows reach (3-1)*2+3 = 7: one past the end; width 5: 2 windows fit
    assert a.attrs["extra"] == (1, 0)
    assert b.attrs["extra"] == (0, 0)


def test_ceil_extra_is_unknown_on_a_run_time_axis():
    net = lower.ceil_extra(_net("""
        input x: [2, T]
        y = x -> maxpool1d(2, ceil_mode=true)
        output y
    """))
    assert _at(net, "y").attrs["extra"] == (None,)


def test_same_intent_keeps_the_pads_beside_it():
    net = lower.same_intent(_net("""
        input x: [3, 8, 8]
        a = x -> conv2d(4, 3, stride=2, padding=same)
        b = x -> conv2d(4, 3, padding=((1, 0), (1, 1)))
        c = x -> avgpool2d(2, stride=2, padding=same, count_include_pad=true)
        output a, b, c
    """))
    a, b, c = _at(net, "a"), _at(net, "b"), _at(net, "c")
    assert a.attrs["same"] is True and a.attrs["padding"] == ((0, 1), (0, 1))
    assert b.attrs["same"] is False
    assert c.attrs["same"] is False  # a native 'same' average would not count the padding


def test_same_intent_of_a_shared_layer_holds_at_every_use():
    net = lower.same_intent(_net("""
        input x: [3, 8, 8]
        input y: [3, 9, 9]
        layer c = conv2d(4, 2, stride=2, padding=same)
        a = x -> c
        b = y -> c
        output a, b
    """))
    # 8 -> pads (0, 0) by TF's rule; 9 -> (0, 1): both 'same', but one layer object: same everywhere
    assert {n.attrs["same"] for n in net.nodes if n.op == "conv2d"} == {True}


def test_pad_nodes_for_a_valid_or_same_backend():
    net = lower.lower(_net("""
        input x: [3, 8, 8]
        a = x -> conv2d(4, 3, padding=((1, 0), (2, 1)))
        b = x -> conv2d(4, 3, padding=same)
        c = x -> maxpool2d(3, stride=2, ceil_mode=true)
        output a, b, c
    """), [lower.ceil_extra, lower.same_intent, lower.pads("not_same")])
    pad_a, conv_a = _at(net, "a", "pad"), _at(net, "a", "conv2d")
    assert pad_a.name == conv_a.name + ".pad"
    assert pad_a.attrs == {"padding": ((1, 0), (2, 1)), "value": 0.0}
    assert pad_a.type.shape == (3, 9, 11)
    assert conv_a.inputs == (pad_a.name,) and conv_a.attrs["padding"] == ((0, 0), (0, 0))
    assert [n.op for n in net.nodes if n.name.startswith("b.")] == ["conv2d"]  # 'same' stays native
    pad_c = _at(net, "c", "pad")
    assert pad_c.attrs["value"] == -math.inf  # padding never wins a max
    assert pad_c.attrs["padding"] == ((0, 1), (0, 1))  # the ceil-mode extra folded in
    c = _at(net, "c", "maxpool2d")
    assert c.attrs["ceil_mode"] is False and c.attrs["extra"] == (0, 0)
    assert c.type.shape == (3, 4, 4)


def test_pad_nodes_for_a_symmetric_backend_move_only_asymmetric_pads():
    net = lower.lower(_net("""
        input x: [3, 8, 8]
        a = x -> conv2d(4, 3, padding=1)
        b = x -> conv2d(4, 3, padding=((1, 0), (1, 1)))
        output a, b
    """), [lower.same_intent, lower.pads("asymmetric")])
    assert [n.op for n in net.nodes] == ["conv2d", "pad", "conv2d"]
    assert net.nodes[1].name == net.nodes[2].name + ".pad"


def test_unfuse_activations_rewires_readers_outputs_and_loss():
    src = _net("""
        input x: [4]
        target t: [3]
        h = x -> dense(5, activation=leaky_relu(0.2)) -> dense(3, activation=relu)
        output h
        loss mse(h, t)
    """)
    net = lower.unfuse_activations(src, lambda node, act: act["name"] == "relu")
    ops = [(n.name, n.op) for n in net.nodes]
    first = src.nodes[0].name
    assert ops[1] == (f"{first}.leaky_relu", "leaky_relu")
    assert net.nodes[1].attrs == {"alpha": 0.2}
    assert net.nodes[0].attrs["activation"] is None
    assert net.nodes[2].inputs == (f"{first}.leaky_relu",)
    assert net.nodes[2].attrs["activation"]["name"] == "relu"  # fusable: kept
    assert net.outputs == src.outputs and net.output_names == src.output_names


def test_unfuse_renames_an_output_and_keeps_its_public_name():
    src = _net("""
        input x: [4]
        target t: [3]
        h = x -> dense(3, activation=softmax)
        output h
        loss categorical_crossentropy(h, t)
    """)
    net = lower.unfuse_activations(src, lambda node, act: False)
    last = net.nodes[-1]
    assert last.op == "softmax" and last.attrs == {"axis": 0}
    assert net.outputs == (last.name,)
    assert net.output_names == src.output_names
    assert net.loss[0].args == (last.name, "t")


def test_lowering_never_changes_the_ir():
    src = _net("""
        input x: [3, 8, 8]
        a = x -> conv2d(4, 3, padding=((1, 0), (2, 1)), activation=elu(0.5))
        output a
    """)
    before = src.model_dump()
    lower.lower(src, [lower.ceil_extra, lower.same_intent, lower.pads("not_same"),
                      lower.unfuse(lambda n, a: False)])
    assert src.model_dump() == before


def test_same_intent_is_one_decision_per_block_line_at_every_nesting_level():
    text = """
    block unit(width, stride=1) {
        return in -> conv2d(width, 3, stride=stride, padding=1) -> relu
    }
    block stage(width) {
        return in -> unit(width, stride=2) -> unit(width) * 2
    }
    network N {
        input x: [3, 15, 15]
        y = x -> stage(8) -> stage(16)
        output y
    }
    """
    net = netspec.parse_text(text).network()
    convs = [n for n in lower.same_intent(net).nodes if n.op == "conv2d"]
    # stride 1 with padding 1 is TensorFlow's 'same', stride 2 on 15 is not: every `unit` conv, in
    # every stage, takes one form (explicit padding), so `unit` can be written once
    assert len(convs) == 6 and {n.attrs["same"] for n in convs} == {False}
    keys = lower.template_keys(net)
    assert keys[convs[1].name] == [("stage", "1.conv2d"), ("unit", "conv2d")]
