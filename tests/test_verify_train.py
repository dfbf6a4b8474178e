"""verify's judgement: rounding passes, meaning does not; run-time dimensions; backend errors as lines.

- A conv bias followed by BatchNorm under Adam: its gradient is rounding (the normalisation cancels
  it), which Adam scales up to learning-rate-sized steps; beyond verify's tolerance in float32, within
  the backends' own float32 error, equal in float64: a pass, reported as noise-dominated.
- Negative controls: Keras's own optimiser on repeated embedding ids (sparse slices squared one by
  one) and a learning rate 1% off in the generated Keras code fail, noise floor or not.
- ``--dim NAME=SIZE`` and defaults that fit the spec's shapes; a framework exception inside verify is
  a failure line, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

if not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow", "torch")):
    pytest.skip("needs keras, tensorflow and torch", allow_module_level=True)

import netspec  # noqa: E402
from netspec import backends  # noqa: E402
from netspec import verify as v  # noqa: E402
from netspec.backends import keras_training  # noqa: E402
from netspec.cli import main  # noqa: E402

BIAS_BN = """network BiasBN {
    input x: [3, 12, 12]
    target t: int64[]
    y = x -> conv2d(8, 3) -> batchnorm -> relu -> conv2d(8, 3) -> batchnorm -> relu -> global_avgpool2d -> dense(4)
    output y
    loss sparse_categorical_crossentropy(y, t, from_logits=true)
    optimizer adam(lr=0.01)
}
"""

EMBED = """network Emb {
    input ids: int64[6]
    target t: [6, 3]
    y = ids -> embedding(5, 3)
    output y
    loss mse(y, t)
    optimizer rmsprop(lr=0.01)
}
"""

TEXT = """network Text {
    input ids: int64[T]
    target label: int64[]
    y = ids -> embedding(50, 8) -> permute(1, 0) -> conv1d(8, 5) -> maxpool1d(3) -> conv1d(8, 3) \\
        -> global_maxpool1d -> dense(2)
    output y
    loss sparse_categorical_crossentropy(y, label, from_logits=true)
    optimizer sgd(lr=0.1)
}
"""


def _net(text: str) -> netspec.ir.Network:
    return netspec.parse_text(text, "v.net").network()


def test_rounding_beyond_the_tolerance_passes_as_noise():
    result = v.verify_training(_net(BIAS_BN), steps=3)
    assert result.passed, result.render()
    assert result.noise_floor
    dominated = {name for s in result.steps for name in s.noise_dominated()}
    assert dominated >= {"y.conv2d.bias", "y.conv2d_1.bias"}
    strict = v.verify_training(_net(BIAS_BN), steps=3, noise_floor=False)
    assert not strict.passed  # the fixed tolerance alone calls it a failure
    text = result.render()
    assert "pass (noise)" in text and "noise-dominated" in text and "y.conv2d.bias" in text
    data = result.to_json()
    assert data["noise_floor"] and data["per_step"][0]["noise_dominated"]
    bias = next(t for t in data["per_step"][0]["tensors"] if t["name"] == "y.conv2d.bias")
    assert bias["noise"] > 0 and bias["float64_abs"] < 1e-9 and bias["max_abs"] <= 10 * bias["noise"]


def test_negative_control_sparse_embedding_updates_fail(monkeypatch):
    """Keras's own RMSprop on repeated ids (the bug of issue 13): a real mismatch, whatever the noise."""
    monkeypatch.setattr(keras_training.TrainingMixin, "optimizer_expr",
                        lambda self, opt: keras_training._optimizer_expr(opt))
    result = v.verify_training(_net(EMBED), steps=2)
    assert not result.passed and result.noise_floor
    bad = [t for s in result.steps for t in s.tensors if not t.passed]
    assert bad and all(t.name == "y.embedding.embeddings" for t in bad)
    assert all(t.float64_abs > 1e-3 for t in bad)  # the float64 runs differ too: meaning, not rounding


