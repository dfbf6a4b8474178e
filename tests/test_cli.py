"""The CLI: outputs, JSON schema, exit codes, atomic writes."""

import json

import pytest
from conftest import SPECS

from netspec.cli import main

GOOD = "network N {\n    input x: [4]\n    y = x -> dense(3, activation=relu)\n    output y\n}\n"
BAD = "network N {\n    input x: [3, 4, 4]\n    y = x -> conv2d(8, 5)\n    output y\n}\n"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_text_table_and_totals(capsys, in_root):
    code, out, err = run(capsys, "check", "specs/lenet5.net")
    assert code == 0 and err == ""
    assert "network LeNet5" in out
    assert "features.conv2d       conv2d     [6, 28, 28]      156  117,600" in out
    assert "total params:         61,706" in out
    assert "trainable params:     61,706" in out
    assert "non-trainable params: 0" in out
    assert "parameter memory:     241.04 KiB (float32)" in out
    assert "MACs per sample:      416,520" in out
    assert "activation memory:" in out


def test_check_json_schema(capsys, in_root):
    code, out, _ = run(capsys, "check", "--format", "json", "specs/resnet50.net")
    assert code == 0
    data = json.loads(out)
    assert data["file"] == "specs/resnet50.net"
    (net,) = data["networks"]
    assert net["name"] == "ResNet50"
    assert net["inputs"] == [{"name": "image", "shape": [3, 224, 224], "dtype": "float32"}]
    assert net["outputs"] == [{"name": "logits", "shape": [1000], "dtype": "float32"}]
    assert net["params"] == {"total": 25_610_152, "trainable": 25_557_032, "non_trainable": 53_120}
    first = net["layers"][0]
    assert first == {"name": "stem.conv2d", "op": "conv2d", "shape": [64, 112, 112], "params": 9408,
                     "macs": 118_013_952, "receptive_field": {"size": [7, 7], "jump": [2, 2], "start": [0, 0]}}
    assert set(net) >= {"name", "inputs", "outputs", "layers", "params", "macs"}
    assert 4.0e9 < net["macs"] < 4.2e9  # torchvision's ResNet-50: 4.09 GMACs


def test_check_json_named_dims_are_strings(capsys, in_root):
    code, out, _ = run(capsys, "check", "--format", "json", "specs/bigru_classifier.net")
    assert code == 0
    net = json.loads(out)["networks"][0]
    assert net["inputs"][0]["dtype"] == "int64"
    assert any(isinstance(d, str) for d in net["inputs"][0]["shape"])


def test_check_several_files_json_is_a_list(capsys, in_root):
    code, out, _ = run(capsys, "check", "--format", "json", "specs/mlp.net", "specs/tiny_mlp.net")
    assert code == 0
    assert [d["networks"][0]["params"]["total"] for d in json.loads(out)] == [101_770, 26]


def test_check_spec_error_exit_1_with_diagnostic(capsys, tmp_path):
    path = tmp_path / "bad.net"
    path.write_text(BAD)
    code, out, err = run(capsys, "check", str(path))
    assert code == 1 and out == ""
    assert f"{path}:3:14: error[E401]: conv2d output height is 0" in err
    assert "3 |     y = x -> conv2d(8, 5)" in err
    assert "^^^^^^^^^^^^" in err
    assert "= arithmetic: (4 + 0 + 0 - 5) // 1 + 1 = 0" in err
    assert "Traceback" not in err


def test_check_spec_error_json(capsys, tmp_path):
    path = tmp_path / "bad.net"
    path.write_text(BAD)
    code, out, _ = run(capsys, "check", "--format", "json", str(path))
    assert code == 1
    (diag,) = json.loads(out)["errors"]
    assert diag["code"] == "E401" and diag["line"] == 3 and diag["col"] == 14
    assert diag["formula"] == "(4 + 0 + 0 - 5) // 1 + 1 = 0"


def test_usage_errors_exit_2(capsys, tmp_path):
    assert run(capsys, "check")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    code, _, err = run(capsys, "check", str(tmp_path / "missing.net"))
    assert code == 2 and "E001" in err
    other = tmp_path / "model.txt"
    other.write_text(GOOD)
    code, _, err = run(capsys, "check", str(other))
    assert code == 2 and "E002" in err


