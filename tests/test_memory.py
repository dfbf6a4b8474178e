"""`netspec check --training` and `--dim`: receptive fields, bound dimensions, training memory."""

import importlib.util
import json

import pytest
from conftest import ROOT

import netspec
from netspec.cli import main
from netspec.report import (
    ReceptiveField,
    bind_dims,
    eval_dim,
    optimizer_slots,
    receptive_fields,
    rf_input,
    rf_merge,
    rf_pad,
    rf_window,
    training_memory,
)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---- receptive-field arithmetic, against hand-computed values ------------------------------

def test_rf_window_by_hand():
    x = rf_input(2)
    assert x == ReceptiveField((1, 1), (1, 1), (0.0, 0.0))
    # 7x7 stride 2 pad 3: size 1 + 6 = 7, jump 2, start 0 + (3 - 3) = 0
    a = rf_window(x, (7, 7), (2, 2), (3, 3), (1, 1))
    assert a == ReceptiveField((7, 7), (2, 2), (0.0, 0.0))
    # then 3x3 stride 2 pad 1 pooling: size 7 + 2 * 2 = 11, jump 4, start 0 + (1 - 1) * 2 = 0
    b = rf_window(a, (3, 3), (2, 2), (1, 1), (1, 1))
    assert b == ReceptiveField((11, 11), (4, 4), (0.0, 0.0))
    # 2x2 stride 2 without padding: the first unit covers pixels 0 and 1, centred at 0.5
    assert rf_window(x, (2,), (2,), (0,), (1,)) == ReceptiveField((2,), (2,), (0.5,))
    # dilation 2 of a 3-tap kernel spans 5 pixels: size 5, start 0 + (2 - 0) = 2
    assert rf_window(x, (3, 3), (1, 1), (0, 0), (2, 2)) == ReceptiveField((5, 5), (1, 1), (2.0, 2.0))
    # different axes
    c = rf_window(x, (5, 1), (1, 1), (2, 0), (1, 1))
    assert c.size == (5, 1) and c.start == (0.0, 0.0) and c.text() == "5×1/1/0"


def test_rf_pad_and_merge_by_hand():
    a = ReceptiveField((3,), (2,), (0.5,))
    assert rf_pad(a, (1,)) == ReceptiveField((3,), (2,), (-1.5,))
    b = ReceptiveField((7,), (2,), (0.0,))
    assert rf_merge([a, b]) == ReceptiveField((7,), (2,), (0.0,))


def test_receptive_fields_of_specs():
    lenet = receptive_fields(netspec.load(ROOT / "specs/lenet5.net").network())
    # conv 5 pad 2 -> 5/1/0; pool 2/2 -> 6/2/0.5; conv 5 -> 6 + 4*2 = 14/2/0.5 + 2*2 = 4.5; pool -> 16/4/5.5
    assert [lenet[n].text() for n in ("features.conv2d", "features.maxpool2d", "features.conv2d_1",
                                      "features.maxpool2d_1")] == ["5/1/0", "6/2/0.5", "14/2/4.5", "16/4/5.5"]
    assert "logits.flatten" not in lenet and "logits.dense" not in lenet
    resnet = receptive_fields(netspec.load(ROOT / "specs/resnet50.net").network())
    # torchvision's ResNet-50: the last feature map sees 427 x 427 pixels, 32 apart
    last = resnet["features.15.relu"]
    assert last.size == (427, 427) and last.jump == (32, 32)
    assert "logits.global_avgpool2d" not in resnet
    assert receptive_fields(netspec.load(ROOT / "specs/mlp.net").network()) == {}


# ---- run-time dimensions ---------------------------------------------------------------------

def test_eval_dim():
    assert eval_dim(7, {}) == 7
    assert eval_dim("T", {"T": 128}) == 128
    assert eval_dim("(T-3)//2+1", {"T": 11}) == 5
    assert eval_dim("ceil((T-2)/2)+1", {"T": 11}) == 6
    assert eval_dim("T+2", {"S": 1}) == "T+2"  # unbound: unchanged


def test_bind_dims_redoes_shapes_and_macs():
    net = netspec.load(ROOT / "specs/lstm_stack.net").network()
    bound = bind_dims(net, {"T": 128})
    assert all(n.type.is_static for n in bound.nodes)
    lstm = [n for n in bound.nodes if n.op == "lstm"]
    one = [n for n in net.nodes if n.op == "lstm"]
    assert lstm[0].type.shape == (128, 32)
    assert lstm[0].macs == 128 * one[0].macs  # counted with T = 1 before
    with pytest.raises(ValueError, match="no run-time dimension 'S'.*T"):
        bind_dims(net, {"S": 3})
    with pytest.raises(ValueError, match="at least 1"):
        bind_dims(net, {"T": 0})


# ---- training memory -------------------------------------------------------------------------

