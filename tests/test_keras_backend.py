"""The Keras 3 backend: generated source, shapes, parameter counts, canonical weights, and
numerical agreement with the PyTorch backend (one canonical checkpoint, one input batch).

Every spec in specs/ and every conformance case runs in both layouts where cheap; the
PITFALLS below add micro-specs for each place where Keras and the spec's meaning part ways.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conformance_cases import CASES
from conftest import ROOT, SPECS

if not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow", "torch")):
    pytest.skip("needs keras, tensorflow and torch", allow_module_level=True)

import torch  # noqa: E402

import netspec  # noqa: E402
from netspec import SpecError  # noqa: E402
from netspec.backends import keras as kb  # noqa: E402
from netspec.weights import init_weights  # noqa: E402

keras = kb._keras()
ATOL = 1e-5
LAYOUTS = ("channels_last", "channels_first")
# 138M and 60M parameters: built, counted and shape-checked always; compared with PyTorch
# (one sample) only with NETSPEC_SLOW=1, to keep this file near two minutes on two cores.
HEAVY = {"VGG16", "VGG19", "ResNet152"}
#: Model-sized Transformers (issue 14): their Keras form is tested on reduced twins in tests/test_attention.py
TRANSFORMERS = {"GPT2", "BERT", "ViT_B16"}
SLOW = os.environ.get("NETSPEC_SLOW") == "1"


def _networks():
    out = []
    for path in SPECS:
        for net in netspec.load(path).networks:
            if net.name in TRANSFORMERS:
                continue
            out.append(pytest.param(path, net.name, id=f"{path.stem}:{net.name}"))
    return out


def _net(text: str, name: str = "case") -> "netspec.ir.Network":
    return netspec.parse_text(text, f"{name}.net").network()


def _case(body: str, name: str = "Case") -> str:
    lines = "\n".join("    " + line.strip() for line in body.strip().splitlines())
    return f"network {name} {{\n{lines}\n}}\n"


def make_inputs(network, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for v in network.inputs:
        shape = (batch, *(d if isinstance(d, int) else 6 for d in v.type.shape))
        if v.type.is_integer:
            vocabs = [n.attrs["vocab"] for n in network.nodes if n.op == "embedding" and v.name in n.inputs]
            out[v.name] = rng.integers(0, min(vocabs, default=10), size=shape).astype(v.type.dtype)
        else:
            out[v.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def run_keras(network, weights, inputs, layout="channels_last"):
    """(model, outputs in the spec's layout)."""
    model = kb.build(network, weights, layout=layout)
    feeds = [kb.to_model_layout(network, v.name, inputs[v.name], layout) for v in network.inputs]
    result = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    result = result if isinstance(result, (list, tuple)) else [result]
    outs = [kb.from_model_layout(network, v, keras.ops.convert_to_numpy(r), layout)
            for v, r in zip(network.outputs, result)]
    return model, outs


def run_torch(network, weights, inputs):
    from netspec.backends import torch as tb

    module = tb.build(network, weights)
    module.eval()
    with torch.no_grad():
        result = module(*(torch.from_numpy(np.ascontiguousarray(inputs[v.name])) for v in network.inputs))
    result = result if isinstance(result, (tuple, list)) else (result,)
    return [r.detach().numpy() for r in result]


def assert_close(got, want, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    err = float(np.abs(got - want).max()) if want.size else 0.0
    assert np.isfinite(got).all() and err <= ATOL * scale, f"{what}: max abs error {err:.3e} (scale {scale:.3g})"


def keras_shape(network, value, moved):
    shape = network.type_of(value).shape
    shape = tuple(d if isinstance(d, int) else None for d in shape)
    return (*shape[1:], shape[0]) if moved else shape


def check_network(network, layout="channels_last", batch=2, roundtrip=True):
    """Build from one canonical checkpoint; shapes, counts, numerics against PyTorch, weight round trip."""
    weights = init_weights(network, seed=1)
    inputs = make_inputs(network, batch)
    model, got = run_keras(network, weights, inputs, layout)
    trainable, non_trainable = network.param_counts()
    assert model.count_params() == trainable + non_trainable
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == non_trainable
    sig = kb.interface(network, layout)
    for (name, moved), value, out in zip(sig["outputs"], network.outputs, model.outputs):
        assert tuple(out.shape[1:]) == keras_shape(network, value, moved), name
    for want, have, name in zip(run_torch(network, weights, inputs), got, network.output_names):
        assert_close(have, want, f"{network.name}.{name} ({layout})")
    if roundtrip:
        back = kb.export_canonical(model, network)
        assert set(back) == set(weights)
        for key, value in weights.items():
            assert back[key].dtype == np.float32 and np.array_equal(back[key], value), key
    return model


# Every spec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), _networks())
def test_spec_builds_and_matches_torch(path, name):
    network = netspec.load(path).network(name)
    if name in HEAVY and not SLOW:
        model = kb.build(network)
        assert model.count_params() == sum(network.param_counts())
        (_, moved), = kb.interface(network)["outputs"]
        assert tuple(model.outputs[0].shape[1:]) == keras_shape(network, network.outputs[0], moved)
        return
    check_network(network, batch=1 if name in HEAVY else 2, roundtrip=name not in HEAVY)


@pytest.mark.parametrize("stem", ["lenet5", "unet", "siamese", "conv_example", "bigru_classifier"])
def test_spec_channels_first(stem):
    for network in netspec.load(ROOT / "specs" / f"{stem}.net").networks:
        check_network(network, layout="channels_first")


# Machines without oneDNN ------------------------------------------------------------------------------
# TensorFlow turns oneDNN off on CPUs without AVX-512, and then its CPU Conv/ConvTranspose kernels
# accept only NHWC and cannot dilate a transposed convolution. So spatial layers always run
# channels-last (channels_first only moves the model's inputs and outputs) and a dilated transposed
# convolution runs as the dilated convolution it equals: the same source works on every machine.


def _onednn_on() -> bool:
    """Whether this process's TensorFlow runs with oneDNN (TF_ENABLE_ONEDNN_OPTS, or the CPU's default)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"


def test_no_layer_needs_channels_first_or_a_dilated_transposed_kernel():
    texts = [(p.stem, p.read_text()) for p in SPECS] + list(PITFALLS) + [(c.name, c.text()) for c in CASES]
    for name, text in texts:
        for network in netspec.parse_text(text, f"{name}.net").networks:
            for layout in LAYOUTS:
                try:
                    src = kb.generate(network, layout)
                except SpecError:
                    continue
                assert "data_format=\"channels_first\"" not in src, (name, layout)
                assert not any("layers.Conv" in line and "Transpose(" in line and "dilation_rate" in line
                               for line in src.splitlines()), (name, layout)
    src = kb.generate(_net(dict(PITFALLS)["ct_dilated"]), "channels_first")
    assert "class DilatedConv2DTranspose(ConvTransposeByConv, layers.Conv2DTranspose)" in src
    assert 'layers.Permute((2, 3, 1), name="x-to_channels_last")' in src


ONEDNN_OFF_PROBE = """
import json, sys
import numpy as np
import netspec
from netspec.backends import keras as kb
from tensorflow.python.util import _pywrap_util_port
out = {"onednn": bool(_pywrap_util_port.IsMklEnabled())}
for name, text in json.loads(sys.argv[1]).items():
    spec = netspec.parse_text(text, name + ".net")
    net = spec.network()
    weights = spec.init_weights(seed=3)
    x = np.random.default_rng(0).standard_normal((2, *net.inputs[0].type.shape)).astype(np.float32)
    y = {}
    for layout in ("channels_first", "channels_last"):
        model = spec.to_keras(weights=weights, layout=layout)
        got = np.asarray(model(kb.to_model_layout(net, net.inputs[0].name, x, layout)))
        y[layout] = kb.from_model_layout(net, net.outputs[0], got, layout)
    out[name] = float(np.abs(y["channels_first"] - y["channels_last"]).max())
print(json.dumps(out))
"""


def test_channels_first_runs_with_onednn_off():
    """The issue's reproducer: a channels_first model (conv, conv1d, cropped and dilated transposed
    convolutions) called right after to_keras, in a process where oneDNN is off."""
    cases = {"lenet5": (ROOT / "specs" / "lenet5.net").read_text(), **{n: t for n, t in PITFALLS if n in (
        "same_s2_odd", "ct_dilated", "ct1d_crop", "ct1d_dilated", "ct3d_dilated")}}
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", ONEDNN_OFF_PROBE, json.dumps(cases)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result.pop("onednn") is False
    assert set(result) == set(cases)
    assert all(err <= ATOL for err in result.values()), result


# The tests whose layers TensorFlow computes differently with oneDNN on and off (about 100, 1 to 2 min).
ONEDNN_DEPENDENT = ("channels_first or (pitfall and (cf or ct_ or ct1d or ct3d)) or (conformance_case and conv) "
                    "or categorical_loss_axis or api_and_layout")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NETSPEC_ONEDNN_RERUN") == "1", reason="already the re-run")
def test_layout_and_transposed_conv_tests_pass_with_the_other_onednn_setting():
    """CI runs this file with one oneDNN setting (its CPU's default); this re-runs the tests that
    depend on it (channels_first, transposed convolutions) with the other, so both are proven."""
    other = "0" if _onednn_on() else "1"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": other, "NETSPEC_ONEDNN_RERUN": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           str(ROOT / "tests" / "test_keras_backend.py"),
                           "-k", ONEDNN_DEPENDENT],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], proc.stdout[-2000:]


def test_generated_sources_are_ruff_clean_and_deterministic(tmp_path):
    """Every spec and case, both layouts: identical on regeneration, compiles, passes ruff check and format."""
    count = 0
    texts = [(p.stem, n) for p in SPECS for n in netspec.load(p).networks]
    texts += [(c.name, _net(c.text(), c.name)) for c in CASES]
    texts += [(name, _net(text, name)) for name, text in PITFALLS]
    for stem, network in texts:
        for layout in LAYOUTS:
            source = kb.generate(network, layout)
            assert source == kb.generate(network, layout)
            compile(source, f"{stem}.py", "exec")
            (tmp_path / f"{stem}_{network.name}_{layout}.py").write_text(source)
            count += 1
    ruff = [sys.executable, "-m", "ruff"]
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    check = subprocess.run([*ruff, "check", *config, str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-3000:]
    fmt = subprocess.run([*ruff, "format", "--check", *config, str(tmp_path)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-3000:]
    assert count > 200


def test_generation_imports_no_framework():
    probe = ("import sys, netspec\nfrom netspec.backends import keras as kb\n"
             "kb.generate(netspec.load('specs/unet.net').network(), 'channels_first')\n"
             "kb.interface(netspec.load('specs/vae.net').network())\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "{'keras', 'tensorflow', 'torch', 'numpy', 'jax'}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Pitfalls: one micro-spec each, both layouts, against PyTorch -------------------------------------------------

PITFALLS = [
    # 'same' padding is TensorFlow's rule: native where the pads match, explicit otherwise
    ("same_s2_odd", _case("input x: [2, 9, 7]\ny = x -> conv2d(3, 3, stride=2, padding=same)\noutput y")),
    ("same_s3_odd", _case("input x: [2, 11, 13]\ny = x -> conv2d(3, 3, stride=3, padding=same)\noutput y")),
    ("same_s3_k4_odd", _case("input x: [2, 11, 10]\ny = x -> conv2d(3, 4, stride=3, padding=same)\noutput y")),
    ("explicit_s2_even", _case("input x: [2, 8, 8]\ny = x -> conv2d(3, 3, stride=2, padding=1)\noutput y")),
    ("explicit_s2_odd", _case("input x: [2, 7, 7]\ny = x -> conv2d(3, 3, stride=2, padding=1)\noutput y")),
    ("depthwise_same_s3", _case("input x: [3, 10, 11]\n"
                                "y = x -> depthwise_conv2d(3, stride=3, padding=same, depth_multiplier=2)\noutput y")),
    ("separable_same_s2", _case("input x: [3, 9, 9]\n"
                                "y = x -> separable_conv2d(4, 3, stride=2, padding=same, depth_multiplier=2)\n"
                                "output y")),
    ("conv1d_same_s3", _case("input x: [3, 10]\ny = x -> conv1d(4, 3, stride=3, padding=same)\noutput y")),
    ("conv3d_same_s2", _case("input x: [2, 5, 6, 7]\ny = x -> conv3d(3, 3, stride=2, padding=same)\noutput y")),
    ("conv_dilated_explicit", _case("input x: [2, 9, 9]\ny = x -> conv2d(3, 3, dilation=2, padding=(1, 3))\noutput y")),
    ("conv1d_dynamic", _case("input x: [3, T]\ny = x -> conv1d(4, 3, padding=same) -> relu\noutput y")),
    # activations: Keras defaults differ (LeakyReLU 0.3 / leaky_relu 0.2)
    ("leaky_default", _case("input x: [2, 6, 6]\ny = x -> conv2d(3, 3, activation=leaky_relu)\noutput y")),
    ("activation_args_dense", _case("input x: [5]\n"
                                    "a = x -> dense(4, activation=elu(0.5))\n"
                                    "b = x -> dense(4, activation=gelu(approximate=true))\n"
                                    "c = x -> dense(4, activation=hard_sigmoid)\n"
                                    "output a, b, c")),
    ("conv_softmax_attr", _case("input x: [2, 5, 6]\ny = x -> conv2d(3, 3, activation=softmax)\noutput y")),
    ("softmax_channels", _case("input x: [2, 5, 6]\ny = x -> conv2d(3, 3) -> softmax(axis=0)\noutput y")),
    # transposed convolutions: output size and cropping
    ("ct_k_lt_s_valid", _case("input x: [3, 4, 5]\ny = x -> conv_transpose2d(2, 2, stride=3)\noutput y")),
    ("ct_k_lt_s_same", _case("input x: [3, 4, 5]\ny = x -> conv_transpose2d(2, 2, stride=3, padding=same)\noutput y")),
    ("ct_k_gt_s_same", _case("input x: [3, 4, 5]\ny = x -> conv_transpose2d(2, 5, stride=2, padding=same)\noutput y")),
    ("ct_asymmetric", _case("input x: [3, 4, 5]\n"
                            "y = x -> conv_transpose2d(2, 4, stride=3, padding=((2, 0), (1, 2)), output_padding=2)\n"
                            "output y")),
    ("ct_dilated", _case("input x: [3, 4, 4]\ny = x -> conv_transpose2d(2, 3, dilation=2, padding=1)\noutput y")),
    # dilated transposed convolutions run as dilated convolutions (TensorFlow's CPU kernels without oneDNN)
    ("ct_dilated_same", _case("input x: [3, 5, 4]\ny = x -> conv_transpose2d(2, 3, dilation=2, padding=same)\n"
                              "output y")),
    ("ct_dilated_rect_softmax", _case("input x: [3, 4, 5]\n"
                                      "y = x -> conv_transpose2d(2, (2, 3), dilation=(1, 3), padding=(1, 2), "
                                      "activation=softmax)\noutput y")),
    ("ct1d_dilated", _case("input x: [3, 6]\ny = x -> conv_transpose1d(2, 3, dilation=3, use_bias=false)\n"
                           "output y")),
    ("ct3d_dilated", _case("input x: [2, 3, 4, 4]\ny = x -> conv_transpose3d(2, 2, dilation=2, activation=relu)\n"
                           "output y")),
    ("ct_softmax_crop", _case("input x: [3, 4, 4]\n"
                              "y = x -> conv_transpose2d(2, 3, stride=2, padding=1, activation=softmax)\noutput y")),
    ("ct1d_crop", _case("input x: [3, 6]\ny = x -> conv_transpose1d(2, 3, stride=2, padding=1, output_padding=1)\n"
                        "output y")),
    ("ct3d", _case("input x: [2, 3, 3, 3]\ny = x -> conv_transpose3d(2, 2, stride=2)\noutput y")),
    # pooling: -inf padding, ceil_mode, count_include_pad
    ("maxpool_pad_ceil", _case("input x: [2, 8, 8]\ny = x -> maxpool2d(3, stride=2, padding=1, ceil_mode=true)\n"
                               "output y")),
    ("maxpool_negative", _case("input x: [2, 7, 7]\ny = x -> maxpool2d(2, padding=1) -> linear\noutput y")),
    ("maxpool1d_ceil", _case("input x: [2, 10]\ny = x -> maxpool1d(3, stride=2, padding=1, ceil_mode=true)\n"
                             "output y")),
    ("maxpool3d_ceil", _case("input x: [2, 5, 5, 5]\ny = x -> maxpool3d(2, ceil_mode=true)\noutput y")),
    ("avgpool1d_include", _case("input x: [2, 9]\n"
                                "y = x -> avgpool1d(3, stride=2, padding=1, count_include_pad=true)\noutput y")),
    ("avgpool3d_pad", _case("input x: [2, 5, 4, 5]\ny = x -> avgpool3d(2, stride=2, padding=1)\noutput y")),
    ("avgpool_rect_ceil", _case("input x: [2, 8, 7]\n"
                                "y = x -> avgpool2d((3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=true)\n"
                                "output y")),
    ("avgpool_same_include", _case("input x: [2, 8, 8]\n"
                                   "y = x -> avgpool2d(3, stride=2, padding=same, count_include_pad=true)\n"
                                   "output y")),
    ("avgpool_ceil_only", _case("input x: [2, 7, 7]\ny = x -> avgpool2d(2, ceil_mode=true)\noutput y")),
    ("global_pools", _case("input x: [3, 8]\ninput v: [2, 3, 4, 5]\n"
                           "a = x -> global_avgpool1d\nb = v -> global_maxpool3d\noutput a, b")),
    # flatten order and shape ops on channels-last values
    ("flatten_dense", _case("input x: [3, 5, 4]\ny = x -> conv2d(4, 3) -> flatten -> dense(6)\noutput y")),
    ("flatten_one_channel", _case("input x: [1, 5, 4]\ny = x -> flatten -> dense(3)\noutput y")),
    ("flatten_conv1d", _case("input x: [3, 9]\ny = x -> conv1d(4, 3) -> flatten -> dense(5)\noutput y")),
    ("reshape_conv", _case("input x: [2, 4, 6]\ny = x -> conv2d(4, 3) -> reshape([8, -1]) -> dense(3)\noutput y")),
    ("permute_conv", _case("input x: [2, 4, 6]\ny = x -> conv2d(3, 3) -> permute(1, 2, 0)\noutput y")),
    ("reshape_to_image", _case("input x: [48]\ny = x -> reshape([3, 4, 4]) -> conv2d(2, 3)\noutput y")),
    ("signal_both_ways", _case("input x: [4, 6]\na = x -> conv1d(2, 3)\nb = x -> dense(3)\noutput a, b")),
    ("zeropad_1d_3d", _case("input x: [2, 5]\ninput v: [2, 3, 3, 3]\n"
                            "a = x -> zeropad1d(((1, 2),))\nb = v -> zeropad3d(1)\noutput a, b")),
    ("upsample", _case("input x: [2, 5]\ninput v: [2, 3, 4]\ninput w: [2, 2, 2, 3]\n"
                       "a = x -> upsample1d(2)\nb = x -> upsample1d(3, mode=linear)\n"
                       "c = v -> upsample2d((2, 3), mode=bilinear)\nd = w -> upsample3d(2)\noutput a, b, c, d")),
    # normalisation
    ("batchnorm_pytorch", _case("input x: [3, 5, 5]\ny = x -> conv2d(4, 3) -> batchnorm(eps=1e-5, momentum=0.9)\n"
                                "output y")),
    ("batchnorm_sequence", _case("input x: [4, 6]\na = x -> batchnorm\nb = x -> batchnorm(axis=-1)\noutput a, b")),
    ("layernorm_image", _case("input x: [3, 4, 5]\n"
                              "a = x -> conv2d(2, 1) -> layernorm(axis=(0, 1, 2))\n"
                              "b = x -> conv2d(2, 1) -> layernorm(axis=(1, 2), eps=1e-5)\n"
                              "c = x -> conv2d(2, 1) -> layernorm\noutput a, b, c")),
    # merges on channels-last values, broadcasting, concat axes
    ("merge_images", _case("input x: [3, 4, 5]\ninput s: [3, 1, 1]\n"
                           "a = x -> conv2d(3, 1)\nb = x -> conv2d(3, 1)\n"
                           "y = maximum(add(a, b, s), multiply(a, b)) -> relu\noutput y")),
    ("merge_ranks", _case("input x: [3, 4, 5]\ninput v: [5]\ny = add(x, v)\noutput y")),
    ("concat_axes", _case("input x: [3, 4, 5]\n"
                          "a = concat(x, x, axis=0)\nb = concat(x, x, axis=1)\nc = concat(x, x, axis=-1)\n"
                          "output a, b, c")),
    ("dot_normalize_matrix", _case("input a: [3, 4]\ninput b: [5, 4]\ny = dot(a, b, axes=(1, 1), normalize=true)\n"
                                   "output y")),
    # recurrent layers: gate order, bias layout, directions
    ("rnn_variants", _case("input x: [5, 3]\n"
                           "a = x -> lstm(4, unit_forget_bias=false, return_sequences=true)\n"
                           "b = x -> gru(4, use_bias=false)\n"
                           "c = x -> bidirectional(simple_rnn(3, return_sequences=true), merge_mode=sum)\n"
                           "d = x -> bidirectional(gru(3), merge_mode=mul)\n"
                           "e = x -> bidirectional(lstm(3, return_sequences=true), merge_mode=ave)\n"
                           "output a, b, c, d, e")),
    ("embedding_conv1d", _case("input ids: int64[7]\ny = ids -> embedding(20, 4) -> conv1d(3, 2)\noutput y")),
    # shared layers whose uses see different sizes ('same' matches one use only)
    ("shared_conv_sizes", _case("input a: [2, 7, 7]\ninput b: [2, 8, 8]\n"
                                "layer conv = conv2d(3, 3, stride=2, padding=1)\nlayer bn = batchnorm()\n"
                                "layer pool = avgpool2d(3, stride=2, padding=1, ceil_mode=true)\n"
                                "u = a -> conv -> bn -> pool\nv = b -> conv -> bn -> pool\noutput u, v")),
]


def _layout_matters(network) -> bool:
    """Whether channels_first generates other layers than channels_last (else one run covers both)."""
    def body(layout):
        return [line for line in kb.generate(network, layout).splitlines()
                if "Layout:" not in line and "Build the compiled" not in line]
    return body("channels_last") != body("channels_first")


def _both_layouts(items):
    """(name, network text, layout) for channels_last, and for channels_first where it differs."""
    out = []
    for name, text in items:
        out.append(pytest.param(name, text, "channels_last", id=f"{name}-cl"))
        if _layout_matters(_net(text, name)):
            out.append(pytest.param(name, text, "channels_first", id=f"{name}-cf"))
    return out


@pytest.mark.parametrize(("name", "text", "layout"), _both_layouts(PITFALLS))
def test_pitfall(name, text, layout):
    check_network(_net(text, name), layout=layout)


@pytest.mark.parametrize(("name", "text", "layout"), _both_layouts((c.name, c.text()) for c in CASES))
def test_conformance_case(name, text, layout):
    check_network(_net(text, name), layout=layout)


# What the generated code says ------------------------------------------------------------------------


def _source(body: str, layout="channels_last") -> str:
    return kb.generate(_net(_case(body)), layout)


def test_native_padding_only_where_it_matches():
    assert 'padding="same"' in _source("input x: [2, 7, 7]\ny = x -> conv2d(3, 3, stride=2, padding=1)\noutput y")
    src = _source("input x: [2, 8, 8]\ny = x -> conv2d(3, 3, stride=2, padding=1)\noutput y")
    assert "layers.ZeroPadding2D(1" in src and "same" not in src
    src = _source("input x: [2, 8, 8]\ny = x -> maxpool2d(3, stride=2, padding=1)\noutput y")
    assert 'ConstantPadding(((1, 1), (1, 1)), value=float("-inf")' in src
    src = _source("input x: [2, 8, 8]\ny = x -> avgpool2d(3, stride=2, padding=same)\noutput y")
    assert 'layers.AveragePooling2D(3, strides=2, padding="same"' in src
    src = _source("input x: [2, 8, 8]\ny = x -> avgpool2d(3, stride=2, padding=1)\noutput y")
    assert "PaddedAveragePooling((3, 3), (2, 2), ((1, 1), (1, 1))" in src
    src = _source("input x: [2, 4, 4]\ny = x -> conv_transpose2d(2, 2, stride=2)\noutput y")
    assert "layers.Conv2DTranspose(2, 2, strides=2, name=" in src
    src = _source("input x: [2, 4, 4]\ny = x -> conv_transpose2d(2, 3, stride=2, padding=1, output_padding=1)\n"
                  "output y")
    assert "output_padding=0" in src and "layers.Cropping2D(((1, 0), (1, 0))" in src


def test_flatten_permutes_channels_first_before_flatten():
    src = _source("input x: [3, 5, 4]\ny = x -> conv2d(4, 3) -> flatten -> dense(6)\noutput y")
    assert "layers.Permute((3, 1, 2)" in src and src.index("Permute") < src.index("Flatten")
    assert "Permute" not in _source("input x: [1, 5, 4]\ny = x -> flatten -> dense(6)\noutput y")
    assert "Permute" not in _source("input x: [3, 5, 4]\ny = x -> flatten -> dense(6)\noutput y",
                                    "channels_first")


def test_layer_names_and_inputs():
    network = netspec.load(ROOT / "specs" / "siamese.net").network()
    model = kb.build(network)
    names = {layer.name for layer in model.layers}
    assert {"conv_a", "conv_b", "embed", "a-maxpool2d", "prob-dense", "left", "right"} <= names
    assert {kb.keras_name(n.name) for n in network.nodes if not n.shared} <= names
    assert model.inputs[0].shape == (None, 28, 28, 1)
    assert kb.build(network, layout="channels_first").inputs[0].shape == (None, 1, 28, 28)
    # inside a block function a layer is named `name` + its relative name; the calls pass the paths
    resnet = kb.generate(netspec.load(ROOT / "specs" / "resnet152.net").network())
    assert 'name=f"{name}main-conv2d"' in resnet and 'name="features-0-")' in resnet
    assert 'name=f"features-{i}-")' in resnet  # the runs of identity blocks are loops
    assert "for i in range(48, 50):" in resnet
    unet = netspec.load(ROOT / "specs" / "unet.net").network()
    built = {layer.name for layer in kb.build(unet).layers}
    assert {kb.keras_name(n.name) for n in unet.nodes} <= built
    lstm = kb.build(netspec.load(ROOT / "specs" / "lstm_stack.net").network())
    assert lstm.inputs[0].shape == (None, None, 16)


def test_batchnorm_and_leaky_relu_settings():
    network = _net(_case("input x: [3, 6, 6]\n"
                         "y = x -> conv2d(4, 3) -> batchnorm(eps=1e-5, momentum=0.9) -> leaky_relu\noutput y"))
    for layout in LAYOUTS:  # spatial layers run channels-last in both layouts
        model = kb.build(network, layout=layout)
        bn = model.get_layer("y-batchnorm")
        assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)
        assert bn.axis in (-1, 3)
        assert model.get_layer("y-leaky_relu").negative_slope == pytest.approx(0.01)
    gru = kb.build(netspec.load(ROOT / "specs" / "bigru_classifier.net").network())
    inner = gru.get_layer("prob-bidirectional").forward_layer
    assert inner.cell.reset_after and tuple(inner.cell.bias.shape) == (2, 192)


def test_initializers_keep_the_spec_meaning():
    src = _source("input x: [3, 8, 8]\n"
                  "y = x -> depthwise_conv2d(3, depth_multiplier=2, kernel_init=he_normal)"
                  " -> dense(4, kernel_init=normal(0.02), bias_init=constant(0.1))\n"
                  "z = x -> conv2d(2, 3, kernel_init=orthogonal(2.0), kernel_regularizer=l1_l2(0.01, 0.02))\n"
                  "output y, z")
    # spec fans of [6, 1, 3, 3]: fan_in 9 -> variance 2/9; Keras's fan_in of [3, 3, 3, 2] is 27: scale 6
    assert 'keras.initializers.VarianceScaling(6.0, "fan_in", "truncated_normal")' in src
    assert "keras.initializers.RandomNormal(mean=0.0, stddev=0.02)" in src
    assert "keras.initializers.Constant(0.1)" in src
    assert "keras.initializers.Orthogonal(gain=2.0)" in src
    assert "keras.regularizers.L1L2(l1=0.01, l2=0.02)" in src
    # the statistics the spec promises: depthwise he_normal has std sqrt(2 / 9)
    network = _net(_case("input x: [64, 8, 8]\ny = x -> depthwise_conv2d(3, depth_multiplier=16, "
                         "kernel_init=he_normal)\noutput y"))
    kernel = kb.build(network).get_layer("y-depthwise_conv2d").kernel.numpy()
    assert np.std(kernel) == pytest.approx(np.sqrt(2 / 9), rel=0.05)


def test_regularizers_add_the_spec_penalty():
    network = netspec.load(ROOT / "specs" / "autoencoder.net").network("AutoencoderL2")
    weights = init_weights(network, 3)
    model = kb.build(network, weights)
    penalty = 0.01 * (np.sum(weights["code.dense.kernel"].astype(np.float64) ** 2)
                      + np.sum(weights["code.dense.bias"].astype(np.float64) ** 2))
    assert float(sum(keras.ops.convert_to_numpy(x) for x in model.losses)) == pytest.approx(penalty, rel=1e-5)


def _evaluate(model, x, y=None):
    """The total loss (evaluate adds one entry per output when there are several)."""
    result = model.evaluate(x, y, verbose=0, batch_size=len(x[0]) if isinstance(x, list) else len(x))
    return float(result[0] if isinstance(result, list) else result)


def test_vae_loss_is_mse_plus_kl():
    network = netspec.load(ROOT / "specs" / "vae.net").network()
    weights = init_weights(network, 2)
    model = kb.build(network, weights)
    x = np.random.default_rng(0).random((4, 784)).astype(np.float32)
    recon, mu, logvar = (keras.ops.convert_to_numpy(t) for t in model(x))
    mse = np.mean((recon - x) ** 2)
    kl = np.mean(-0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1))
    assert _evaluate(model, x, [x, None, None]) == pytest.approx(mse + kl, rel=1e-5)


def test_weighted_losses_and_terms_on_one_output():
    text = _case("input x: [4]\ntarget t1: [3]\ntarget t2: [2]\n"
                 "a = x -> dense(3)\nb = x -> dense(2)\n"
                 "output a, b\n"
                 "loss 0.5 * mse(a, t1) + 2 * mae(b, t2) - 0.25 * huber(b, t2, delta=0.5)\n"
                 "optimizer rmsprop(lr=0.01, rho=0.8, centered=true)")
    network = _net(text)
    src = kb.generate(network)
    assert "loss_weights=[0.5, 1.0]" in src and "def loss_b(y_true, y_pred):" in src
    model = kb.build(network, init_weights(network, 0))
    rng = np.random.default_rng(1)
    x, t1, t2 = rng.random((5, 4)), rng.random((5, 3)), rng.random((5, 2))
    a, b = (keras.ops.convert_to_numpy(t) for t in model(x.astype(np.float32)))
    e = b - t2
    huber = np.where(np.abs(e) <= 0.5, 0.5 * e ** 2, 0.5 * (np.abs(e) - 0.25))
    want = 0.5 * np.mean((a - t1) ** 2) + 2 * np.mean(np.abs(e)) - 0.25 * np.mean(huber)
    assert _evaluate(model, x, [t1, t2]) == pytest.approx(want, rel=1e-5)
    config = model.optimizer.get_config()
    assert type(model.optimizer).__name__ == "RMSprop" and (config["rho"], config["centered"]) == (0.8, True)
    assert config["learning_rate"] == pytest.approx(0.01)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_categorical_loss_axis_follows_the_layout(layout):
    network = _net(_case("input x: [2, 5, 5]\ntarget t: [4, 3, 3]\n"
                         "y = x -> conv2d(4, 3) -> softmax(axis=0)\noutput y\n"
                         "loss categorical_crossentropy(y, t, axis=0)"))
    model = kb.build(network, init_weights(network, 0), layout=layout)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (3, 3, 3))].transpose(0, 3, 1, 2)
    p = kb.from_model_layout(network, "y", keras.ops.convert_to_numpy(
        model(kb.to_model_layout(network, "x", x, layout))), layout)
    want = np.mean(-np.sum(t * np.log(p), axis=1))
    got = _evaluate(model, kb.to_model_layout(network, "x", x, layout), kb.to_model_layout(network, "y", t, layout))
    assert got == pytest.approx(want, rel=1e-5)


def test_kl_only_loss_and_fit():
    network = _net(_case("input x: [3]\nmu = x -> dense(2)\nlogvar = x -> dense(2)\noutput mu, logvar\n"
                         "loss 0.5 * kl_normal(mu, logvar)\noptimizer adam(lr=0.01)"))
    model = kb.build(network, init_weights(network, 0))
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    mu, lv = (keras.ops.convert_to_numpy(t) for t in model(x))
    want = 0.5 * np.mean(-0.5 * np.sum(1 + lv - mu ** 2 - np.exp(lv), axis=1))
    assert _evaluate(model, x) == pytest.approx(want, rel=1e-5)
    history = model.fit(x, epochs=2, batch_size=6, verbose=0).history["loss"]
    assert history[1] < history[0]


@pytest.mark.parametrize(("spec", "cls", "want"), [
    ("sgd(lr=0.05, momentum=0.9, nesterov=true, weight_decay=0.001)", "SGD",
     {"momentum": 0.9, "nesterov": True, "weight_decay": 0.001}),
    ("adagrad(initial_accumulator=0.2, eps=1e-6)", "Adagrad", {"initial_accumulator_value": 0.2, "epsilon": 1e-6}),
    ("adadelta(rho=0.9)", "Adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    ("adam(lr=0.002, beta1=0.8, beta2=0.99, eps=1e-8, amsgrad=true)", "Adam",
     {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-8, "amsgrad": True}),
    ("adamw(weight_decay=0.01)", "AdamW", {"weight_decay": 0.01}),
])
def test_optimizers(spec, cls, want):
    network = _net(_case(f"input x: [3]\ntarget t: [2]\ny = x -> dense(2)\noutput y\nloss mse(y, t)\n"
                         f"optimizer {spec}"))
    assert f"keras.optimizers.{cls}(" in kb.generate(network)
    config = kb.build(network).optimizer.get_config()
    for key, value in want.items():
        assert config[key] == pytest.approx(value), key


def test_training_runs_on_a_convnet():
    network = netspec.load(ROOT / "specs" / "lenet5.net").network()
    model = kb.build(network, init_weights(network, 0))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 8)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < history[0]


# Weights, errors, API --------------------------------------------------------------------------------


def test_weights_that_do_not_fit_raise_e602():
    network = netspec.load(ROOT / "specs" / "tiny_mlp.net").network()
    model = kb.build(network)
    weights = init_weights(network)
    bad = dict(weights)
    del bad["logits.dense.bias"]
    with pytest.raises(SpecError) as exc:
        kb.load_canonical(model, network, bad)
    assert exc.value.diagnostics[0].code == "E602" and "logits.dense.bias" in str(exc.value)
    bad = {**weights, "logits.dense.kernel": np.zeros((3, 4), np.float32)}
    with pytest.raises(SpecError, match="E602"):
        kb.load_canonical(model, network, bad)
    other = kb.build(netspec.load(ROOT / "specs" / "mlp.net").network())
    with pytest.raises(SpecError, match="E602"):
        kb.load_canonical(other, network, weights)


@pytest.mark.parametrize(("body", "what"), [
    ("input x: [2, 4, 4, 4]\ny = x -> upsample3d(2, mode=linear)\noutput y", "trilinear"),
    ("input x: [2, 9, 9]\ny = x -> conv2d(3, 3, stride=2, dilation=2)\noutput y", "stride and dilation"),
    ("input x: [4]\ntarget t: [3]\nh = x -> dense(3)\ny = h -> dense(2)\noutput y\nloss mse(h, t)", "not an output"),
    ("input x: [4]\nmu = x -> dense(2)\nlv = x -> dense(2)\ny = add(mu, lv)\noutput y\nloss kl_normal(mu, lv)",
     "not an output"),
])
def test_unsupported_is_e601(body, what):
    with pytest.raises(SpecError) as exc:
        kb.generate(_net(_case(body)))
    assert exc.value.diagnostics[0].code == "E601" and what in str(exc.value)


def test_api_and_layout_helpers():
    spec = netspec.load(ROOT / "specs" / "unet.net")
    network = spec.network()
    assert spec.compile("keras") == kb.generate(network)
    assert "channels_first" in spec.compile("keras", layout="channels_first")
    with pytest.raises(ValueError):
        kb.generate(network, layout="nhwc")
    assert kb.interface(network) == {"inputs": [("image", True)], "outputs": [("prob", True)]}
    assert kb.interface(network, "channels_first") == {"inputs": [("image", False)], "outputs": [("prob", False)]}
    x = np.zeros((2, 1, 64, 64))
    assert kb.to_model_layout(network, "image", x).shape == (2, 64, 64, 1)
    assert kb.from_model_layout(network, "prob", np.zeros((2, 64, 64, 1))).shape == (2, 1, 64, 64)
    model = spec.to_keras(weights=spec.init_weights(seed=4), layout="channels_first")
    assert model.inputs[0].shape == (None, 1, 64, 64)


def test_no_tensorflow_log_noise():
    probe = ("import numpy as np, netspec\nfrom netspec.backends import keras as kb\n"
             "n = netspec.load('specs/lenet5.net').network()\n"
             "m = kb.build(n, netspec.init_weights(n))\n"
             "m(np.zeros((1, 28, 28, 1), np.float32))\nprint('done')")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr[-2000:]
    assert out.stderr == ""


KERAS_TORCH_PROBE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, "tests")
import numpy as np
import netspec
from netspec.backends import keras as kb
from conformance_cases import CASES_BY_NAME
import test_keras_backend as t

results = {}
nets = [netspec.load("specs/lenet5.net").network(), netspec.load("specs/bigru_classifier.net").network()]
nets += [t._net(CASES_BY_NAME[c].text(), c) for c in ("same_s2_k3_i8", "conv_transpose_same", "maxpool_pad",
                                                     "avgpool_ceil_exclude", "gru_seq")]
nets += [t._net(dict(t.PITFALLS)[c], c) for c in ("ct_dilated", "ct1d_dilated")]
for i, n in enumerate(nets):
    w = netspec.init_weights(n, 1)
    x = t.make_inputs(n)
    try:
        _, got = t.run_keras(n, w, x)
        want = t.run_torch(n, w, x)
        results[f"{i}:{n.name}"] = max(float(np.abs(g - r).max()) for g, r in zip(got, want))
    except Exception as exc:
        results[f"{i}:{n.name}"] = repr(exc)
print(json.dumps({"backend": kb._keras().backend.backend(), "results": results}))
"""


def test_runs_on_keras_torch_backend():
    out = subprocess.run([sys.executable, "-c", KERAS_TORCH_PROBE], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["backend"] == "torch"
    for name, err in data["results"].items():
        assert isinstance(err, float) and err < 1e-4, (name, err)
    assert len(data["results"]) == 9


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Keras's loader (NumPy 2's copy keyword)
def test_saved_model_reloads_with_custom_layers(tmp_path):
    network = _net(_case("input x: [2, 8, 8]\n"
                         "a = x -> maxpool2d(3, stride=2, padding=1, ceil_mode=true) -> flatten\n"
                         "b = x -> avgpool2d(3, stride=2, padding=1) -> gelu(approximate=true)\n"
                         "c = x -> conv_transpose2d(2, 3, dilation=2)\n"
                         "mu = a -> dense(2)\nlv = a -> dense(2)\noutput b, mu, lv, c\nloss kl_normal(mu, lv)"))
    model = kb.build(network, init_weights(network, 5))
    model.save(tmp_path / "case.keras")
    again = keras.saving.load_model(tmp_path / "case.keras")
    assert type(again).__name__ == "CaseModel"
    x = make_inputs(network)["x"].transpose(0, 2, 3, 1)
    for a, b in zip(model(x), again(x)):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_cli_compile_keras(tmp_path, in_root):
    from netspec.cli import main

    out = tmp_path / "lenet.py"
    assert main(["compile", "specs/lenet5.net", "--target", "keras", "--layout", "channels_first",
                 "-o", str(out)]) == 0
    assert out.read_text() == kb.generate(netspec.load("specs/lenet5.net").network(), "channels_first")


# Compilers (issue 12) --------------------------------------------------------------------------------

JIT_SPECS = ["lenet5", "unet", "conv_example", "resnet50"]


@pytest.mark.slow
@pytest.mark.parametrize("stem", JIT_SPECS)
def test_keras_models_trace_under_jit_compile(stem):
    """XLA (``jit_compile=True``) traces the generated model and computes what eager Keras computes.

    Covers the runtime helpers (ConstantPadding before a max pool in lenet5 and resnet50) and the
    block functions (unet, resnet50). Recurrent specs are left out: TensorFlow's XLA path for
    cuDNN-style RNN kernels is not what this checks.
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("jit_compile here means TensorFlow's XLA")
    network = netspec.load(ROOT / "specs" / f"{stem}.net").network()
    model = kb.build(network, init_weights(network, seed=1))
    inputs = make_inputs(network, batch=1)
    feeds = [kb.to_model_layout(network, v.name, inputs[v.name]) for v in network.inputs]
    feeds = feeds if len(feeds) > 1 else feeds[0]
    eager = model(feeds, training=False)
    traced = tf.function(lambda x: model(x, training=False), jit_compile=True)(feeds)
    eager = eager if isinstance(eager, (list, tuple)) else [eager]
    traced = traced if isinstance(traced, (list, tuple)) else [traced]
    for e, t in zip(eager, traced):
        assert_close(np.asarray(t), np.asarray(e), f"{stem} under jit_compile")


def test_backend_contract_generates_once_per_build(monkeypatch):
    """build, run, train_step and export through the contract: the source is generated once, not per call."""
    from netspec import backends

    calls = []
    real = kb.KerasGenerator.generate
    monkeypatch.setattr(kb.KerasGenerator, "generate", lambda self: calls.append(1) or real(self))
    network = netspec.load(ROOT / "specs" / "tiny_mlp.net").network()
    b = backends.get("keras")
    weights = init_weights(network, seed=1)
    built = b.build(network, weights, eager=True)
    inputs = make_inputs(network)
    (out,) = b.run(built, inputs)
    assert_close(out, run_torch(network, weights, inputs)[0], "contract run")
    targets = {v.name: np.zeros((2, *v.type.shape), dtype=v.type.dtype) for v in network.targets}
    assert np.isfinite(b.train_step(built, inputs, targets))
    assert set(b.export_canonical(built)) == set(weights)
    assert len(calls) == 1


NESTED_BLOCKS = """
block unit(width, stride=1) {
    return in -> conv2d(width, 3, stride=stride, padding=1) -> batchnorm -> relu
}
block stage(width) {
    return in -> unit(width, stride=2) -> unit(width) * 2
}
network Nested {
    input x: [3, 15, 15]
    y = x -> stage(8) -> stage(16) -> global_avgpool2d -> dense(4)
    output y
}
"""


def test_mirrored_blocks_compute_the_spec():
    """Nested block functions, loops and per-line 'same' decisions: the same numbers as PyTorch.

    Numbers in channels_last (TensorFlow without oneDNN runs no NCHW convolution on a CPU);
    channels_first mirrors the same structure.
    """
    network = _net(NESTED_BLOCKS, "nested")
    for layout in LAYOUTS:
        source = kb.generate(network, layout)
        assert "def unit(x, width, stride=1, name=\"\"):" in source and "def stage(x, width, name=\"\"):" in source
    check_network(network, "channels_last")


VALUE_BLOCKS = """
block decoder_layer(memory, pad, heads=2) {
    s = in -> attention(heads, causal=true)
    h = add(in, s) -> layernorm(eps=1e-5)
    c = attention(h, memory, heads=heads, mask=pad)
    return add(h, c) -> layernorm(eps=1e-5) -> dense(8, activation=relu)
}
block pass_on(memory, pad) {
    return in -> decoder_layer(memory, pad) -> decoder_layer(memory, pad)
}
network Values {
    input x: [4, 8]
    input m: [6, 8]
    input pad: int64[6]
    mem = m -> dense(8)
    y = x -> decoder_layer(mem, pad) * 3
    z = y -> pass_on(mem, pad)
    output y, z
}
"""


def test_block_functions_take_value_parameters():
    """A block that reads values besides `in` is a function of them (keras.applications style), in a loop
    when repeated; the numbers and the canonical weight names are those of PyTorch."""
    network = _net(VALUE_BLOCKS, "values")
    for layout in LAYOUTS:
        source = kb.generate(network, layout)
        assert 'def decoder_layer(x, memory, pad, heads=2, name=""):' in source
        assert 'def pass_on(x, memory, pad, name=""):' in source
        assert "y_2_dense = decoder_layer_2(y_2_dense, mem_dense, pad, name=f\"y-{i}-\")" in source
        assert "decoder_layer(x, memory, pad, name=f\"{name}0-\")" in source  # passed on
    check_network(network, "channels_last")
