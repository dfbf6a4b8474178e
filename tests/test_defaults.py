"""Defaults that used to catch people (issue 13, section 3): export without weights."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT

from netspec.cli import main

needs_onnx = pytest.mark.skipif(not importlib.util.find_spec("onnx"), reason="needs onnx")


def _metadata(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@needs_onnx
def test_export_without_weights_warns_and_says_so_in_the_metadata(capsys, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", str(out), "--seed", "3"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: no --weights:") and "init_weights(seed=3)" in err and err.count("\n") == 1
    assert _metadata(out)["netspec.weights"] == "random: init_weights(seed=3), freshly initialised, not trained"
    assert main(["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", str(out), "--random-weights"]) == 0
    assert capsys.readouterr().err == ""  # meant: no warning, the metadata still says it
    assert _metadata(out)["netspec.weights"].startswith("random: init_weights(seed=0)")


@needs_onnx
def test_export_with_weights_does_not_warn(capsys, tmp_path):
    import netspec
    from netspec.weights import save_weights

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    weights = tmp_path / "w.safetensors"
    save_weights(spec.init_weights(seed=1), weights)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", str(out), "--weights", str(weights)]) == 0
    assert capsys.readouterr().err == ""
    assert _metadata(out)["netspec.weights"] == "canonical weights (given)"
    assert main(["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", str(out), "--weights", str(weights),
                 "--random-weights"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_trainable_false_counts_as_non_trainable():
    import netspec

    net = netspec.parse_text("network F {\n input x: [3, 8, 8]\n y = x -> conv2d(4, 3, trainable=false) "
                             "-> batchnorm(trainable=false) -> relu -> flatten -> dense(2)\n output y\n}\n",
                             "f.net").network()
    assert net.param_counts() == (144 * 2 + 2, 4 * 3 * 9 + 4 + 4 * 4)
    assert netspec.parse_text("network F {\n input x: [3]\n y = x -> dense(2)\n output y\n}\n",
                              "f.net").network().param_counts() == (8, 0)


@pytest.mark.parametrize("a,b,want", [
    ("[5, 8]", "[5, 4]", "[5, 12]"),  # only the feature axis differs: the only axis that fits
    ("[T, 8]", "[T, 3]", "[T, 11]"),
    ("[16, 4, 4]", "[16, 4, 4]", "[32, 4, 4]"),  # channels-first maps: the channel axis
    ("[8]", "[4]", "[12]"),
    ("[2, 6, 6]", "[2, 6, 3]", "[2, 6, 9]"),
])
def test_concat_without_axis_takes_the_axis_that_fits(a, b, want):
    import netspec

    net = netspec.parse_text(f"network C {{\n input a: {a}\n input b: {b}\n y = concat(a, b)\n output y\n}}\n",
                             "c.net").network()
    assert str(net.nodes[-1].type) == want


@pytest.mark.parametrize("a", ["[5, 8]", "[T, 8]"])
def test_concat_of_equal_sequences_needs_the_axis(a):
    import netspec

    text = f"network C {{\n input a: {a}\n input b: {a}\n y = concat(a, b)\n output y\n}}\n"
    with pytest.raises(netspec.SpecError) as exc:
        netspec.parse_text(text, "c.net").network()
    message = str(exc.value)
    assert "E302" in message and "axis=-1 joins the features of [T, F] sequences" in message
    assert "axis=0 the channels of [C, L] signals" in message
    fixed = text.replace("concat(a, b)", "concat(a, b, axis=-1)")
    assert str(netspec.parse_text(fixed, "c.net").network().nodes[-1].type).endswith("16]")


def test_nadam_keeps_two_moments():
    from netspec import ir
    from netspec.report import optimizer_slots

    assert optimizer_slots(ir.Optimizer(name="nadam", attrs={})) == ["exp_avg", "exp_avg_sq"]
