"""Hostile sizes, outputs, unused branches and weights (issue 11, sections 2 and 5).

* Integers beyond int64 anywhere (a literal, the result of arithmetic, a dimension, a
  YAML hex dimension) are located E304/E401 diagnostics, never a ValueError or
  OverflowError (Python refuses to print an int over 4,300 digits).
* Every backend command refuses a tensor too big to allocate before allocating it
  (:func:`netspec.limits.preflight`): the reproducers run in a subprocess whose data
  segment is capped, so a blow-up fails the test instead of the machine.
* ``output y, y`` is E202; an unused branch is a warning (E208) and leaves the IR, so
  every backend accepts ``init_weights(spec)``.
* One weights boundary: the same bad weights give the same E602 in every backend.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec import SpecError
from netspec.limits import MAX_INT, int_text, preflight
from netspec.report import human_bytes, human_count

BIG = "9" * 4200  # below the lexer's 4,300-digit limit; its square is far beyond
HALF = "9" * 2500


def net(body: str, inputs: str = "input x: [4]") -> str:
    return f"network N {{\n    {inputs}\n    y = x -> {body}\n    output y\n}}\n"


def refusal(text: str, name: str = "t.net") -> SpecError:
    """The SpecError a spec raises; every diagnostic is located and renders (no ValueError inside)."""
    with pytest.raises(SpecError) as info:
        netspec.parse_text(text, name).check().render()
    err = info.value
    assert all(d.span is not None for d in err.diagnostics), err.render()
    err.render()
    json.dumps([d.to_json() for d in err.diagnostics])
    return err


# Big integers ----------------------------------------------------------------------------------------------

BIG_INT_CASES = {
    "product_of_literals": net(f"dense({HALF} * {HALF})"),
    "product_then_divided": net(f"dense({HALF} * {HALF} / 3)"),
    "sum_past_int64": net("dense(9223372036854775807 + 1)"),
    "units_2_63": net("dense(units=9223372036854775808)"),
    "long_units": net(f"dense({BIG})"),
    "long_dimension": net("dense(3)", f"input x: [{BIG}]"),
    "two_long_dimensions": net("flatten", f"input x: [{BIG}, {BIG}]"),
    "thirty_digit_dimension": net("dense(3)", f"input x: [{'9' * 30}]"),
    "conv_filters": net(f"conv2d({BIG}, 3)", "input x: [3, 8, 8]"),
    "embedding": net(f"embedding({BIG}, {BIG})", "input x: int64[4]"),
    "upsample": net(f"upsample1d({BIG})", "input x: [3, 8]"),
    "zeropad": net(f"zeropad1d({BIG})", "input x: [3, 8]"),
    "lstm": net(f"lstm({BIG})", "input x: [3, 4]"),
    "dropout_rate": net(f"dropout({BIG})"),
    "batchnorm_long_input": net("batchnorm", f"input x: [{BIG}]"),
    "pool_2_63_ceil": net("maxpool1d(9223372036854775808, ceil_mode=true)", "input x: [3, 8]"),
    "pool_int64_max_ceil": net("maxpool1d(9223372036854775807, ceil_mode=true)", "input x: [3, 8]"),
    "pool_window_past_input_ceil": net("maxpool1d(20, ceil_mode=true)", "input x: [3, 8]"),
    "stride_past_int32": net("maxpool1d(2, stride=2147483648, ceil_mode=true)", "input x: [3, 8]"),
    "dilation_past_int32": net("conv1d(2, 1, dilation=2147483648)", "input x: [3, 8]"),
    "scale_past_int32": net("upsample1d(2147483648)", "input x: [3, 8]"),
    "output_elements_past_int64": net("dense(9223372036854775807)", "input x: [3, 4]"),
    "weight_elements_past_int64": net("dense(4611686018427387904)"),
    "repeat": net(f"relu * ({HALF} * {HALF})"),
    "loss_weight": "network N {\n    input x: [4]\n    target t: [2]\n    y = x -> dense(2)\n    output y\n"
                   f"    loss {BIG} * mse(y, t)\n}}\n",
    "loss_divisor": "network N {\n    input x: [4]\n    target t: [2]\n    y = x -> dense(2)\n    output y\n"
                    f"    loss mse(y, t) / {BIG}\n}}\n",
    "learning_rate": "network N {\n    input x: [4]\n    y = x -> dense(2)\n    output y\n"
                     f"    optimizer sgd(lr={BIG})\n}}\n",
    "block_parameter": f"block b(n) {{\n    return in -> dense(n * n * n)\n}}\n"
                       f"network N {{\n    input x: [4]\n    y = x -> b({HALF})\n    output y\n}}\n",
}


@pytest.mark.parametrize("text", BIG_INT_CASES.values(), ids=BIG_INT_CASES)
def test_big_integers_are_located_errors(text):
    err = refusal(text)
    assert {d.code for d in err.diagnostics} <= {"E304", "E401", "E305"}, err.render()


def test_window_attributes_fit_int32():
    """TensorFlow aborts the process (a failed CHECK) on a stride beyond int32: the checker refuses it."""
    err = refusal(net("maxpool1d(2, stride=9223372036854775807, ceil_mode=true)", "input x: [3, 8]"))
    (d,) = err.diagnostics
    assert d.code == "E304" and "argument 'stride': expected at most 2**31 - 1" in d.message
    assert (d.span.line, d.span.col) == (3, 27)
    spec = netspec.parse_text(net("maxpool1d(2, stride=2147483647, ceil_mode=true)", "input x: [3, 8]"))
    assert spec.network().nodes[0].type.shape == (3, 1)


def test_big_integer_message_shows_the_arithmetic():
    err = refusal(net("dense(9223372036854775807 + 1)"))
    (d,) = err.diagnostics
    assert d.code == "E304"
    assert "9223372036854775807 + 1 = 9223372036854775808 is too large" in d.message
    assert "2**63 - 1" in d.message


def test_long_integers_are_shortened_not_converted():
    err = refusal(net(f"dense({HALF} * {HALF})"))
    assert "(2500 digits)" in err.diagnostics[0].message  # the literal, shown by size, not by its digits
    assert int_text(10**5000) == "100000...000000 (5001 digits)"
    assert int_text(-(10**60)) == "-100000...000000 (61 digits)"
    assert int_text(MAX_INT) == str(MAX_INT)


@pytest.mark.parametrize("digits", ["0x" + "f" * 4000, "0x" + "f" * 20, "1_000_000_000_000_000_000_000"])
def test_yaml_dimensions_beyond_int64(digits):
    text = (f"networks:\n  N:\n    inputs:\n      x: [{digits}]\n    values:\n      y: x -> dense(3)\n"
            "    outputs: [y]\n")
    err = refusal(text, "t.yaml")
    assert err.diagnostics[0].code == "E304"
    assert "a dimension is at most 2**63 - 1" in err.diagnostics[0].message


def test_sizes_at_the_int64_edge_still_check_and_render():
    spec = netspec.parse_text(net("dense(2)", "input x: [4611686018427387903]"))
    report = spec.check()
    assert report.networks[0].total == 2 * 4611686018427387903 + 2
    text = report.render()
    assert "9,223,372,036,854,775,808" in text
    json.dumps(report.to_json())


def test_report_number_helpers_never_overflow():
    assert human_count(10**400).endswith("G")
    assert human_count(1_234_567) == "1.23M"
    assert human_bytes(10**400) == "over 10**15 TiB"
    assert human_bytes(1536) == "1.50 KiB"


# A short fuzz campaign over big arithmetic (long ones: NETSPEC_FUZZ_EXAMPLES) -----------------------------------

_INT = st.one_of(st.integers(-5, 5), st.integers(2**62, 2**64), st.sampled_from([HALF, BIG, "9223372036854775807"]))
_EXPR = st.recursive(_INT.map(str), lambda inner: st.tuples(inner, st.sampled_from("+-*/%"), inner).map(
    lambda t: f"({t[0]} {t[1]} {t[2]})"), max_leaves=6)
_PLACE = st.sampled_from([
    "dense({e})", "conv1d({e}, 3)", "maxpool1d({e}, ceil_mode=true)", "upsample1d({e})", "zeropad1d({e})",
    "reshape([{e}, -1])", "dense(2) * {e}", "maxpool1d(2, stride={e})", "conv1d(2, 3, dilation={e})",
    "dropout({e})", "lstm({e})",
])
_DIM = st.one_of(st.integers(1, 8), st.integers(2**31, 2**64), st.just(BIG)).map(str)


@settings(max_examples=int(os.environ.get("NETSPEC_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(place=_PLACE, expr=_EXPR, dims=st.lists(_DIM, min_size=2, max_size=3))
def test_fuzz_big_arithmetic_raises_only_located_diagnostics(place, expr, dims):
    text = net(place.format(e=expr), f"input x: [{', '.join(dims)}]")
    try:
        spec = netspec.parse_text(text)
    except SpecError as exc:
        assert all(d.span is not None for d in exc.diagnostics), exc.render()
        exc.render()
        return
    spec.check().render()
    for node in spec.network().nodes:
        assert all(not isinstance(d, int) or 1 <= d <= MAX_INT for d in node.type.shape)
        assert math.prod(d for d in node.type.shape if isinstance(d, int)) <= MAX_INT
        assert all(p.size <= MAX_INT for p in node.params)


# Memory preflight: refused before allocating, in a capped subprocess -------------------------------------------

HUGE = {
    "dense_1e12": net("dense(1000000000000)"),
    "input_1e9_by_1e9": ("network N {\n    input x: [1000000000, 1000000000]\n    y = x -> dense(2)\n"
                         "    output y\n}\n"),
}
DATA_LIMIT = 1536 * 2**20  # a blow-up (gigabytes) dies here instead of exhausting the machine


def run_capped(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``python args...`` with its data segment capped at DATA_LIMIT (so a blow-up is a failed test)."""
    code = ("import resource, runpy, sys\n"
            f"resource.setrlimit(resource.RLIMIT_DATA, ({DATA_LIMIT}, {DATA_LIMIT}))\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_module(sys.argv[0], run_name='__main__') if sys.argv[0] == 'netspec' "
            "else runpy.run_path(sys.argv[0], run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("NETSPEC_MAX_TENSOR_BYTES", None)
    env.pop("NETSPEC_MAX_MEMORY_BYTES", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env=env, **kwargs)


@pytest.mark.parametrize("name", HUGE)
def test_huge_models_are_refused_by_every_backend_command(name, tmp_path):
    spec_file = tmp_path / f"{name}.net"
    spec_file.write_text(HUGE[name])
    out = tmp_path / "model.onnx"
    for command in (["export", str(spec_file), "-o", str(out)], ["verify", str(spec_file)],
                    ["verify", str(spec_file), "--train", "--backends", "torch"]):
        proc = run_capped(["netspec", *command])
        assert proc.returncode == 1, (command, proc.stderr[-2000:])
        assert "error[E304]" in proc.stderr and f"{spec_file}:3:" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
        assert "a tensor may take at most 2.00 GiB" in proc.stderr
    assert not out.exists()
    script = tmp_path / "api.py"
    script.write_text(textwrap.dedent(f"""
        import netspec
        from netspec import verify
        spec = netspec.load({str(spec_file)!r})
        calls = [spec.init_weights, spec.to_torch, spec.to_keras, spec.to_onnx,
                 lambda: netspec.init_weights(spec), lambda: verify.verify(spec.network())]
        for call in calls:
            try:
                call()
            except netspec.SpecError as exc:
                assert [d.code for d in exc.diagnostics] == ["E304"], exc.render()
                assert exc.diagnostics[0].span is not None
            else:
                raise SystemExit("accepted")
        print("all refused")
    """))
    proc = run_capped([str(script)])
    assert proc.returncode == 0 and "all refused" in proc.stdout, proc.stderr[-2000:]


def test_dense_1e8_verify_is_refused_not_a_crash(tmp_path):
    spec_file = tmp_path / "wide.net"
    spec_file.write_text(net("dense(100000000)"))
    proc = run_capped(["netspec", "verify", str(spec_file)])
    assert proc.returncode == 1, proc.stderr[-2000:]  # not -11 (SIGSEGV), not a MemoryError traceback
    assert "error[E304]: verify would need about" in proc.stderr
    assert "NETSPEC_MAX_MEMORY_BYTES" in proc.stderr


def test_ceilings_can_be_raised_or_lowered(monkeypatch):
    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    network = spec.network()
    preflight(network, "onnx")
    monkeypatch.setenv("NETSPEC_MAX_TENSOR_BYTES", "40")  # the 4x3 kernel takes 48 bytes
    with pytest.raises(SpecError) as info:
        spec.to_onnx()
    assert "weight 'logits.dense.kernel' [4, 3] takes 48 B" in info.value.diagnostics[0].message
    assert "logits = x" not in info.value.render()  # the source line of the dense layer is shown
    assert "-> dense(4, activation=sigmoid)" in info.value.render()
    monkeypatch.setenv("NETSPEC_MAX_TENSOR_BYTES", "1_000")
    monkeypatch.setenv("NETSPEC_MAX_MEMORY_BYTES", "100")
    with pytest.raises(SpecError, match="an ONNX export would need about 312 B"):
        preflight(network, "onnx")
    monkeypatch.setenv("NETSPEC_MAX_MEMORY_BYTES", "lots")
    with pytest.raises(SpecError, match="NETSPEC_MAX_MEMORY_BYTES must be a positive number of bytes"):
        preflight(network, "onnx")


def test_verify_train_counts_what_it_holds(monkeypatch, tmp_path):
    """verify --train of VGG-16 (3 steps, the noise floor) peaked at 21 GB where the estimate said 5 GB
    (weights x 9): it keeps every step's weights of every run, and TensorFlow keeps finished models' memory."""
    from netspec.limits import train_copies

    assert train_copies(2, 3) == 43 and train_copies(2, 5) == 55  # 1 + 2*s + 8, and in float64 2*s*2 + 16
    assert train_copies(2, 5, noise_floor=False) == 19 and train_copies(2, 5, float64=True) == 37
    monkeypatch.setenv("NETSPEC_MAX_MEMORY_BYTES", str(8 * 2**30))
    network = netspec.load(ROOT / "specs" / "vgg16.net").network()
    with pytest.raises(SpecError) as info:
        preflight(network, "train", ("torch", "keras"), 2)
    message, note = info.value.diagnostics[0].message, info.value.diagnostics[0].notes[0]
    assert "verify --train would need about 28.4" in message and "held 55 times" in message
    assert "fewer --steps (now 5), --no-noise-floor" in note
    preflight(network, "train", ("torch", "keras"), 2, steps=2, noise_floor=False)  # 13 copies: 6.7 GiB
    proc = subprocess.run([sys.executable, "-m", "netspec", "verify", str(ROOT / "specs" / "vgg16.net"), "--train",
                           "--batch", "2"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "NETSPEC_MAX_MEMORY_BYTES": str(8 * 2**30)})
    assert proc.returncode == 1 and "error[E304]: verify --train would need about 28.4" in proc.stderr, proc.stderr


def test_verify_refuses_an_onnx_model_past_the_protobuf_limit(monkeypatch):
    monkeypatch.setenv("NETSPEC_MAX_MEMORY_BYTES", str(2**50))
    network = netspec.parse_text(net("dense(100000000) -> dense(2)")).network()  # 2.8 GB of weights in all
    with pytest.raises(SpecError, match="a protobuf holds at most 2 GiB"):
        preflight(network, "verify", ("torch", "onnx"), 2)
    preflight(network, "verify", ("torch",), 2)


# output y, y --------------------------------------------------------------------------------------------------


def test_an_output_listed_twice_is_e202():
    err = refusal("network N {\n    input x: [4]\n    y = x -> dense(2)\n    output y, y\n}\n")
    (d,) = err.diagnostics
    assert d.code == "E202" and "'y' is listed twice" in d.message
    assert (d.span.line, d.span.col) == (4, 15)


def test_one_value_under_two_names_exports_a_valid_onnx_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    spec_file = tmp_path / "two.net"
    spec_file.write_text("network N {\n    input x: [4]\n    y = x -> dense(2)\n    copy = y\n    output y, copy\n}\n")
    out = tmp_path / "two.onnx"
    from netspec.cli import main

    assert main(["export", str(spec_file), "-o", str(out)]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    a, b = session.run(None, {"x": np.ones((1, 4), np.float32)})
    assert np.array_equal(a, b)


# Unused branches ---------------------------------------------------------------------------------------------

DEAD = ("network N {\n    input x: [4]\n    y = x -> dense(2)\n    dead = x -> dense(3) -> relu\n"
        "    output y\n}\n")


def test_an_unused_branch_warns_and_leaves_the_model():
    spec = netspec.parse_text(DEAD, "dead.net")
    (w,) = spec.warnings
    assert (w.code, w.severity, w.span.line, w.span.col) == ("E208", "warning", 4, 5)
    assert "'dead' is never used" in w.message
    assert "dead.net:4:5: warning[E208]" in spec.render_warnings()
    assert [n.name for n in spec.network().nodes] == ["y.dense"]
    assert set(spec.init_weights()) == {"y.dense.kernel", "y.dense.bias"}
    assert spec.check().networks[0].total == 10


def test_unused_bindings_inside_a_block_warn_once():
    text = ("block b() {\n    t = in -> dense(5)\n    return in -> dense(2)\n}\n"
            "network N {\n    input x: [4]\n    y = x -> b -> b -> b\n    output y\n}\n")
    spec = netspec.parse_text(text, "blk.net")
    assert [(w.code, w.span.line) for w in spec.warnings] == [("E208", 2)]
    assert not any(".t." in n.name for n in spec.network().nodes)


def test_check_prints_the_warning_and_exits_zero(tmp_path, capsys):
    from netspec.cli import main

    path = tmp_path / "dead.net"
    path.write_text(DEAD)
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning[E208]: 'dead' is never used" in captured.err
    assert "dead.dense" not in captured.out
    assert main(["check", "--format", "json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [w["code"] for w in data["warnings"]] == ["E208"]
    assert data["warnings"][0]["severity"] == "warning"


@pytest.mark.slow
def test_every_backend_accepts_init_weights_of_a_spec_with_an_unused_branch():
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    pytest.importorskip("onnxruntime")
    from netspec import verify

    spec = netspec.parse_text(DEAD, "dead.net")
    weights = spec.init_weights()
    spec.to_torch(weights)
    spec.to_keras(weights)
    spec.to_onnx(weights)
    assert verify.verify(spec.network(), weights=weights).passed


# One weights boundary ------------------------------------------------------------------------------------------

K = "logits.dense.kernel"


def _bad_weights(good: dict) -> dict:
    return {
        "list": [1, 2], "float": 1.5, "int": 5, "path_missing": "/nonexistent/w.safetensors",
        "value_none": {**good, K: None}, "value_list": {**good, K: good[K].tolist()}, "value_float": {**good, K: 0.5},
        "int_array": {**good, K: good[K].astype(np.int64)}, "bool_array": {**good, K: good[K] > 0},
        "complex_array": {**good, K: good[K].astype(np.complex64)}, "string_array": {**good, K: good[K].astype(str)},
        "numeric_strings": {**good, K: np.array([[str(v) for v in row] for row in good[K]])},
        "nan": {**good, K: np.full_like(good[K], np.nan)}, "inf": {**good, K: np.full_like(good[K], np.inf)},
        "float64_inexact": {**good, K: good[K].astype(np.float64) + 1e-12},
        "float64_beyond_float32": {**good, K: np.full(good[K].shape, 1e300)},
        "missing": {k: v for k, v in good.items() if k != K},
        "extra": {**good, "extra.kernel": np.zeros(1, np.float32)},
        "wrong_shape": {**good, K: np.zeros((3, 4), np.float32)},
        "non_string_key": {**good, 5: good[K]},
    }


def _outcome(call) -> str:
    try:
        call()
    except SpecError as exc:
        return " ".join(f"{d.code} {d.message}" for d in exc.diagnostics)
    except Exception as exc:  # noqa: BLE001 - the defect this test looks for
        return f"CRASH {type(exc).__name__}: {exc}"
    return "ACCEPTED"


def test_bad_weights_get_one_error_in_onnx_export_and_verify(tmp_path):
    pytest.importorskip("onnx")
    from netspec import verify
    from netspec.weights import prepare_weights

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    for name, bad in _bad_weights(spec.init_weights()).items():
        want = _outcome(lambda bad=bad: prepare_weights(bad, spec))
        assert want.startswith("E602 weights do not fit the spec: "), (name, want)
        assert _outcome(lambda bad=bad: spec.to_onnx(bad)) == want, name
        assert _outcome(lambda bad=bad: verify.verify(spec.network(), ("onnx",), bad)) == want, name


def test_good_weights_of_other_float_types_are_accepted_exactly():
    from netspec.weights import prepare_weights

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    good = spec.init_weights()
    for variant in (good[K].astype(np.float64), good[K].astype(np.float16), np.asfortranarray(good[K])):
        out = prepare_weights({**good, K: variant}, spec)
        assert out[K].dtype == np.float32 and out[K].flags.c_contiguous
        assert np.array_equal(out[K], variant.astype(np.float32))


def test_nan_weights_file_is_refused_by_export_and_nothing_is_written(tmp_path, capsys):
    pytest.importorskip("onnx")
    from netspec.cli import main
    from netspec.weights import save_weights

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    weights = spec.init_weights()
    weights[K] = np.full_like(weights[K], np.nan)
    save_weights(weights, tmp_path / "nan.safetensors")
    out = tmp_path / "m.onnx"
    status = main(["export", str(ROOT / "specs" / "tiny_mlp.net"), "-o", str(out), "--weights",
                   str(tmp_path / "nan.safetensors")])
    err = capsys.readouterr().err
    assert status == 1 and "error[E602]" in err and "12 NaN and 0 infinite values" in err
    assert not out.exists()


@pytest.mark.slow
def test_bad_weights_get_the_same_error_in_every_backend(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    pytest.importorskip("onnx")
    import torch

    spec = netspec.load(ROOT / "specs" / "tiny_mlp.net")
    good = spec.init_weights()
    cases = {**_bad_weights(good), "bfloat16_tensor": {**good, K: torch.from_numpy(good[K]).to(torch.bfloat16)}}
    for name, bad in cases.items():
        outcomes = {fn.__name__: _outcome(lambda fn=fn, bad=bad: fn(bad))
                    for fn in (spec.to_torch, spec.to_keras, spec.to_onnx)}
        assert len(set(outcomes.values())) == 1, (name, outcomes)
        assert next(iter(outcomes.values())).startswith("E602 "), (name, outcomes)
    # a path and a tensor that needs grad are accepted alike
    from netspec.weights import save_weights

    save_weights(good, tmp_path / "w.safetensors")
    for weights in (str(tmp_path / "w.safetensors"), {**good, K: torch.from_numpy(good[K]).requires_grad_()}):
        from netspec.backends import torch as tb

        model = spec.to_torch(weights)
        assert np.array_equal(tb.export_canonical(model, spec.network())[K], good[K])
        spec.to_keras(weights)
        spec.to_onnx(weights)


@pytest.mark.parametrize("init", ["normal(0, 1e300)", "uniform(-1e300, 1e300)", "constant(1e300)"])
def test_initialisers_beyond_float32_are_refused_not_exported_as_inf(init):
    spec = netspec.parse_text(net(f"dense(3, kernel_init={init})"), "init.net")
    with pytest.raises(SpecError) as info:
        spec.init_weights()
    (d,) = info.value.diagnostics
    assert d.code == "E304" and "beyond float32's range" in d.message
    assert (d.span.line, d.span.col) == (3, 14)
    pytest.importorskip("onnx")
    with pytest.raises(SpecError, match="beyond float32's range"):
        spec.to_onnx()
