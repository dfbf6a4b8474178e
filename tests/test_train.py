"""netspec train / evaluate with PyTorch: data checks, determinism, checkpoints, resume, the CLI.

Bad data (missing arrays, wrong shapes and dtypes, NaN, ids out of range, broken CSV) must give one
clear error naming the array before anything is built or written. Training must be a function of the
seed, resume exactly, and leave only whole checkpoints.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

if importlib.util.find_spec("torch") is None:
    pytest.skip("needs torch", allow_module_level=True)

import netspec  # noqa: E402
from netspec import train  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.train import DataError, TrainingError, UsageError  # noqa: E402
from netspec.weights import load_weights  # noqa: E402

SMALL = """\
network Small {
    input x: [4]
    target y: int64[]

    logits = x -> dense(8, activation=relu) -> dropout(0.25) -> dense(3)

    output logits
    loss sparse_categorical_crossentropy(logits, y, from_logits=true)
    optimizer adam(lr=0.01)
}
"""


@pytest.fixture(scope="module")
def small():
    return netspec.parse_text(SMALL, "small.net")


def arrays(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    return {"x": x, "y": y}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# data checks -----------------------------------------------------------------------------------------

BAD = [
    ("missing", lambda d: {"x": d["x"]}, "missing array(s) 'y' (int64[])"),
    ("shape", lambda d: {**d, "x": np.zeros((40, 5), np.float32)}, "array 'x' (x: [4]): per-sample shape [5] "
     "does not match the spec's [4] (axis 1: expected 4, received 5)"),
    ("rank", lambda d: {**d, "x": np.zeros((40, 4, 1), np.float32)}, "expected 2 dimensions [N, 4], received 3"),
    ("scalar rank", lambda d: {**d, "y": d["y"][:, None]}, "array 'y' (y: int64[]): expected 1 dimensions [N]"),
    ("float dtype", lambda d: {**d, "x": d["x"].astype(np.int32)}, "expected floating-point values (float32), "
     "received int32; convert (and scale) with .astype(np.float32)"),
    ("int dtype", lambda d: {**d, "y": d["y"].astype(np.float32)}, "expected integers (int64), received float32"),
    ("strings", lambda d: {**d, "y": np.array(["a"] * 40)}, "expected integers (int64), received <U1"),
    ("nan", lambda d: {**d, "x": np.where(np.arange(40)[:, None] == 7, np.nan, d["x"]).astype(np.float32)},
     "array 'x' (x: [4]): contains NaN (sample 7, index [0])"),
    ("inf", lambda d: {**d, "x": np.where(np.arange(40)[:, None] == 3, np.inf, d["x"]).astype(np.float32)},
     "contains an infinity (sample 3"),
    ("length", lambda d: {**d, "y": d["y"][:30]}, "arrays differ in length (samples): x 40, y 30"),
    ("class id", lambda d: {**d, "y": np.full(40, 3, np.int64)}, "class ids must be in [0, 3); sample 0 holds 3"),
    ("negative id", lambda d: {**d, "y": np.full(40, -1, np.int64)}, "class ids must be in [0, 3)"),
    ("empty", lambda d: {"x": d["x"][:0], "y": d["y"][:0]}, "no samples"),
]


@pytest.mark.parametrize("name,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_bad_data_is_refused_before_anything_is_written(small, tmp_path, name, mutate, message):
    out = tmp_path / "run"
    with pytest.raises(DataError) as err:
        train.fit(small, mutate(arrays()), out=out)
    assert message in str(err.value)
    assert not out.exists()


def test_value_scan_can_be_skipped_but_nan_still_stops_training(small, tmp_path):
    bad = arrays()
    bad["x"] = bad["x"].copy()
    bad["x"][5, 0] = np.nan
    with pytest.raises(TrainingError, match="the loss became nan"):
        train.fit(small, bad, out=tmp_path / "run", check_values=False, batch_size=8, progress="quiet")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []
    with pytest.raises(DataError, match="missing array"):  # shapes and names are still checked
        train.fit(small, {"x": bad["x"]}, check_values=False)


@pytest.mark.parametrize("name,mutate,message", BAD[:4], ids=[b[0] for b in BAD[:4]])
def test_bad_validation_data_is_refused_too(small, tmp_path, name, mutate, message):
    with pytest.raises(DataError, match="validation data"):
        train.fit(small, arrays(), mutate(arrays()), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_time_dimensions_and_embedding_ids():
    spec = netspec.load(ROOT / "specs" / "bigru_classifier.net")
    net = spec.network()
    vocab = next(n.attrs["vocab"] for n in net.nodes if n.op == "embedding")
    ok = {"tokens": np.zeros((3, 7), np.int64), "label": np.zeros((3, 1), np.float32)}
    assert train.check_data(train.load_data(ok), net) is not None  # T = 7: any length
    with pytest.raises(DataError, match=rf"array 'tokens' \(tokens: int64\[T\]\): ids must be in \[0, {vocab}\); "
                                        rf"sample 1 holds \[0, {vocab}"):
        bad = ok["tokens"].copy()
        bad[1, 1] = vocab
        train.check_data(train.load_data({**ok, "tokens": bad}), net)
    two = netspec.parse_text("""\
