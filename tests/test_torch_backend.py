"""The PyTorch backend: generated source, meaning preserved, canonical weights, training setup.

Every spec in specs/ is built once (cached) and checked for ruff-cleanliness,
output shapes, parameter counts, an exact canonical round trip and one
training step. Edge cases compare against hand-written references (F.conv2d
on explicitly padded inputs, naive pooling and transposed-convolution loops,
recurrent cells written out) and, where TensorFlow is installed, against
TensorFlow's own 'same' padding.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import netspec  # noqa: E402
from netspec.backends import torch as tb  # noqa: E402
from netspec.diagnostics import SpecError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.net"))
#: Model-sized Transformers (issue 14): judged against Hugging Face in tests/test_transformers_reference.py
TRANSFORMERS = {"GPT2", "BERT", "ViT_B16"}
NETWORKS = [(p.name, n.name) for p in SPECS for n in netspec.load(p).networks if n.name not in TRANSFORMERS]
BIG = {"ResNet50", "ResNet152", "VGG16"}  # batch 1 at full size
SIZE_AGNOSTIC = {"ResNet50"}  # global pooling: its training step runs on a 32 x 32 twin of the spec


def _ruff() -> str | None:
    found = shutil.which("ruff")
    if found:
        return found
    local = Path(sys.executable).parent / "ruff"
    return str(local) if local.exists() else None


RUFF = _ruff()


def net_of(text: str, name: str | None = None):
    return netspec.parse_text(text, "x.net").network(name)


@functools.cache
def spec_network(file: str, name: str):
    return netspec.load(ROOT / "specs" / file).network(name)


@pytest.fixture(scope="module", params=NETWORKS, ids=[f"{f}-{n}" for f, n in NETWORKS])
def built(request):
    """(network, module) built once per network; pytest groups that network's tests and then frees it."""
    file, name = request.param
    net = spec_network(file, name)
    torch.manual_seed(0)
    return net, tb.build(net)


def random_weights(net, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    from netspec.weights import expected_shapes

    out = {}
    for key, shape in expected_shapes(net).items():
        w = rng.standard_normal(shape, dtype=np.float32)
        if key.endswith("moving_variance"):
            w = np.abs(w) + 0.5
        out[key] = w
    return out


def resolve(dim, sizes: dict) -> int:
    if isinstance(dim, int):
        return dim
    text = re.sub(r"[A-Za-z_]\w*", lambda m: str(sizes[m.group(0)]), dim)
    assert re.fullmatch(r"[0-9+\-*/() ]+", text), text
    return int(eval(text))  # arithmetic on integers only


def random_input(value, batch: int, sizes: dict):
    shape = [resolve(d, sizes) for d in value.type.shape]
    if value.type.is_integer:
        return torch.randint(0, 2, (batch, *shape))
    return torch.rand(batch, *shape)


def ruff_problems(text: str) -> str:
    """ruff check (default rules + E, F, W, I) and ruff format --check, with ruff's defaults (line length 88)."""
    check = subprocess.run([RUFF, "check", "--isolated", "--select", "E,F,W,I", "--stdin-filename", "gen.py", "-"],
                           input=text, capture_output=True, text=True)
    fmt = subprocess.run([RUFF, "format", "--isolated", "--stdin-filename", "gen.py", "-"],
                         input=text, capture_output=True, text=True)
    problems = ""
    if check.returncode:
        problems += check.stdout + check.stderr
    if fmt.returncode or fmt.stdout != text:
        import difflib

        problems += "".join(difflib.unified_diff(text.splitlines(True), fmt.stdout.splitlines(True)))
    return problems


# Every spec ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_generated_source_is_ruff_clean_and_deterministic(built):
    net, _ = built
    file, name = next((f, n) for f, n in NETWORKS if spec_network(f, n) is net)
    text = tb.generate(net)
    assert text == tb.generate(netspec.load(ROOT / "specs" / file).network(name))  # same spec, same bytes
    compile(text, f"{name}.py", "exec")
    assert ruff_problems(text) == ""
    imports = {m.group(1) for m in re.finditer(r"^(?:import|from) (\w+)", text, re.M)}
    assert imports <= {"math", "torch"}
    assert f"class {name}(nn.Module):" in text


def test_forward_shapes_match_the_ir(built):
    net, model = built
    name = net.name
    sizes = {"T": 7, "S": 9}  # S: a second run-time length (translator.net's source, seq2seq sources)
    batch = 1 if name in BIG else 2
    model.eval()
    with torch.no_grad():
        out = model(*(random_input(v, batch, sizes) for v in net.inputs))
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(net.outputs)
    for o, v in zip(outs, net.outputs):
        want = tuple(resolve(d, sizes) for d in net.type_of(v).shape)
        assert tuple(o.shape) == (batch, *want), v
        assert torch.isfinite(o).all()


def test_parameter_counts_match_the_ir(built):
    net, model = built
    trainable, non_trainable = net.param_counts()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert stats == non_trainable
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == tb.extra_parameters(net)


def test_lstm_second_bias_is_the_only_difference():
    """PyTorch's LSTM has a second bias; it is frozen at zero: 4 * units more parameters per direction."""
    net = spec_network("lstm_stack.net", "LSTMStack")
    model = tb.build(net)
    assert net.param_counts() == (23242, 0)
    assert sum(p.numel() for p in model.parameters()) == 23242 + 3 * 4 * 32
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.endswith("bias_hh_l0")), name
    gru = spec_network("bigru_classifier.net", "BiGRUClassifier")  # GRU: both biases are canonical
    gmodel = tb.build(gru)
    assert sum(p.numel() for p in gmodel.parameters()) == gru.param_counts()[0] == 2709121


def test_canonical_round_trip_is_exact(built):
    net, model = built
    weights = random_weights(net)
    tb.load_canonical(model, net, weights)
    back = tb.export_canonical(model, net)
    assert set(back) == set(weights)
    for key, w in weights.items():
        assert back[key].dtype == np.float32
        assert np.array_equal(back[key], w), key


def test_one_training_step(built):
    net, model = built
    if not net.loss:
        assert "def compute_loss" not in tb.generate(net)
        return
    if net.name == "ResNet152":  # its training code is ResNet50's, byte for byte; save a minute of CPU
        def training(n):
            text = tb.generate(n)
            return text[text.index("\ndef compute_loss"):]

        assert training(net) == training(spec_network("resnet50.net", "ResNet50"))
        return
    if net.name in SIZE_AGNOSTIC:  # generated models refuse other sizes: build the 32 x 32 twin
        text = (ROOT / "specs" / "resnet50.net").read_text().replace("[3, 224, 224]", "[3, 32, 32]")
        net = net_of(text)
        model = tb.build(net)
    module = model.netspec_module
    batch = 1 if net.name in BIG - SIZE_AGNOSTIC else 2
    sizes = {"T": 5, "S": 6}
    inputs = [random_input(v, batch, sizes) for v in net.inputs]
    targets = [random_input(v, batch, sizes) for v in net.targets]
    if net.name in BIG:  # an earlier test loaded N(0, 1) weights: draw the spec's again
        torch.manual_seed(1)
        model.reset_parameters()
    else:
        tb.load_canonical(model, net, netspec.init_weights(net, seed=1))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = module.make_optimizer(model)
    loss = module.train_step(model, optimizer, inputs, targets)
    assert loss.shape == () and torch.isfinite(loss)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    for name_, p in model.named_parameters():  # frozen tensors stay put
        if not p.requires_grad:
            assert torch.equal(p, before[name_])


# The API --------------------------------------------------------------------------------------------------


def test_api_to_torch_and_compile():
    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    weights = netspec.init_weights(spec, seed=0)
    model = spec.to_torch(weights=weights)
    assert spec.compile("torch") == tb.generate(spec.network())
    x = torch.rand(5, 3)
    want = torch.sigmoid(x @ torch.from_numpy(weights["logits.dense.kernel"]).T
                         + torch.from_numpy(weights["logits.dense.bias"]))
    t = {k: torch.from_numpy(v) for k, v in weights.items()}
    want = want @ t["logits.dense_1.kernel"].T + t["logits.dense_1.bias"]
    assert torch.allclose(model(x), want, atol=1e-6)
    copy.deepcopy(model)  # the executed module rides on the class, not the instance


