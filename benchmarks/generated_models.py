"""Benchmark 2, generated models: forward latency of netspec's models against hand-written ones.

Usage: python benchmarks/generated_models.py [--quick | --smoke] [--device cpu|cuda] [--threads N]
                                             [--part torch|keras] [--json OUT]

- PyTorch: the model `netspec compile --target torch` generates from specs/resnet50.net
  against the hand-written torchvision-form ResNet-50 (benchmarks/reference_models.py).
  The generated model gets the reference's weights (its state_dict as canonical weights,
  BatchNorm statistics randomised so they matter); the outputs are checked equal first.
- Keras: the model generated from benchmarks/specs/resnet50_keras.net (Keras's ResNet-50
  form: convolution biases, BatchNorm eps 1.001e-5, stride on the first 1x1 convolution)
  against ``keras.applications.ResNet50(weights=None)``. Parameter counts are checked
  equal (25,636,712), the application gets the generated model's weights by layer name,
  and the outputs are checked equal first. Timed with ``predict_on_batch`` (a compiled
  tf.function, the inference path) and with an eager call ``model(x, training=False)``.

Batch 1 and 8, inference mode, the same input for both models. Each round times the two
models back to back in alternating order; the ratio generated / hand-written is taken per
round, and the table gives its median and min-max (1.00x: the same speed). A round's time
for a model is the fastest of a few calls (3 at batch 1, 2 at batch 8), which keeps a shared
machine's interruptions out of the figure. Without
``--part`` each framework runs in its own child process, so their thread pools do not meet.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import _common as c

SPEC_TORCH = c.ROOT / "specs" / "resnet50.net"
SPEC_KERAS = c.BENCH / "specs" / "resnet50_keras.net"
KERAS_PARAMS = 25_636_712
BATCHES = (1, 8)
#: The PyTorch target: generated ResNet-50 (in-place ops where safe) at most 3% slower than torchvision's form
TORCH_TARGET = 1.03


def _settings(args, batch: int) -> tuple[int, int, int]:
    """(rounds, warm-up rounds, calls per timing) for a batch size."""
    if args.smoke:
        return 1, 0, 1
    if batch == 1:
        return c.rounds(args, full=20, quick=8), 2, 3
    return c.rounds(args, full=10, quick=4), 1, 2


def _batches(args) -> tuple[int, ...]:
    return BATCHES[:1] if args.smoke else BATCHES


def _ratio_row(label: str, batch: int, ref: list[float], gen: list[float], calls: int) -> tuple[list[str], dict]:
    ratios = [g / r for g, r in zip(gen, ref)]
    rs, gs, qs = c.Stats.of(ref), c.Stats.of(gen), c.Stats.of(ratios)
    row = [label, str(batch), c.fmt_seconds(rs.median), c.fmt_seconds(gs.median),
           c.fmt_ratio(qs.median), c.fmt_ratio_iqr(qs), c.fmt_ratio_range(qs), str(qs.n)]
    data = {"label": f"{label}, batch {batch}", "calls_per_round": calls, "reference_s": rs.as_dict(),
            "generated_s": gs.as_dict(), "ratio": qs.as_dict()}
    return row, data


OOP = "PyTorch forward, vs hand-written without in-place ops"
COLUMNS = ["framework / call", "batch", "hand-written (median)", "generated (median)", "ratio (median)",
           "ratio quartiles", "ratio min - max", "rounds"]


# PyTorch -----------------------------------------------------------------------------------------


def part_torch(args) -> dict:
    import torch
    from reference_models import canonical_weights, randomize_batchnorm, resnet50

    import netspec

    if args.device == "cuda":
        c.require_cuda_torch()
    n_threads = c.threads(args)
    torch.set_num_threads(n_threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    torch.manual_seed(0)
    ref = randomize_batchnorm(resnet50()).eval()
    spec = netspec.load(SPEC_TORCH)
    weights = canonical_weights(ref, spec.network())
    gen = spec.to_torch(weights=weights).eval()
    # The same model with out-of-place ReLU and residual adds: tells what in-place ops save.
    ref_oop = resnet50(inplace=False).eval()
    ref_oop.load_state_dict(ref.state_dict())
    ref.to(device)
    gen.to(device)
    ref_oop.to(device)
    n_ref = sum(p.numel() for p in ref.parameters())
    n_gen = sum(p.numel() for p in gen.parameters())
    if n_ref != n_gen:
        raise SystemExit(f"parameter counts differ: hand-written {n_ref:,}, generated {n_gen:,}")

    with torch.inference_mode():
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(device)
        a, b, o = ref(x), gen(x), ref_oop(x)
        diff = max((a - b).abs().max().item(), (a - o).abs().max().item())
        scale = a.abs().max().item()
        if not (torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale) and torch.allclose(a, o, rtol=1e-4,
                                                                                       atol=1e-4 * scale)):
            raise SystemExit(f"outputs differ: max |difference| {diff:g} (largest output {scale:g})")
    check = f"outputs checked equal before timing (max abs difference {diff:g}, largest |output| {scale:.3g})"

    rows, data = [], {}
    for batch in _batches(args):
        n_rounds, n_warm, calls = _settings(args, batch)
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch)).to(device)

        def case(model, x=x, calls=calls):
            def run() -> float:
                with torch.inference_mode():
                    return min(c.timed(lambda: model(x), sync) for _ in range(calls))
            return run

        c.progress(f"torch: batch {batch}, {n_warm} warm-up + {n_rounds} rounds ...")
        out = c.interleaved({"ref": case(ref), "gen": case(gen), "oop": case(ref_oop)}, n_rounds, n_warm)
        row, d = _ratio_row("PyTorch forward", batch, out["ref"], out["gen"], calls)
        rows.append(row)
        data[f"torch|{batch}"] = d
        row, d = _ratio_row(OOP, batch, out["oop"], out["gen"], calls)
        rows.append(row)
        data[f"torch-oop|{batch}"] = {**d, "diagnostic": True}
    return {"rows": rows, "data": data,
            "notes": [f"PyTorch {torch.__version__}, torch.set_num_threads({n_threads}), torch.inference_mode(), "
                      f"device {device}; {n_ref:,} parameters in both; {check}",
                      "hand-written = torchvision's form, with in-place ReLU (`nn.ReLU(inplace=True)`) and residual "
                      "add (`out += identity`), as the generated code now writes them where netspec/liveness.py "
                      "proves it safe (`F.relu(main, inplace=True)`, `main += x`); the row \"without in-place ops\" "
                      "compares the generated model with the same hand-written model using out-of-place ReLU and "
                      "add: the difference between the two rows is what the in-place ops save"]}


# Keras -------------------------------------------------------------------------------------------

STAGES = (3, 4, 6, 3)
_BLOCK = re.compile(r"features\.(\d+)\.(main|skip)\.(conv2d|batchnorm)(?:_(\d+))?")


def keras_application_name(layer: str) -> str:
    """keras.applications.ResNet50's layer name for a layer of resnet50_keras.net."""
    fixed = {"stem.conv2d": "conv1_conv", "stem.batchnorm": "conv1_bn", "probs.dense": "predictions"}
    if layer in fixed:
        return fixed[layer]
    m = _BLOCK.fullmatch(layer)
    if not m:
        raise KeyError(layer)
    k, branch, op, suffix = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    stage = 0
    while k >= STAGES[stage]:
        k -= STAGES[stage]
        stage += 1
    index = 0 if branch == "skip" else int(suffix or 0) + 1
    return f"conv{stage + 2}_block{k + 1}_{index}_{'conv' if op == 'conv2d' else 'bn'}"