network Two {
    input a: [T, 4]
    input b: [T, 4]
    target y: [1]
    out = add(a, b) -> lstm(3) -> dense(1)
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}
""", "two.net")
    with pytest.raises(DataError, match="run-time size 'T' is 6 on axis 1, but 5 in 'a'"):
        train.fit(two, {"a": np.zeros((2, 5, 4), np.float32), "b": np.zeros((2, 6, 4), np.float32),
                        "y": np.zeros((2, 1), np.float32)})


def test_cli_bad_data_is_a_one_line_usage_error(tmp_path, capsys):
    spec = tmp_path / "small.net"
    spec.write_text(SMALL)
    d = arrays()
    np.savez(tmp_path / "d.npz", x=d["x"].astype(np.float64)[:, :3], y=d["y"])
    code = main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("netspec: error: training data: array 'x'") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_npz_pickles_are_refused(small, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([object()] * 3, dtype=object), y=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="object arrays are not supported"):
        train.load_data(tmp_path / "d.npz")


def test_unreadable_and_unknown_files(small, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz file"):
        train.load_data(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="no such file or folder"):
        train.load_data(tmp_path / "nope.npz")
    (tmp_path / "d.txt").write_text("1")
    with pytest.raises(DataError, match="unsupported data file"):
        train.load_data(tmp_path / "d.txt")


def test_npy_folder_and_named_files_are_memory_mapped(small, tmp_path):
    d = arrays()
    (tmp_path / "folder").mkdir()
    for k, a in d.items():
        np.save(tmp_path / "folder" / f"{k}.npy", a)
    ds = train.load_data(tmp_path / "folder")
    assert all(isinstance(a, np.memmap) for a in ds.arrays.values())
    np.save(tmp_path / "feat.npy", d["x"])
    np.save(tmp_path / "labels.npy", d["y"])
    ds2 = train.load_data([f"x={tmp_path / 'feat.npy'}", f"y={tmp_path / 'labels.npy'}"])
    assert set(ds2.arrays) == {"x", "y"}
    a = train.fit(small, tmp_path / "folder", epochs=1, batch_size=8, progress="quiet")
    b = train.fit(small, d, epochs=1, batch_size=8, progress="quiet")
    assert same(a.weights, b.weights)
    with pytest.raises(DataError, match="array 'x' is given twice"):
        train.load_data([tmp_path / "folder", f"x={tmp_path / 'feat.npy'}"])


def test_take_keeps_the_requested_order(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(10, dtype=np.float32)[:, None])
    ds = train.load_data(tmp_path / "x.npy")
    got = ds.take([7, 2, 9, 2], ["x"], {"x": "float32"})["x"][:, 0]
    assert got.tolist() == [7, 2, 9, 2]


@pytest.mark.parametrize("n,batch", [(41, 10), (7, 8), (64, 16), (5, 1)])
def test_global_batches_do_not_depend_on_the_process_count(n, batch):
    from netspec.train.data import global_batches, split_rows

    batches = global_batches(n, batch, seed=3, epoch=2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))  # every sample once per epoch
    assert [len(b) for b in batches[:-1]] == [batch] * (len(batches) - 1)
    for world in (1, 2, 3, 4):
        for b in batches:
            parts = split_rows(b, world)
            assert len(parts) == world and np.array_equal(np.concatenate(parts), b)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert not all(np.array_equal(a, b) for a, b in zip(batches, global_batches(n, batch, seed=3, epoch=3)))


# CSV ---------------------------------------------------------------------------------------------------


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_csv_columns_in_file_order_and_by_name(small, tmp_path):
    d = arrays(12)
    rows = [[*x.tolist(), int(y)] for x, y in zip(d["x"], d["y"])]
    ds = train.load_data(write_csv(tmp_path / "a.csv", ["f1", "f2", "f3", "f4", "y"], rows), small.network())
    assert np.allclose(ds.arrays["x"], d["x"]) and ds.arrays["y"].dtype == np.int64
    assert ds.arrays["y"].tolist() == d["y"].tolist()
    swapped = [[int(y), *x.tolist()[::-1]] for x, y in zip(d["x"], d["y"])]
    ds = train.load_data(write_csv(tmp_path / "b.csv", ["y", "x.3", "x.2", "x.1", "x.0"], swapped), small.network())
    assert np.allclose(ds.arrays["x"], d["x"])


@pytest.mark.parametrize("header,row,message", [
    (["a", "b", "c", "y"], [1, 2, 3, 0], "no columns for 'x' ([4]): columns x.0 ... x.3"),
    (["a", "b", "c", "d", "label"], [1, 2, 3, 4, 0], "no columns for 'y' (int64[]): a column 'y'"),
    (["a", "b", "c", "d", "y"], [1, "two", 3, 4, 0], "line 2, column 'b': not a number: 'two'"),
    (["a", "b", "c", "d", "y"], [1, 2, 3, 4, 0.5], "line 2: 'y' must be whole numbers"),
    (["a", "b", "c", "d", "y"], [1, "", 3, 4, 0], "contains NaN (sample 0, index [1])"),
    (["a", "b", "c", "d", "y"], [1, 2, 3, 0], "line 2: 4 cells, the header has 5"),
])
def test_csv_errors(small, tmp_path, header, row, message):
    path = write_csv(tmp_path / "c.csv", header, [row])
    with pytest.raises(DataError) as err:
        train.fit(small, path, out=tmp_path / "run")
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()


# determinism, checkpoints, resume ---------------------------------------------------------------------


def test_same_seed_same_weights_other_seed_other_weights(small):
    a = train.fit(small, arrays(), epochs=2, batch_size=8, seed=3, progress="quiet")
    b = train.fit(small, arrays(), epochs=2, batch_size=8, seed=3, progress="quiet")
    c = train.fit(small, arrays(), epochs=2, batch_size=8, seed=4, progress="quiet")
    assert same(a.weights, b.weights) and a.history[-1]["loss"] == b.history[-1]["loss"]
    assert not same(a.weights, c.weights)


def test_training_learns_and_writes_every_file(small, tmp_path):
    out = tmp_path / "run"
    r = train.fit(small, arrays(200), arrays(60, seed=1), epochs=6, batch_size=16, out=out, progress="quiet",
                  keep_epochs=True)
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert r.history[-1]["val_accuracy"] > 0.7
    names = sorted(p.name for p in out.iterdir())
    assert names == ["best.safetensors", *(f"epoch-{i:03d}.safetensors" for i in range(1, 7)), "last.safetensors",
                     "metrics.jsonl", "state.safetensors", "summary.json"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, 7))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "samples_per_second"} <= set(rows[0])
    best = min(rows, key=lambda row: row["val_loss"])["epoch"]
    assert same(load_weights(out / "best.safetensors"), load_weights(out / f"epoch-{best:03d}.safetensors"))
    assert same(load_weights(out / "last.safetensors"), r.weights)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == best and summary["monitor"] == "val_loss"
    # the checkpoint is canonical: it loads into the spec's model and evaluates to the logged metrics
    ev = train.evaluate(small, out / "last.safetensors", arrays(60, seed=1))
    assert ev["loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-5)
    assert ev["accuracy"] == pytest.approx(rows[-1]["val_accuracy"])


def test_resume_continues_exactly(small, tmp_path):
    straight = train.fit(small, arrays(), epochs=3, batch_size=8, out=tmp_path / "a", progress="quiet")
    train.fit(small, arrays(), epochs=1, batch_size=8, out=tmp_path / "b", progress="quiet")
    resumed = train.fit(small, arrays(), epochs=3, batch_size=8, out=tmp_path / "b", resume=True, progress="quiet")
    assert same(straight.weights, resumed.weights)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    assert (tmp_path / "b" / "metrics.jsonl").read_text().count("\n") == 3
    assert same(load_weights(tmp_path / "a" / "best.safetensors"), load_weights(tmp_path / "b" / "best.safetensors"))


def test_resume_refuses_another_setup_and_a_finished_run_is_not_overwritten(small, tmp_path):
    out = tmp_path / "run"
    train.fit(small, arrays(), epochs=1, batch_size=8, out=out, progress="quiet")
    with pytest.raises(UsageError, match="started with batch_size 8; this call has 4"):
        train.fit(small, arrays(), epochs=2, batch_size=4, out=out, resume=True)
    with pytest.raises(UsageError, match="already holds a training run; pass --resume"):
        train.fit(small, arrays(), epochs=2, batch_size=8, out=out)
    with pytest.raises(UsageError, match="no training state"):
        train.fit(small, arrays(), epochs=2, batch_size=8, out=tmp_path / "other", resume=True)
    keep = tmp_path / "keep"
    train.fit(small, arrays(), epochs=2, batch_size=8, out=keep, keep_epochs=True, progress="quiet")
    train.fit(small, arrays(), epochs=1, batch_size=8, out=keep, keep_epochs=True, overwrite=True, progress="quiet")
    assert sorted(p.name for p in keep.glob("epoch-*")) == ["epoch-001.safetensors"]  # no stale epoch 2


def test_start_from_weights(small, tmp_path):
    w = netspec.init_weights(small, seed=9)
    a = train.fit(small, arrays(), epochs=1, batch_size=8, weights=w, progress="quiet")
    netspec.weights.save_weights(w, tmp_path / "w.safetensors")
    b = train.fit(small, arrays(), epochs=1, batch_size=8, weights=tmp_path / "w.safetensors", progress="quiet")
    assert same(a.weights, b.weights)
    bad = {k: v[..., :1] for k, v in w.items()}
    with pytest.raises(UsageError, match="weights do not fit the spec"):
        train.fit(small, arrays(), weights=bad)


def test_nan_loss_stops_without_a_checkpoint(tmp_path):
    spec = netspec.parse_text(SMALL.replace("adam(lr=0.01)", "sgd(lr=1e30)"), "blowup.net")
    out = tmp_path / "run"
    x = arrays()
    x["x"] = x["x"] * 1e4
    with pytest.raises(TrainingError, match="the loss became (nan|inf) at epoch 1"):
        train.fit(spec, x, epochs=2, batch_size=4, out=out, progress="quiet")
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_a_failed_write_keeps_the_previous_checkpoint(small, tmp_path, monkeypatch):
    """A disk error while writing epoch 2's files: epoch 1's state and weights stay whole, no temp file."""
    import netspec.files
    from netspec.train.checkpoint import load_state

    out = tmp_path / "run"
    calls = {"n": 0}
    real = netspec.files.os.fsync

    def flaky(fd):
        calls["n"] += 1
        if calls["n"] > 4:  # epoch 1 writes last, best, state, metrics; epoch 2's first write fails
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(netspec.files.os, "fsync", flaky)
    with pytest.raises(OSError, match="(?i)no space left"):
        train.fit(small, arrays(), epochs=3, batch_size=8, out=out, progress="quiet")
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "last.safetensors", "metrics.jsonl",
                                                      "state.safetensors"]
    weights, _, info = load_state(out / "state.safetensors")
    assert info["epoch"] == 1 and same(weights, load_weights(out / "last.safetensors"))
    monkeypatch.setattr(netspec.files.os, "fsync", real)
    resumed = train.fit(small, arrays(), epochs=3, batch_size=8, out=out, resume=True, progress="quiet")
    straight = train.fit(small, arrays(), epochs=3, batch_size=8, progress="quiet")
    assert same(resumed.weights, straight.weights)


def test_step_equals_the_generated_train_step():
    """The loop's step (loss + regularisation, backward, step) is the generated train_step's."""
    import torch

    from netspec.backends import torch as tb
    from netspec.train.torch_engine import TorchEngine
    from netspec.verify import make_batches, without_dropout

    for path, name in (("autoencoder.net", "AutoencoderL2"), ("vae.net", None), ("lenet5.net", None)):
        net = without_dropout(netspec.load(ROOT / "specs" / path).network(name))
        w = netspec.init_weights(net, seed=1)
        engine = TorchEngine(net, w)
        model = tb.build(net, w)
        opt = model.netspec_module.make_optimizer(model)
        for inputs, targets in make_batches(net, steps=3, batch=4, seed=2):
            batch = {**inputs, **targets}
            got = engine.train_batch(batch, 4, 4)[0] / 4
            want = model.netspec_module.train_step(
                model, opt, [torch.from_numpy(inputs[v.name]) for v in net.inputs],
                [torch.from_numpy(targets[v.name]) for v in net.targets])
            assert got == pytest.approx(float(want), rel=1e-6)
        a, b = engine.weights(), tb.export_canonical(model, net)
        assert same(a, b), path


# options and the command line -------------------------------------------------------------------------


def test_unavailable_options_fail_clearly(small):
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda: no CUDA device is available"):
            train.fit(small, arrays(), device="cuda")
    with pytest.raises(UsageError, match="--fsdp shards the model across GPUs and needs --device cuda"):
        train.fit(small, arrays(), fsdp=True)
    with pytest.raises(UsageError, match="--replicas applies to --backend keras"):
        train.fit(small, arrays(), replicas=2)
    with pytest.raises(UsageError, match="--batch-size must be at least 1"):
        train.fit(small, arrays(), batch_size=0)


def test_amp_runs_on_cpu_with_bfloat16(small):
    r = train.fit(small, arrays(), epochs=2, batch_size=8, amp=True, progress="quiet")
    plain = train.fit(small, arrays(), epochs=2, batch_size=8, progress="quiet")
    assert all(np.isfinite(v).all() for v in r.weights.values())
    assert r.history[-1]["loss"] == pytest.approx(plain.history[-1]["loss"], rel=0.05)
    assert not same(r.weights, plain.weights)  # autocast really ran in bfloat16


def test_cli_train_evaluate_and_export(tmp_path, capsys):
    spec = tmp_path / "small.net"
    spec.write_text(SMALL)
    np.savez(tmp_path / "d.npz", **arrays(64))
    out = tmp_path / "run"
    code = main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
                 "--epochs", "2", "--batch-size", "16", "--out", str(out), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["epochs"] == 2 and len(summary["history"]) == 2
    assert captured.err.count("epoch ") == 2  # not a terminal: one line per epoch, no bar
    code = main(["evaluate", str(spec), "--weights", str(out / "best.safetensors"), "--data", str(tmp_path / "d.npz"),
                 "--format", "json"])
    ev = json.loads(capsys.readouterr().out)
    assert code == 0 and ev["samples"] == 64
    assert ev["loss"] == pytest.approx(summary["best_loss"], rel=1e-5)
    code = main(["export", str(spec), "--weights", str(out / "last.safetensors"), "-o", str(tmp_path / "m.onnx")])
    assert code == 0 and (tmp_path / "m.onnx").stat().st_size > 0
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--nproc", "2", "--backend", "keras"]) == 2
    assert "--nproc launches torchrun" in capsys.readouterr().err


def test_a_spec_without_training_setup_is_refused(tmp_path, capsys):
    spec = tmp_path / "inference.net"
    spec.write_text("network Inference {\n    input x: [4]\n    y = x -> dense(2)\n    output y\n}\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4), np.float32))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz")]) == 2
    assert "network Inference has no loss statement; training and evaluation need one" in capsys.readouterr().err


def test_progress_bar_on_a_terminal(small):
    import io

    from netspec.train.progress import Progress

    stream = io.StringIO()
    p = Progress("bar", stream)
    assert p.mode == "bar"
    p.start_epoch(1, 2, 3)
    for _ in range(3):
        p.step(0.5, 8)
    p.end_epoch(1, 2, {"loss": 0.5})
    text = stream.getvalue()
    assert "epoch 1/2  loss 0.5" in text
    assert "3/3" in text and "samples/s" in text and "ETA" in text  # the live bar: loss, throughput, ETA
    quiet = io.StringIO()
    Progress("quiet", quiet).end_epoch(1, 1, {"loss": 1.0})
    assert quiet.getvalue() == ""


def test_python_api_forms(small):
    a = netspec.train(small, arrays(), epochs=1, batch_size=8, progress="quiet")
    b = train.fit(small, arrays(), epochs=1, batch_size=8, progress="quiet")
    assert same(a.weights, b.weights)
    if hasattr(small, "fit"):
        c = small.fit(arrays(), epochs=1, batch_size=8, progress="quiet")
        assert same(a.weights, c.weights)


def test_fit_leaves_torch_settings_as_it_found_them(small):
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train.fit(small, arrays(), epochs=1, batch_size=8, progress="quiet", threads=1)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)


def test_train_module_imports_no_framework():
    code = ("import sys, netspec.train; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
