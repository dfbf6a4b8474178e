"""Training semantics that agree across backends (docs/language.md, "Training semantics").

Two small networks carry one output head per loss term: every loss of the registry, the
cross-entropies both from probabilities and from logits, class axes on images, weighted terms, two
terms on one output, and l1, l2 and l1_l2 regularisers. ``HeadsMLP`` is dense; ``HeadsConv`` is a
convolutional net with BatchNorm on images and on features. Each trains 5 steps in PyTorch and in
Keras from one canonical checkpoint on one seeded batch sequence (``netspec.verify.verify_training``)
with every optimiser case below: every loss x every optimiser x both nets, since each head's weights
are updated from its own loss only.

- float32: after every step the loss and every canonical tensor (BatchNorm moving statistics
  included) agree within verify's tolerance ``|a - b| <= 1e-5 * max(1, max|b|)`` per tensor.
- float64: they agree within ``1e-12 * max(1, max|b|)``: both generated trainings compute the same
  function of the same numbers, so the float32 differences are rounding. Hyperparameters are
  dyadic (exact in float32) because Keras casts some Python floats through float32 even under a
  float64 ``floatx`` (Adam's betas, regularisation factors).
- Sensitivity: PyTorch's own RMSprop, Adagrad, Adam and BatchNorm (what a hand translation uses)
  fail the same float32 check with these hyperparameters.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

if not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow", "torch")):
    pytest.skip("needs keras, tensorflow and torch", allow_module_level=True)

import torch  # noqa: E402

import netspec  # noqa: E402
from netspec import verify as v  # noqa: E402
from netspec.backends import keras as kb  # noqa: E402
from netspec.backends import torch as tb  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.ops.functions import CONTROLS as OPT_CONTROLS  # noqa: E402
from netspec.ops.functions import INITIALIZERS, LOSSES, OPTIMIZERS  # noqa: E402
from netspec.weights import init_weights  # noqa: E402

keras = kb._keras()

LOSS_TERMS = """\
    loss mse(a, t_mse) + 0.5 * mae(b, t_mae) + huber(c, t_huber, delta=0.5) + binary_crossentropy(d, t_bce) + \\
binary_crossentropy(e, t_bcel, from_logits=true) + 2 * categorical_crossentropy(f, t_cce{axis}) + \\
categorical_crossentropy(g, t_ccel, from_logits=true{axis}) + sparse_categorical_crossentropy(i, t_sce{axis}) + \\
sparse_categorical_crossentropy(j, t_scel, from_logits=true{axis}) + hinge(k, t_hinge) + kl_divergence(m, t_kl) + \\
cosine_similarity(n, t_cos) + 0.25 * kl_normal(mu, logvar) + mse(two, t_two) - mae(two, t_two) / 4
    optimizer {opt}
}}"""

HEADS = """\
    a = h -> dense(3)
    b = h -> dense(3, bias_regularizer=l1(0.03125))
    c = h -> dense(3)
    e = h -> dense(3)
    k = h -> dense(3, kernel_regularizer=l1_l2(0.0078125, 0.015625))
    mu = h -> dense(2)
    logvar = h -> dense(2)
    two = h -> dense(2)
    output a, b, c, d, e, f, g, i, j, k, m, n, mu, logvar, two