def randomize(weights: dict, seed: int = 0) -> dict:
    """Non-trivial biases and BatchNorm statistics, so that the equality check tests them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = dict(weights)
    for name, w in weights.items():
        n = w.shape
        if name.endswith(".bias") or name.endswith(".beta") or name.endswith(".moving_mean"):
            out[name] = rng.uniform(-0.1, 0.1, n).astype(np.float32)
        elif name.endswith(".gamma") or name.endswith(".moving_variance"):
            out[name] = rng.uniform(0.75, 1.25, n).astype(np.float32)
    return out


def load_into_application(app, weights: dict) -> None:
    """Give keras.applications.ResNet50 the canonical weights, layer by layer, by name."""
    layers: dict[str, dict] = {}
    for name, w in weights.items():
        layer, param = name.rsplit(".", 1)
        layers.setdefault(keras_application_name(layer), {})[param] = w
    seen = set()
    for layer in app.layers:
        if not layer.weights:
            continue
        p = layers[layer.name]
        if "moving_mean" in p:
            values = [p["gamma"], p["beta"], p["moving_mean"], p["moving_variance"]]
        elif p["kernel"].ndim == 4:
            values = [p["kernel"].transpose(2, 3, 1, 0), p["bias"]]
        else:
            values = [p["kernel"].T, p["bias"]]
        layer.set_weights(values)
        seen.add(layer.name)
    if seen != set(layers):
        raise SystemExit(f"unmapped layers: {sorted(set(layers) ^ seen)}")


def part_keras(args) -> dict:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    n_threads = c.threads(args)
    tf.config.threading.set_intra_op_parallelism_threads(n_threads)
    tf.config.threading.set_inter_op_parallelism_threads(n_threads)
    gpus = tf.config.list_physical_devices("GPU")
    if args.device == "cuda" and not gpus:
        sys.exit(f"--device cuda: TensorFlow {tf.__version__} sees no GPU; run with --device cpu")
    if args.device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    import keras

    import netspec

    spec = netspec.load(SPEC_KERAS)
    trainable, frozen = spec.network().param_counts()
    app = keras.applications.ResNet50(weights=None)
    if not (trainable + frozen == app.count_params() == KERAS_PARAMS):
        raise SystemExit(f"parameter counts differ: spec {trainable + frozen:,}, keras.applications "
                         f"{app.count_params():,}, expected {KERAS_PARAMS:,}")
    weights = randomize(netspec.init_weights(spec, seed=0))
    gen = spec.to_keras(weights=weights)
    if gen.count_params() != KERAS_PARAMS:
        raise SystemExit(f"the generated Keras model has {gen.count_params():,} parameters")
    load_into_application(app, weights)

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 224, 224, 3)).astype(np.float32)

    def pooled(model):
        layer = next(ly for ly in model.layers if isinstance(ly, keras.layers.GlobalAveragePooling2D))
        return keras.Model(model.inputs, layer.output)

    fa, fg = (np.asarray(pooled(m)(x, training=False)) for m in (app, gen))
    pa, pg = (np.asarray(m(x, training=False)) for m in (app, gen))
    fscale = float(np.abs(fa).max())
    fdiff, pdiff = float(np.abs(fa - fg).max()), float(np.abs(pa - pg).max())
    if not (np.allclose(fa, fg, rtol=1e-4, atol=1e-4 * fscale) and np.allclose(pa, pg, rtol=1e-4, atol=1e-6)):
        raise SystemExit(f"outputs differ: pooled features by {fdiff:g} (largest {fscale:g}), "
                         f"probabilities by {pdiff:g}")
    check = (f"outputs checked equal before timing (pooled features: max abs difference {fdiff:g}, largest "
             f"{fscale:.3g}; probabilities: {pdiff:g})")

    rows, data = [], {}
    for call in ("predict_on_batch",) if args.smoke else ("predict_on_batch", "eager call"):
        for batch in _batches(args):
            n_rounds, n_warm, calls = _settings(args, batch)
            if call == "eager call" and not args.rounds:  # slow and secondary: half the rounds
                n_rounds = max(2, n_rounds // 2)
            xb = rng.standard_normal((batch, 224, 224, 3)).astype(np.float32)

            def case(model, xb=xb, calls=calls, call=call):
                if call == "predict_on_batch":
                    def once():
                        return model.predict_on_batch(xb)
                else:
                    def once():
                        return np.asarray(model(xb, training=False))
                return lambda: min(c.timed(once) for _ in range(calls))

            c.progress(f"keras: {call}, batch {batch}, {n_warm} warm-up + {n_rounds} rounds ...")
            out = c.interleaved({"ref": case(app), "gen": case(gen)}, n_rounds, n_warm)
            row, d = _ratio_row(f"Keras {call}", batch, out["ref"], out["gen"], calls)
            rows.append(row)
            data[f"keras|{call}|{batch}"] = d
    device = "GPU" if args.device == "cuda" else "CPU"
    return {"rows": rows, "data": data,
            "notes": [f"Keras {keras.__version__} on TensorFlow {tf.__version__}, {n_threads} intra-op and inter-op "
                      f"threads, {device}; hand-written = keras.applications.ResNet50(weights=None), "
                      f"{KERAS_PARAMS:,} parameters in both; {check}"]}


# Driver ------------------------------------------------------------------------------------------


def _run_parts(args, argv) -> dict:
    rows, data, notes, errors = [], {}, [], []
    for part, needs in (("torch", ("torch",)), ("keras", ("keras", "tensorflow"))):
        if not all(c.installed(m) for m in needs):
            rows.append([f"{'PyTorch' if part == 'torch' else 'Keras'}", "", c.NOT_INSTALLED, "", "", "", "", ""])
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "part.json"
            cmd = [c.PYTHON, str(Path(__file__)), *_forward(argv), "--part", part, "--json", str(out)]
            import subprocess

            proc = subprocess.run(cmd, cwd=c.ROOT, env=c.CHILD_ENV, stdout=sys.stderr, stderr=subprocess.PIPE,
                                  text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-5000:])
                msg = c.last_line(proc.stderr)
                errors.append(f"{part}: {msg}")
                rows.append([f"{'PyTorch' if part == 'torch' else 'Keras'}", "", f"failed: {msg}", "", "", "", "", ""])
                continue
            got = json.loads(out.read_text())
        rows += got["rows"]
        data.update(got["data"])
        notes += got["notes"]
    return {"rows": rows, "data": data, "notes": notes, "errors": errors}


def _forward(argv) -> list[str]:
    """The command-line options to pass on to a part's process (without --json / --part)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--json", "--part"):
            skip = True
            continue
        if a.startswith(("--json=", "--part=")):
            continue
        out.append(a)
    return out


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--part", choices=("torch", "keras"), help="run one framework in this process")
    args = p.parse_args(argv)
    sys.path.insert(0, str(c.BENCH))
    if args.part:
        got = part_torch(args) if args.part == "torch" else part_keras(args)
        if args.json:
            Path(args.json).write_text(json.dumps(got, indent=2) + "\n")
        return got
    if args.device == "cuda" and c.installed("torch"):
        check = c.run_process([c.PYTHON, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"])
        if check.returncode == 3:
            sys.exit("--device cuda: torch sees no CUDA device here; run with --device cpu")
    got = _run_parts(args, argv)
    targets = []
    for d in got["data"].values():
        if d.get("diagnostic"):
            continue
        q = d["ratio"]
        if d["label"].startswith("PyTorch"):  # issue 12: the median, not the noise, decides
            met = q["median"] <= TORCH_TARGET
            words = "met" if met else f"missed: {q['median']:.2f}x > {TORCH_TARGET:.2f}x"
            goal = f"median <= {TORCH_TARGET:.2f}x"
        else:
            words, met = c.ratio_verdict(q)
            goal = "1.00x within noise"
        targets.append(c.target(f"generated / hand-written, {d['label']}: {goal}",
                                f"{q['median']:.2f}x (quartiles {q['q1']:.2f}x - {q['q3']:.2f}x): {words}", met))
    result = {
        "benchmark": "generated_models",
        "title": "2. Generated models: forward latency",
        "intro": ("Forward latency of the ResNet-50 netspec generates against the hand-written model with the same "
                  "weights, in the same process. Ratio = generated / hand-written per round: below 1 means the "
                  "generated model is faster."),
        "settings": {"device": args.device, "threads": c.threads(args), "mode": c.mode_name(args)},
        "sections": [c.section("ResNet-50, generated vs hand-written", COLUMNS, got["rows"], [
            *got["notes"],
            "a model's time in a round is the fastest of 3 calls (batch 1) or 2 (batch 8); the medians are over rounds",
            "a target counts as met when the median ratio is within 3% of 1.00x, when 1.00x lies between the "
            "quartiles of the per-round ratios, or when the generated model is faster"])],
        "targets": targets,
        "data": got["data"],
    }
    c.finish(result, args)
    if got["errors"]:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
