"""Every example's README commands run (with --epochs 1), so examples/ cannot rot.

The commands are read from each README's ``sh`` block and run in a copy of the example's folder:
``netspec`` as ``python -m netspec`` with this tree first on the path, ``python`` as this
interpreter. Each must exit 0; the digits example must end with ONNX Runtime's predictions equal to
PyTorch's.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

NEEDS = ("sklearn", "torch", "keras", "tensorflow", "onnx", "onnxruntime")
if not all(importlib.util.find_spec(m) for m in NEEDS):
    pytest.skip("the examples need scikit-learn and every backend (pip install -e '.[all,dev]')",
                allow_module_level=True)

EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/README.md"))


def commands(readme: str) -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    out = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if not line or line.startswith("cd "):
            continue
        line = re.sub(r"--epochs \d+", "--epochs 1", line)
        argv = shlex.split(line)
        if argv[0] == "netspec":
            argv = [sys.executable, "-m", "netspec", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        else:  # pragma: no cover - a README line this test does not know how to run
            raise AssertionError(f"unknown command in a README: {line}")
        out.append(argv)
    return out


def test_every_example_is_listed():
    assert EXAMPLES == ["autoencoder", "digits", "tabular"]
    index = (ROOT / "examples" / "README.md").read_text()
    assert all(f"[{name}/]({name}/)" in index for name in EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_fast_path(name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(ROOT / "examples" / name, folder, ignore=shutil.ignore_patterns("data", "runs", "*.onnx"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "CI": "1"}
    steps = commands((folder / "README.md").read_text())
    assert any("train" in argv for argv in steps)
    last = None
    for argv in steps:
        last = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
        assert last.returncode == 0, f"{' '.join(argv[2:])}\n{last.stdout}\n{last.stderr}"
    runs = next((folder / "runs").iterdir())
    assert {"best.safetensors", "last.safetensors", "state.safetensors", "metrics.jsonl",
            "summary.json"} <= {p.name for p in runs.iterdir()}
    if name == "digits":
        assert (folder / "digits.onnx").is_file()
        assert "predictions equal to PyTorch's: 360/360" in last.stdout
