"""Training controls and sparse gradients, equal across backends (docs/language.md, "Training controls").

- Embeddings: a vocabulary of 5 read at 6 positions by 4 samples repeats ids in every batch. Each
  optimiser case of tests/test_training.py must train it equally in PyTorch and Keras (float32:
  verify's rule; float64: 1e-12); Keras's own optimisers, which square TensorFlow's sparse slices
  one occurrence at a time, fail the same check (the negative control).
- Clipping (``clipnorm``, ``clipvalue``, ``global_clipnorm``), schedules (``step``, ``exponential``,
  ``cosine``) and ``warmup``: each with every optimiser, in float32 and float64; each control
  really changes the training (a run without it differs).
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest
from test_training import OPT_IDS, OPTIMIZER_CASES, failures

if not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow", "torch")):
    pytest.skip("needs keras, tensorflow and torch", allow_module_level=True)

import netspec  # noqa: E402
from netspec import backends  # noqa: E402
from netspec import verify as v  # noqa: E402
from netspec.backends import keras as kb  # noqa: E402
from netspec.ops.functions import CONTROLS, OPTIMIZERS  # noqa: E402
from netspec.weights import init_weights  # noqa: E402

keras = kb._keras()
STEPS, BATCH = 4, 4

EMBED = """network Emb {{
    input ids: int64[6]
    target t: [2]
    y = ids -> embedding(5, 3) -> flatten -> dense(2)
    output y
    loss mse(y, t)
    optimizer {opt}
}}"""

MLP = """network Controls {{
    input x: [4]
    target t: [2]
    y = x -> dense(6, activation=tanh) -> dense(2)
    output y
    loss mse(y, t)
    optimizer {opt}
}}"""

#: One base case per optimiser (dyadic hyperparameters: exact in float32)
BASES = {
    "sgd": "sgd(lr=0.0625, momentum=0.5, nesterov=true, weight_decay=0.015625",
    "sgd_plain": "sgd(lr=0.125",
    "rmsprop": "rmsprop(lr=0.0078125, rho=0.875, eps=0.0001220703125",
    "adagrad": "adagrad(lr=0.0625, initial_accumulator=0.015625, eps=0.125",
    "adadelta": "adadelta(lr=0.5, rho=0.875, eps=0.0001220703125",
    "adam": "adam(lr=0.015625, beta1=0.75, beta2=0.984375, eps=0.0009765625",
    "adamw": "adamw(lr=0.00390625, beta1=0.875, beta2=0.9921875, eps=0.0001220703125, weight_decay=0.03125",
    "nadam": "nadam(lr=0.0078125, beta1=0.9, eps=0.0009765625",
}
CONTROL_CASES = {
    "clipnorm": "clipnorm=0.25",
    "clipvalue": "clipvalue=0.0078125",
    "global_clipnorm": "global_clipnorm=0.125",
    "step": "schedule=step, decay_steps=2, decay_rate=0.25",
    "exponential": "schedule=exponential, decay_steps=2, decay_rate=0.25",
    "cosine": "schedule=cosine, decay_steps=3, alpha=0.125, warmup=1",
    "warmup": "warmup=3",
}


@functools.cache
def _run(text: str, backend: str, dtype: str = "float32"):
    net = netspec.parse_text(text, "c.net").network()
    batches = v.make_batches(net, STEPS, BATCH, seed=0)
    return v.train_backend(backend, net, init_weights(net, 0), batches, dtype, eager=True)


def _agree(text: str) -> None:
    problems = failures(_run(text, "keras"), _run(text, "torch"), atol=1e-5)
    assert not problems, problems[:10]
    problems = failures(_run(text, "keras", "float64"), _run(text, "torch", "float64"), atol=1e-12)
    assert not problems, problems[:10]


# Embeddings with repeated ids --------------------------------------------------------------------------


def test_the_embedding_batches_repeat_ids():
    net = netspec.parse_text(EMBED.format(opt="sgd"), "e.net").network()
    for inputs, _ in v.make_batches(net, STEPS, BATCH, seed=0):
        ids = inputs["ids"].ravel()
        assert len(np.unique(ids)) < len(ids)


@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=OPT_IDS)
def test_repeated_embedding_ids_train_equally(opt):
    """The spec's g for an embedding row is the sum over its occurrences; every optimiser squares that sum."""
    _agree(EMBED.format(opt=opt))


@pytest.mark.parametrize("opt", [OPTIMIZER_CASES[3], OPTIMIZER_CASES[4], "adam(lr=0.015625)"],
                         ids=["rmsprop", "adagrad", "adam"])
def test_keras_sparse_updates_would_fail_the_check(opt):
    """Negative control: the same model under Keras's own optimiser (sparse slices squared one by one).

    (With some settings, centered RMSprop with weight decay for one, Keras's sparse path does not even run.)
    """
    text = EMBED.format(opt=opt)
    net = netspec.parse_text(text, "e.net").network()
    backend = backends.get("keras")
    built = backend.build(net, init_weights(net, 0))
    dense = built.model.optimizer
    plain = type(dense).__mro__[1].from_config(dense.get_config())  # keras.optimizers.<Class>
    assert type(dense).__name__.startswith("Dense") and type(plain).__module__.startswith("keras")
    built.model.compile(optimizer=plain, loss=built.model.loss)  # traced, as fit runs it
    states, losses = [], []
    for inputs, targets in v.make_batches(net, STEPS, BATCH, seed=0):
        losses.append(backend.train_step(built, inputs, targets))
        states.append(backend.export_canonical(built))
    problems = failures((losses, states), _run(text, "torch"), atol=1e-5)
    assert any("embedding" in p for p in problems)


# Clipping, schedules, warm-up ------------------------------------------------------------------------


