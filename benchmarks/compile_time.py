"""Benchmark 4, compile: time to emit every backend's code or graph for ResNet-50.

Usage: python benchmarks/compile_time.py [--quick | --smoke] [--rounds N] [--json OUT]

In this process (the spec loaded once, interleaved rounds):
- ``netspec.load`` (parse and check), for reference;
- ``spec.compile("torch")`` and ``spec.compile("keras")``: the generated source;
- ``spec.to_onnx(weights)``: the ONNX graph in memory, weights given (no file written);
- ``spec.to_onnx()``: the same with the weights drawn from the spec's initialisers (seed 0).
As whole processes (what a user types):
- ``netspec compile specs/resnet50.net --target torch -o OUT`` and ``--target keras``;
- ``netspec export specs/resnet50.net -o OUT`` (weights drawn from the initialisers) and
  ``... --weights W.safetensors``.
Nothing is imported from torch or TensorFlow: emitting code needs neither.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common as c

SPEC = c.ROOT / "specs" / "resnet50.net"


def main(argv=None) -> dict:
    p = c.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    n_rounds, n_warm = c.rounds(args, full=10, quick=4), c.warmups(args)
    proc_rounds = c.rounds(args, full=5, quick=3)
    has_onnx = c.installed("onnx") and c.installed("numpy")

    import netspec

    spec = netspec.load(SPEC)
    in_cases = {
        "netspec.load (parse + check)": lambda: c.timed(lambda: netspec.load(SPEC)),
        "spec.compile(\"torch\")": lambda: c.timed(lambda: spec.compile("torch")),
        "spec.compile(\"keras\")": lambda: c.timed(lambda: spec.compile("keras")),
    }
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    wfile = tmp / "resnet50.safetensors"
    sizes = {"torch": len(spec.compile("torch")), "keras": len(spec.compile("keras"))}
    if has_onnx:
        from netspec.weights import save_weights

        weights = netspec.init_weights(spec, seed=0)
        save_weights(weights, wfile)
        in_cases["spec.to_onnx(weights) (graph in memory)"] = lambda: c.timed(lambda: spec.to_onnx(weights=weights))
        if not args.smoke:  # the same emitter as the row above, plus drawing 25.6 M numbers
            in_cases["spec.to_onnx() (weights drawn, seed 0)"] = lambda: c.timed(lambda: spec.to_onnx())
    c.progress(f"compile: in process, {n_warm} warm-up + {n_rounds} rounds ...")
    inproc = c.interleaved(in_cases, n_rounds, n_warm)

    failures, peaks = {}, {}

    def process(name, cmd):
        def run():
            if name in failures:
                return float("nan")
            r = c.run_process(cmd)
            if r.returncode:
                failures[name] = f"failed (exit {r.returncode}): {c.last_line(r.stderr)}"
            peaks[name] = max(peaks.get(name, 0.0), r.peak_mib)
            return r.seconds
        return run

    ns = [c.PYTHON, "-m", "netspec"]
    commands = {
        "netspec compile --target torch": [*ns, "compile", str(SPEC), "--target", "torch", "-o",
                                           str(tmp / "r50_torch.py")],
        "netspec compile --target keras": [*ns, "compile", str(SPEC), "--target", "keras", "-o",
                                           str(tmp / "r50_keras.py")],
    }
    if has_onnx and not args.smoke:
        commands["netspec export (weights drawn)"] = [*ns, "export", str(SPEC), "-o", str(tmp / "r50.onnx")]
    if has_onnx:
        commands["netspec export --weights W"] = [*ns, "export", str(SPEC), "-o", str(tmp / "r50_w.onnx"),
                                                  "--weights", str(wfile)]
    c.progress(f"compile: processes, {n_warm} warm-up + {proc_rounds} rounds ...")
    procs = c.interleaved({name: process(name, cmd) for name, cmd in commands.items()}, proc_rounds, n_warm)

    rows, data = [], {}
    for name, values in inproc.items():
        st = c.Stats.of(values)
        rows.append([name, "in process", *c.fmt_stats(st), ""])
        data[name] = st.as_dict()
    emit = [n for n in inproc if n.startswith("spec.compile") or n.startswith("spec.to_onnx(weights)")]
    st = c.Stats.of([sum(vals) for vals in zip(*(inproc[n] for n in emit))])
    rows.append(["all three backends: torch + keras source, ONNX graph with weights", "in process",
                 *c.fmt_stats(st), ""])
    data["all three, in process"] = st.as_dict()
    for name, values in procs.items():
        if name in failures:
            rows.append([name, "process", failures[name], "", ""])
            continue
        st = c.Stats.of(values)
        rows.append([name, "process", *c.fmt_stats(st), c.fmt_mib(peaks[name])])
        data[name] = {**st.as_dict(), "peak_mib": peaks[name]}
    three = [n for n in ("netspec compile --target torch", "netspec compile --target keras",
                         "netspec export --weights W") if n in procs and n not in failures]
    if len(three) == 3:
        st = c.Stats.of([sum(vals) for vals in zip(*(procs[n] for n in three))])
        rows.append(["all three backends: compile torch + compile keras + export --weights", "3 processes",
                     *c.fmt_stats(st), ""])
        data["all three, processes"] = st.as_dict()
    if not has_onnx:
        rows.append(["ONNX graph", "", c.NOT_INSTALLED, "", ""])
    result = {
        "benchmark": "compile",
        "title": "4. Compile: emitting each backend for ResNet-50",
        "intro": "Time to turn specs/resnet50.net into PyTorch source, Keras source and an ONNX graph.",
        "settings": {"rounds": n_rounds, "process_rounds": proc_rounds, "mode": c.mode_name(args)},
        "sections": [c.section("ResNet-50", ["step", "how", "median", "min - max", "peak RSS"], rows, [
            f"in process: {n_rounds} interleaved rounds after {n_warm} warm-up, spec loaded once; processes: "
            f"{proc_rounds} rounds",
            f"generated source: torch {sizes['torch']:,} characters, keras {sizes['keras']:,}",
            "the ONNX rows include building the weight tensors (25.6 M floats); drawing them from the initialisers "
            "is the difference between the two to_onnx rows",
        ])],
        "targets": [],
        "data": data,
    }
    c.finish(result, args)
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    return result


if __name__ == "__main__":
    main()
