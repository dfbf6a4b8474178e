"""netspec train with Keras: the same run as PyTorch, exact resume, and MirroredStrategy replicas.

Both backends see the same global batches (the order depends on the seed and epoch only), so SGD
training from one checkpoint gives the same weights and loss curve within float32 rounding: the
training counterpart of `netspec verify --train`, through the whole loop.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

if not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow", "torch")):
    pytest.skip("needs keras, tensorflow and torch", allow_module_level=True)

import netspec  # noqa: E402
from netspec import train  # noqa: E402
from netspec.train import UsageError  # noqa: E402

SPEC = """\
network Small {
    input x: [4]
    target y: int64[]

    logits = x -> dense(8, activation=relu, kernel_regularizer=l2(0.01)) -> dense(3)

    output logits
    loss sparse_categorical_crossentropy(logits, y, from_logits=true)
    optimizer OPT
}
"""


def spec(opt="sgd(lr=0.1, momentum=0.9)"):
    return netspec.parse_text(SPEC.replace("OPT", opt), "small.net")


def data(n=40, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] > 0).astype(np.int64) + (x[:, 2] > 1)}


def test_keras_trains_like_torch(tmp_path):
    s = spec()
    t = train.fit(s, data(), data(20, 1), backend="torch", epochs=2, batch_size=8, progress="quiet")
    k = train.fit(s, data(), data(20, 1), backend="keras", epochs=2, batch_size=8, progress="quiet",
                  out=tmp_path / "k")
    for name in t.weights:
        np.testing.assert_allclose(k.weights[name], t.weights[name], atol=1e-5, err_msg=name)
    for a, b in zip(t.history, k.history):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)
        assert b["val_accuracy"] == a["val_accuracy"]
        assert b["accuracy"] == a["accuracy"]  # Keras metrics on the training step's own forward pass
    ev_k = train.evaluate(s, tmp_path / "k" / "last.safetensors", data(20, 1), backend="keras")
    ev_t = train.evaluate(s, tmp_path / "k" / "last.safetensors", data(20, 1), backend="torch")
    assert ev_k["loss"] == pytest.approx(ev_t["loss"], abs=1e-5) and ev_k["accuracy"] == ev_t["accuracy"]


def test_keras_resume_is_exact_with_adam(tmp_path):
    s = spec("adam(lr=0.01)")
    straight = train.fit(s, data(), backend="keras", epochs=2, batch_size=8, out=tmp_path / "a", progress="quiet")
    train.fit(s, data(), backend="keras", epochs=1, batch_size=8, out=tmp_path / "b", progress="quiet")
    resumed = train.fit(s, data(), backend="keras", epochs=2, batch_size=8, out=tmp_path / "b", resume=True,
                        progress="quiet")
    for name in straight.weights:
        np.testing.assert_array_equal(resumed.weights[name], straight.weights[name], err_msg=name)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_keras_options_that_do_not_apply():
    with pytest.raises(UsageError, match="--amp applies to --backend torch only"):
        train.fit(spec(), data(), backend="keras", amp=True)


@pytest.mark.slow
def test_mirrored_replicas_equal_one_replica(tmp_path):
    """Two MirroredStrategy replicas (logical CPUs, in a fresh process) train like one PyTorch process."""
    s = spec()
    one = train.fit(s, data(), backend="torch", epochs=2, batch_size=8, progress="quiet")
    np.savez(tmp_path / "d.npz", **data())
    (tmp_path / "small.net").write_text(SPEC.replace("OPT", "sgd(lr=0.1, momentum=0.9)"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-m", "netspec", "train", "small.net", "--data", "d.npz", "--backend",
                          "keras", "--replicas", "2", "--epochs", "2", "--batch-size", "8", "--out", "run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "MirroredStrategy, 2 replicas" in res.stderr
    got = netspec.weights.load_weights(tmp_path / "run" / "last.safetensors")
    for name in one.weights:
        np.testing.assert_allclose(got[name], one.weights[name], atol=1e-5, err_msg=name)


def test_binary_accuracy_agrees_with_soft_targets():
    """Training accuracy thresholds soft targets at 0.5 in both backends (Keras's BinaryAccuracy would not)."""
    s = netspec.parse_text("""\
network Bin {
    input x: [4]
    target t: [2]

    p = x -> dense(2, activation=sigmoid)

    output p
    loss binary_crossentropy(p, t)
    optimizer sgd(lr=0.5)
}
""", "bin.net")
    rng = np.random.default_rng(0)
    d = {"x": rng.standard_normal((30, 4)).astype(np.float32), "t": rng.uniform(0, 1, (30, 2)).astype(np.float32)}
    t = train.fit(s, d, d, backend="torch", epochs=2, batch_size=10, progress="quiet")
    k = train.fit(s, d, d, backend="keras", epochs=2, batch_size=10, progress="quiet")
    for a, b in zip(t.history, k.history):
        assert 0 < a["accuracy"] < 1
        assert b["accuracy"] == pytest.approx(a["accuracy"]) and b["val_accuracy"] == pytest.approx(a["val_accuracy"])
