"""keras.applications models taken into specs of the same architecture (issue 15, "Done when").

Each model is built with ``weights=None`` (nothing may be downloaded); every BatchNormalization's
gamma, beta and moving statistics and every bias are randomised, so that none is tested at a
trivial value. Its weights are imported by structure with ``weights_from_keras`` into the spec;
the spec's Keras, PyTorch and ONNX (Runtime) builds must then give the Keras model's own output
within 1e-4 of its largest value, and the spec must count the parameters Keras counts. The
softmax's probabilities are small numbers, so the logits behind them (their logarithms, centred)
are compared too. ResNet50 is in tests/test_import_weights.py.

One sample, one forward pass per backend; the models are freed as soon as they have answered.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from conftest import ROOT

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import netspec  # noqa: E402
from netspec.importers.weights import weights_from_keras  # noqa: E402

REL = 1e-4

# (keras.applications constructor, spec file, network, weighted layers)
MODELS = [
    ("VGG19", "vgg19.net", "VGG19", 19),
    ("MobileNetV2", "mobilenet_v2_keras.net", "MobileNetV2Keras", 105),
    ("DenseNet121", "densenet121_keras.net", "DenseNet121Keras", 242),
]


def randomise_batchnorm(model, rng) -> int:
    """Random gamma, beta, moving mean and variance in every BatchNormalization; how many."""
    count = 0
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.normal(1, 0.2, g.shape).astype("f"), rng.normal(0, 0.2, b.shape).astype("f"),
                               rng.normal(0, 0.2, m.shape).astype("f"), rng.uniform(0.5, 2, v.shape).astype("f")])
            count += 1
    return count


def randomise_biases(model, rng) -> None:
    """Keras starts biases at zero, where a misplaced one would go unnoticed."""
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense") and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.05, bias.shape).astype("f")])


def he_scale(model) -> None:
    """Glorot kernels halve the signal's power at every ReLU: 19 layers of VGG-19 leave logits near
    zero and the softmax near uniform. Scaled by sqrt(2) (He's variance) they keep their size."""
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense"):
            kernel, *rest = layer.get_weights()
            layer.set_weights([kernel * np.float32(np.sqrt(2)), *rest])


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def logits(probs: np.ndarray) -> np.ndarray:
    """Softmax outputs back to logits up to a constant per row (log, centred)."""
    lg = np.log(np.asarray(probs, dtype=np.float64))
    return lg - lg.mean(axis=-1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize(("app", "spec_file", "network", "n_layers"), MODELS, ids=[m[0] for m in MODELS])
def test_keras_application_into_spec(app, spec_file, network, n_layers):
    rng = np.random.default_rng(0)
    model = getattr(keras.applications, app)(weights=None)
    if app == "VGG19":
        he_scale(model)
    else:
        assert randomise_batchnorm(model, rng) > 0
    randomise_biases(model, rng)
    spec = netspec.load(ROOT / "specs" / spec_file)
    net = spec.network(network)
    assert sum(net.param_counts()) == model.count_params()
    assert f"{model.count_params():,}" in (ROOT / "specs" / spec_file).read_text()  # the header says so

    r = weights_from_keras(model, spec)
    assert r.how == "by structure"
    assert len(r.pairs) == len(net.layers()) == n_layers == sum(1 for layer in model.layers if layer.weights)

    x = rng.standard_normal((1, 224, 224, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    del model
    gc.collect()
    assert want.min() > 0, "a saturated softmax would hide errors in its logits"
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    outputs = {}
    generated = spec.to_keras(weights=r.weights, network=network)
    outputs["keras"] = np.asarray(generated(x, training=False))
    del generated
    module = spec.to_torch(weights=r.weights, network=network).eval()
    with torch.no_grad():
        outputs["torch"] = module(torch.from_numpy(nchw)).numpy()
    del module
    proto = spec.to_onnx(r.weights, network=network).SerializeToString()
    session = ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    del proto
    outputs["onnx"] = session.run(None, {session.get_inputs()[0].name: nchw})[0]
    del session
    gc.collect()

    for backend, got in outputs.items():
        err = relative_error(got, want)
        assert err <= REL, f"{backend}: probabilities differ by {err:.3g} of the largest"
        err = relative_error(logits(got), logits(want))
        assert err <= REL, f"{backend}: logits differ by {err:.3g} of the largest"
