"""Canonical weights: deterministic draws, stable per tensor, safetensors round trip, shape checks."""

import numpy as np
import pytest
from conftest import ROOT

import netspec
from netspec.weights import check_weights, expected_shapes, fans, init_weights, load_weights, save_weights

SPEC = ("network N {\n    input x: [3, 8, 8]\n"
        "    y = x -> conv2d(4, 3) -> batchnorm -> flatten -> dense(5)\n    output y\n}\n")


def test_names_and_shapes_follow_the_ops():
    spec = netspec.parse_text(SPEC, "w.net")
    assert expected_shapes(spec) == {
        "y.conv2d.kernel": (4, 3, 3, 3), "y.conv2d.bias": (4,),
        "y.batchnorm.gamma": (4,), "y.batchnorm.beta": (4,),
        "y.batchnorm.moving_mean": (4,), "y.batchnorm.moving_variance": (4,),
        "y.dense.kernel": (5, 144), "y.dense.bias": (5,),
    }


def test_init_is_deterministic_and_per_tensor_stable():
    a = init_weights(netspec.parse_text(SPEC, "w.net"), seed=3)
    b = init_weights(netspec.parse_text(SPEC, "w.net"), seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = init_weights(netspec.parse_text(SPEC, "w.net"), seed=4)
    assert not np.array_equal(a["y.dense.kernel"], other["y.dense.kernel"])
    longer = SPEC.replace("-> dense(5)", "-> dense(5) -> dense(2)")
    c = init_weights(netspec.parse_text(longer, "w.net"), seed=3)
    assert np.array_equal(a["y.conv2d.kernel"], c["y.conv2d.kernel"])  # adding a layer changes no other tensor
    assert all(v.dtype == np.float32 for v in a.values())


def test_initialisers_follow_their_definitions():
    w = init_weights(netspec.parse_text(SPEC, "w.net"))
    fan_in, fan_out = fans((5, 144))
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w["y.dense.kernel"]).max() <= limit
    assert np.all(w["y.dense.bias"] == 0) and np.all(w["y.batchnorm.gamma"] == 1)
    assert np.all(w["y.batchnorm.moving_variance"] == 1)
    assert fans((4, 3, 3, 3)) == (27, 36)


def test_safetensors_round_trip_is_exact(tmp_path):
    w = init_weights(netspec.load(ROOT / "specs" / "lstm_stack.net"))
    path = tmp_path / "w.safetensors"
    save_weights(w, path)
    back = load_weights(path)
    assert set(back) == set(w)
    assert all(np.array_equal(back[k], w[k]) and back[k].dtype == w[k].dtype for k in w)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_check_weights_names_every_problem():
    spec = netspec.parse_text(SPEC, "w.net")
    w = init_weights(spec)
    w.pop("y.dense.bias")
    w["y.conv2d.kernel"] = np.zeros((4, 3, 5, 5), np.float32)
    w["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as info:
        check_weights(w, spec)
    msg = str(info.value)
    assert "missing y.dense.bias [5]" in msg
    assert "y.conv2d.kernel: expected shape [4, 3, 3, 3], received [4, 3, 5, 5]" in msg
    assert "unexpected extra" in msg


def test_shared_layers_have_one_set_of_weights():
    spec = netspec.load(ROOT / "specs" / "siamese.net")
    names = list(init_weights(spec))
    assert "conv_a.kernel" in names and not any(n.startswith(("a.conv_a", "b.conv_a")) for n in names)
