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


LSP_PROBE = """
import json, sys
from pathlib import Path
from netspec.lsp.analysis import Analysis
from netspec.lsp import features
for path in sorted(Path("specs").glob("*.net")):
    a = Analysis(str(path), path.read_text())
    assert not a.diagnostics, path
    features.outline(a)
    features.hover(a, 1, 1)
    features.completions(a, 2, 1)
features.format_text("x.net", "network N {{\\n  input x: [3]\\n  y = x -> dense(4)\\n  output y\\n}}\\n")
core = sorted(m for m in sys.modules if m.split('.')[0] in {frameworks!r})
print(json.dumps(core))
import netspec.lsp.server
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {frameworks!r})))
"""


def test_lsp_core_imports_no_framework_and_no_lsp_library():
    """netspec/lsp's analysis is core: no framework, and not even pygls (only the server wiring uses it)."""
    probe = LSP_PROBE.format(frameworks={*FRAMEWORKS, "pygls", "lsprotocol"})
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    core, server = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert core == []
    assert [m for m in server if m.split(".")[0] in FRAMEWORKS] == []


NO_PYDANTIC_PROBE = """
import json, sys
from pathlib import Path
from netspec.cli import main
codes = [main(args) for args in (["check", "specs/resnet50.net"], ["check", "--format", "json", "specs/yaml/vae.yaml"],
                                 ["check", "--training", "--batch", "8", "specs/resnet50.net"],
                                 ["check", "--dim", "T=16", "specs/translator.net"],
                                 ["fmt", "--check", "specs/mlp.net"])]
import netspec
netspec.load("specs/gpt2_small.net").check()
from netspec.lsp.analysis import Analysis
from netspec.lsp import features
a = Analysis("specs/unet.net", Path("specs/unet.net").read_text())
features.hover(a, 3, 5)
print(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules
                                                   if m.split(".")[0] in ("pydantic", "pydantic_core")
                                                   or m == "netspec.ir")}), file=sys.stderr)
"""


def test_check_fmt_and_lsp_analysis_import_no_pydantic():
    """Checking works on the plain IR (netspec/ir_plain.py): pydantic and the typed IR load only for what reads
    ``Spec.program`` (compile, export, verify, train), not for check, fmt or the editor loop (issue 18)."""
    proc = subprocess.run([sys.executable, "-c", NO_PYDANTIC_PROBE], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0, 0]
    assert result["loaded"] == []


def test_python_m_netspec_check_imports_no_pydantic():
    probe = ("import runpy, sys\nsys.argv = ['netspec', 'check', 'specs/resnet50.net']\n"
             "try:\n    runpy.run_module('netspec', run_name='__main__')\nexcept SystemExit as exc:\n"
             "    code = exc.code\nelse:\n    code = 0\n"
             "print(code, sorted(m for m in sys.modules if m.startswith('pydantic')), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "0 []", proc.stderr[-2000:]
