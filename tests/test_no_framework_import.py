"""The core (parser, IR, checker, report, formatter, CLI check/fmt) imports no framework."""

import json
import subprocess
import sys

from conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "jax", "numpy", "safetensors")

PROBE = """
import json, sys
from netspec.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {frameworks!r})
print(json.dumps({{"code": code, "loaded": loaded}}), file=sys.stderr)
"""


def _run(*args):
    probe = PROBE.format(frameworks=set(FRAMEWORKS))
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_check_imports_no_framework():
    specs = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "specs").glob("*.net"))]
    result = _run("check", *specs)
    assert result["code"] == 0
    assert result["loaded"] == []


def test_check_json_and_fmt_import_no_framework():
    assert _run("check", "--format", "json", "specs/yaml/resnet50.yaml")["loaded"] == []
    assert _run("fmt", "specs/vae.net", "--to", "yaml")["loaded"] == []


def test_bad_spec_imports_no_framework(tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("network N {\n  input x: [3]\n  y = x -> dense(0)\n  output y\n}\n")
    result = _run("check", str(bad))
    assert result["code"] == 1
    assert result["loaded"] == []


def test_graph_imports_no_framework(tmp_path):
    for suffix in ("svg", "html"):
        result = _run("graph", "specs/resnet50.net", "-o", str(tmp_path / f"g.{suffix}"))
        assert result["code"] == 0
        assert result["loaded"] == []
