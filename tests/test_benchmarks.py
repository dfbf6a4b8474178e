"""The benchmark scripts still run: each once in --smoke mode (one round, smallest cases).

No timing is asserted, only that every script completes and produces its table rows, and that
benchmarks/run.py renders them. The scripts run concurrently (they are mostly start-up and
model building), one thread each, in a module-scoped fixture; numbers from --smoke mean nothing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest
from conftest import ROOT

BENCH = ROOT / "benchmarks"
SCRIPTS = {"check": "check_time.py", "generated_models": "generated_models.py", "export": "export_onnx.py",
           "compile": "compile_time.py", "transformers": "transformer_models.py"}
NEEDS = {"generated_models": ("torch", "keras"), "export": ("torch", "onnx", "onnxruntime"), "compile": ("onnx",),
         "transformers": ("torch", "onnx", "onnxruntime", "transformers")}


def _missing(name: str) -> list[str]:
    return [m for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """{name: (returncode, stderr, result object or None, seconds)} for every script, run once concurrently."""
    tmp = tmp_path_factory.mktemp("bench")
    procs = {}
    for name, script in SCRIPTS.items():
        if _missing(name):
            continue
        out = tmp / f"{name}.json"
        err = open(tmp / f"{name}.err", "w+")
        cmd = [sys.executable, str(BENCH / script), "--smoke", "--threads", "1", "--json", str(out)]
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err), out, err,
                       time.perf_counter())
    results = {}
    for name, (proc, out, err, start) in procs.items():
        code = proc.wait(timeout=600)
        err.seek(0)
        results[name] = (code, err.read(), json.loads(out.read_text()) if out.exists() else None,
                         time.perf_counter() - start)
        err.close()
    return results


def _rows(result: dict, section: str) -> list[list[str]]:
    (sec,) = [s for s in result["sections"] if s["title"] == section]
    return sec["rows"]


def _get(smoke, name):
    if _missing(name):
        pytest.skip(f"needs {', '.join(_missing(name))}")
    code, err, result, _ = smoke[name]
    assert code == 0, err[-3000:]
    assert result is not None and result["benchmark"] == name
    return result


def test_check_smoke(smoke):
    result = _get(smoke, "check")
    rows = _rows(result, "Real models")
    tools = {r[1]: r for r in rows if r[0] == "ResNet-50"}
    assert set(tools) == {"netspec check", "torchinfo.summary", "Keras summary()", "torch meta-device count"}
    assert tools["netspec check"][3] == "25,610,152"
    for tool in ("torchinfo.summary", "torch meta-device count"):
        if tools[tool][4] != "not installed":
            assert tools[tool][3] == "25,557,032"  # the hand-written model has torchvision's count
    assert [r[0] for r in _rows(result, "Synthetic specs: growth")] == ["100", "1,000"]
    in_process = [s["title"] for s in result["sections"] if s["title"].startswith("Synthetic specs in process")]
    assert [r[0] for r in _rows(result, in_process[0])] == ["100", "1,000"]
    assert [r[0] for r in _rows(result, "Floors: interpreter and import")][0] == "python -c pass"
    assert {t["target"].split(" under ")[1] for t in result["targets"]} == {"0.15 s (whole process)", "60 MiB peak"}


def test_generated_models_smoke(smoke):
    rows = _rows(_get(smoke, "generated_models"), "ResNet-50, generated vs hand-written")
    assert [(r[0], r[1]) for r in rows] == [("PyTorch forward", "1"),
                                            ("PyTorch forward, vs hand-written without in-place ops", "1"),
                                            ("Keras predict_on_batch", "1")]
    assert all(r[4].endswith("x") for r in rows)


def test_export_smoke(smoke):
    result = _get(smoke, "export")
    exporters = [r[0] for r in _rows(result, "Export time")]
    assert exporters == ["netspec export (CLI process)", "netspec API to_onnx + save (in process)",
                         "torch.onnx.export dynamo=False (in process)",
                         "torch.onnx.export dynamo=False (whole process)", "torch.onnx.export dynamo=True (in process)"]
    files = {r[0]: r for r in _rows(result, "Files")}
    assert int(files["netspec export"][1]) > 0 and int(files["torch.onnx.export dynamo=False"][1]) > 0
    latency = _rows(result, "ONNX Runtime latency")
    assert ("netspec vs torch.onnx.export dynamo=False", "1") in [(r[0], r[1]) for r in latency]


def test_compile_smoke(smoke):
    steps = [r[0] for r in _rows(_get(smoke, "compile"), "ResNet-50")]
    for step in ('spec.compile("torch")', 'spec.compile("keras")', "spec.to_onnx(weights) (graph in memory)",
                 "netspec compile --target torch", "netspec compile --target keras", "netspec export --weights W"):
        assert step in steps


def test_transformers_smoke(smoke):
    result = _get(smoke, "transformers")
    (forward,) = _rows(result, "GPT-2 small forward (CPU)")
    assert forward[:2] == ["1", "8"] and forward[4].endswith("x")  # batch 1, T=8 in smoke mode
    (check,) = _rows(result, "`netspec check specs/large/gpt3.net`")
    assert check[0] == "174,604,259,328"
    exporters = [r[0] for r in _rows(result, "GPT-2 small to ONNX")]
    assert exporters == ["netspec (decomposed attention, opset 18)",
                         "torch.onnx.export(dynamo=False) of the generated model"]
    assert len(result["targets"]) == 6


def test_run_renders_the_document(smoke):
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    sys.path.insert(0, str(BENCH))
    try:
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        import _common
    finally:
        sys.path.remove(str(BENCH))
    results = [r for _, _, r, _ in smoke.values() if r is not None]
    meta = {"command": "python benchmarks/run.py --smoke", "date": "today", "minutes": 1.0, "device": "CPU",
            "threads": 2, "load_before": [0, 0, 0], "load_after": [0, 0, 0]}
    text = run.render(results, _common.machine(), meta)
    assert text.startswith("# Benchmarks\n") and "## Machine" in text and "## Targets" in text
    for r in results:
        assert f"## {r['title']}" in text
        for sec in r["sections"]:
            assert f"### {sec['title']}" in text
