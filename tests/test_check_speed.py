"""benchmarks/check_speed.py runs, and its regression gate fails loudly. No timing is asserted here:
the figures of a --smoke run mean nothing; only that they are produced and compared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "check_speed.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speed")
    out = tmp / "result.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out),
                           "--update-baseline", "--baseline", str(tmp / "baseline.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, json.loads(out.read_text())


def test_smoke_run_produces_every_figure_and_target(smoke):
    _, result = smoke
    names = [r[0] for r in result["sections"][0]["rows"]]
    assert "check resnet50, whole process" in names and "check resnet50, peak memory" in names
    assert "parse + check 1,000 layers, per layer" in names
    assert "lsp: ResNet-50 re-check after one edit (warm)" in names
    assert len(result["targets"]) == 5


def test_the_gate_fails_loudly_when_a_figure_gets_30_percent_worse(smoke):
    tmp, _ = smoke
    baseline = json.loads((tmp / "baseline.json").read_text())
    fast = json.loads(json.dumps(baseline))
    for fig in fast["figures"].values():  # a baseline twice as fast (and half the memory)
        fig["best"] /= 2
        if "per_calibration" in fig:
            fig["per_calibration"] /= 2
    (tmp / "fast.json").write_text(json.dumps(fast))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--baseline", str(tmp / "fast.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "REGRESSION" in proc.stderr and "check resnet50, peak memory" in proc.stderr


def test_compare_uses_calibrated_cpu_time_and_skips_the_floors():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import check_speed
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    base = {"figures": {"t": {"kind": "time", "unit": "s", "best": 1.0, "cpu": 0.5, "per_calibration": 10.0},
                        "m": {"kind": "memory", "unit": "MiB", "best": 20.0},
                        "floor": {"kind": "time", "unit": "s", "best": 1.0, "cpu": 0.5, "per_calibration": 1.0}}}
    same = {"t": {"kind": "time", "unit": "s", "best": 2.0, "cpu": 1.0, "per_calibration": 12.9},  # +29 %
            "m": {"kind": "memory", "unit": "MiB", "best": 25.9},
            "floor": {"kind": "time", "unit": "s", "best": 1.0, "cpu": 0.5, "per_calibration": 9.0, "gated": False}}
    assert check_speed.compare(same, base) == []  # a floor is shown, not gated
    worse = {"t": {"kind": "time", "unit": "s", "best": 1.0, "cpu": 0.7, "per_calibration": 13.1},
             "m": {"kind": "memory", "unit": "MiB", "best": 26.1}}
    assert [w.split(":")[0] for w in check_speed.compare(worse, base)] == ["t", "m"]