@pytest.mark.parametrize("control", sorted(CONTROL_CASES))
@pytest.mark.parametrize("base", sorted(BASES))
def test_every_control_with_every_optimizer_agrees(base, control):
    text = MLP.format(opt=f"{BASES[base]}, {CONTROL_CASES[control]})")
    _agree(text)
    plain = _run(MLP.format(opt=BASES[base] + ")"), "torch")
    controlled = _run(text, "torch")
    assert failures(controlled, plain, atol=1e-5), "the control changed nothing"


def test_the_cases_cover_every_optimizer_and_control():
    assert {b.split("(")[0] for b in BASES.values()} == {o.name for o in OPTIMIZERS}
    net = {k: netspec.parse_text(MLP.format(opt=f"sgd({c})"), "c.net").network().optimizer.attrs
           for k, c in CONTROL_CASES.items()}
    moved = {a for attrs in net.values() for a, value in attrs.items()
             if a in CONTROLS and value != CONTROLS[a].default}
    assert moved == set(CONTROLS)


def test_schedule_formulas():
    """The generated PyTorch schedule (the spec's formula) at a few steps."""
    from netspec.backends.runtime.torch_helpers import _scheduled_lr

    args = {"decay_steps": 4, "decay_rate": 0.5, "alpha": 0.25, "warmup": 2}
    assert [_scheduled_lr(1.0, t, "constant", **args) for t in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert [_scheduled_lr(1.0, t, "step", **args) for t in (2, 5, 6, 10)] == [1.0, 1.0, 0.5, 0.25]
    assert _scheduled_lr(1.0, 4, "exponential", **args) == pytest.approx(0.5 ** 0.5)
    assert _scheduled_lr(1.0, 4, "cosine", **args) == pytest.approx(0.25 + 0.75 * 0.5)
    assert _scheduled_lr(1.0, 60, "cosine", **args) == pytest.approx(0.25)


@pytest.mark.parametrize("opt,message", [
    ("adam(clipnorm=1.0, clipvalue=0.5)", "takes one of clipnorm, clipvalue and global_clipnorm"),
    ("adam(decay_steps=10)", "'decay_steps' needs a schedule"),
    ("adam(schedule=linear)", "expected one of constant, step, exponential, cosine"),
    ("sgd(warmup=-1)", "non-negative integer"),
])
def test_control_errors(opt, message):
    with pytest.raises(netspec.SpecError) as exc:
        netspec.parse_text(MLP.format(opt=opt), "c.net").network()
    assert message in str(exc.value)


# Freezing ----------------------------------------------------------------------------------------------

FROZEN = """block unit(n) {
    return in -> conv2d(n, 3, padding=same, trainable=false, kernel_regularizer=l2(0.5)) \\
        -> batchnorm(trainable=false) -> relu
}

network Frozen {
    input x: [3, 8, 8]
    target t: [2]
    f = x -> unit(4) -> conv2d(4, 3) -> batchnorm -> relu -> flatten -> dense(2)
    output f
    loss mse(f, t)
    optimizer adam(lr=0.015625, beta1=0.75, beta2=0.984375, eps=0.0009765625, weight_decay=0.015625)
}"""


def test_frozen_layers_stay_frozen_in_both_backends():
    """Frozen weights and a frozen BatchNorm's moving statistics never move; the rest trains equally.

    The frozen conv's l2 penalty is no part of the loss (Keras's rule), which the loss comparison checks.
    """
    _agree(FROZEN)
    net = netspec.parse_text(FROZEN, "f.net").network()
    layers = {n.layer for n in net.nodes if n.attrs.get("trainable") is False}
    frozen = {f"{layer}.{p.name}" for layer, ps in net.layers().items() if layer in layers for p in ps}
    assert len(frozen) == 6 and all(not p.trainable for layer in layers for p in net.layers()[layer])
    start = init_weights(net, 0)
    for backend in ("torch", "keras"):
        last = _run(FROZEN, backend)[1][-1]
        for name in start:
            moved = bool(np.abs(last[name] - start[name]).max() > 0)
            assert moved == (name not in frozen), (backend, name)


def test_generated_control_code_is_ruff_clean(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    from netspec.backends import torch as tb

    texts = [MLP.format(opt=f"{BASES[b]}, {CONTROL_CASES[c]})") for b in ("sgd", "adam") for c in CONTROL_CASES]
    texts += [EMBED.format(opt=OPTIMIZER_CASES[6]), FROZEN]
    for k, text in enumerate(texts):
        net = netspec.parse_text(text, "c.net").network()
        for sub, src in (("torch", tb.generate(net)), ("keras", kb.generate(net))):
            (tmp_path / sub).mkdir(exist_ok=True)
            (tmp_path / sub / f"n{k}.py").write_text(src)
    ruff = [sys.executable, "-m", "ruff"]
    for sub, config in (("torch", ["--isolated"]), ("keras", ["--config", str(ROOT / "pyproject.toml")])):
        rules = ["--select", "E,F,W,I"] if sub == "torch" else []
        for cmd in (["check", *config, *rules], ["format", "--check", *config]):
            proc = subprocess.run([*ruff, *cmd, "--no-cache", str(tmp_path / sub)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout[-3000:]


def test_nadam_is_written_with_each_backends_class():
    from netspec.backends import torch as tb

    net = netspec.parse_text(MLP.format(opt="nadam(lr=0.002, beta1=0.8, eps=1e-6)"), "n.net").network()
    assert "class _Nadam(_Optimizer):" in tb.generate(net) and "torch.optim.NAdam" not in tb.generate(net)
    config = kb.build(net).optimizer.get_config()
    assert type(kb.build(net).optimizer).__name__ == "Nadam"
    assert config["beta_1"] == pytest.approx(0.8) and config["epsilon"] == pytest.approx(1e-6)