"""

NETS = {
    "mlp": """network HeadsMLP {{
    input x: [6]
    target t_mse: [3]
    target t_mae: [3]
    target t_huber: [3]
    target t_bce: [3]
    target t_bcel: [3]
    target t_cce: [4]
    target t_ccel: [4]
    target t_sce: int64[]
    target t_scel: int64[1]
    target t_hinge: [3]
    target t_kl: [4]
    target t_cos: [3]
    target t_two: [2]
    h = x -> dense(8, activation=tanh, kernel_regularizer=l2(0.015625))
    d = h -> dense(3, activation=sigmoid)
    f = h -> dense(4, activation=softmax)
    g = h -> dense(4)
    i = h -> dense(4, activation=softmax)
    j = h -> dense(4)
    m = h -> dense(4, activation=softmax)
    n = h -> dense(3)
""" + HEADS + LOSS_TERMS.replace("{axis}", ""),
    # image heads: class axis 0 (channels last in Keras), kl_divergence and cosine on the last spec axis
    "conv": """network HeadsConv {{
    input x: [3, 6, 6]
    target t_mse: [3]
    target t_mae: [3]
    target t_huber: [3]
    target t_bce: [2, 6, 6]
    target t_bcel: [3]
    target t_cce: [3, 6, 6]
    target t_ccel: [3, 6, 6]
    target t_sce: int64[6, 6]
    target t_scel: int64[6, 6]
    target t_hinge: [3]
    target t_kl: [3, 6, 6]
    target t_cos: [3, 6, 6]
    target t_two: [2]
    s = x -> conv2d(4, 3, padding=same, use_bias=false, kernel_regularizer=l2(0.015625)) \\
        -> batchnorm(momentum=0.75) -> relu
    h = s -> maxpool2d(2) -> flatten -> dense(8, activation=tanh) -> batchnorm(momentum=0.875, eps=0.0078125)
    d = s -> conv2d(2, 1, activation=sigmoid)
    f = s -> conv2d(3, 1) -> softmax(axis=0)
    g = s -> conv2d(3, 1)
    i = s -> conv2d(3, 1) -> softmax(axis=0)
    j = s -> conv2d(3, 1)
    m = s -> conv2d(3, 1) -> softmax(axis=-1)
    n = s -> conv2d(3, 1)
""" + HEADS + LOSS_TERMS.replace("{axis}", ", axis=0"),
}

# Every optimiser, every hyperparameter away from its default somewhere; values exact in float32.
OPTIMIZER_CASES = [
    "sgd(lr=0.0625, momentum=0.875, nesterov=true, weight_decay=0.015625)",
    "sgd(lr=0.125, momentum=0.5)",
    "rmsprop(lr=0.0078125, rho=0.75, momentum=0.5, centered=true, eps=0.0009765625, weight_decay=0.0078125)",
    "rmsprop(lr=0.0078125, rho=0.875, eps=0.0001220703125)",
    "adagrad(lr=0.0625, initial_accumulator=0.015625, eps=0.125, weight_decay=0.0078125)",
    "adadelta(lr=0.5, rho=0.875, eps=0.0001220703125, weight_decay=0.0078125)",
    "adam(lr=0.015625, beta1=0.75, beta2=0.984375, eps=0.0009765625, amsgrad=true)",
    "adam(lr=0.0078125, beta1=0.875, beta2=0.9990234375, eps=0.0001220703125, weight_decay=0.015625)",
    "adamw(lr=0.00390625, beta1=0.875, beta2=0.9921875, eps=0.0001220703125, amsgrad=true, weight_decay=0.03125)",
    "nadam(lr=0.0078125, beta1=0.875, beta2=0.984375, eps=0.0009765625, weight_decay=0.015625)",
]
OPT_IDS = [f"{c.split('(')[0]}{n}" for n, c in enumerate(OPTIMIZER_CASES)]
STEPS, BATCH = 5, 4


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models, TensorFlow's threads in the same process: one PyTorch thread is ten times faster here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def network(kind: str, opt: str):
    return netspec.parse_text(NETS[kind].format(opt=opt), f"{kind}.net").network()


@functools.cache
def setup(kind: str, opt: str):
    """(network, checkpoint, batches): what both backends start from."""
    net = network(kind, opt)
    return net, init_weights(net, 0), v.make_batches(net, STEPS, BATCH, seed=0)


@functools.cache
def run(backend: str, kind: str, opt: str, dtype: str = "float32", eager: bool = True):
    """Keras runs eagerly here (tracing costs seconds per model); test_graph_mode_computes_the_same checks it."""
    net, weights, batches = setup(kind, opt)
    return v.train_backend(backend, net, weights, batches, dtype, eager)


def failures(got, want, atol: float) -> list[str]:
    """Every (step, loss or tensor) where ``got`` and ``want`` disagree beyond verify's rule."""
    out = []
    for k, (lg, lw, sg, sw) in enumerate(zip(got[0], want[0], got[1], want[1]), 1):
        if not v.compare(lg, lw, atol)[3]:
            out.append(f"step {k}: loss {lg} vs {lw}")
        for name in sw:
            max_abs, _, scale, passed = v.compare(sg[name], sw[name], atol)
            if not passed:
                out.append(f"step {k}: {name} off by {max_abs:.3g} (scale {scale:.3g})")
    return out


# The matrix -------------------------------------------------------------------------------------------


def test_the_heads_cover_every_loss_and_the_cases_every_optimizer_setting():
    for kind in NETS:
        net = network(kind, OPTIMIZER_CASES[0])
        assert {t.fn for t in net.loss} == {loss.name for loss in LOSSES}
        for fn in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
            assert {t.attrs["from_logits"] for t in net.loss if t.fn == fn} == {False, True}
        assert {p.regularizer["name"] for ps in net.layers().values() for p in ps if p.regularizer} == \
            {"l1", "l2", "l1_l2"}
    # (optimizer, hyperparameter) never varied; the shared controls: tests/test_training_controls.py
    moved = {(o.name, a) for o in OPTIMIZERS for a in o.attrs if a not in OPT_CONTROLS}
    for case in OPTIMIZER_CASES:
        opt = network("mlp", case).optimizer
        defaults = {a: attr.default for o in OPTIMIZERS if o.name == opt.name for a, attr in o.attrs.items()}
        moved -= {(opt.name, a) for a, value in opt.attrs.items() if value != defaults[a]}
    assert not moved, f"never away from the default: {sorted(moved)}"


@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=OPT_IDS)
@pytest.mark.parametrize("kind", sorted(NETS))
def test_every_loss_and_optimizer_agree_in_float32(kind, opt):
    problems = failures(run("keras", kind, opt), run("torch", kind, opt), atol=1e-5)
    assert not problems, problems[:10]


@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=OPT_IDS)
@pytest.mark.parametrize("kind", sorted(NETS))
def test_every_loss_and_optimizer_agree_in_float64(kind, opt):
    """The same numbers in double precision: nothing but float64 rounding is left."""
    keras_run, torch_run = run("keras", kind, opt, "float64"), run("torch", kind, opt, "float64")
    problems = failures(keras_run, torch_run, atol=1e-12)
    assert not problems, problems[:10]
    _, weights, _ = setup(kind, opt)
    last = torch_run[1][-1]
    assert all(np.abs(last[k] - weights[k]).max() > 0 for k in weights)  # every tensor trained (or moved)
    assert last["h.dense.kernel"].dtype == np.float64


def test_graph_mode_computes_the_same(kind="mlp"):
    """Keras's traced step (what fit runs) against its eager step: equal up to float32 rounding."""
    opt = OPTIMIZER_CASES[6]
    problems = failures(run("keras", kind, opt, eager=False), run("keras", kind, opt), atol=1e-5)
    assert not problems, problems[:10]


def _torch_run(kind: str, opt: str, make_optimizer=None, framework_batchnorm=False):
    """The generated PyTorch training with one part replaced by what a hand translation would use."""
    net, weights, batches = setup(kind, opt)
    model = tb.build(net, weights)
    module = model.netspec_module
    if framework_batchnorm:
        for m in model.modules():
            if type(m).__name__.startswith("_BatchNorm"):
                m.__class__ = type(m).__mro__[1]  # nn.BatchNorm2d / nn.BatchNorm1d
    optimizer = make_optimizer(model) if make_optimizer else module.make_optimizer(model)
    losses, states = [], []
    for inputs, targets in batches:
        x = [torch.from_numpy(inputs[i.name]) for i in net.inputs]
        t = [torch.from_numpy(targets[i.name]) for i in net.targets]
        losses.append(float(module.train_step(model, optimizer, x, t)))
        states.append(tb.export_canonical(model, net))
    return losses, states


def _decayed(optimizer, rate):
    def hook(opt, args, kwargs):
        with torch.no_grad():
            for group in opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * rate)

    optimizer.register_step_pre_hook(hook)
    return optimizer


CONTROLS = {  # optimizer case -> torch.optim with the same hyperparameters
    OPTIMIZER_CASES[3]: lambda m: torch.optim.RMSprop(m.parameters(), lr=0.0078125, alpha=0.875,
                                                      eps=0.0001220703125),
    OPTIMIZER_CASES[4]: lambda m: _decayed(torch.optim.Adagrad(m.parameters(), lr=0.0625, eps=0.125,
                                                               initial_accumulator_value=0.015625), 0.0078125),
    OPTIMIZER_CASES[6]: lambda m: torch.optim.Adam(m.parameters(), lr=0.015625, betas=(0.75, 0.984375),
                                                   eps=0.0009765625, amsgrad=True),
}


@pytest.mark.parametrize("opt", list(CONTROLS), ids=["RMSprop", "Adagrad", "Adam"])
def test_torch_optim_classes_would_fail_the_check(opt):
    """eps sits elsewhere in torch.optim's RMSprop, Adagrad and Adam: the float32 check sees it."""
    assert not failures(_torch_run("mlp", opt), run("torch", "mlp", opt), atol=1e-5)  # the control is sound
    problems = failures(_torch_run("mlp", opt, make_optimizer=CONTROLS[opt]), run("keras", "mlp", opt), atol=1e-5)
    assert problems


def test_pytorch_batchnorm_would_fail_the_check():
    """nn.BatchNorm updates the moving variance with the unbiased batch variance; the spec (Keras) the biased."""
    opt = OPTIMIZER_CASES[1]
    problems = failures(_torch_run("conv", opt, framework_batchnorm=True), run("keras", "conv", opt), atol=1e-5)
    assert problems and all("moving_variance" in p for p in problems)


# BatchNorm, the VAE, regularisers ----------------------------------------------------------------------


def test_batchnorm_moving_statistics_use_the_biased_variance():
    net = netspec.parse_text("network B {\n input x: [3, 4, 4]\n y = x -> batchnorm(momentum=0.75, eps=0.01)\n"
                             " output y\n}\n", "b.net").network()
    model = tb.build(net)
    assert isinstance(model.y.batchnorm, torch.nn.BatchNorm2d)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64) * 3 + 1
    model.double().train()
    y = model(x)
    var = x.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(model.y.batchnorm.running_var, 0.75 + 0.25 * var)
    assert torch.allclose(model.y.batchnorm.running_mean, 0.25 * x.mean(dim=(0, 2, 3)))
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(y, (x - mean) / torch.sqrt(var[None, :, None, None] + 0.01))
    model.eval()  # inference reads the moving statistics
    ref = (x - model.y.batchnorm.running_mean[None, :, None, None]) / torch.sqrt(
        model.y.batchnorm.running_var[None, :, None, None] + 0.01)
    assert torch.allclose(model(x), ref)
    conv = run("torch", "conv", OPTIMIZER_CASES[1])[1][-1]  # the moving statistics really moved
    assert np.abs(conv["s.batchnorm.moving_variance"] - 1).min() > 1e-3