def test_optimizer_slots():
    from netspec import ir

    def opt(name, **attrs):
        return ir.Optimizer(name=name, attrs=attrs)

    assert optimizer_slots(None) == []
    assert optimizer_slots(opt("sgd", momentum=0.0)) == []
    assert optimizer_slots(opt("sgd", momentum=0.9)) == ["momentum_buffer"]
    assert optimizer_slots(opt("adam", amsgrad=False)) == ["exp_avg", "exp_avg_sq"]
    assert len(optimizer_slots(opt("adamw", amsgrad=True))) == 3
    assert optimizer_slots(opt("rmsprop", momentum=0.9, centered=True)) == ["square_avg", "momentum_buffer",
                                                                            "grad_avg"]
    assert optimizer_slots(opt("adagrad")) == ["sum"]
    assert optimizer_slots(opt("adadelta")) == ["square_avg", "acc_delta"]


SMALL = """network Small {
    input x: [8]
    target t: [2]
    y = x -> dense(4, activation=relu) -> dropout(0.5) -> dense(2)
    output y
    loss mse(y, t)
    optimizer adam(lr=0.001)
}
"""


def test_training_memory_by_hand():
    m = training_memory(netspec.parse_text(SMALL, "small.net").network(), batch=10)
    params = (8 * 4 + 4) + (4 * 2 + 2)
    assert m.weights == m.gradients == 4 * params
    assert m.optimizer_state == 2 * 4 * params and m.slots == ("exp_avg", "exp_avg_sq")
    assert m.inputs_per_sample == 4 * (8 + 2)
    # kept: relu output (4 floats; the dense's input x is the batch itself), the dropout mask (4 bytes),
    # the dropout output (the last dense's input, 4 floats), and what the loss keeps (the output, 2 floats)
    assert m.activations_per_sample == 16 + 4 + 16 + 8
    assert m.workspace_per_sample == 16
    assert m.peak == 4 * 4 * params + 10 * (40 + 44 + 16)


def test_check_training_cli(capsys, in_root):
    code, out, err = run(capsys, "check", "specs/resnet50.net", "--training", "--batch", "32", "--optimizer-state")
    assert code == 0, err
    assert "training memory (float32)" in out and "batch 32" in out
    assert "optimizer state (sgd: 1 slot)" in out and "momentum_buffer" in out
    assert "peak estimate" in out and "assumes" in out
    assert "RF size/jump/start" in out
    code, out, _ = run(capsys, "check", "specs/resnet50.net", "--training", "--batch", "32", "--format", "json")
    data = json.loads(out)["networks"][0]
    t = data["training"]
    assert t["batch"] == 32 and t["optimizer"] == "sgd" and t["optimizer_slots"] == ["momentum_buffer"]
    assert t["weights"] == 4 * 25_610_152 and t["gradients"] == 4 * 25_557_032
    assert t["peak"] == t["weights"] + t["gradients"] + t["optimizer_state"] + 32 * t["per_sample"]["total"]
    layers = {row["name"]: row for row in data["layers"]}
    assert layers["features.15.relu"]["receptive_field"] == {"size": [427, 427], "jump": [32, 32], "start": [0, 0]}
    assert "receptive_field" not in layers["logits.dense"]


def test_check_dim_cli(capsys, in_root):
    code, out, _ = run(capsys, "check", "specs/lstm_stack.net", "--dim", "T=128")
    assert code == 0
    assert "[128, 32]" in out and "run-time dimensions:  T=128" in out
    assert "counted as 1" not in out
    code, out, _ = run(capsys, "check", "specs/lstm_stack.net", "--dim", "T=128", "--format", "json")
    assert json.loads(out)["networks"][0]["dims"] == {"T": 128}
    # several files: each binds the names it uses
    code, out, _ = run(capsys, "check", "specs/lstm_stack.net", "specs/mlp.net", "--dim", "T=128")
    assert code == 0 and out.count("run-time dimensions:  T=128") == 1
    for args, message in [
        (("specs/lstm_stack.net", "--dim", "S=3"), "no run-time dimension 'S'"),
        (("specs/lstm_stack.net", "--dim", "T"), "NAME=SIZE"),
        (("specs/lstm_stack.net", "--dim", "T=0"), "at least 1"),
        (("specs/mlp.net", "--batch", "4"), "--batch applies to --training only"),
        (("specs/mlp.net", "--optimizer-state"), "--optimizer-state applies to --training only"),
        (("specs/mlp.net", "--training", "--batch", "0"), "--batch must be at least 1"),
    ]:
        code, _, err = run(capsys, "check", *args)
        assert code == 2 and message in err, (args, err)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the torch extra")
@pytest.mark.parametrize("spec,batch", [("specs/siamese.net", 64), ("specs/unet.net", 16)])
def test_estimate_within_20_percent_of_measured_pytorch_peak(spec, batch):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from training_memory import measure

    result = measure(spec, batch)
    assert abs(result["error"]) <= 0.20, result