def test_weight_mismatch_is_E602():
    net = spec_network("tiny_mlp.net", "TinyMLP")
    model = tb.build(net)
    weights = netspec.init_weights(net)
    bad = dict(weights)
    bad["logits.dense.kernel"] = np.zeros((3, 4), np.float32)
    del bad["logits.dense_1.bias"]
    bad["extra.kernel"] = np.zeros(1, np.float32)
    with pytest.raises(SpecError) as info:
        tb.load_canonical(model, net, bad)
    (diag,) = info.value.diagnostics
    assert diag.code == "E602"
    assert "logits.dense.kernel" in diag.message and "logits.dense_1.bias" in diag.message
    assert "extra.kernel" in diag.message
    with pytest.raises(SpecError):
        tb.build(net, bad)


def test_unsupported_is_E601_not_a_crash():
    net = net_of("network N {\n input x: [2, 3, 4, 5, 6]\n y = x -> batchnorm\n output y\n}\n")
    with pytest.raises(SpecError) as info:
        tb.generate(net)
    assert [d.code for d in info.value.diagnostics] == ["E601"]
    assert "batchnorm" in str(info.value)
    net = net_of("network N {\n input x: [4]\n y = x -> dense(2) -> relu\n output y\n}\n")
    bogus = net.model_copy(update={"nodes": (net.nodes[0], net.nodes[1].model_copy(update={"op": "bogus"}))})
    with pytest.raises(SpecError) as info:
        tb.generate(bogus)
    assert info.value.diagnostics[0].code == "E601" and "bogus" in info.value.diagnostics[0].message
    with pytest.raises(TypeError):
        tb.generate(net, layout="nhwc")


# Names ------------------------------------------------------------------------------------------------------


def test_block_paths_become_module_paths():
    net = net_of("""
block res(filters, stride=1) {
    main = in -> conv2d(filters, 3, stride=stride, padding=1) -> relu
    return add(main, in)
}
network Net {
    input image: [4, 8, 8]
    layer train = dense(3)
    layer a_b = dense(3)
    stage2 = image -> res(4) * 2 -> global_avgpool2d
    out = stage2 -> train -> a_b
    output out
}
""")
    text = tb.generate(net)
    model = tb.build(net)
    assert {"stage2", "train_", "a_b"} == set(dict(model.named_children()))
    assert callable(model.train)  # a layer named `train` does not hide nn.Module.train
    assert "self.stage2 = nn.Sequential(*(Res(4) for _ in range(2)))" in text
    assert "class Res(nn.Module):" in text and "self.main.conv2d = nn.Conv2d(filters, filters, 3, padding=1)" in text
    plan = tb.plan(net)
    assert plan["stage2.0.main.conv2d"].attr == "stage2.0.main.conv2d"
    assert plan["train"].attr == "train_"
    assert set(model.state_dict()) == {"stage2.0.main.conv2d.weight", "stage2.0.main.conv2d.bias",
                                       "stage2.1.main.conv2d.weight", "stage2.1.main.conv2d.bias",
                                       "train_.weight", "train_.bias", "a_b.weight", "a_b.bias"}


def test_module_attribute_list_is_complete():
    public = {n for n in dir(torch.nn.Module) if not n.startswith("_")}
    assert public <= tb.MODULE_ATTRS, public - tb.MODULE_ATTRS


HELPER_SPECS = {
    "no weights": "network N {\n input x: [3]\n y = x -> relu\n output y\n}\n",
    "pools and dot": """network P {
    input x: [3, 7, 8]
    a = x -> avgpool2d(3, stride=2, padding=((0, 1), (1, 0)), ceil_mode=true, count_include_pad=true)
    b = x -> maxpool2d(2, stride=1, padding=((0, 1), (1, 0))) -> flatten
    c = dot(b, b, axes=0, normalize=true)
    output a, c
}""",
    "recurrent": """network R {
    input s: [T, 3]
    a = s -> bidirectional(lstm(4), merge_mode=ave)
    b = s -> simple_rnn(2)
    output a, b
}""",
    "training": """network O {
    input x: [4]
    target t: [4]
    target k: int64[]
    h = x -> dense(3, bias_regularizer=l1(0.1))
    y = h -> dense(4, kernel_regularizer=l2(0.2))
    output y
    loss 2 * hinge(y, t) - kl_divergence(y, t) + cosine_similarity(y, x) + kl_normal(h, h) + \
categorical_crossentropy(y, t) + sparse_categorical_crossentropy(y, k) + binary_crossentropy(y, t)
    optimizer rmsprop(weight_decay=0.01, centered=true)
}""",
}


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
@pytest.mark.parametrize("text", list(HELPER_SPECS.values()), ids=list(HELPER_SPECS))
def test_helpers_are_ruff_clean(text):
    net = net_of(text)
    source = tb.generate(net)
    assert ruff_problems(source) == ""
    tb.build(net)


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_long_names_still_format_like_ruff():
    rng = np.random.default_rng(3)
    letters = list("abcdefghijklmnop_0123456789")

    def name(lo=1, hi=40):
        n = int(rng.integers(lo, hi))
        return "abcdefgh"[int(rng.integers(8))] + "".join(rng.choice(letters, n - 1))

    for _ in range(6):
        a, b, c, d, e, f, g, i1, i2, t = (name() for _ in range(10))
        if len({a, b, c, d, e, f, g, i1, i2, t}) < 10:
            continue
        text = f"""
network {name(1, 30)} {{
    input {i1}: [3, 17, 16]
    input {i2}: [3, 17, 16]
    target {t}: int64[]
    layer {g} = conv2d(8, 3, stride=2, padding=same, activation=relu, kernel_regularizer=l1_l2(0.01, 0.02))
    {a} = {i1} -> {g} -> maxpool2d(3, stride=2, padding=1) -> batchnorm(momentum=0.9, eps=1e-5)
    {b} = {i2} -> {g} -> avgpool2d(3, stride=2, padding=same) -> batchnorm(axis=-1)
    {c} = add({a}, {b}, {a}) -> conv_transpose2d(4, 3, stride=2, padding=same)
    {d} = average({a}, {b}) -> flatten -> dense(10, activation=softmax)
    {e} = concat({c}, {c}, axis=0) -> global_avgpool2d -> dense(10)
    {f} = maximum({d}, {e}, {d})
    output {f}, {e}
    loss sparse_categorical_crossentropy({f}, {t}) + \
0.5 * sparse_categorical_crossentropy({e}, {t}, from_logits=true) - 0.25 * mse({e}, {d})
    optimizer sgd(lr=0.1, momentum=0.9, nesterov=true, weight_decay=0.001)
}}
"""
        source = tb.generate(net_of(text))
        assert ruff_problems(source) == "", source


# Padding, pooling, transposed convolution ------------------------------------------------------------------