def test_vae_summed_loss_agrees():
    net = netspec.load(ROOT / "specs" / "vae.net").network()
    result = v.verify_training(net)
    assert result.passed, result.render()
    weights = init_weights(net, 0)
    inputs, targets = v.make_batches(net, 1, v.TRAIN_BATCH, 0)[0]
    with torch.no_grad():
        model = tb.build(net, weights).eval()  # sample_normal: the mean, as verify --train compares
        recon, mu, logvar = (t.double().numpy() for t in model(torch.from_numpy(inputs["image"])))
    mse = np.mean((recon - targets["clean"]) ** 2)
    kl = np.mean(-0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1))
    for backend in ("torch", "keras"):
        assert result.steps[0].loss[backend] == pytest.approx(mse + kl, rel=1e-6)


def test_regularised_layers_agree():
    net = netspec.load(ROOT / "specs" / "autoencoder.net").network("AutoencoderL2")
    result = v.verify_training(net)
    assert result.passed, result.render()
    assert any("dropout" in n for n in result.notes)
    weights = init_weights(net, 0)
    inputs, targets = v.make_batches(net, 1, v.TRAIN_BATCH, 0)[0]
    model = tb.build(v.without_dropout(net), weights)
    with torch.no_grad():
        recon = model(torch.from_numpy(inputs["image"])).double().numpy()
    penalty = 0.01 * sum(np.sum(weights[f"code.dense.{p}"].astype(np.float64) ** 2) for p in ("kernel", "bias"))
    want = np.mean((recon - targets["clean"]) ** 2) + penalty
    for backend in ("torch", "keras"):
        assert result.steps[0].loss[backend] == pytest.approx(want, rel=1e-6)


