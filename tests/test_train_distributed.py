"""Data-parallel training under torchrun (gloo on CPU) equals single-process training.

``--batch-size`` is the global batch: two processes each take half of every global batch, DDP averages
the gradients, and each process's loss is weighted by its share, so the weights and the loss curve
match a one-process run with the same seed (SGD with momentum and an l2 penalty, float tolerance).
The data size leaves a last batch of one sample: one rank then has none and takes a zero-weighted
step, which must not change the result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

if importlib.util.find_spec("torch") is None:
    pytest.skip("needs torch", allow_module_level=True)

import netspec  # noqa: E402
from netspec.weights import load_weights  # noqa: E402

SPEC = """\
network Ddp {
    input x: [5]
    target y: int64[]

    logits = x -> dense(16, activation=tanh, kernel_regularizer=l2(0.001)) -> dense(3)

    output logits
    loss sparse_categorical_crossentropy(logits, y, from_logits=true)
    optimizer sgd(lr=0.1, momentum=0.9)
}
"""


def run(args, tmp_path):
    """Run a command; once more if torchrun lost the race for a free port (other jobs share the machine)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    for _ in range(2):
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=300)
        if res.returncode == 0 or not any(s in res.stderr for s in ("EADDRINUSE", "ddress already in use")):
            return res
    return res


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    (tmp_path / "ddp.net").write_text(SPEC)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((41, 5)).astype(np.float32)  # 41 = 4 * 10 + 1: a last batch of one sample
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5))
    common = ["train", "ddp.net", "--data", "d.npz", "--val", "d.npz", "--epochs", "3", "--batch-size", "10",
              "--seed", "5"]
    one = run(["-m", "netspec", *common, "--out", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = run(["-m", "netspec", *common, "--out", "two", "--nproc", "2"], tmp_path)
    assert two.returncode == 0, two.stderr
    assert "on 2 process(es)" in two.stdout and two.stdout.count("trained Ddp") == 1  # rank 0 reports alone
    assert two.stderr.count("epoch 3/3") == 1
    a, b = load_weights(tmp_path / "one" / "last.safetensors"), load_weights(tmp_path / "two" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, rtol=0, err_msg=k)
    curve = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
             for d in ("one", "two")]
    for r1, r2 in zip(*curve):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert r2[key] == pytest.approx(r1[key], abs=1e-6), key
    # training moved the weights (the comparison is not between two untouched initialisations)
    start = netspec.init_weights(netspec.parse_text(SPEC, "ddp.net"), seed=5)
    assert np.abs(b["logits.dense.kernel"] - start["logits.dense.kernel"]).max() > 1e-2
    # the state saved by two processes resumes on one process
    more = run(["-m", "netspec", *[c if c != "3" else "4" for c in common], "--out", "two", "--resume"], tmp_path)
    assert more.returncode == 0, more.stderr
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow
def test_torchrun_directly(tmp_path):
    """`torchrun --nproc-per-node 2 -m netspec train ...` (here `python -m torch.distributed.run`)."""
    (tmp_path / "ddp.net").write_text(SPEC)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    res = run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "netspec", "train",
               "ddp.net", "--data", "d.npz", "--batch-size", "8", "--out", "run", "--format", "json"], tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["history"]) == 1


def test_nproc_inside_torchrun_is_refused(tmp_path, monkeypatch, capsys):
    from netspec.cli import main

    (tmp_path / "ddp.net").write_text(SPEC)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", str(tmp_path / "ddp.net"), "--data", "d.npz", "--nproc", "2"]) == 2
    assert "--nproc inside torchrun" in capsys.readouterr().err