def tf_same(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding, written out independently of netspec.shapes."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


CONV_CASES = [  # (size, kernel, stride, dilation, groups)
    ((9, 10), 3, 2, 1, 1),
    ((9, 10), 3, 3, 1, 1),
    ((10, 9), 2, 2, 1, 1),
    ((7, 8), 4, 3, 1, 1),
    ((9, 10), 3, 2, 2, 1),
    ((9, 8), 3, 1, 2, 2),
    ((8, 11), (2, 3), (2, 3), 1, 4),
    ((6, 6), 2, 1, 1, 1),
]


@pytest.mark.parametrize("size,kernel,stride,dilation,groups", CONV_CASES)
def test_conv_same_padding_matches_explicit_reference(size, kernel, stride, dilation, groups):
    k2 = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    s2 = stride if isinstance(stride, tuple) else (stride, stride)
    net = net_of(f"""network C {{
    input x: [4, {size[0]}, {size[1]}]
    y = x -> conv2d(8, {kernel}, stride={stride}, padding=same, dilation={dilation}, groups={groups})
    output y
}}""")
    w = random_weights(net)
    model = tb.build(net, w)
    x = torch.randn(2, 4, *size)
    (ph, pw) = (tf_same(size[0], k2[0], s2[0], dilation), tf_same(size[1], k2[1], s2[1], dilation))
    ref = F.conv2d(F.pad(x, (*pw, *ph)), torch.from_numpy(w["y.conv2d.kernel"]), torch.from_numpy(w["y.conv2d.bias"]),
                   stride=s2, dilation=dilation, groups=groups)
    got = model(x)
    assert got.shape == ref.shape == (2, 8, -(-size[0] // s2[0]), -(-size[1] // s2[1]))
    assert torch.allclose(got, ref, atol=1e-5)


def test_conv1d_and_conv3d_same_padding():
    net = net_of("""network C {
    input s: [2, 11]
    input v: [2, 5, 6, 7]
    a = s -> conv1d(3, 4, stride=3, padding=same)
    b = v -> conv3d(3, (2, 3, 4), stride=2, padding=same, use_bias=false)
    output a, b
}""")
    w = random_weights(net)
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    s, v = torch.randn(2, 2, 11), torch.randn(2, 2, 5, 6, 7)
    a, b = tb.build(net, w)(s, v)
    ref_a = F.conv1d(F.pad(s, tf_same(11, 4, 3)), t["a.conv1d.kernel"], t["a.conv1d.bias"], stride=3)
    pads = (*tf_same(7, 4, 2), *tf_same(6, 3, 2), *tf_same(5, 2, 2))
    ref_b = F.conv3d(F.pad(v, pads), t["b.conv3d.kernel"], stride=2)
    assert a.shape == (2, 3, 4) and b.shape == (2, 3, 3, 3, 4)
    assert torch.allclose(a, ref_a, atol=1e-5) and torch.allclose(b, ref_b, atol=1e-5)


def test_depthwise_and_separable_match_grouped_conv():
    net = net_of("""network D {
    input x: [3, 9, 8]
    a = x -> depthwise_conv2d(3, stride=2, padding=same, depth_multiplier=2)
    b = x -> separable_conv2d(5, 3, padding=((1, 0), (0, 1)), depth_multiplier=2)
    output a, b
}""")
    w = random_weights(net)
    model = tb.build(net, w)
    x = torch.randn(2, 3, 9, 8)
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    a = F.conv2d(F.pad(x, (*tf_same(8, 3, 2), *tf_same(9, 3, 2))), t["a.depthwise_conv2d.kernel"],
                 t["a.depthwise_conv2d.bias"], stride=2, groups=3)
    mid = F.conv2d(F.pad(x, (0, 1, 1, 0)), t["b.separable_conv2d.depthwise_kernel"], None, groups=3)
    b = F.conv2d(mid, t["b.separable_conv2d.pointwise_kernel"], t["b.separable_conv2d.bias"])
    ga, gb = model(x)
    assert torch.allclose(ga, a, atol=1e-5) and torch.allclose(gb, b, atol=1e-5)


def naive_pool(x: np.ndarray, kind, window, stride, pads, out_shape, count_include_pad):
    """The spec's pooling, element by element: windows start at i * stride - pad_begin and are clipped;
    max ignores padding; avg divides by the window's input values (count_include_pad: its values inside
    the padded extent)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, *out_shape))
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            h0, w0 = i * stride[0] - pads[0][0], j * stride[1] - pads[1][0]
            h1, w1 = h0 + window[0], w0 + window[1]
            real = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
            if kind == "max":
                out[:, :, i, j] = real.max(axis=(2, 3))
            else:
                if count_include_pad:
                    count = ((min(h1, h + pads[0][1]) - max(h0, -pads[0][0]))
                             * (min(w1, w + pads[1][1]) - max(w0, -pads[1][0])))
                else:
                    count = real.shape[2] * real.shape[3]
                out[:, :, i, j] = real.sum(axis=(2, 3)) / count
    return out


POOL_CASES = [  # (op args, expected output size for [7, 8])
    ("3, stride=2, padding=1, ceil_mode=true", (4, 5)),
    ("2, ceil_mode=true", (4, 4)),
    ("3, stride=2, padding=((0, 1), (1, 0)), ceil_mode=true", (4, 4)),
    ("3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=true", (4, 4)),
    ("3, stride=2, padding=same", (4, 4)),
    ("2, stride=2, padding=same", (4, 4)),
    ("3, stride=3, padding=((1, 1), (0, 1))", (3, 3)),
    ("2, stride=1, padding=((0, 1), (1, 0))", (7, 8)),
    ("3, stride=2", (3, 3)),
    ("3, stride=2, padding=1", (4, 4)),
]


@pytest.mark.parametrize("kind,include", [("max", False), ("avg", False), ("avg", True)])
@pytest.mark.parametrize("args,out_size", POOL_CASES)
def test_pooling_matches_naive_reference(kind, args, out_size, include):
    extra = f", count_include_pad={'true' if include else 'false'}" if kind == "avg" else ""
    net = net_of(f"network P {{\n input x: [3, 7, 8]\n y = x -> {kind}pool2d({args}{extra})\n output y\n}}\n")
    node = net.nodes[0]
    assert node.type.shape[1:] == out_size
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    got = tb.build(net).double()(x)
    ref = naive_pool(x.numpy(), kind, node.attrs["pool"], node.attrs["stride"], node.attrs["padding"],
                     out_size, include)
    assert got.shape == (2, 3, *out_size)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)


def test_pooling_1d_and_3d_asymmetric():
    net = net_of("""network P {
    input s: [2, 9]
    input v: [2, 5, 6, 7]
    a = s -> avgpool1d(3, stride=2, padding=((1, 0),), ceil_mode=true)
    b = v -> maxpool3d(2, padding=((1, 0), (0, 1), (1, 1)), ceil_mode=true)
    output a, b
}""")
    model = tb.build(net)
    s, v = torch.randn(1, 2, 9, dtype=torch.float64), torch.randn(1, 2, 5, 6, 7, dtype=torch.float64)
    a, b = model.double()(s, v)
    assert a.shape[1:] == net.type_of(net.outputs[0]).shape and b.shape[1:] == net.type_of(net.outputs[1]).shape
    ref_a = naive_pool(s.numpy()[:, :, :, None], "avg", (3, 1), (2, 1), ((1, 0), (0, 0)), (a.shape[2], 1), False)
    np.testing.assert_allclose(a.numpy(), ref_a[..., 0], atol=1e-12)
    padded = F.pad(v, (1, 1, 0, 1, 1, 0), value=-math.inf)
    ref_b = F.max_pool3d(padded, 2, ceil_mode=True)
    assert torch.equal(b, ref_b[:, :, : b.shape[2], : b.shape[3], : b.shape[4]])


def naive_conv_transpose(x, w, b, stride, crops, out_shape, dilation=1, groups=1):
    """Scatter every input value times the kernel; crop the full output; values past it hold the bias."""
    n, cin, h, wd = x.shape
    cout_g = w.shape[1]
    k = w.shape[2:]
    full = np.zeros((n, cout_g * groups, (h - 1) * stride[0] + dilation * (k[0] - 1) + 1 + 8,
                     (wd - 1) * stride[1] + dilation * (k[1] - 1) + 1 + 8))
    gin = cin // groups
    for ci in range(cin):
        g = ci // gin
        for i in range(h):
            for j in range(wd):
                for a in range(k[0]):
                    for c in range(k[1]):
                        oi, oj = i * stride[0] + a * dilation, j * stride[1] + c * dilation
                        full[:, g * cout_g:(g + 1) * cout_g, oi, oj] += x[:, ci, i, j, None] * w[ci, :, a, c]
    out = full[:, :, crops[0][0]:crops[0][0] + out_shape[0], crops[1][0]:crops[1][0] + out_shape[1]]
    return out + b[None, :, None, None]


TRANSPOSE_CASES = [
    "3, stride=2, padding=1, output_padding=1",
    "3, stride=2, padding=same",
    "4, stride=2, padding=same",
    "2, stride=3, padding=same",
    "3, stride=2, padding=((0, 1), (1, 2)), output_padding=1",
    "3, stride=(2, 3), padding=((2, 0), (0, 0)), output_padding=(1, 2)",
    "3, stride=2, dilation=2, groups=2, padding=1, output_padding=1",
]


@pytest.mark.parametrize("args", TRANSPOSE_CASES)
def test_conv_transpose_matches_naive_reference(args):
    net = net_of(f"network T {{\n input x: [4, 5, 6]\n y = x -> conv_transpose2d(6, {args})\n output y\n}}\n")
    node = net.nodes[0]
    w = random_weights(net)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    got = tb.build(net, w).double()(x)
    a = node.attrs
    ref = naive_conv_transpose(x.numpy(), w["y.conv_transpose2d.kernel"].astype(np.float64),
                               w["y.conv_transpose2d.bias"].astype(np.float64), a["stride"], a["padding"],
                               node.type.shape[1:], a["dilation"][0], a["groups"])
    assert got.shape[1:] == node.type.shape
    np.testing.assert_allclose(got.detach().numpy(), ref, atol=1e-10)


def test_same_padding_agrees_with_tensorflow():
    tf = pytest.importorskip("tensorflow")
    for size, kernel, stride, dilation, _ in CONV_CASES[:6]:
        net = net_of(f"""network C {{
    input x: [4, {size[0]}, {size[1]}]
    y = x -> conv2d(8, {kernel}, stride={stride if dilation == 1 else 1}, padding=same, dilation={dilation})
    output y
}}""")
        w = random_weights(net)
        x = np.random.default_rng(0).standard_normal((2, 4, *size)).astype(np.float32)
        got = tb.build(net, w)(torch.from_numpy(x)).detach().numpy()
        s = stride if dilation == 1 else 1
        ref = tf.nn.conv2d(x.transpose(0, 2, 3, 1), w["y.conv2d.kernel"].transpose(2, 3, 1, 0), strides=s,
                           padding="SAME", dilations=dilation).numpy().transpose(0, 3, 1, 2)
        np.testing.assert_allclose(got, ref + w["y.conv2d.bias"][None, :, None, None], atol=1e-4)
    for kernel, stride in ((3, 2), (4, 2), (2, 3), (5, 3)):
        net = net_of(f"network T {{\n input x: [4, 5, 6]\n y = x -> conv_transpose2d(6, {kernel}, stride={stride}, "
                     "padding=same, use_bias=false)\n output y\n}\n")
        w = random_weights(net)
        x = np.random.default_rng(1).standard_normal((2, 4, 5, 6)).astype(np.float32)
        got = tb.build(net, w)(torch.from_numpy(x)).detach().numpy()
        ref = tf.nn.conv2d_transpose(x.transpose(0, 2, 3, 1), w["y.conv_transpose2d.kernel"].transpose(2, 3, 1, 0),
                                     output_shape=(2, 5 * stride, 6 * stride, 6), strides=stride, padding="SAME")
        np.testing.assert_allclose(got, ref.numpy().transpose(0, 3, 1, 2), atol=1e-4)
    net = net_of("network P {\n input x: [3, 7, 8]\n y = x -> avgpool2d(3, stride=2, padding=same)\n output y\n}\n")
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 8)).astype(np.float32)
    got = tb.build(net)(torch.from_numpy(x)).numpy()
    ref = tf.nn.avg_pool2d(x.transpose(0, 2, 3, 1), 3, 2, "SAME").numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, ref, atol=1e-5)


# Layers with state, shared layers, recurrent layers -------------------------------------------------------------


def test_shared_layer_is_one_module_used_twice():
    net = net_of("""network S {
    input a: [6]
    input b: [6]
    layer enc = dense(4, activation=tanh)
    x = a -> enc
    y = b -> enc
    output x, y
}""")
    model = tb.build(net)
    assert list(dict(model.named_parameters())) == ["enc.weight", "enc.bias"]
    text = tb.generate(net)
    assert text.count("self.enc(") == 2 and text.count("nn.Linear(") == 1
    v = torch.randn(3, 6)
    x, y = model(v, v)
    assert torch.equal(x, y)
    (x.sum() + 2 * y.sum()).backward()
    manual = torch.autograd.grad((torch.tanh(F.linear(v, model.enc.weight, model.enc.bias)) * 3).sum(),
                                 model.enc.weight)[0]
    assert torch.allclose(model.enc.weight.grad, manual)


def test_batchnorm_momentum_and_eps_follow_the_spec():
    net = net_of("network B {\n input x: [3, 4, 4]\n y = x -> batchnorm(momentum=0.9, eps=0.01)\n output y\n}\n")
    model = tb.build(net)
    bn = model.y.batchnorm
    assert math.isclose(bn.momentum, 0.1) and bn.eps == 0.01
    x = torch.randn(5, 3, 4, 4) * 3 + 1
    model.train()
    model(x)
    assert torch.allclose(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)), atol=1e-6)  # 0.9 * 0 + 0.1 * batch
    model.eval()
    w = random_weights(net)
    tb.load_canonical(model, net, w)
    t = {k.split(".")[-1]: torch.from_numpy(v)[None, :, None, None] for k, v in w.items()}
    ref = (x - t["moving_mean"]) / torch.sqrt(t["moving_variance"] + 0.01) * t["gamma"] + t["beta"]
    assert torch.allclose(model(x), ref, atol=1e-5)


def test_normalisation_variants():
    net = net_of("""network N {
    input x: [5, 3]
    a = x -> batchnorm(axis=-1, scale=false)
    b = x -> layernorm(center=false)
    c = x -> layernorm(axis=(0, 1), scale=false)
    output a, b, c
}""")
    model = tb.build(net)
    trainable, non = net.param_counts()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert tb.extra_parameters(net) == 3 + 15  # a fixed gamma per batchnorm feature, per layernorm element
    w = random_weights(net)
    tb.load_canonical(model, net, w)
    back = tb.export_canonical(model, net)
    assert all(np.array_equal(back[k], w[k]) for k in w)
    model.eval()
    x = torch.randn(4, 5, 3)
    a, b, c = model(x)
    ref_a = (x - torch.from_numpy(w["a.batchnorm.moving_mean"])) / torch.sqrt(
        torch.from_numpy(w["a.batchnorm.moving_variance"]) + 1e-3) + torch.from_numpy(w["a.batchnorm.beta"])
    assert torch.allclose(a, ref_a, atol=1e-5)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    assert torch.allclose(b, (x - mean) / torch.sqrt(var + 1e-3) * torch.from_numpy(w["b.layernorm.gamma"]), atol=1e-5)
    mean, var = x.mean((1, 2), keepdim=True), x.var((1, 2), unbiased=False, keepdim=True)
    assert torch.allclose(c, (x - mean) / torch.sqrt(var + 1e-3) + torch.from_numpy(w["c.layernorm.beta"]), atol=1e-5)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def lstm_ref(x, k, r, b):
    u = r.shape[1]
    h, c, out = np.zeros((x.shape[0], u)), np.zeros((x.shape[0], u)), []
    for t in range(x.shape[1]):
        z = x[:, t] @ k.T + h @ r.T + b
        i, f, g, o = _sigmoid(z[:, :u]), _sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), _sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def gru_ref(x, k, r, b, rb):
    u = r.shape[1]
    h, out = np.zeros((x.shape[0], u)), []
    for t in range(x.shape[1]):
        xz, hz = x[:, t] @ k.T + b, h @ r.T + rb
        reset, update = _sigmoid(xz[:, :u] + hz[:, :u]), _sigmoid(xz[:, u:2 * u] + hz[:, u:2 * u])
        n = np.tanh(xz[:, 2 * u:] + reset * hz[:, 2 * u:])
        h = (1 - update) * n + update * h
        out.append(h)
    return np.stack(out, 1)


def test_recurrent_layers_match_written_out_cells():
    net = net_of("""network R {
    input s: [T, 3]
    a = s -> lstm(4)
    b = s -> bidirectional(gru(5, return_sequences=true), merge_mode=sum)
    c = s -> bidirectional(lstm(2), merge_mode=concat)
    d = s -> simple_rnn(3, return_sequences=true)
    output a, b, c, d
}""")
    w = {k: v.astype(np.float64) for k, v in random_weights(net).items()}
    model = tb.build(net, w).double()
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    a, b, c, d = (o.detach().numpy() for o in model(torch.from_numpy(x)))
    ref = lstm_ref(x, w["a.lstm.kernel"], w["a.lstm.recurrent_kernel"], w["a.lstm.bias"])
    np.testing.assert_allclose(a, ref[:, -1], atol=1e-10)
    g, names = "b.bidirectional.", ("kernel", "recurrent_kernel", "bias", "recurrent_bias")
    fwd = gru_ref(x, *(w[g + "forward." + p] for p in names))
    bwd = gru_ref(x[:, ::-1], *(w[g + "backward." + p] for p in names))
    np.testing.assert_allclose(b, fwd + bwd[:, ::-1], atol=1e-10)
    g = "c.bidirectional."
    fwd = lstm_ref(x, *(w[g + "forward." + p] for p in ("kernel", "recurrent_kernel", "bias")))[:, -1]
    bwd = lstm_ref(x[:, ::-1], *(w[g + "backward." + p] for p in ("kernel", "recurrent_kernel", "bias")))[:, -1]
    np.testing.assert_allclose(c, np.concatenate([fwd, bwd], 1), atol=1e-10)
    h, ref = np.zeros((2, 3)), []
    for t in range(6):
        g = "d.simple_rnn."
        h = np.tanh(x[:, t] @ w[g + "kernel"].T + h @ w[g + "recurrent_kernel"].T + w[g + "bias"])
        ref.append(h)
    np.testing.assert_allclose(d, np.stack(ref, 1), atol=1e-10)


def test_merges_reshapes_and_activations():
    net = net_of("""network M {
    input a: [2, 3]
    input b: [3]
    s = average(a, b, a)
    m = minimum(a, b) -> permute(1, 0) -> reshape([2, -1]) -> leaky_relu(0.2)
    d = dot(a, a, axes=(1, 1), normalize=true)
    e = dot(b, b, axes=0)
    u = a -> reshape([2, 3, 1]) -> upsample2d((1, 2)) -> elu(0.5)
    v = a -> softmax(axis=0) -> gelu(approximate=true) -> hard_sigmoid -> swish -> softplus -> relu6 -> linear
    output s, m, d, e, u, v
}""")
    model = tb.build(net)
    a, b = torch.randn(4, 2, 3), torch.randn(4, 3)
    s, m, d, e, u, v = model(a, b)
    assert torch.allclose(s, (2 * a + b[:, None]) / 3)  # per-sample broadcasting: [3] acts as [1, 3]
    assert torch.allclose(m, F.leaky_relu(torch.minimum(a, b[:, None]).transpose(1, 2).reshape(4, 2, 3), 0.2))
    an = a / a.norm(dim=2, keepdim=True)
    assert torch.allclose(d, an @ an.transpose(1, 2), atol=1e-6) and d.shape == (4, 2, 2)
    assert torch.allclose(e, (b * b).sum(1, keepdim=True))
    assert torch.allclose(u, F.elu(a[..., None].repeat_interleave(2, -1), 0.5))
    ref = torch.clamp(F.gelu(torch.softmax(a, 1), approximate="tanh") / 6 + 0.5, 0, 1)
    ref = torch.clamp(F.softplus(ref * torch.sigmoid(ref)), 0, 6)
    assert torch.allclose(v, ref, atol=1e-6)


# Training setup -------------------------------------------------------------------------------------------------


def test_every_loss_follows_its_formula():
    net = net_of("""network L {
    input x: [3, 4]
    target t: [3, 4]
    target ids: int64[3, 1]
    p = x -> dense(4, activation=sigmoid)
    q = x -> dense(4)
    output p, q
    loss mse(p, t) + 0.5 * mae(p, t) + huber(p, t, delta=0.5) + binary_crossentropy(p, t) + \
binary_crossentropy(q, t, from_logits=true) + categorical_crossentropy(q, t, from_logits=true) + \
categorical_crossentropy(p, t, axis=0) + sparse_categorical_crossentropy(q, ids, from_logits=true) + \
hinge(q, t) + kl_divergence(p, t) + cosine_similarity(p, t) - 2 * kl_normal(p, q)
}""")  # the backslashes join the loss into one line
    module = tb.load_source(net)
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, (5, 3, 4))
    q = rng.standard_normal((5, 3, 4))
    t = rng.uniform(0, 1, (5, 3, 4))
    ids = rng.integers(0, 4, (5, 3, 1))
    outputs = (torch.from_numpy(p), torch.from_numpy(q))
    got = module.compute_loss(outputs, torch.from_numpy(t), torch.from_numpy(ids)).item()
    e = p - t
    huber = np.where(np.abs(e) <= 0.5, 0.5 * e**2, 0.5 * (np.abs(e) - 0.25)).mean()
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    sq = _sigmoid(q)
    bce_logits = -(t * np.log(sq) + (1 - t) * np.log(1 - sq)).mean()
    logsm = q - np.log(np.exp(q).sum(-1, keepdims=True))
    cce_logits = -(t * logsm).sum(-1).mean()
    cce_axis0 = -(t * np.log(p / p.sum(1, keepdims=True))).sum(1).mean()  # probabilities renormalised first
    sparse = -np.take_along_axis(logsm, ids, -1).mean()
    hinge = np.maximum(1 - t * q, 0).mean()
    kl = (t * np.log(t / p)).sum(-1).mean()
    cos = -((p * t).sum(-1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(t, axis=-1)).mean()
    kl_normal = (-0.5 * (1 + q - p**2 - np.exp(q))).sum((1, 2)).mean()
    want = ((e**2).mean() + 0.5 * np.abs(e).mean() + huber + bce + bce_logits + cce_logits + cce_axis0 + sparse
            + hinge + kl + cos - 2 * kl_normal)
    assert math.isclose(got, want, rel_tol=1e-9)
    zero = torch.zeros(2, 3, 4, dtype=torch.float64)  # probabilities are clipped as Keras does: no inf
    clipped = module.compute_loss((zero, zero), zero + 1, torch.zeros(2, 3, 1, dtype=torch.int64))
    assert torch.isfinite(clipped)


def test_loss_on_an_input_and_an_intermediate_value():
    net = net_of("""network A {
    input x: [4]
    target t: [4]
    h = x -> dense(3)
    y = h -> dense(4)
    output y
    loss mse(y, x) + 0.5 * mse(h, h) - 0.25 * mae(y, t)
    optimizer adagrad(lr=0.1)
}""")
    model = tb.build(net)
    module = model.netspec_module
    x, t = torch.randn(5, 4), torch.randn(5, 4)
    y, (h,) = model(x, return_loss_values=True)
    assert torch.equal(y, model(x))
    want = F.mse_loss(y, x) - 0.25 * F.l1_loss(y, t)
    assert torch.allclose(module.compute_loss(y, t, x, (h,)), want)
    assert torch.allclose(module.train_step(model, module.make_optimizer(model), [x], [t]), want)


def test_regularizers_use_keras_meaning():
    net = spec_network("autoencoder.net", "AutoencoderL2")
    model = tb.build(net)
    module = model.netspec_module
    layer = model.code.dense
    want = 0.01 * (layer.weight.square().sum() + layer.bias.square().sum())
    assert torch.allclose(module.regularization_loss(model), want)
    net = net_of("""network R {
    input x: [3]
    target t: [2]
    y = x -> dense(2, kernel_regularizer=l1_l2(0.1, 0.2), bias_regularizer=l1(0.3))
    output y
    loss mse(y, t)
}""")
    model = tb.build(net)
    w, b = model.y.dense.weight, model.y.dense.bias
    want = 0.1 * w.abs().sum() + 0.2 * w.square().sum() + 0.3 * b.abs().sum()
    assert torch.allclose(model.netspec_module.regularization_loss(model), want)
    mlp = tb.build(spec_network("mlp.net", "MLP"))
    assert mlp.netspec_module.regularization_loss(mlp) == 0.0


# torch.optim where its update is the spec's (docs/language.md, "Training semantics"), generated classes
# (named by a string) where torch.optim places eps elsewhere; tests/test_training.py compares the updates with Keras.
OPTIMIZERS = [
    ("sgd(lr=0.1, momentum=0.9, nesterov=true)", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd(nesterov=true)", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
    ("rmsprop(rho=0.8, momentum=0.5, centered=true, eps=1e-6)", "_RMSprop",
     {"lr": 0.001, "rho": 0.8, "momentum": 0.5, "centered": True, "eps": 1e-6, "weight_decay": 0.0}),
    ("adagrad(initial_accumulator=0.2)", "_Adagrad", {"initial_accumulator": 0.2, "eps": 1e-7}),
    ("adadelta(rho=0.9)", torch.optim.Adadelta, {"lr": 1.0, "rho": 0.9, "eps": 1e-7}),
    ("adam(beta1=0.8, amsgrad=true)", "_Adam", {"beta1": 0.8, "beta2": 0.999, "amsgrad": True, "eps": 1e-7,
                                                "weight_decay": 0.0}),
    ("adam(weight_decay=0.1)", "_Adam", {"weight_decay": 0.1}),
    ("adamw", "_Adam", {"weight_decay": 0.004, "lr": 0.001}),
]


@pytest.mark.parametrize("spec,cls,want", OPTIMIZERS)
def test_optimizer_hyperparameters(spec, cls, want):
    net = net_of(f"network O {{\n input x: [3]\n target t: [2]\n y = x -> dense(2)\n output y\n"
                 f" loss mse(y, t)\n optimizer {spec}\n}}\n")
    model = tb.build(net)
    opt = model.netspec_module.make_optimizer(model)
    assert isinstance(opt, torch.optim.Optimizer)
    assert type(opt) is cls if not isinstance(cls, str) else type(opt).__name__ == cls
    group = opt.param_groups[0]
    for key, value in want.items():
        assert group[key] == value, key


def test_decoupled_weight_decay_for_sgd():
    net = net_of("network O {\n input x: [3]\n target t: [2]\n y = x -> dense(2)\n output y\n"
                 " loss mse(y, t)\n optimizer sgd(lr=0.1, weight_decay=0.5)\n}\n")
    model = tb.build(net)
    module = model.netspec_module
    opt = module.make_optimizer(model)
    x, t = torch.randn(4, 3), torch.randn(4, 2)
    w0 = model.y.dense.weight.detach().clone()
    loss = module.compute_loss(model(x), t)
    (g,) = torch.autograd.grad(loss, model.y.dense.weight)
    module.train_step(model, opt, [x], [t])
    assert torch.allclose(model.y.dense.weight, w0 * (1 - 0.1 * 0.5) - 0.1 * g, atol=1e-6)


def test_fresh_modules_draw_from_the_spec_initialisers():
    net = net_of("""network I {
    input x: [400]
    input s: [T, 8]
    a = x -> dense(300, kernel_init=he_normal, bias_init=constant(0.3))
    b = x -> dense(300, kernel_init=glorot_uniform, bias_init=normal(0.02, 1.0))
    c = x -> dense(200, kernel_init=orthogonal(2.0), bias_init=uniform(-1.0, -0.5))
    d = x -> dense(300, kernel_init=lecun_normal)
    e = s -> lstm(16)
    output a, b, c, d, e
}""")
    torch.manual_seed(0)
    model = tb.build(net)
    w = model.a.dense.weight
    std = math.sqrt(2 / 400)
    assert abs(w.std().item() / std - 1) < 0.03 and w.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6
    assert torch.all(model.a.dense.bias == 0.3)
    limit = math.sqrt(6 / 700)
    w = model.b.dense.weight
    assert w.abs().max() <= limit and abs(w.std().item() / (limit / math.sqrt(3)) - 1) < 0.03
    assert abs(model.b.dense.bias.mean().item() - 1.0) < 0.01 and abs(model.b.dense.bias.std().item() - 0.02) < 0.005
    w = model.c.dense.weight
    assert torch.allclose(w @ w.T, 4 * torch.eye(200), atol=1e-4)
    assert model.c.dense.bias.min() >= -1.0 and model.c.dense.bias.max() <= -0.5
    assert abs(model.d.dense.weight.std().item() / math.sqrt(1 / 400) - 1) < 0.03
    bias = model.e.lstm.bias_ih_l0
    assert torch.equal(bias, torch.cat([torch.zeros(16), torch.ones(16), torch.zeros(32)]))
    assert torch.all(model.e.lstm.bias_hh_l0 == 0)
    r = model.e.lstm.weight_hh_l0  # [64, 16]: orthonormal columns
    assert torch.allclose(r.T @ r, torch.eye(16), atol=1e-5)


def test_integer_ids_stay_integer_until_the_embedding():
    net = net_of("""network N {
    input a: int64[2, 3]
    input b: int64[2, 3]
    y = concat(a, b, axis=-1) -> flatten -> reshape([3, 4]) -> permute(1, 0) -> embedding(10, 2)
    output y
}""")
    a = torch.randint(0, 10, (2, 2, 3))
    b = torch.randint(0, 10, (2, 2, 3))
    module = tb.build(net)
    out = module(a, b)
    ids = torch.cat([a, b], -1).flatten(1).reshape(2, 3, 4).permute(0, 2, 1)
    assert out.dtype == torch.float32 and tuple(out.shape[1:]) == net.type_of(net.outputs[0]).shape
    assert torch.equal(out, module.y_embedding.weight[ids] if hasattr(module, "y_embedding")
                       else torch.nn.functional.embedding(ids, next(module.parameters())))


# Structure: the generated source mirrors the spec ----------------------------------------------------------


def test_resnet50_source_has_one_class_per_block_and_canonical_state_dict_keys():
    net = spec_network("resnet50.net", "ResNet50")
    text = tb.generate(net)
    classes = re.findall(r"^class (\w+)\(nn\.Module\):", text, re.M)
    assert classes == ["BottleneckDown", "Bottleneck", "ResNet50"]  # one per block, then the network
    assert len(text.splitlines()) < 676 / 2
    assert "def __init__(self, in_channels, width, stride=1):" in text  # torchvision's Bottleneck(inplanes, ...)
    assert "self.features = nn.Sequential(" in text and "*(Bottleneck(64) for _ in range(2))," in text
    assert "features = self.features(stem)" in text
    model = tb.build(net)
    plans = tb.plan(net)
    weights = {f"{p.name}.{k}" for p in plans.values() for k in p.params}
    keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    # the documented rename: the layer path as is, the parameter renamed (kernel -> weight...)
    rename = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
              "moving_variance": "running_var"}
    assert keys == {f"{k.rsplit('.', 1)[0]}.{rename[k.rsplit('.', 1)[1]]}" for k in weights}
    assert "features.3.main.conv2d.weight" in keys


def test_a_network_without_blocks_stays_one_flat_class():
    text = tb.generate(spec_network("vgg16.net", "VGG16"))
    assert re.findall(r"^class (\w+)\(", text, re.M) == ["_BatchNorm2d"] * ("_BatchNorm2d" in text) + ["VGG16"]
    assert "self.features.conv2d_1 = nn.Conv2d(64, 64, 3, padding=1)" in text


def test_constructor_literals_become_block_parameters_or_in_channels():
    text = tb.generate(spec_network("unet.net", "UNet"))
    assert "def __init__(self, in_channels, filters):" in text
    assert "self.conv2d = nn.Conv2d(in_channels, filters, 3, padding=1, bias=False)" in text
    assert "self.conv2d_1 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)" in text  # channel propagation
    assert "self.dec3 = nn.Sequential(DoubleConv(128, 64))" in text


def test_instances_of_different_structure_get_their_own_classes_and_nested_blocks_work():
    net = net_of("""
block inner(n, k=2) { return in -> dense(n * k) -> relu }
block outer(n) {
    h = in -> inner(n) * 2
    return h -> inner(n, k=1) -> dense(4)
}
block act(a) { return in -> flatten -> dense(2, activation=a) }
network N {
    input x: [4]
    input s: [3, 5]
    a = x -> outer(3) -> outer(5)
    b = s -> act(relu)
    c = s -> act(tanh)
    output a, b, c
}""")
    text = tb.generate(net)
    assert re.findall(r"^class (\w+)\(nn\.Module\):", text, re.M) == ["Inner", "Act", "Act_2", "Outer", "N"]
    assert "self.h = nn.Sequential(*(Inner(n) for _ in range(2)))" in text or "Inner(" in text
    weights = random_weights(net)
    model = tb.build(net, weights)
    keys = {k for k in model.state_dict()}
    assert "a.1.h.0.dense.weight" in keys and "a.0.0.dense.bias" in keys
    x, s = torch.randn(2, 4), torch.randn(2, 3, 5)
    a, b, c = model(x, s)
    assert a.shape == (2, 4) and b.shape == (2, 2) and c.shape == (2, 2)
    back = tb.export_canonical(model, net)
    assert all(np.array_equal(back[k], w) for k, w in weights.items())


def test_unbatched_or_misshapen_inputs_are_refused_clearly():
    net = net_of("network N {\n input x: [4]\n y = x -> dense(2)\n output y\n}\n")
    model = tb.build(net)
    assert model(torch.randn(3, 4)).shape == (3, 2)
    with pytest.raises(ValueError, match=r"input x: expected \[N, 4\]; received: \[4\]"):
        model(torch.randn(4))
    with pytest.raises(ValueError, match=r"expected \[N, 4\]; received: \[2, 3\]"):
        model(torch.randn(2, 3))
    seq = net_of("network S {\n input x: [T, 3]\n y = x -> lstm(2)\n output y\n}\n")
    model = tb.build(seq)
    assert model(torch.randn(2, 7, 3)).shape == (2, 2)  # a run-time size takes any length
    with pytest.raises(ValueError, match=r"expected \[N, \*, 3\]; received: \[7, 3\]"):
        model(torch.randn(7, 3))


BLOCK_SPECS = ["""
block b(n) {
    layer s = dense(n)
    return in -> s -> s
}
network A { input x: [4]
  y = x -> b(4) -> b(4) * 2
  output y }
""", """
block d(rate, units) { return in -> dense(units) -> dropout(rate) -> relu }
network B { input x: [4]
  y = x -> d(0.1, 8) -> d(0.2, 4) -> d(0.2, 3)
  output y }
""", """
block w(act, k=3) { return in -> conv1d(4, k, padding="same") -> act }
block inner(n) { return in -> dense(n) }
block wrap(f) { return in -> flatten -> f }
network C { input x: [2, 6]
  h = x -> w(relu) -> w(tanh, k=1) -> w(relu, k=5)
  y = h -> wrap(inner(3))
  output y }
""", """
block r(c, h) { return in -> reshape([c, h]) -> permute(1, 0) -> flatten }
network D { input x: [12]
  y = x -> r(3, 4) -> r(4, 3) -> dense(2)
  output y }
""", """
block res(f) {
    a = in -> conv2d(f, 3, padding=1) -> batchnorm -> relu
    b = a -> conv2d(f, 3, padding=1) -> batchnorm
    return add(b, in) -> relu
}
network E { input x: [3, 8, 8]
  s = x -> conv2d(8, 3, padding=1)
  t = s -> res(8) * 3
  u = t -> res(8)
  v = add(t, u) -> global_avgpool2d -> dense(2)
  output v }
"""]


@pytest.mark.parametrize("text", BLOCK_SPECS, ids=["shared-layer", "dropout-rate", "op-arguments", "views", "residual"])
def test_block_classes_compute_what_every_instance_computes(text):
    """Shared layers, op-valued and forward-only parameters, nested and passed blocks: ONNX Runtime agrees."""
    ort = pytest.importorskip("onnxruntime")
    spec = netspec.parse_text(text, "t.net")
    net = spec.network()
    weights = netspec.init_weights(spec, seed=3)
    model = spec.to_torch(weights=weights).eval()
    x = np.random.default_rng(0).standard_normal([2, *net.inputs[0].type.shape]).astype(np.float32)
    got = model(torch.from_numpy(x)).detach().numpy()
    session = ort.InferenceSession(spec.to_onnx(weights=weights).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    text = spec.compile("torch")
    assert re.search(r"^class \w+\(nn\.Module\):", text, re.M)


# In place where it is safe (netspec/liveness.py) ------------------------------------------------------------


def test_liveness_allows_in_place_only_where_safe():
    from netspec.liveness import inplace_nodes

    net = spec_network("resnet50.net", "ResNet50")
    inplace = inplace_nodes(net)
    assert {"stem.relu", "features.0.main.relu", "features.0.add", "features.0.relu", "features.1.add"} <= inplace
    assert not any(n.startswith("stem.conv") or n.endswith("batchnorm") for n in inplace)
    net = net_of("""network N {
    input x: [4]
    h = x -> dense(4)
    a = h -> relu
    b = add(a, h) -> relu
    s = x -> dense(4) -> sigmoid -> relu
    v = x -> dense(8) -> reshape([2, 4])
    w = v -> relu
    u = add(w, v)
    o = x -> dense(4)
    p = o -> relu
    q = x -> relu
    output b, s, u, o, p, q
}""")
    inplace = inplace_nodes(net)
    assert "a.relu" not in inplace  # h is read again by the add
    assert "b.relu" in inplace  # after an add
    assert "s.relu" not in inplace  # sigmoid differentiates through its output
    assert "w.relu" not in inplace  # a view of v, which is read later
    assert "p.relu" not in inplace  # o is an output
    assert "q.relu" not in inplace  # the caller's tensor


def test_in_place_ops_change_no_number_and_no_gradient():
    text = (ROOT / "specs" / "resnet50.net").read_text().replace("[3, 224, 224]", "[3, 16, 16]")
    text = text.replace("* 5", "* 1").replace("* 3", "* 1").replace("* 2", "* 1")
    net = net_of(text)
    source = tb.generate(net)
    assert "F.relu(main, inplace=True)" in source and "main += skip" in source
    plain = source.replace(", inplace=True", "").replace("main += skip", "main = main + skip").replace(
        "main += x", "main = main + x")
    assert "inplace" not in plain and "+=" not in plain
    weights = random_weights(net)
    models = []
    for src in (source, plain):
        module = {}
        exec(compile(src, "<gen>", "exec"), module)
        model = module["ResNet50"]()
        tb.load_canonical(model, net, weights)
        models.append(model.train())
    x = torch.randn(2, 3, 16, 16)
    outs = [m(x) for m in models]
    assert torch.equal(outs[0], outs[1])
    for out in outs:
        out.square().sum().backward()
    for (name, p), (_, q) in zip(*(m.named_parameters() for m in models)):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name


# Compilers, snapshots, runtime helpers ------------------------------------------------------------------------

COMPILE_SPECS = {
    "blocks": """
block res(filters, stride=1) {
    main = in -> conv2d(filters, 3, stride=stride, padding=1) -> batchnorm -> relu
    return add(main, in) -> relu
}
network Net {
    input image: [4, 8, 8]
    stage = image -> res(4) * 2 -> global_avgpool2d
    out = stage -> dense(3, activation=relu)
    output out
}""",
    "recurrent": "network R {\n input x: [5, 3]\n y = x -> lstm(4, return_sequences=true) -> gru(2)\n output y\n}\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(COMPILE_SPECS))
def test_torch_compile_fullgraph_and_export(case):
    """torch.compile(fullgraph=True) traces without a graph break (aot_eager: CPU inductor takes minutes)."""
    net = net_of(COMPILE_SPECS[case])
    model = tb.build(net, random_weights(net)).eval()
    x = [random_input(v, 2, {}) for v in net.inputs]
    want = model(*x)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True), torch.no_grad():  # Dynamo traces nn.LSTM/GRU when asked
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        assert torch.allclose(compiled(*x), want, atol=1e-6)
    exported = torch.export.export(model, tuple(x))
    assert torch.allclose(exported.module()(*x), want, atol=1e-6)


SNAPSHOTS = {"tiny_mlp": ("tiny_mlp.net", None), "unet": ("unet.net", None), "conv_example": ("conv_example.net", None)}


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_generated_source_matches_its_snapshot(name):
    """A change to generated code is a reviewed diff: NETSPEC_UPDATE_SNAPSHOTS=1 rewrites tests/snapshots/."""
    file, network = SNAPSHOTS[name]
    text = netspec.load(ROOT / "specs" / file).compile("torch", network)
    path = ROOT / "tests" / "snapshots" / f"torch_{name}.py"
    if os.environ.get("NETSPEC_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert text == path.read_text(), "generated source changed; review and rerun with NETSPEC_UPDATE_SNAPSHOTS=1"


def test_runtime_helpers_are_real_code_copied_verbatim():
    from netspec.backends.runtime import torch_helpers

    source = (ROOT / "netspec" / "backends" / "runtime" / "torch_helpers.py").read_text()
    for name, text in tb.HELPER_SOURCE.items():
        assert text in source and hasattr(torch_helpers, name), name
    assert set(tb.HELPERS) <= set(tb.HELPER_SOURCE)
    # only the helpers a network uses are copied, and the file imports no netspec
    text = tb.generate(net_of("network N {\n input x: [4]\n y = x -> dense(2)\n output y\n}\n"))
    assert "def _init(" in text and "def _expect(" in text and "_BatchNorm" not in text and "_Adam" not in text
    assert "netspec" not in text.replace("generated by netspec", "")
    # the helpers work as the generated code uses them
    with pytest.raises(ValueError, match="input a"):
        torch_helpers._expect(torch.zeros(3), "a", (3,))
    bn = torch_helpers._BatchNorm1d(3, momentum=0.5).train()
    x = torch.randn(8, 3)
    bn(x)
    assert torch.allclose(bn.running_var, 0.5 + 0.5 * x.var(0, unbiased=False))


# The lowering stage (netspec/lower.py): padding PyTorch's layers cannot take -----------------------------------


def test_asymmetric_pads_become_a_pad_step_and_compute_the_same():
    """Asymmetric pads are a ``pad`` node of the lowering (``F.pad``; -inf before a max pool, the ceil-mode
    extra folded in); symmetric pads and ceil mode stay on the layer."""
    import torch.nn.functional as F

    net = net_of("""
network P {
    input x: [2, 7, 8]
    a = x -> conv2d(3, 3, padding=((1, 0), (0, 2)), use_bias=false)
    b = x -> maxpool2d(3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=true)
    c = x -> maxpool2d(3, stride=2, padding=1, ceil_mode=true)
    d = x -> avgpool2d(3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=true)
    output a, b, c, d
}
""")
    text = tb.generate(net)
    assert "F.pad(x, (0, 2, 1, 0))" in text and "F.pad(x, (0, 1, 1, 1), value=-math.inf)" in text
    assert "F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True)" in text  # native: PyTorch's rule is the IR's
    assert "_avg_pool(" in text and "extra=" in text  # an average must not count the extra
    torch.manual_seed(0)
    model = tb.build(net).eval()
    x = torch.randn(2, 2, 7, 8)
    a, b, c, d = model(x)
    assert tuple(b.shape[1:]) == net.type_of(net.outputs[1]).shape
    w = model.a.conv2d.weight
    assert torch.equal(a, F.conv2d(F.pad(x, (0, 2, 1, 0)), w))
    ref = F.max_pool2d(F.pad(x, (0, 1, 1, 0), value=-torch.inf), 3, 2, ceil_mode=True)
    assert torch.equal(b, ref)
    assert torch.equal(c, F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True))


def test_build_carries_the_weight_plan(monkeypatch):
    """The plan is learnt while generating: the backend adapter never regenerates the source to learn it."""
    from netspec import backends

    net = spec_network("tiny_mlp.net", None)
    model = tb.build(net)
    assert model.netspec_plan == tb.plan(net)
    monkeypatch.setattr(tb, "plan", lambda network: pytest.fail("plan() regenerated the source"))
    built = backends.get("torch").build(net, weights=random_weights(net))
    assert built.state["plan"] is type(built.model).netspec_plan
    out = backends.get("torch").export_canonical(built)
    assert set(out) == {f"{p.name}.{q}" for p in built.state["plan"].values() for q in p.params}
    tb.load_canonical(built.model, net, out)


def test_blocks_with_value_parameters_take_them_in_forward():
    """forward(self, x, memory, pad); a repeated run is an nn.ModuleList called in a loop, with the
    state_dict keys of an nn.Sequential (the canonical names); ONNX Runtime computes the same."""
    ort = pytest.importorskip("onnxruntime")
    text = """
block decoder_layer(memory, pad, heads=2) {
    s = in -> attention(heads, causal=true)
    h = add(in, s) -> layernorm(eps=1e-5)
    c = attention(h, memory, heads=heads, mask=pad)
    return add(h, c) -> layernorm(eps=1e-5) -> dense(8, activation=relu)
}
network N {
    input x: [4, 8]
    input m: [6, 8]
    input pad: int64[6]
    mem = m -> dense(8)
    y = x -> decoder_layer(mem, pad) * 3
    output y
}
"""
    spec = netspec.parse_text(text, "t.net")
    net = spec.network()
    source = tb.generate(net)
    assert source == tb.generate(spec.network())  # deterministic
    if RUFF is not None:
        assert ruff_problems(source) == ""
    assert "def forward(self, x, memory, pad):" in source
    assert "self.y = nn.ModuleList(DecoderLayer() for _ in range(3))" in source
    assert "for layer in self.y:\n            y = layer(y, mem, pad)" in source
    weights = random_weights(net)
    model = tb.build(net, weights).eval()
    plans = tb.plan(net)
    keys = set(model.state_dict())
    assert "y.2.c.attention.q.weight" in keys and "mem.dense.weight" in keys
    assert len(keys) == sum(len(p.params) for p in plans.values())
    back = tb.export_canonical(model, net)
    assert set(back) == set(weights) and all(np.array_equal(back[k], w) for k, w in weights.items())
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 4, 8)).astype(np.float32),
             "m": rng.standard_normal((2, 6, 8)).astype(np.float32),
             "pad": np.array([[1, 1, 1, 0, 1, 0], [1, 0, 1, 1, 1, 1]], dtype=np.int64)}
    with torch.no_grad():
        got = model(*(torch.from_numpy(feeds[k]) for k in ("x", "m", "pad"))).numpy()
    session = ort.InferenceSession(spec.to_onnx(weights=weights).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_value_parameter_cases_generate_ruff_clean_deterministic_source():
    from conformance_cases import CASES

    cases = [c for c in CASES if c.name.startswith("block_value")]
    assert len(cases) >= 6
    for case in cases:
        text = tb.generate(netspec.parse_text(case.text(), f"{case.name}.net").network())
        assert text == tb.generate(netspec.parse_text(case.text(), f"{case.name}.net").network())
        compile(text, f"{case.name}.py", "exec")
        assert ruff_problems(text) == "", case.name