def test_mixed_files_worst_status_wins(capsys, tmp_path, in_root):
    bad = tmp_path / "bad.net"
    bad.write_text(BAD)
    code, out, err = run(capsys, "check", "specs/mlp.net", str(bad))
    assert code == 1
    assert "network MLP" in out and "E401" in err


def test_fmt_prints_canonical_and_check_mode(capsys, tmp_path):
    path = tmp_path / "m.net"
    path.write_text("network N{\n input x:[4]\n y=x->dense(3,activation=relu)\n output y}\n")
    code, out, _ = run(capsys, "fmt", str(path))
    assert code == 0
    assert out == GOOD
    assert run(capsys, "fmt", "--check", str(path))[0] == 1
    path.write_text(out)
    assert run(capsys, "fmt", "--check", str(path))[0] == 0


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_repo_specs_are_canonical(spec, capsys):
    assert run(capsys, "fmt", "--check", str(spec))[0] == 0


def test_fmt_converts_to_yaml_and_back(capsys, tmp_path):
    src = tmp_path / "m.net"
    src.write_text(GOOD)
    yml = tmp_path / "m.yaml"
    assert run(capsys, "fmt", str(src), "--to", "yaml", "-o", str(yml))[0] == 0
    assert "networks:" in yml.read_text()
    code, out, _ = run(capsys, "fmt", str(yml), "--to", "net")
    assert code == 0 and out == GOOD


def test_fmt_of_bad_spec_reports_and_writes_nothing(capsys, tmp_path):
    src = tmp_path / "bad.net"
    src.write_text(BAD)
    dest = tmp_path / "out.yaml"
    code, _, err = run(capsys, "fmt", str(src), "--to", "yaml", "-o", str(dest))
    assert code == 1 and "E401" in err
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("netspec ")


def test_console_script_runs(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "m.net"
    path.write_text(GOOD)
    proc = subprocess.run([sys.executable, "-m", "netspec", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "total params:         15" in proc.stdout


def test_compile_writes_a_file_and_bad_input_writes_nothing(capsys, tmp_path, in_root):
    out = tmp_path / "model.py"
    code, stdout, _ = run(capsys, "compile", "specs/mlp.net", "--target", "torch", "-o", str(out))
    assert code == 0 and stdout == ""
    assert "class MLP(nn.Module)" in out.read_text()
    assert out.stat().st_mode & 0o777 != 0o600
    bad = tmp_path / "bad.net"
    bad.write_text(BAD)
    missing = tmp_path / "never.py"
    assert run(capsys, "compile", str(bad), "--target", "torch", "-o", str(missing))[0] == 1
    assert not missing.exists()
    code, _, err = run(capsys, "compile", "specs/mlp.net", "--target", "torch", "--network", "Nope")
    assert code == 2 and "no network 'Nope'" in err
    code, _, err = run(capsys, "compile", "specs/mlp.net", "--target", "torch", "-o", str(tmp_path / "no" / "x.py"))
    assert code == 2 and "no such directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.net", "model.py"]


def test_compile_to_stdout_is_deterministic(capsys, in_root):
    first = run(capsys, "compile", "specs/recommender.net", "--target", "torch", "--network", "RecommenderDot")
    second = run(capsys, "compile", "specs/recommender.net", "--target", "torch", "--network", "RecommenderDot")
    assert first[0] == 0 and first[1] == second[1] and "class RecommenderDot" in first[1]


def test_export_with_weights_file(capsys, tmp_path, in_root):
    import onnx
    from onnx import numpy_helper

    from netspec.weights import init_weights, save_weights

    weights = tmp_path / "w.safetensors"
    drawn = init_weights(netspec_load("specs/tiny_mlp.net"), seed=7)
    save_weights(drawn, weights)
    out = tmp_path / "m.onnx"
    assert run(capsys, "export", "specs/tiny_mlp.net", "-o", str(out), "--weights", str(weights))[0] == 0
    model = onnx.load(out)
    assert [i.name for i in model.graph.input] == ["x"]
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert (stored["logits.dense.kernel"] == drawn["logits.dense.kernel"]).all()
    code, _, err = run(capsys, "export", "specs/tiny_mlp.net", "-o", str(out), "--weights", str(tmp_path / "no.st"))
    assert code == 2 and "cannot read weights" in err


def netspec_load(path):
    import netspec

    return netspec.load(path)