def test_negative_control_a_learning_rate_one_percent_off_fails(monkeypatch):
    original = keras_training.TrainingMixin.optimizer_expr

    def skewed(self, opt):
        return original(self, opt.model_copy(update={"attrs": {**opt.attrs, "lr": opt.attrs["lr"] * 1.01}}))

    monkeypatch.setattr(keras_training.TrainingMixin, "optimizer_expr", skewed)
    result = v.verify_training(_net(BIAS_BN), steps=2)
    assert not result.passed and result.noise_floor, result.render()
    assert "FAIL" in result.render()


def test_run_time_dimensions_default_to_sizes_the_shapes_allow():
    net = _net(TEXT)
    assert v.run_dims(net) == {"T": 16}  # conv 5, pool 3, conv 3: the smallest candidate with every size >= 1
    assert v.run_dims(net, {"T": 40}) == {"T": 40}
    with pytest.raises(v.DimsError) as exc:
        v.run_dims(net, {"T": 6})
    assert "with T=6, 'y.maxpool1d' (maxpool1d) would have a dimension (T-4-3)//3+1 = 0" in str(exc.value)
    with pytest.raises(v.DimsError, match="has no run-time dimension 'S'"):
        v.run_dims(net, {"S": 6})
    inputs = v.make_inputs(net, 2, 0)
    assert inputs["ids"].shape == (2, 16)
    result = v.verify(net, backends=("torch", "onnx"))
    assert result.passed and result.dims == {"T": 16}, result.render()


def test_cli_verify_dim(capsys, tmp_path):
    spec = tmp_path / "text.net"
    spec.write_text(TEXT)
    assert main(["verify", str(spec), "--backends", "torch,onnx", "--dim", "T=24", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["networks"][0]["dims"] == {"T": 24}
    assert main(["verify", str(spec), "--backends", "torch,onnx", "--dim", "T=4"]) == 2
    err = capsys.readouterr().err
    assert "T=4" in err and "choose larger sizes with --dim" in err and "Traceback" not in err
    assert main(["verify", str(spec), "--dim", "S=4"]) == 2
    assert "no network verified has a run-time dimension 'S'" in capsys.readouterr().err
    assert main(["verify", str(spec), "--dim", "T"]) == 2
    assert main(["verify", str(spec), "--train", "--steps", "1", "--dim", "T=20"]) == 0
    assert "T=20" in capsys.readouterr().out


def test_backend_exceptions_are_failure_lines(monkeypatch, capsys, tmp_path):
    torch_backend = type(backends.get("torch"))

    def broken(self, built, inputs):
        raise RuntimeError("max_pool1d() Invalid computed output size: 0")

    monkeypatch.setattr(torch_backend, "run", broken)
    monkeypatch.setattr(torch_backend, "train_step", lambda self, built, i, t: broken(self, built, i))
    net = _net(TEXT)
    result = v.verify(net, backends=("torch", "onnx"))
    assert not result.passed
    assert result.errors == ["torch: RuntimeError: max_pool1d() Invalid computed output size: 0"]
    assert "ERROR torch: RuntimeError" in result.render()
    spec = tmp_path / "text.net"
    spec.write_text(TEXT)
    assert main(["verify", str(spec), "--backends", "torch,onnx"]) == 1
    out = capsys.readouterr()
    assert "ERROR torch: RuntimeError" in out.out and "Traceback" not in out.err
    assert main(["verify", str(spec), "--train", "--steps", "1"]) == 1
    assert "ERROR torch: RuntimeError" in capsys.readouterr().out


# Specs: float32 passes where the meaning is equal; UNet's float64 runs agree -------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path,network", [("siamese.net", None), ("vae.net", None), ("recommender.net", None),
                                          ("autoencoder.net", "AutoencoderL2")])
def test_specs_pass_verify_train_in_float32(path, network):
    from conftest import ROOT

    net = netspec.load(ROOT / "specs" / path).network(network)
    result = v.verify_training(net, steps=3)
    assert result.passed, result.render()


@pytest.mark.slow
def test_unet_agrees_in_float64():
    """Adam's bias correction with float32-rounded betas in both backends (Keras's rule): UNet, whose
    BatchNorm-after-conv gradients Adam amplifies, agrees to rounding in float64 (it differed by 2.8e-4)."""
    from conftest import ROOT

    net = netspec.load(ROOT / "specs" / "unet.net").network()
    result = v.verify_training(net, steps=2, dtype="float64", atol=1e-11)
    assert result.passed, result.render()
