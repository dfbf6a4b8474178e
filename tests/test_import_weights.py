"""netspec weights import: PyTorch and Keras checkpoints into canonical weights, proven by outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import ROOT

import netspec
from netspec.cli import main
from netspec.importers.weights import WeightsImportError, weights_from_keras, weights_from_torch

torch = pytest.importorskip("torch")
nn = torch.nn
RNG = np.random.default_rng(0)


def _close(got, want, rel=1e-4):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= rel * max(1.0, float(np.max(np.abs(want))))


def _randomise_bn(module):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)


# PyTorch ------------------------------------------------------------------------------------------------

SMALL = """
network Small {
    input image: [3, 16, 16]
    h = image -> conv2d(8, 3, padding=1, use_bias=false) -> batchnorm(eps=1e-5, momentum=0.9) -> relu
        -> maxpool2d(2)
    logits = h -> flatten -> dense(10)
    output logits
}
"""


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2), 1))


def _small():
    torch.manual_seed(0)
    model = SmallNet().eval()
    _randomise_bn(model)
    return model, netspec.parse_text(SMALL, "small.net")


def test_torch_module_state_dict_and_files_agree(tmp_path):
    model, spec = _small()
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    pth, st = tmp_path / "small.pth", tmp_path / "small.safetensors"
    torch.save(model.state_dict(), pth)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(st))
    results = [weights_from_torch(src, spec) for src in (model, model.state_dict(), pth, str(st))]
    for r in results:
        assert r.how == "by structure" and set(r.weights) == set(results[0].weights)
        for k in r.weights:
            np.testing.assert_array_equal(r.weights[k], results[0].weights[k])
    got = spec.to_torch(weights=results[0].weights).eval()(torch.from_numpy(x)).detach().numpy()
    _close(got, want, 1e-5)
    report = results[0].report()
    assert "h.batchnorm (batchnorm) <- bn" in report and "h.batchnorm.gamma [8]  = weight" in report


def test_generated_model_round_trips_by_name():
    spec = netspec.load(ROOT / "specs" / "lenet5.net")
    weights = netspec.init_weights(spec, seed=4)
    model = spec.to_torch(weights=weights)
    for source in (model, model.state_dict()):
        r = weights_from_torch(source, spec)
        assert r.how.startswith("by name")
        for k, v in weights.items():
            np.testing.assert_array_equal(r.weights[k], v)


def test_torch_recurrent_and_embedding():
    text = """
    network Tagger {
        input tokens: int64[T]
        h = tokens -> embedding(30, 8) -> bidirectional(lstm(6, return_sequences=true))
            -> gru(5, return_sequences=true) -> dense(3)
        output h
    }
    """

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(30, 8)
            self.lstm = nn.LSTM(8, 6, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(12, 5, batch_first=True)
            self.out = nn.Linear(5, 3)

        def forward(self, x):
            return self.out(self.gru(self.lstm(self.emb(x))[0])[0])

    torch.manual_seed(1)
    model = Tagger().eval()
    spec = netspec.parse_text(text, "tagger.net")
    r = weights_from_torch(model.state_dict(), spec)
    ids = RNG.integers(0, 30, (2, 7))
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    _close(spec.to_torch(weights=r.weights).eval()(torch.from_numpy(ids)).detach().numpy(), want, 1e-5)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's resnet.py form (Bottleneck, layers 3-4-6-3), written out: torchvision is not installed."""

    def __init__(self, layers=(3, 4, 6, 3), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
        out = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        out += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.slow
def test_torchvision_form_resnet50_state_dict(tmp_path, capsys):
    torch.manual_seed(0)
    model = ResNet().eval()
    _randomise_bn(model)
    path = tmp_path / "resnet50.pth"
    torch.save(model.state_dict(), path)
    out = tmp_path / "canonical.safetensors"
    spec_path = ROOT / "specs" / "resnet50.net"
    assert main(["weights", "import", str(spec_path), str(path), "-o", str(out), "--report"]) == 0
    assert "features.0.skip.conv2d (conv2d) <- layer1.0.downsample.0" in capsys.readouterr().out
    spec = netspec.load(spec_path)
    weights = netspec.weights.load_weights(out)
    x = RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    _close(spec.to_torch(weights=weights).eval()(torch.from_numpy(x)).detach().numpy(), want)
    import onnxruntime as ort

    session = ort.InferenceSession(spec.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    _close(session.run(None, {session.get_inputs()[0].name: x})[0], want)


# stacked recurrent modules and separable convolutions split over two modules -----------------------------

def _onnx_close(spec, weights, x, want):
    import onnxruntime as ort

    session = ort.InferenceSession(spec.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    _close(session.run(None, {session.get_inputs()[0].name: x})[0], want, 1e-5)


class Stacked(nn.Module):
    def __init__(self, cell, layers, bidirectional):
        super().__init__()
        self.rnn = cell(5, 6, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(12 if bidirectional else 6, 2)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


@pytest.mark.parametrize(("cell", "layers", "bidirectional", "stack"), [
    (nn.LSTM, 2, False, "lstm(6, return_sequences=true) -> lstm(6, return_sequences=true)"),
    (nn.GRU, 3, False, "gru(6, return_sequences=true) * 3"),
    (nn.RNN, 2, True, "bidirectional(simple_rnn(6, return_sequences=true)) * 2"),
    (nn.LSTM, 2, True, "bidirectional(lstm(6, return_sequences=true)) "
                       "-> bidirectional(lstm(6, return_sequences=true))"),
])
def test_torch_stacked_rnn_maps_layer_by_layer(tmp_path, capsys, cell, layers, bidirectional, stack):
    """nn.LSTM/GRU/RNN(num_layers > 1): layer k's *_l<k> tensors are the spec's k-th recurrent layer."""
    text = f"""
    network Stack {{
        input x: [7, 5]
        h = x -> {stack} -> dense(2)
        output h
    }}
    """
    torch.manual_seed(2)
    model = Stacked(cell, layers, bidirectional).eval()
    spec = netspec.parse_text(text, "stack.net")
    x = RNG.standard_normal((2, 7, 5)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    path = tmp_path / "stack.pth"
    torch.save(model.state_dict(), path)
    live, saved = weights_from_torch(model, spec), weights_from_torch(path, spec)
    for k in live.weights:
        np.testing.assert_array_equal(live.weights[k], saved.weights[k])
    _close(spec.to_torch(weights=saved.weights).eval()(torch.from_numpy(x)).detach().numpy(), want, 1e-5)
    _onnx_close(spec, saved.weights, x, want)
    spec_file = tmp_path / "stack.net"
    spec_file.write_text(text)
    assert main(["weights", "import", str(spec_file), str(path), "-o", str(tmp_path / "w.safetensors"),
                 "--report"]) == 0
    report = capsys.readouterr().out
    name = cell.__name__
    assert f"<- rnn.l{layers - 1} ({name} layer {layers} of {layers})" in report
    assert f"= weight_ih_l{layers - 1}" + ("_reverse" if bidirectional else "") in report


def test_torch_stacked_rnn_mismatches_name_the_layer():
    torch.manual_seed(2)
    state = Stacked(nn.LSTM, 2, False).eval().state_dict()

    def spec(stack):
        return netspec.parse_text(f"network S {{\n input x: [7, 5]\n h = x -> {stack} -> dense(2)\n output h\n}}",
                                  "s.net")

    with pytest.raises(WeightsImportError, match=r"spec layer 'h.lstm_1' \(lstm, kernel \[28, 6\].*'rnn.l1': "
                                                 r"'kernel' has shape \[24, 6\]"):
        weights_from_torch(state, spec("lstm(6, return_sequences=true) -> lstm(7, return_sequences=true)"))
    with pytest.raises(WeightsImportError, match=r"spec layer 'h.lstm_2' \(lstm.*has no counterpart.*'out' has no "
                                                 r"tensor 'weight_ih_l0'"):
        weights_from_torch(state, spec("lstm(6, return_sequences=true) * 3"))
    with pytest.raises(WeightsImportError, match=r"'rnn' is a stacked LSTM: map its layers as rnn.l0, rnn.l1"):
        weights_from_torch(state, spec("lstm(6, return_sequences=true) * 2"), mapping={"h.lstm": "rnn"})
    holes = {k.replace("_l1", "_l999999999"): v for k, v in state.items()}  # no billion empty layers made
    with pytest.raises(WeightsImportError, match=r"'rnn' holds recurrent layers \[0, 999999999\], not 0 ... 1"):
        weights_from_torch(holes, spec("lstm(6, return_sequences=true) * 2"))
    bidirectional = Stacked(nn.LSTM, 2, True).eval().state_dict()
    with pytest.raises(WeightsImportError, match=r"'rnn.l0' has tensors the spec's lstm does not "
                                                 r"\(bias_hh_l0_reverse"):
        weights_from_torch(bidirectional, spec("lstm(6, return_sequences=true) * 2"))


SEPARABLE = """
network Sep {
    input image: [3, 12, 12]
    s = image -> conv2d(8, 3, padding=1)
    main = s -> separable_conv2d(16, 3, padding=1, depth_multiplier=2) -> batchnorm(eps=1e-5) -> relu
        -> separable_conv2d(8, 3, padding=1, use_bias=BIAS)
    skip = s -> conv2d(8, 1)
    y = add(main, skip) -> relu -> global_avgpool2d -> dense(4)
    output y
}
"""


class SepNet(nn.Module):
    """The usual PyTorch spelling: a depthwise Conv2d(groups=C) then a 1x1 Conv2d, as two modules."""

    def __init__(self, bias=True):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shortcut = nn.Conv2d(8, 8, 1)  # registered before the main path
        self.dw1 = nn.Conv2d(8, 16, 3, padding=1, groups=8)  # depth_multiplier 2, with a bias
        self.pw1 = nn.Conv2d(16, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        self.sep2 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                                  nn.Conv2d(16, 8, 1, bias=bias))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        s = self.stem(x)
        main = self.sep2(torch.relu(self.bn(self.pw1(self.dw1(s)))))
        return self.fc(torch.relu(main + self.shortcut(s)).mean((2, 3)))


@pytest.mark.parametrize("bias", [True, False])
def test_torch_separable_conv_from_two_modules(tmp_path, capsys, bias):
    torch.manual_seed(3)
    model = SepNet(bias).eval()
    _randomise_bn(model)
    spec = netspec.parse_text(SEPARABLE.replace("BIAS", str(bias).lower()), "sep.net")
    x = RNG.standard_normal((2, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    path = tmp_path / "sep.pth"
    torch.save(model.state_dict(), path)
    live, saved = weights_from_torch(model, spec), weights_from_torch(path, spec)
    for k in live.weights:
        np.testing.assert_array_equal(live.weights[k], saved.weights[k])
    dw1 = model.dw1.bias.detach().numpy()
    folded = model.pw1.bias.detach().numpy() + model.pw1.weight.detach().numpy()[:, :, 0, 0] @ dw1
    np.testing.assert_allclose(saved.weights["main.separable_conv2d.bias"], folded, rtol=1e-6, atol=1e-6)
    _close(spec.to_torch(weights=saved.weights).eval()(torch.from_numpy(x)).detach().numpy(), want, 1e-5)
    _onnx_close(spec, saved.weights, x, want)
    report = live.report()
    assert "main.separable_conv2d (separable_conv2d) <- dw1 + pw1" in report
    assert "pw1.bias + pw1.weight @ dw1.bias (depthwise bias folded in)" in report
    assert "main.separable_conv2d_1 (separable_conv2d) <- sep2.0 + sep2.1" in report
    assert "skip.conv2d (conv2d) <- shortcut" in report
    by_hand = weights_from_torch(path, spec, mapping={"main.separable_conv2d": "dw1 + pw1",
                                                       "main.separable_conv2d_1": "sep2.0"})
    for k in live.weights:
        np.testing.assert_array_equal(by_hand.weights[k], live.weights[k])
    with pytest.raises(WeightsImportError, match=r"'skip.conv2d' \(conv2d\) <- shortcut \+ pw1: only a "
                                                 r"separable_conv2d takes two"):
        weights_from_torch(path, spec, mapping={"skip.conv2d": "shortcut + pw1"})


def test_torch_separable_conv_mismatches_are_refused():
    torch.manual_seed(3)
    model = SepNet(True).eval()
    state = model.state_dict()
    with torch.no_grad():  # the second pair's depthwise conv gets a bias too
        state["sep2.0.bias"] = torch.full((16,), 0.5)
    no_bias = netspec.parse_text(SEPARABLE.replace("BIAS", "false"), "sep.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'main.separable_conv2d_1' .*'sep2.0' has a nonzero "
                                                 r"bias, which the spec's separable_conv2d \(use_bias=false\) "
                                                 r"cannot hold"):
        weights_from_torch(state, no_bias)
    narrower = SEPARABLE.replace("BIAS", "true").replace("separable_conv2d(8,", "separable_conv2d(6,")
    narrower = netspec.parse_text(narrower.replace("conv2d(8, 1)", "conv2d(6, 1)"), "sep.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'main.separable_conv2d_1' .*'sep2.0 \+ sep2.1': "
                                                 r"'pointwise_kernel' has shape \[8, 16, 1, 1\]"):
        weights_from_torch(model.state_dict(), narrower)
    plain = netspec.parse_text("""
    network P {
        input image: [8, 6, 6]
        y = image -> separable_conv2d(4, 3)
        output y
    }
    """, "p.net")
    with pytest.raises(WeightsImportError, match=r"'c' is not a depthwise Conv2d read directly by a 1x1 Conv2d"):
        weights_from_torch({"c.weight": torch.zeros(4, 8, 3, 3), "c.bias": torch.zeros(4)}, plain)


def test_torch_depthwise_and_pointwise_modules_also_pair_with_separate_spec_layers():
    """The pair is one separable_conv2d only where the spec says so: a depthwise_conv2d -> conv2d(F, 1) takes
    the same two modules one by one, in the same spec."""
    spec = netspec.parse_text("""
    network P {
        input image: [4, 8, 8]
        y = image -> depthwise_conv2d(3, padding=1) -> conv2d(6, 1) -> separable_conv2d(5, 3)
        output y
    }
    """, "p.net")
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 6, 1),
                          nn.Conv2d(6, 6, 3, groups=6), nn.Conv2d(6, 5, 1)).eval()
    x = RNG.standard_normal((2, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for source in (model, model.state_dict()):
        r = weights_from_torch(source, spec)
        assert "y.conv2d (conv2d) <- 1\n" in r.report() and "<- 2 + 3" in r.report()
        _close(spec.to_torch(weights=r.weights).eval()(torch.from_numpy(x)).detach().numpy(), want, 1e-5)


# refusals -------------------------------------------------------------------------------------------------

def test_mismatch_names_both_sides():
    model, _ = _small()
    wider = netspec.parse_text(SMALL.replace("conv2d(8, 3", "conv2d(16, 3").replace("[8]", "[16]"), "w.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'h.conv2d' \(conv2d, kernel \[16, 3, 3, 3\]\) has no "
                                                 r"counterpart.*'conv'.*\[8, 3, 3, 3\]"):
        weights_from_torch(model.state_dict(), wider)


def test_missing_and_extra_layers():
    model, spec = _small()
    state = model.state_dict()
    fewer = {k: v for k, v in state.items() if not k.startswith("fc.")}
    with pytest.raises(WeightsImportError, match="'logits.dense' .* has no counterpart"):
        weights_from_torch(fewer, spec)
    more = dict(state, **{"extra.weight": torch.zeros(3, 3)})
    with pytest.raises(WeightsImportError, match="1 weighted layer.* the spec does not: extra"):
        weights_from_torch(more, spec)


def test_nan_is_refused():
    model, spec = _small()
    state = model.state_dict()
    state["fc.bias"][0] = float("nan")
    with pytest.raises(WeightsImportError, match="NaN"):
        weights_from_torch(state, spec)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('NETSPEC_PWNED', '/nonexistent/pwned')}",))


def test_pickle_payload_is_never_executed(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("NETSPEC_PWNED", str(marker))
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": _Payload()}, evil)
    _, spec = _small()
    with pytest.raises(WeightsImportError, match="weights_only=True"):
        weights_from_torch(evil, spec)
    assert not marker.exists()
    spec_file = tmp_path / "small.net"
    spec_file.write_text(SMALL)
    out = tmp_path / "w.safetensors"
    assert main(["weights", "import", str(spec_file), str(evil), "-o", str(out)]) == 1
    assert "never unpickles" in capsys.readouterr().err
    assert not out.exists() and not marker.exists()


def test_mapping_file_fixes_pairs(tmp_path):
    text = """
    network Two {
        input x: [4]
        a = x -> dense(4)
        b = x -> dense(4)
        y = add(a, b)
        output y
    }
    """

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.second = nn.Linear(4, 4)
            self.first = nn.Linear(4, 4)

        def forward(self, x):
            return self.first(x) + self.second(x)

    spec = netspec.parse_text(text, "two.net")
    model = Two()
    mapping = tmp_path / "map.txt"
    mapping.write_text("# spec = checkpoint\na.dense = first\nb.dense = second\n")
    from netspec.importers.weights import read_mapping

    r = weights_from_torch(model.state_dict(), spec, mapping=read_mapping(mapping))
    np.testing.assert_array_equal(r.weights["a.dense.kernel"], model.first.weight.detach().numpy())
    unmapped = weights_from_torch(model.state_dict(), spec)  # by order: a <- second
    np.testing.assert_array_equal(unmapped.weights["a.dense.kernel"], model.second.weight.detach().numpy())
    mapping.write_text("a.dense = nowhere\n")
    with pytest.raises(WeightsImportError, match="no weighted layer 'nowhere'"):
        weights_from_torch(model.state_dict(), spec, mapping=read_mapping(mapping))


# Keras ------------------------------------------------------------------------------------------------------

keras = pytest.importorskip("keras")


def _randomise_keras_bn(model):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([RNG.normal(1, 0.2, g.shape).astype("f"), RNG.normal(0, 0.2, b.shape).astype("f"),
                               RNG.normal(0, 0.2, m.shape).astype("f"), RNG.uniform(0.5, 2, v.shape).astype("f")])


def test_keras_recurrent_model():
    text = """
    network Seq {
        input tokens: int64[7]
        h = tokens -> embedding(30, 8) -> bidirectional(gru(6, return_sequences=true), merge_mode=sum)
            -> lstm(5) -> dense(3, activation=softmax)
        output h
    }
    """
    inp = keras.Input((7,), dtype="int64")
    x = keras.layers.Embedding(30, 8)(inp)
    x = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True), merge_mode="sum")(x)
    x = keras.layers.LSTM(5)(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    spec = netspec.parse_text(text, "seq.net")
    r = weights_from_keras(model, spec)
    ids = RNG.integers(0, 30, (2, 7))
    want = np.asarray(model(ids))
    got = spec.to_torch(weights=r.weights).eval()(torch.from_numpy(ids)).detach().numpy()
    _close(got, want, 1e-5)


def test_keras_conv_model_file_and_generated_model(tmp_path):
    text = """
    network Conv {
        input image: [3, 12, 12]
        h = image -> conv2d(4, 3) -> batchnorm -> relu -> depthwise_conv2d(3, depth_multiplier=2)
            -> separable_conv2d(5, 3) -> conv_transpose2d(3, 2, stride=2) -> global_avgpool2d -> dense(2)
        output h
    }
    """
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = keras.layers.SeparableConv2D(5, 3)(x)
    x = keras.layers.Conv2DTranspose(3, 2, strides=2)(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    _randomise_keras_bn(model)
    path = tmp_path / "conv.keras"
    model.save(path)
    spec = netspec.parse_text(text, "conv.net")
    r = weights_from_keras(path, spec)
    x = RNG.standard_normal((2, 12, 12, 3)).astype(np.float32)
    want = np.asarray(model(x))
    got = spec.to_torch(weights=r.weights).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    _close(got.detach().numpy(), want, 1e-5)
    generated = spec.to_keras(weights=r.weights)
    again = weights_from_keras(generated, spec)
    assert again.how.startswith("by name")
    for k in r.weights:
        np.testing.assert_allclose(again.weights[k], r.weights[k], rtol=0, atol=0)


@pytest.mark.parametrize(("hwc", "kernel", "before_flatten"), [
    ((6, 5, 3), 3, ""),                    # Keras flattens (4, 3, 4) as H, W, C; the spec [4, 4, 3] as C, H, W
    ((4, 4, 3), 1, ""),                    # [4, 4, 4] either way: the Conv2D's channels_last decides
    ((6, 5, 3), 3, "-> permute(1, 2, 0)"),  # the spec flattens in Keras's order itself: rows as they are
])
def test_keras_dense_after_flatten_reads_the_spec_order(hwc, kernel, before_flatten):
    """A Keras Dense after Flatten holds its rows in (H, W, C) order; the canonical kernel in the spec's."""
    h, w, c = hwc
    text = f"""
    network Flat {{
        input image: [{c}, {h}, {w}]
        y = image -> conv2d(4, {kernel}) {before_flatten} -> flatten -> dropout(0.5) -> dense(3)
        output y
    }}
    """
    inp = keras.Input((h, w, c))
    x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(keras.layers.Conv2D(4, kernel)(inp)))
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    spec = netspec.parse_text(text, "flat.net")
    r = weights_from_keras(model, spec)
    assert ("rows (*S, C) -> (C, *S)" in r.report()) == (not before_flatten)
    x = RNG.standard_normal((2, h, w, c)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    got = spec.to_torch(weights=r.weights).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    _close(got.detach().numpy(), want, 1e-5)


def test_keras_dense_after_flatten_of_another_shape_is_refused():
    """Flattened features of equal count but unrelated shapes cannot be put in order: an error, not a guess."""
    spec = netspec.parse_text("""
    network Flat {
        input image: [3, 4, 3]
        y = image -> conv2d(4, 1) -> flatten -> dense(2)
        output y
    }
    """, "flat.net")
    inp = keras.Input((2, 6, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, 1)(inp))))
    with pytest.raises(WeightsImportError, match=r"reads a Flatten of shape \[2, 6, 4\].*a flatten of \[4, 4, 3\]"):
        weights_from_keras(model, spec)


@pytest.mark.slow
def test_keras_applications_resnet50():
    model = keras.applications.ResNet50(weights=None)
    _randomise_keras_bn(model)
    spec = netspec.load(ROOT / "benchmarks" / "specs" / "resnet50_keras.net")
    r = weights_from_keras(model, spec)
    assert len(r.pairs) == 107
    x = RNG.standard_normal((1, 224, 224, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    _close(spec.to_keras(weights=r.weights)(x, training=False), want)
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    _close(spec.to_torch(weights=r.weights).eval()(nchw).detach().numpy(), want)
    import onnxruntime as ort

    session = ort.InferenceSession(spec.to_onnx(r.weights).SerializeToString(), providers=["CPUExecutionProvider"])
    _close(session.run(None, {session.get_inputs()[0].name: nchw.numpy()})[0], want)


NESTED = """
network Nested {
    input image: [3, 10, 10]
    main = image -> conv2d(6, 3, padding=same) -> batchnorm -> relu
    skip = image -> conv2d(6, 3, padding=same)
    y = add(main, skip) -> global_avgpool2d -> dense(8, activation=relu) -> dense(3)
    output y
}
"""


def _nested_keras_model():
    """A functional backbone and a Sequential head used as layers, as keras.applications backbones are."""
    inner = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inner)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    backbone = keras.Model(inner, x, name="backbone")
    _randomise_keras_bn(backbone)
    head = keras.Sequential([keras.layers.Dense(8, activation="relu", name="hidden"), keras.layers.Dense(3)],
                            name="head")
    inp = keras.Input((10, 10, 3))
    x = keras.layers.Add()([backbone(inp), keras.layers.Conv2D(6, 3, padding="same", name="skip")(inp)])
    return keras.Model(inp, head(keras.layers.GlobalAveragePooling2D()(x)))


def test_keras_nested_models_are_flattened(tmp_path):
    model = _nested_keras_model()
    path = tmp_path / "nested.keras"
    model.save(path)
    spec = netspec.parse_text(NESTED, "nested.net")
    r = weights_from_keras(path, spec)
    report = r.report()
    for line in ("main.conv2d (conv2d) <- backbone/conv", "main.batchnorm (batchnorm) <- backbone/bn",
                 "skip.conv2d (conv2d) <- skip", "y.dense (dense) <- head/hidden"):
        assert line in report
    x = RNG.standard_normal((2, 10, 10, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    got = spec.to_torch(weights=r.weights).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    _close(got.detach().numpy(), want, 1e-5)
    _close(spec.to_keras(weights=r.weights)(x, training=False), want, 1e-5)
    fixed = weights_from_keras(model, spec, mapping={"main.conv2d": "skip", "skip.conv2d": "backbone/conv"})
    np.testing.assert_array_equal(fixed.weights["main.conv2d.bias"], r.weights["skip.conv2d.bias"])



@pytest.mark.parametrize("border", ["flatten_outside", "flatten_inside"])
def test_keras_nested_dense_after_flatten_reads_across_the_border(border):
    """A Dense in a nested head reading a Flatten outside it (or an outer Dense reading a Flatten that ends a
    nested backbone) still has its rows reordered from Keras's (H, W, C) to the spec's (C, H, W)."""
    spec = netspec.parse_text("""
    network Flat {
        input image: [3, 6, 5]
        y = image -> conv2d(4, 3) -> flatten -> dense(3)
        output y
    }
    """, "flat.net")
    inp = keras.Input((6, 5, 3))
    if border == "flatten_outside":
        head = keras.Sequential([keras.layers.Dense(3, name="fc")], name="head")
        model = keras.Model(inp, head(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inp))))
    else:
        inner = keras.Input((6, 5, 3))
        body = keras.Model(inner, keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inner)), name="body")
        model = keras.Model(inp, keras.layers.Dense(3)(body(inp)))
    r = weights_from_keras(model, spec)
    assert "rows (*S, C) -> (C, *S)" in r.report()
    x = RNG.standard_normal((2, 6, 5, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    got = spec.to_torch(weights=r.weights).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    _close(got.detach().numpy(), want, 1e-5)

def test_keras_nested_mismatch_names_the_inner_layer():
    spec = netspec.parse_text(NESTED.replace("dense(8,", "dense(9,"), "nested.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'y.dense' \(dense, kernel \[9, 6\].*'head/hidden': "
                                                 r"'kernel' has shape \[8, 6\]"):
        weights_from_keras(_nested_keras_model(), spec)


@pytest.mark.slow
def test_keras_applications_backbone_nested_in_a_model(tmp_path):
    """The usual transfer-learning form: a keras.applications backbone called as a layer, a new head."""
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(224, 224, 3))
    _randomise_keras_bn(base)
    inp = keras.Input((224, 224, 3))
    model = keras.Model(inp, keras.layers.Dense(1000, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(base(inp))))
    path = tmp_path / "transfer.keras"
    model.save(path)
    spec = netspec.load(ROOT / "specs" / "mobilenet_v2_keras.net")
    r = weights_from_keras(path, spec)
    assert len(r.pairs) == 105 and f"<- {base.name}/Conv1\n" in r.report()
    x = RNG.standard_normal((1, 224, 224, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    _close(spec.to_torch(weights=r.weights).eval()(nchw).detach().numpy(), want)


KERAS_SEPARABLE = """
network KSep {
    input image: [3, 12, 12]
    h = image -> conv2d(4, 3, padding=1) -> FIRST -> relu -> separable_conv2d(5, 3, use_bias=BIAS)
        -> global_avgpool2d -> dense(2)
    output h
}
"""
FUSED = "separable_conv2d(6, 3, padding=1, depth_multiplier=2)"
SPLIT = "depthwise_conv2d(3, padding=1, depth_multiplier=2) -> conv2d(6, 1)"


def _keras_separable_model(dw_bias=True, relu_between=False, second_bias=True):
    """A separable convolution as keras.applications and user code often write it: a DepthwiseConv2D, then a
    1x1 Conv2D (twice: depth_multiplier 2 with a depthwise bias, then 1), every bias drawn at random."""
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=dw_bias, name="dw1",
                                     activation="relu" if relu_between else None)(x)
    x = keras.layers.ReLU()(keras.layers.Conv2D(6, 1, name="pw1")(x))
    x = keras.layers.DepthwiseConv2D(3, use_bias=second_bias, name="dw2")(x)
    x = keras.layers.Conv2D(5, 1, padding="same", use_bias=second_bias, name="pw2")(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w if w.ndim > 1 else RNG.normal(0, 0.5, w.shape).astype("f")
                               for w in layer.get_weights()])
    return model


def test_keras_depthwise_and_1x1_conv_pair_with_one_separable_conv(tmp_path, capsys):
    model = _keras_separable_model()
    path = tmp_path / "sep.keras"
    model.save(path)
    x = RNG.standard_normal((2, 12, 12, 3)).astype(np.float32)
    want = np.asarray(model(x))
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    spec = netspec.parse_text(KERAS_SEPARABLE.replace("FIRST", FUSED).replace("BIAS", "true"), "ksep.net")
    r = weights_from_keras(path, spec)
    _close(spec.to_torch(weights=r.weights).eval()(nchw).detach().numpy(), want, 1e-5)
    _close(spec.to_keras(weights=r.weights)(x, training=False), want, 1e-5)
    dw1, pw1 = model.get_layer("dw1").get_weights(), model.get_layer("pw1").get_weights()
    np.testing.assert_allclose(r.weights["h.separable_conv2d.bias"], pw1[1] + pw1[0][0, 0].T @ dw1[1],
                               rtol=1e-6, atol=1e-6)
    report = r.report()
    for line in ("h.separable_conv2d (separable_conv2d) <- dw1 + pw1",
                 "h.separable_conv2d.depthwise_kernel [8, 1, 3, 3]  = dw1.kernel, HWCM -> (C*M)1HW",
                 "h.separable_conv2d.pointwise_kernel [6, 8, 1, 1]  = pw1.kernel, HWIO -> OIHW",
                 "h.separable_conv2d.bias [6]  pw1.bias + pw1.kernel @ dw1.bias (depthwise bias folded in)",
                 "h.separable_conv2d_1 (separable_conv2d) <- dw2 + pw2"):
        assert line in report
    by_hand = weights_from_keras(model, spec, mapping={"h.separable_conv2d": "dw1 + pw1",
                                                        "h.separable_conv2d_1": "dw2"})
    for k in r.weights:
        np.testing.assert_array_equal(by_hand.weights[k], r.weights[k])
    spec_file, mapping = tmp_path / "ksep.net", tmp_path / "map.txt"
    spec_file.write_text(KERAS_SEPARABLE.replace("FIRST", FUSED).replace("BIAS", "true"))
    mapping.write_text("h.separable_conv2d = dw1 + pw1  # both halves\n")
    out = tmp_path / "w.safetensors"
    assert main(["weights", "import", str(spec_file), str(path), "-o", str(out), "--mapping", str(mapping),
                 "--report"]) == 0
    assert "h.separable_conv2d (separable_conv2d) <- dw1 + pw1\n" in capsys.readouterr().out
    saved = netspec.weights.load_weights(out)
    for k in r.weights:
        np.testing.assert_array_equal(saved[k], r.weights[k])
    with pytest.raises(WeightsImportError, match=r"'h.conv2d' \(conv2d\) <- stem \+ pw1: only a separable_conv2d"):
        weights_from_keras(model, spec, mapping={"h.conv2d": "stem + pw1"})
    # the same two layers pair one by one with a spec's depthwise_conv2d -> conv2d(F, 1)
    split = netspec.parse_text(KERAS_SEPARABLE.replace("FIRST", SPLIT).replace("BIAS", "true"), "ksep.net")
    r = weights_from_keras(model, split)
    assert "h.depthwise_conv2d (depthwise_conv2d) <- dw1\n" in r.report()
    assert "h.conv2d_1 (conv2d) <- pw1\n" in r.report() and "<- dw2 + pw2" in r.report()
    _close(split.to_torch(weights=r.weights).eval()(nchw).detach().numpy(), want, 1e-5)


def test_keras_depthwise_and_1x1_conv_refusals():
    fused = netspec.parse_text(KERAS_SEPARABLE.replace("FIRST", FUSED).replace("BIAS", "true"), "ksep.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'h.separable_conv2d' .*'dw1' \(DepthwiseConv2D\) "
                                                 r"applies activation 'relu' before 'pw1' reads it"):
        weights_from_keras(_keras_separable_model(relu_between=True), fused)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(5, 1, name="pw")(keras.layers.ReLU(name="act")(x)))
    plain_text = "network P {\n input image: [3, 12, 12]\n y = image -> separable_conv2d(5, 3)\n output y\n}\n"
    plain = netspec.parse_text(plain_text, "p.net")
    with pytest.raises(WeightsImportError, match=r"'dw' \(DepthwiseConv2D\) is read by 'act' \(ReLU\), not "
                                                 r"directly by a 1x1 Conv2D"):
        weights_from_keras(model, plain)
    strided = keras.Model(inp, keras.layers.Conv2D(5, 1, strides=2, name="pw")(x))
    half = netspec.parse_text("network P {\n input image: [3, 12, 12]\n y = image -> separable_conv2d(5, 3, stride=2)"
                              "\n output y\n}\n", "p.net")
    with pytest.raises(WeightsImportError, match=r"'pw' \(kernel \[1, 1\], strides \[2, 2\], groups 1\) is not a "
                                                 r"1x1 Conv2D with stride 1"):
        weights_from_keras(strided, half)
    shared = keras.Model(inp, keras.layers.Add(name="add")([keras.layers.Conv2D(3, 1, name="pw")(x), x]))
    with pytest.raises(WeightsImportError, match=r"'dw' \(DepthwiseConv2D\) is read by 'pw' \(Conv2D\), 'add' "
                                                 r"\(Add\), not by one 1x1 Conv2D alone"):
        weights_from_keras(shared, netspec.parse_text(plain_text.replace("(5, 3)", "(3, 3)"), "p.net"))
    with pytest.raises(WeightsImportError, match=r"'h.separable_conv2d' \(separable_conv2d\) <- .*'dw1' \(Depthwise"
                                                 r"Conv2D\) applies activation 'relu'"):
        weights_from_keras(_keras_separable_model(relu_between=True), fused, mapping={"h.separable_conv2d": "dw1"})
    with pytest.raises(WeightsImportError, match=r"'dw1' \(DepthwiseConv2D\) is read by 'pw1', not by 'pw2'"):
        weights_from_keras(_keras_separable_model(), fused, mapping={"h.separable_conv2d": "dw1 + pw2"})
    no_bias = netspec.parse_text(KERAS_SEPARABLE.replace("FIRST", FUSED).replace("BIAS", "false"), "ksep.net")
    with pytest.raises(WeightsImportError, match=r"spec layer 'h.separable_conv2d_1' .*'dw2' has a nonzero bias, "
                                                 r"which the spec's separable_conv2d \(use_bias=false\) cannot hold"):
        weights_from_keras(_keras_separable_model(), no_bias)
    model = _keras_separable_model(second_bias=False)  # no biases at all: fits use_bias=false
    r = weights_from_keras(model, no_bias)
    x = RNG.standard_normal((1, 12, 12, 3)).astype(np.float32)
    _close(no_bias.to_keras(weights=r.weights)(x, training=False), np.asarray(model(x)), 1e-5)
