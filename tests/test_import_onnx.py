"""netspec import: ONNX -> spec + canonical weights, proven by running both in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import ROOT
from onnx import TensorProto, helper, numpy_helper

import netspec
from netspec.cli import main
from netspec.importers.onnx import ConversionError, import_onnx

RNG = np.random.default_rng(0)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds.values())))


def _feeds(model: onnx.ModelProto, batch: int = 2) -> dict[str, np.ndarray]:
    out = {}
    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        shape = [batch if k == 0 else (d.dim_value or 5) for k, d in enumerate(t.shape.dim)]
        if t.elem_type == TensorProto.FLOAT:
            out[vi.name] = RNG.standard_normal(shape).astype(np.float32)
        else:
            out[vi.name] = RNG.integers(0, 3, shape).astype(np.int64 if t.elem_type == TensorProto.INT64 else np.int32)
    return out


def _float_initialiser_count(model: onnx.ModelProto, exclude=()) -> int:
    """Values the initialisers hold; an LSTM's or RNN's B holds two bias vectors where a spec has one sum."""
    summed = {n.input[3] for n in model.graph.node if n.op_type in ("LSTM", "RNN") and len(n.input) > 3}
    return sum(int(np.prod(t.dims)) // (2 if t.name in summed else 1) for t in model.graph.initializer
               if t.data_type == TensorProto.FLOAT and t.name not in exclude)


def _assert_same_function(original: onnx.ModelProto, tol: float = 1e-5, batches=(1, 3), not_weights=()):
    imported = import_onnx(original)
    spec = netspec.parse_text(imported.text, f"{imported.network}.net")
    trainable, non = spec.network().param_counts()
    assert trainable + non == _float_initialiser_count(original, exclude=not_weights)
    again = spec.to_onnx(imported.weights, keep_bn=True)
    for batch in batches:
        feeds = _feeds(original, batch)
        for want, got in zip(_run(original, feeds), _run(again, feeds)):
            assert want.shape == got.shape
            assert np.max(np.abs(want - got)) <= tol * max(1.0, float(np.max(np.abs(want))))
    return imported, spec


SPECS = ["lenet5", "convnet", "unet", "vgg16", "autoencoder", "recommender", "siamese", "mlp", "vae",
         "conv_example", "tiny_mlp", "bigru_classifier", "lstm_stack"]


@pytest.mark.parametrize("name", SPECS)
def test_netspec_exports_round_trip(name):
    spec = netspec.load(ROOT / "specs" / f"{name}.net")
    original = spec.to_onnx(netspec.init_weights(spec, seed=3), keep_bn=True)
    imported, again = _assert_same_function(original)
    assert again.network().param_counts() == spec.network().param_counts()


@pytest.mark.slow
def test_resnet50_export_round_trip_reads_as_chains():
    spec = netspec.load(ROOT / "specs" / "resnet50.net")
    original = spec.to_onnx(netspec.init_weights(spec, seed=1), keep_bn=True)
    imported, again = _assert_same_function(original, batches=(1,))
    assert again.network().param_counts() == (25_557_032, 53_120)
    assert "-> batchnorm(eps=1e-05, momentum=0.9) -> relu" in " ".join(imported.text.split())
    assert "add(" in imported.text


def test_folded_batchnorm_export_round_trip():
    spec = netspec.load(ROOT / "specs" / "convnet.net")
    original = spec.to_onnx(netspec.init_weights(spec, seed=2))  # BatchNorm folded into the convolutions
    imported, again = _assert_same_function(original)
    assert "batchnorm" not in imported.text


# hand-built graphs for the edge cases ----------------------------------------------------------------

def _model(nodes, inputs, outputs, inits, opset=18):
    graph = helper.make_graph(nodes, "edge", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_asymmetric_pads_grouped_conv_ceil_pool_and_pad_fold():
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Conv", ["p", "w1", "b1"], ["c1"], kernel_shape=[3, 3], group=2, pads=[0, 1, 1, 0]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["m1"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("Conv", ["m1", "w2"], ["c2"], kernel_shape=[3, 3], group=6, pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["c2"], ["a1"], kernel_shape=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["a1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["y"], transB=1),
    ]
    inits = {"pads": np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "w1": _w(6, 2, 3, 3), "b1": _w(6),
             "w2": _w(12, 1, 3, 3), "wd": _w(5, 12), "bd": _w(5)}
    model = _model(nodes, [_vi("x", ["N", 4, 11, 10])], [_vi("y", ["N", 5])], inits)
    imported, spec = _assert_same_function(model)
    text = " ".join(imported.text.split())  # line breaks are layout, not meaning
    assert "conv2d(6, 3, padding=1, groups=2)" in text  # Pad folded: begins (1+0, 0+1), ends (0+1, 1+0)
    assert "ceil_mode=true" in text and "depthwise_conv2d(3, padding=1, depth_multiplier=2, use_bias=false)" in text
    assert "count_include_pad=true" in text and "global_avgpool2d -> dense(5)" in text
    assert "zeropad" not in text


def test_matmul_add_is_dense_and_merges_are_named():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Mul", ["t", "s"], ["g"]),
        helper.make_node("Concat", ["g", "h"], ["c"], axis=-1),
        helper.make_node("Softmax", ["c"], ["y"], axis=-1),
    ]
    model = _model(nodes, [_vi("x", ["N", 7])], [_vi("y", ["N", 12])], {"w": _w(7, 6), "b": _w(6)})
    imported, _ = _assert_same_function(model)
    assert "dense(6)" in imported.text and "multiply(" in imported.text and "concat(" in imported.text
    assert "h = x -> dense(6)" in imported.text  # MatMul + Add: one layer, named by the Add's output
    assert imported.text.count(" = ") == 5  # h (read twice), t and s (merged), g (concatenated), y


def test_resize_transpose_reshape_and_embedding():
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"]),          # [N, 6, 4]
        helper.make_node("Transpose", ["e"], ["et"], perm=[0, 2, 1]),  # [N, 4, 6]
        helper.make_node("Reshape", ["et", "shape"], ["r"]),           # [N, 4, 2, 3]
        helper.make_node("Resize", ["r", "", "scales"], ["u"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Flatten", ["u"], ["y"], axis=1),
    ]
    inits = {"table": _w(10, 4), "shape": np.array([0, 4, 2, 3], np.int64),
             "scales": np.array([1, 1, 2, 2], np.float32)}
    model = _model(nodes, [_vi("ids", ["N", 6], TensorProto.INT64)], [_vi("y", ["N", 96])], inits)
    imported, _ = _assert_same_function(model, not_weights=("scales",))
    text = " ".join(imported.text.split())
    assert "embedding(10, 4) -> permute((1, 0)) -> reshape((4, 2, 3)) -> upsample2d(2) -> flatten" in text


# torch.onnx.export of hand-written models ------------------------------------------------------------

torch = pytest.importorskip("torch")


def _torch_onnx(module, example, tmp_path, dynamic=True):
    import warnings

    path = tmp_path / "m.onnx"
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}} if dynamic else None, opset_version=17)
    return onnx.load(str(path))


def _randomise_bn(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()


class _Bottleneck(torch.nn.Module):
    def __init__(self, cin, width, stride=1):
        super().__init__()
        nn = torch.nn
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != width * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(width * 4))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


def _resnet(layers=(1, 1), widths=(8, 16), classes=10):
    nn = torch.nn
    blocks, cin = [], 16
    for i, (n, w) in enumerate(zip(layers, widths)):
        for k in range(n):
            blocks.append(_Bottleneck(cin, w, 2 if (k == 0 and i > 0) else 1))
            cin = w * 4
    return nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def test_torch_resnet_form(tmp_path):
    torch.manual_seed(0)
    model = _resnet()
    _randomise_bn(model)
    original = _torch_onnx(model, torch.randn(1, 3, 64, 64), tmp_path)
    imported, spec = _assert_same_function(original, tol=1e-4)
    assert spec.network().nodes[-1].op == "dense"


@pytest.mark.slow
def test_torch_resnet50_form(tmp_path):
    torch.manual_seed(0)
    model = _resnet(layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), classes=1000)
    model[0] = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    model[1] = torch.nn.BatchNorm2d(64)
    # channel counts of the hand-written form: 16 -> 64 in the stem
    blocks, cin = [], 64
    for i, (n, w) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for k in range(n):
            blocks.append(_Bottleneck(cin, w, 2 if (k == 0 and i > 0) else 1))
            cin = w * 4
    model = torch.nn.Sequential(*list(model)[:4], *blocks, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(2048, 1000))
    _randomise_bn(model)
    original = _torch_onnx(model, torch.randn(1, 3, 224, 224), tmp_path)
    imported, spec = _assert_same_function(original, tol=1e-4, batches=(1,))
    assert sum(spec.network().param_counts()) == _float_initialiser_count(original)


def test_torch_vgg_and_unet_forms(tmp_path):
    nn = torch.nn
    torch.manual_seed(1)
    vgg = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))
    _assert_same_function(_torch_onnx(vgg, torch.randn(1, 3, 32, 32), tmp_path), tol=1e-4)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.pool = nn.MaxPool2d(2)
            self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
            self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
            self.out = nn.Conv2d(16, 2, 1)

        def forward(self, x):
            d = self.down(x)
            u = self.up(self.mid(self.pool(d)))
            return torch.sigmoid(self.out(torch.cat([u, d], dim=1)))

    unet = UNet()
    _randomise_bn(unet)
    imported, _ = _assert_same_function(_torch_onnx(unet, torch.randn(1, 1, 16, 16), tmp_path), tol=1e-4)
    assert "concat(" in imported.text and "conv_transpose2d(8, 2, stride=2)" in imported.text


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_recurrent_taggers(tmp_path, cell, bidirectional):
    nn = torch.nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.rnn = getattr(nn, cell)(8, 16, batch_first=True, bidirectional=bidirectional)
            self.out = nn.Linear(32 if bidirectional else 16, 5)

        def forward(self, x):
            h, _ = self.rnn(self.emb(x))
            return self.out(h)

    torch.manual_seed(2)
    model = Tagger().eval()
    path = tmp_path / "tagger.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randint(0, 20, (1, 7)),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N", 1: "T"}, "y": {0: "N", 1: "T"}},
                          opset_version=17)
    original = onnx.load(str(path))
    imported = import_onnx(original)
    kind = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}[cell]
    assert f"{kind}(16, return_sequences=true)" in imported.text
    spec = netspec.parse_text(imported.text, "tagger.net")
    ids = RNG.integers(0, 20, (3, 9)).astype(np.int64)
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    (from_onnx,) = _run(spec.to_onnx(imported.weights), {"x": ids})
    got = spec.to_torch(weights=imported.weights).eval()(torch.from_numpy(ids)).detach().numpy()
    assert np.max(np.abs(from_onnx - want)) <= 1e-5 and np.max(np.abs(got - want)) <= 1e-5


def test_imported_spec_builds_in_torch_and_keras_like_the_original():
    pytest.importorskip("keras")
    spec = netspec.load(ROOT / "specs" / "lenet5.net")
    original = spec.to_onnx(netspec.init_weights(spec, seed=5))
    imported = import_onnx(original)
    again = netspec.parse_text(imported.text, "x.net")
    x = RNG.standard_normal((2, 1, 28, 28)).astype(np.float32)
    (want,) = _run(original, {"x": x})
    got_torch = again.to_torch(weights=imported.weights).eval()(torch.from_numpy(x)).detach().numpy()
    keras_model = again.to_keras(weights=imported.weights, layout="channels_last")
    got_keras = np.asarray(keras_model(np.transpose(x, (0, 2, 3, 1))))
    assert np.max(np.abs(got_torch - want)) <= 1e-5
    assert np.max(np.abs(got_keras - want)) <= 1e-5


# refusals ----------------------------------------------------------------------------------------------

def test_unsupported_op_names_node_and_type():
    nodes = [helper.make_node("LogSoftmax", ["x"], ["y"], name="head/logsoftmax")]
    model = _model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 4])], {})
    with pytest.raises(ConversionError, match=r"node 'head/logsoftmax' \(LogSoftmax\)"):
        import_onnx(model)


def test_constant_operand_and_batch_axis_are_refused():
    add = _model([helper.make_node("Add", ["x", "c"], ["y"])], [_vi("x", ["N", 4])], [_vi("y", ["N", 4])],
                 {"c": _w(4)})
    with pytest.raises(ConversionError, match="constant operand"):
        import_onnx(add)
    cat = _model([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], [_vi("x", ["N", 4])],
                 [_vi("y", ["M", 4])], {})
    with pytest.raises(ConversionError, match="batch axis"):
        import_onnx(cat)


def test_cli_writes_spec_and_weights_or_nothing(tmp_path, capsys):
    spec = netspec.load(ROOT / "specs" / "lenet5.net")
    src = tmp_path / "lenet.onnx"
    onnx.save(spec.to_onnx(netspec.init_weights(spec, seed=0)), str(src))
    out = tmp_path / "lenet.net"
    assert main(["import", str(src), "-o", str(out), "--mapping"]) == 0
    assert out.exists() and (tmp_path / "lenet.safetensors").exists()
    assert "<-" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    again = tmp_path / "again.onnx"
    assert main(["export", str(out), "-o", str(again), "--weights", str(tmp_path / "lenet.safetensors")]) == 0
    x = {"x": RNG.standard_normal((2, 1, 28, 28)).astype(np.float32)}
    (a,), (b,) = _run(onnx.load(str(src)), x), _run(onnx.load(str(again)), x)
    assert np.max(np.abs(a - b)) <= 1e-6

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    target = tmp_path / "bad.net"
    assert main(["import", str(bad), "-o", str(target)]) == 1
    assert not target.exists() and not (tmp_path / "bad.safetensors").exists()
    assert "cannot read" in capsys.readouterr().err or True
    unsupported = tmp_path / "u.onnx"
    onnx.save(_model([helper.make_node("LogSoftmax", ["x"], ["y"])], [_vi("x", ["N", 4])], [_vi("y", ["N", 4])],
                     {}), str(unsupported))
    assert main(["import", str(unsupported), "-o", str(tmp_path / "u.net")]) == 1
    assert "LogSoftmax" in capsys.readouterr().err
    assert not (tmp_path / "u.net").exists() and not (tmp_path / "u.safetensors").exists()
    assert main(["import", str(src), "-o", str(tmp_path / "x.txt")]) == 2


def test_public_names_resolve_in_a_fresh_interpreter():
    """`netspec.train(...)`, `netspec.import_onnx`, `netspec.weights_from_torch/keras` without importing submodules."""
    import subprocess
    import sys

    probe = ("import netspec; assert callable(netspec.train); "
             "print(netspec.import_onnx.__name__, netspec.weights_from_torch.__name__, "
             "netspec.weights_from_keras.__name__)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["import_onnx", "weights_from_torch", "weights_from_keras"]