def test_dropout_is_forced_to_zero_for_the_comparison():
    net = netspec.load(ROOT / "specs" / "autoencoder.net").network("AutoencoderL2")
    plain = v.without_dropout(net)
    assert [n.attrs["rate"] for n in plain.nodes if n.op == "dropout"] == [0.0]
    assert [n.attrs["rate"] for n in net.nodes if n.op == "dropout"] == [0.5]  # the spec's own is untouched
    assert "F.dropout(code, 0.0, self.training)" in tb.generate(plain)
    assert "layers.Dropout(0.0" in kb.generate(plain)


# Losses at the edges ---------------------------------------------------------------------------------


def _loss_pair(text: str, weights: dict, x, y):
    """(torch loss, keras loss) of one batch, no update."""
    net = netspec.parse_text(text, "l.net").network()
    tmodel = tb.build(net, weights)
    with torch.no_grad():
        t = float(tmodel.netspec_module.compute_loss(tmodel(torch.from_numpy(x)), torch.from_numpy(y)))
    kmodel = kb.build(net, weights)
    k = float(kmodel.evaluate(x, kb.fit_targets(net, {"t": y}), verbose=0, batch_size=len(x)))
    return t, k


@pytest.mark.parametrize("loss,act,target", [
    ("categorical_crossentropy", "softmax", np.eye(3, dtype=np.float32)[[2, 2]]),
    ("sparse_categorical_crossentropy", "softmax", np.array([2, 2])),
    ("binary_crossentropy", "sigmoid", np.ones((2, 3), np.float32)),
])
def test_probabilities_are_never_read_as_logits(loss, act, target):
    """A saturated softmax or sigmoid: -log(1e-7) in both backends (Keras's own loss would use the logits)."""
    dtype = "int64[]" if target.dtype.kind == "i" else "[3]"
    text = (f"network P {{\n input x: [2]\n target t: {dtype}\n y = x -> dense(3, activation={act})\n"
            f" output y\n loss {loss}(y, t)\n}}\n")
    weights = {"y.dense.kernel": np.array([[0, 0], [0, 0], [-40, 0]], np.float32),
               "y.dense.bias": np.array([0, 0, 0], np.float32)}
    x = np.ones((2, 2), np.float32)
    got_torch, got_keras = _loss_pair(text, weights, x, target.astype(np.float32 if dtype == "[3]" else np.int64))
    want = -math.log(1e-7)
    if loss == "binary_crossentropy":  # one of three sigmoids saturates, two are 1/2
        want = (want - 2 * math.log(0.5)) / 3
    assert got_torch == pytest.approx(want, rel=1e-4) and got_keras == pytest.approx(want, rel=1e-4)


def test_hinge_takes_targets_as_given():
    """hinge is max(1 - t p, 0) for any target (Keras's "hinge" would turn 0/1 targets into -1/1)."""
    text = "network H {\n input x: [2]\n target t: [2]\n y = x -> dense(2)\n output y\n loss hinge(y, t)\n}\n"
    weights = {"y.dense.kernel": np.array([[0.5, 0], [0, -0.25]], np.float32),
               "y.dense.bias": np.array([0.1, 0.2], np.float32)}
    x = np.array([[1, 2], [3, -1]], np.float32)
    t = np.array([[0, 1], [1, 0]], np.float32)
    got_torch, got_keras = _loss_pair(text, weights, x, t)
    p = x @ weights["y.dense.kernel"].T + weights["y.dense.bias"]
    want = np.maximum(1 - t * p, 0).mean()
    assert got_torch == pytest.approx(want, rel=1e-6) and got_keras == pytest.approx(want, rel=1e-6)


# Generated code --------------------------------------------------------------------------------------


def test_generated_training_code_is_ruff_clean_and_deterministic(tmp_path):
    """Each helper both generators write for training (losses, optimisers, BatchNorm, SpecOrthogonal)."""
    ruff = [sys.executable, "-m", "ruff"]
    init = ("network I {\n input x: [4, 6, 6]\n a = x -> depthwise_conv2d(3, kernel_init=orthogonal(2.0))"
            " -> flatten -> dense(2, bias_init=orthogonal)\n output a\n}\n")
    nets = [network(kind, opt) for kind in NETS for opt in OPTIMIZER_CASES]
    nets.append(netspec.parse_text(init, "i.net").network())
    for k, net in enumerate(nets):
        torch_src, keras_src = tb.generate(net), kb.generate(net)
        assert torch_src == tb.generate(net) and keras_src == kb.generate(net)
        (tmp_path / "torch").mkdir(exist_ok=True)
        (tmp_path / "keras").mkdir(exist_ok=True)
        (tmp_path / "torch" / f"n{k}.py").write_text(torch_src)
        (tmp_path / "keras" / f"n{k}.py").write_text(keras_src)
    for sub, config in (("torch", ["--isolated"]), ("keras", ["--config", str(ROOT / "pyproject.toml")])):
        rules = ["--select", "E,F,W,I"] if sub == "torch" else []
        check = subprocess.run([*ruff, "check", *config, *rules, "--no-cache", str(tmp_path / sub)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout[-3000:]
        fmt = subprocess.run([*ruff, "format", "--check", *config, "--no-cache", str(tmp_path / sub)],
                             capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout[-3000:]
    src = tb.generate(network("mlp", OPTIMIZER_CASES[6]))
    assert "class _Adam(_Optimizer):" in src and "torch.optim.Adam(" not in src
    assert "torch.optim.SGD(" in tb.generate(network("mlp", OPTIMIZER_CASES[0]))
    assert "keras.optimizers.Adam(" in kb.generate(network("mlp", OPTIMIZER_CASES[6]))


# Initialisers ----------------------------------------------------------------------------------------

INIT_ARGS = {"constant": "constant(0.25)", "normal": "normal(0.02, 0.1)", "uniform": "uniform(-0.2, 0.3)",
             "orthogonal": "orthogonal(1.5)"}


@functools.cache
def init_network(name: str):
    init = INIT_ARGS.get(name, name)
    return netspec.parse_text(f"""network I {{
    input x: [512]
    input img: [32, 8, 8]
    input seq: [T, 16]
    a = x -> dense(512, kernel_init={init}, bias_init={init})
    b = img -> conv2d(64, 3, kernel_init={init})
    c = img -> depthwise_conv2d(3, depth_multiplier=8, kernel_init={init})
    d = seq -> lstm(32, kernel_init={init}, recurrent_init={init})
    output a, b, c, d
}}""", "init.net").network()


@pytest.mark.parametrize("backend", ["torch", "keras", "numpy"])
@pytest.mark.parametrize("name", [i.name for i in INITIALIZERS])
def test_fresh_weights_follow_the_initialiser(name, backend):
    """A fresh build (no checkpoint) of each backend, and init_weights, draw the spec's distribution.

    dense(512) on [512] (262,144 draws), a conv kernel (fans 288 and 576), a depthwise kernel (fans
    9 and 72 in the spec's layout), an LSTM (its bias: unit_forget_bias; orthogonal: every kernel).
    """
    net = init_network(name)
    params = {f"{layer}.{p.name}": p for layer, ps in net.layers().items() for p in ps}
    weights = v.fresh_weights(net, backend, seed=3)
    assert set(weights) == set(params)
    problems = {k: v.init_problems(params[k].init, w) for k, w in weights.items()}
    assert not any(problems.values()), {k: p for k, p in problems.items() if p}
    assert params["d.lstm.bias"].init.get("unit_forget_bias")


def test_the_initialiser_check_notices_wrong_fans_and_shapes():
    rng = np.random.default_rng(0)
    assert v.init_problems({"name": "he_normal"}, rng.normal(0, math.sqrt(1 / 512), (512, 512)))  # lecun's
    assert v.init_problems({"name": "glorot_uniform"}, rng.uniform(-0.1, 0.1, (64, 32, 3, 3)))
    assert v.init_problems({"name": "orthogonal", "gain": 1.0}, rng.normal(0, 0.05, (64, 64)))
    assert v.init_problems({"name": "zeros", "unit_forget_bias": True}, np.zeros(16))
    assert not v.init_problems({"name": "zeros", "unit_forget_bias": True}, np.repeat([0.0, 1, 0, 0], 4))


# The command line ------------------------------------------------------------------------------------


def test_cli_verify_train(capsys, in_root):
    assert main(["verify", "specs/autoencoder.net", "--train", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 2 and "dropout rates forced to 0" in out and "training" in out
    assert main(["verify", "specs/tiny_mlp.net", "--train", "--format", "json", "--seed", "1", "--batch", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    (net,) = data["networks"]
    assert data["mode"] == "train" and net["passed"] and net["steps"] == 5 and net["batch"] == 3
    assert [s["step"] for s in net["per_step"]] == [1, 2, 3, 4, 5]
    assert {t["name"] for t in net["per_step"][0]["tensors"]} == set(init_weights(netspec.load(
        "specs/tiny_mlp.net").network(), 0))
    assert all(t["passed"] for s in net["per_step"] for t in s["tensors"])
    assert set(net["per_step"][0]["loss"]) == {"torch", "keras"}


def test_cli_verify_train_errors(capsys, in_root):
    assert main(["verify", "specs/tiny_mlp.net", "--train", "--backends", "torch,onnx"]) == 2
    assert "onnx cannot train" in capsys.readouterr().err
    assert main(["verify", "specs/tiny_mlp.net", "--steps", "3"]) == 2
    assert main(["verify", "specs/tiny_mlp.net", "--train", "--steps", "0"]) == 2
    assert main(["verify", "specs/conv_example.net", "--train"]) == 1  # no loss: nothing to train, never a pass
    assert "NOT RUN: the network has no loss" in capsys.readouterr().out
